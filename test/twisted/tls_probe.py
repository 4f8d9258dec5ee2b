"""
Twisted's StartTLS behaviour without TLS material, for test/twisted-behaviours.test.ts.

  tls_probe.py server [--no-ssl]   Twisted's plain AMP (its built-in StartTLS responder) plus a
                                   SecuredPing responder; prints "LISTENING <port>". With --no-ssl,
                                   amp.ssl is None, as on a Twisted without pyOpenSSL.
  tls_probe.py client PORT         Asks a server for StartTLS with callRemoteString (to see the real
                                   code), checks the connection still answers, then asks with callRemote
                                   (what a Twisted caller gets); prints one line per result.
"""
import sys

from twisted.internet import defer, interfaces, protocol, reactor
from twisted.protocols import amp


class SecuredPing(amp.Command):
    response = [(b"pinged", amp.Boolean())]


class Sum(amp.Command):
    arguments = [(b"a", amp.Integer()), (b"b", amp.Integer())]
    response = [(b"total", amp.Integer())]


class Server(amp.AMP):
    @SecuredPing.responder
    def secured_ping(self):
        return {"pinged": interfaces.ISSLTransport.providedBy(self.transport)}

    @Sum.responder
    def sum(self, a, b):
        return {"total": a + b}


def out(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def run_server(no_ssl):
    if no_ssl:
        amp.ssl = None
    factory = protocol.Factory.forProtocol(Server)
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    out("LISTENING %d" % port.getHost().port)
    reactor.run()


@defer.inlineCallbacks
def client(port):
    proto = yield protocol.ClientCreator(reactor, amp.AMP).connectTCP("127.0.0.1", port)
    try:
        yield proto.callRemoteString(b"StartTLS")
        out("RAW ANSWER")
    except amp.RemoteAmpError as e:
        out("RAW %s %s" % (e.errorCode.decode("latin1"), e.description))
    total = yield proto.callRemote(Sum, a=1, b=2)
    out("SUM %d" % total["total"])
    # last: after a failed StartTLS a Twisted initiator buffers every later box forever
    try:
        yield proto.callRemote(amp.StartTLS)
        out("TYPED ANSWER")
    except Exception as e:
        out("TYPED %s %s" % (type(e).__name__, e))
    proto.transport.loseConnection()


def run_client(port):
    def done(result):
        reactor.stop()
        return result

    def failed(f):
        out("FAILED %s" % f.getErrorMessage())

    d = client(port)
    d.addErrback(failed)
    d.addBoth(done)
    reactor.callLater(20, reactor.stop)
    reactor.run()


if __name__ == "__main__":
    if sys.argv[1] == "server":
        run_server("--no-ssl" in sys.argv)
    else:
        run_client(int(sys.argv[2]))
