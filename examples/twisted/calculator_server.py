#!/usr/bin/python3
"""Twisted's AMP howto calculator server (docs/core/examples/ampserver.py), for examples/twisted-interop.ts.

    /usr/bin/python3 examples/twisted/calculator_server.py [--port 0] [--host 127.0.0.1]

Prints "LISTENING <port>" (flushed) once it accepts connections (--port 0 picks a free port), then one
line per operation; serves until SIGTERM/SIGINT and exits 0. Needs Twisted (Debian: python3-twisted).
"""
import argparse
import signal
import sys

from twisted.internet import reactor
from twisted.internet.protocol import Factory
from twisted.protocols import amp


class Sum(amp.Command):
    arguments = [(b"a", amp.Integer()), (b"b", amp.Integer())]
    response = [(b"total", amp.Integer())]


class Divide(amp.Command):
    arguments = [(b"numerator", amp.Integer()), (b"denominator", amp.Integer())]
    response = [(b"result", amp.Float())]
    errors = {ZeroDivisionError: b"ZERO_DIVISION"}


def say(text):
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


class Math(amp.AMP):
    def sum(self, a, b):
        total = a + b
        say("Did a sum: {} + {} = {}".format(a, b, total))
        return {"total": total}

    Sum.responder(sum)

    def divide(self, numerator, denominator):
        result = float(numerator) / denominator
        say("Divided: {} / {} = {}".format(numerator, denominator, result))
        return {"result": result}

    Divide.responder(divide)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--host", default="127.0.0.1")
    options = parser.parse_args()
    factory = Factory()
    factory.protocol = Math
    port = reactor.listenTCP(options.port, factory, interface=options.host)
    # SIGTERM/SIGINT end the server normally (exit 0)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: reactor.callFromThread(reactor.stop))
    say("LISTENING {}".format(port.getHost().port))
    reactor.run(installSignalHandlers=False)


if __name__ == "__main__":
    main()
