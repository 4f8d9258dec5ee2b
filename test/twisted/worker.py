#!/usr/bin/python3
"""An AMP worker on Twisted's standard I/O, as ampoule runs its children (used by the ChildProcess and
WorkerPool tests and examples).

    worker.py [--fds 3,4] [--ignore-term]

Serves AMP on stdin/stdout (or, with --fds IN,OUT, on those descriptors: trial's convention is 3,4)
until the input ends, then exits 0. Logs go to stderr only: stdout is the protocol.

Commands: Sum(a, b) -> total; Delay(ms) -> ms (answers after ms milliseconds); Spin(ms) -> ms (keeps
the CPU busy for ms milliseconds, blocking); Pid() -> pid;
Crash(code, message): writes message to stderr and exits with code at once, never answering.
--ignore-term: ignore SIGTERM (a stuck worker only SIGKILL ends).
"""
import os
import signal
import sys
import time

from twisted.internet import defer, reactor, stdio
from twisted.protocols import amp


class Sum(amp.Command):
    arguments = [(b"a", amp.Integer()), (b"b", amp.Integer())]
    response = [(b"total", amp.Integer())]


class Delay(amp.Command):
    arguments = [(b"ms", amp.Integer())]
    response = [(b"ms", amp.Integer())]


class Pid(amp.Command):
    arguments = []
    response = [(b"pid", amp.Integer())]


class Spin(amp.Command):
    arguments = [(b"ms", amp.Integer())]
    response = [(b"ms", amp.Integer())]


class Crash(amp.Command):
    arguments = [(b"code", amp.Integer()), (b"message", amp.Unicode())]
    response = []


class Worker(amp.AMP):
    @Sum.responder
    def sum(self, a, b):
        return {"total": a + b}

    @Delay.responder
    def delay(self, ms):
        d = defer.Deferred()
        reactor.callLater(ms / 1000.0, d.callback, {"ms": ms})
        return d

    @Pid.responder
    def pid(self):
        return {"pid": os.getpid()}

    @Spin.responder
    def spin(self, ms):
        end = time.perf_counter() + ms / 1000.0
        while time.perf_counter() < end:
            pass
        return {"ms": ms}

    @Crash.responder
    def crash(self, code, message):
        sys.stderr.write(message + "\n")
        sys.stderr.flush()
        os._exit(code)

    def connectionLost(self, reason):
        amp.AMP.connectionLost(self, reason)
        if reactor.running:
            reactor.stop()


def main(argv):
    fds = (0, 1)
    if "--fds" in argv:
        fds = tuple(int(x) for x in argv[argv.index("--fds") + 1].split(","))
    if "--ignore-term" in argv:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        reactor.callWhenRunning(signal.signal, signal.SIGTERM, signal.SIG_IGN)
    stdio.StandardIO(Worker(), stdin=fds[0], stdout=fds[1])
    reactor.run(installSignalHandlers=not ("--ignore-term" in argv))


if __name__ == "__main__":
    main(sys.argv[1:])
