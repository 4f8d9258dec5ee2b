"""A Twisted AMP client that sends COUNT concurrent PleaseCallMe calls; the server answers each by first
calling our Greet back. Prints "answered N of COUNT" and exits 0 when every call was answered correctly,
1 otherwise (or after --timeout seconds)."""
import argparse
import sys

from twisted.internet import defer, endpoints, reactor
from twisted.protocols import amp


class GreetRefused(Exception):
    pass


class Greet(amp.Command):
    arguments = [(b"name", amp.Unicode())]
    response = [(b"greeting", amp.Unicode())]
    errors = {GreetRefused: b"GREET_REFUSED"}


class PleaseCallMe(amp.Command):
    arguments = [(b"name", amp.Unicode())]
    response = [(b"greeting", amp.Unicode())]
    errors = {GreetRefused: b"GREET_REFUSED"}


class Client(amp.AMP):
    @Greet.responder
    def greet(self, name):
        return {"greeting": "Hello, %s!" % (name,)}


@defer.inlineCallbacks
def main(args):
    endpoint = endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", args.port)
    proto = yield endpoints.connectProtocol(endpoint, Client())
    names = ["caller %d" % i for i in range(args.count)]
    results = yield defer.DeferredList(
        [proto.callRemote(PleaseCallMe, name=name) for name in names], consumeErrors=True
    )
    ok = sum(1 for (success, value), name in zip(results, names)
             if success and value["greeting"] == "Hello, %s!" % (name,))
    print("answered %d of %d" % (ok, args.count))
    proto.transport.loseConnection()
    return ok == args.count


def run():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--timeout", type=float, default=50)
    args = parser.parse_args()
    outcome = {"ok": False}

    def done(ok):
        outcome["ok"] = ok
        reactor.stop()

    def failed(failure):
        print("error: %s" % (failure.getErrorMessage(),), file=sys.stderr)
        reactor.stop()

    def timeout():
        print("timed out after %s s" % (args.timeout,), file=sys.stderr)
        reactor.stop()

    reactor.callWhenRunning(lambda: main(args).addCallbacks(done, failed))
    timer = reactor.callLater(args.timeout, timeout)
    reactor.run()
    if timer.active():
        timer.cancel()
    sys.exit(0 if outcome["ok"] else 1)


if __name__ == "__main__":
    run()
