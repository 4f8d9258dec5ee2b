"""A plain Twisted AMP client for the Effect RPC bridge test (test/amprpc.test.ts).

It declares, with twisted.protocols.amp, the commands that the TypeScript RpcGroup maps to, calls our
server, and prints one JSON object with what it saw. Usage: rpc_client.py PORT
"""
import json
import sys

from twisted.internet import defer, endpoints, task
from twisted.protocols import amp


class ZeroDivision(Exception):
    pass


class Forbidden(Exception):
    pass


class Sum(amp.Command):
    arguments = [(b"a", amp.Integer()), (b"b", amp.Integer())]
    response = [(b"total", amp.Integer())]


class Divide(amp.Command):
    arguments = [(b"numerator", amp.Integer()), (b"denominator", amp.Integer())]
    response = [(b"result", amp.Float())]
    errors = {ZeroDivision: b"ZERO_DIVISION"}


class Whoami(amp.Command):
    arguments = [(b"token", amp.Unicode())]
    response = [(b"user", amp.Unicode()), (b"greeting", amp.Unicode(optional=True))]
    errors = {Forbidden: b"Forbidden"}


class Ping(amp.Command):
    arguments = []
    response = []


def text(error):
    value = error.args[0] if error.args else ""
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


@defer.inlineCallbacks
def main(reactor, port):
    endpoint = endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", port)
    proto = yield endpoints.connectProtocol(endpoint, amp.AMP())
    seen = {}
    seen["sum"] = (yield proto.callRemote(Sum, a=13, b=81))["total"]
    seen["big"] = str((yield proto.callRemote(Sum, a=2**70, b=1))["total"])
    seen["divide"] = (yield proto.callRemote(Divide, numerator=1, denominator=4))["result"]
    try:
        yield proto.callRemote(Divide, numerator=1, denominator=0)
        seen["divzero"] = "no error"
    except ZeroDivision as e:
        seen["divzero"] = "ZeroDivision: " + text(e)
    answer = yield proto.callRemote(Whoami, token="secret")
    seen["whoami"] = [answer["user"], answer.get("greeting")]
    try:
        yield proto.callRemote(Whoami, token="nope")
        seen["forbidden"] = "no error"
    except Forbidden as e:
        seen["forbidden"] = "Forbidden: " + text(e)
    ping = yield proto.callRemote(Ping)
    seen["ping"] = sorted(ping.keys())
    proto.transport.loseConnection()
    print(json.dumps(seen))


if __name__ == "__main__":
    task.react(main, [int(sys.argv[1])])
