#!/usr/bin/python3
"""A Twisted parent speaking AMP to a child over the child's fds 3 and 4, as trial -j does (it writes to
the child's fd 3 and reads its fd 4; twisted.trial._dist), used to test ChildProcess.serveParent's side.

    trial_parent.py COMMAND [ARGS...]

Calls Sum(a=2, b=3) and prints "total=<n>", closes the pipe, and prints "exit <code>" once the child
has exited. Exits 1 on any failure (the reason on stderr); gives up after 60 s.
"""
import sys

from twisted.internet import error, protocol, reactor
from twisted.protocols import amp

IN, OUT = 3, 4  # the child's descriptors: we write to 3 and read from 4


class Sum(amp.Command):
    arguments = [(b"a", amp.Integer()), (b"b", amp.Integer())]
    response = [(b"total", amp.Integer())]


class ToChild:
    """The AMP protocol's transport: writes go to the child's fd 3."""

    def __init__(self, process):
        self.process = process

    def write(self, data):
        self.process.writeToChild(IN, data)

    def writeSequence(self, seq):
        self.write(b"".join(seq))

    def loseConnection(self):
        self.process.closeChildFD(IN)

    def getPeer(self):
        return None

    def getHost(self):
        return None


class Parent(protocol.ProcessProtocol):
    def __init__(self):
        self.amp = amp.AMP()
        self.status = 1

    def connectionMade(self):
        self.amp.makeConnection(ToChild(self.transport))
        d = self.amp.callRemote(Sum, a=2, b=3)
        d.addCallback(self.answered)
        d.addErrback(self.failed)

    def answered(self, result):
        print("total=%d" % result["total"], flush=True)
        self.status = 0
        self.transport.closeChildFD(IN)

    def failed(self, failure):
        sys.stderr.write("call failed: %s\n" % failure.getErrorMessage())
        self.transport.signalProcess("KILL")

    def childDataReceived(self, fd, data):
        if fd == OUT:
            self.amp.dataReceived(data)
        else:
            sys.stderr.write(data.decode("utf-8", "replace"))

    def processEnded(self, reason):
        code = reason.value.exitCode if isinstance(reason.value, (error.ProcessDone, error.ProcessTerminated)) else None
        print("exit %s" % code, flush=True)
        if code != 0:
            self.status = 1
        reactor.stop()


def main(argv):
    parent = Parent()
    reactor.spawnProcess(
        parent, argv[0], argv, env=None,
        childFDs={0: "w", 1: "r", 2: "r", IN: "w", OUT: "r"},
    )
    reactor.callLater(60, reactor.stop)
    reactor.run()
    sys.exit(parent.status)


if __name__ == "__main__":
    main(sys.argv[1:])
