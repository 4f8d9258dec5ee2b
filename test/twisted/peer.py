#!/usr/bin/python3
"""The AMP conformance service (shared/spec/conformance-service.md) on Twisted: server and client.

    peer.py server --port 0 [--host 127.0.0.1] [--tls-cert cert.pem --tls-key key.pem]
                   [--tls-ca ca.pem] [--require-client-cert] [--verbose]
        Prints "LISTENING <port>" (flushed) once listening; serves until SIGTERM/SIGINT, then exits 0.

    peer.py server --unix PATH [--verbose]
        Listens on a Unix socket instead (file descriptors pass there); prints "LISTENING <PATH>".

    peer.py client --connect HOST:PORT [--tls-ca ca.pem] [--tls-cert client.pem --tls-key client-key.pem]
                   [--only name1,name2] [--list] [--verbose]
    peer.py client --unix PATH [...]   (adds the ReadDescriptor/OpenDescriptor checks)
        Runs every check against a server with this command set, each on a fresh connection with a 10 s
        timeout; prints "PASS <name>" or "FAIL <name>: <reason>" per check, then "N passed, M failed".
        Exits 0 only if none failed. --list prints the check names and exits (with --unix, the
        descriptor checks too).

Every responder is available on both ends (the client answers Greet, Notify, ... too). Twisted logs go
to stderr (errors only, unless --verbose); stdout carries only the lines above.

Wire notes:
- RawEcho is a SimpleStringLocator responder, `amp_RAWECHO`: the locator upper-cases the name, so
  `RawEcho`, `rawecho`, `RAWECHO` all reach it. It answers the box minus `_ask` and `_command`.
- StartTLS is Twisted's own `amp.StartTLS`. The server answers with its certificate; with --tls-ca the
  client certificate is verified (asked for, and required with --require-client-cert). Without
  --tls-cert the answer is the non-fatal error TLS_UNAVAILABLE. The TLS role follows the TCP role
  (the TCP client is the TLS client), so the client side initiates.
"""
import argparse
import collections
import math
import os
import signal
import struct
import sys
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import twisted
from twisted.internet import defer, protocol, reactor, ssl
from twisted.internet.endpoints import TCP4ClientEndpoint, UNIXClientEndpoint, connectProtocol
from twisted.internet.interfaces import ISSLTransport
from twisted.logger import (
    FilteringLogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    globalLogBeginner,
    textFileLogObserver,
)
from twisted.protocols import amp
from twisted.python.filepath import FilePath

IMPLEMENTATION = "twisted %s" % twisted.__version__
CHECK_TIMEOUT = 10.0

# ---------------------------------------------------------------------------------------------------
# Commands


class ZeroDivision(Exception):
    pass


class FatalTest(Exception):
    pass


class GreetRefused(Exception):
    pass


class UndeclaredError(Exception):
    """Raised by Undeclared; in no command's errors, so it goes out as UNKNOWN and closes."""


def item_args():
    return [
        (b"id", amp.Integer()),
        (b"name", amp.Unicode()),
        (b"tags", amp.ListOf(amp.Unicode())),
        (b"weight", amp.Float(optional=True)),
        (b"children", amp.AmpList([(b"x", amp.Integer()), (b"label", amp.Unicode(optional=True))])),
    ]


def echo_command(name, argument):
    return type(
        name,
        (amp.Command,),
        {"arguments": [(b"value", argument)], "response": [(b"value", argument)], "__module__": __name__},
    )


class Sum(amp.Command):
    arguments = [(b"a", amp.Integer()), (b"b", amp.Integer())]
    response = [(b"total", amp.Integer())]


EchoInteger = echo_command("EchoInteger", amp.Integer())
EchoString = echo_command("EchoString", amp.String())
EchoUnicode = echo_command("EchoUnicode", amp.Unicode())
EchoFloat = echo_command("EchoFloat", amp.Float())
EchoBoolean = echo_command("EchoBoolean", amp.Boolean())
EchoDecimal = echo_command("EchoDecimal", amp.Decimal())
EchoDateTime = echo_command("EchoDateTime", amp.DateTime())
EchoListOfInteger = echo_command("EchoListOfInteger", amp.ListOf(amp.Integer()))
EchoListOfUnicode = echo_command("EchoListOfUnicode", amp.ListOf(amp.Unicode()))
EchoAmpList = echo_command("EchoAmpList", amp.AmpList(item_args()))
EchoPath = echo_command("EchoPath", amp.Path())

ECHO_COMMANDS = [
    EchoInteger,
    EchoString,
    EchoUnicode,
    EchoFloat,
    EchoBoolean,
    EchoDecimal,
    EchoDateTime,
    EchoListOfInteger,
    EchoListOfUnicode,
    EchoAmpList,
    EchoPath,
]


def optional_args():
    return [
        (b"required", amp.Unicode()),
        (b"opt_int", amp.Integer(optional=True)),
        (b"opt_text", amp.Unicode(optional=True)),
        (b"opt_list", amp.ListOf(amp.Integer(), optional=True)),
    ]


class EchoOptional(amp.Command):
    arguments = optional_args()
    response = optional_args() + [(b"present", amp.ListOf(amp.Unicode()))]


def all_args():
    return [
        (b"int", amp.Integer()),
        (b"string", amp.String()),
        (b"unicode", amp.Unicode()),
        (b"float", amp.Float()),
        (b"boolean", amp.Boolean()),
        (b"decimal", amp.Decimal()),
        (b"datetime", amp.DateTime()),
        (b"int_list", amp.ListOf(amp.Integer())),
        (b"unicode_list", amp.ListOf(amp.Unicode())),
        (b"items", amp.AmpList(item_args())),
        (b"path", amp.Path()),
    ]


class EchoAll(amp.Command):
    arguments = all_args()
    response = all_args()


class NameMangling(amp.Command):
    # Python names: "from" -> "From", "dashed-name" -> "dashed_name".
    arguments = [(b"from", amp.Unicode()), (b"dashed-name", amp.Integer())]
    response = [(b"from", amp.Unicode()), (b"dashed-name", amp.Integer())]


def sample_args():
    I, S, U, F, B, D, T = amp.Integer, amp.String, amp.Unicode, amp.Float, amp.Boolean, amp.Decimal, amp.DateTime
    return [
        (b"int_zero", I()),
        (b"int_negative", I()),
        (b"int_big", I()),
        (b"int_big_negative", I()),
        (b"string_binary", S()),
        (b"string_empty", S()),
        (b"unicode_text", U()),
        (b"unicode_empty", U()),
        (b"float_simple", F()),
        (b"float_tenth", F()),
        (b"float_negative_zero", F()),
        (b"float_big", F()),
        (b"float_tiny", F()),
        (b"float_nan", F()),
        (b"float_inf", F()),
        (b"float_neg_inf", F()),
        (b"bool_true", B()),
        (b"bool_false", B()),
        (b"decimal_precise", D()),
        (b"decimal_big", D()),
        (b"decimal_exp", D()),
        (b"decimal_neg_zero", D()),
        (b"decimal_inf", D()),
        (b"decimal_neg_inf", D()),
        (b"decimal_nan", D()),
        (b"datetime_utc", T()),
        (b"datetime_plus", T()),
        (b"datetime_minus", T()),
        (b"int_list", amp.ListOf(I())),
        (b"int_list_empty", amp.ListOf(I())),
        (b"unicode_list", amp.ListOf(U())),
        (b"items", amp.AmpList(item_args())),
        (b"items_empty", amp.AmpList(item_args())),
        (b"path", amp.Path()),
    ]


class GetSamples(amp.Command):
    arguments = []
    response = sample_args()


class CheckSamples(amp.Command):
    arguments = sample_args()
    response = [(b"ok", amp.Boolean()), (b"mismatches", amp.ListOf(amp.Unicode()))]


class Divide(amp.Command):
    arguments = [(b"numerator", amp.Integer()), (b"denominator", amp.Integer())]
    response = [(b"result", amp.Float())]
    errors = {ZeroDivisionError: b"ZERO_DIVISION"}


class Fatal(amp.Command):
    arguments = [(b"message", amp.Unicode())]
    response = []
    fatalErrors = {FatalTest: b"FATAL_TEST"}


class Undeclared(amp.Command):
    arguments = []
    response = []


class Notify(amp.Command):
    arguments = [(b"channel", amp.Unicode()), (b"message", amp.Unicode())]
    response = []
    requiresAnswer = False


class GetNotifications(amp.Command):
    arguments = [(b"channel", amp.Unicode()), (b"clear", amp.Boolean(optional=True))]
    response = [(b"messages", amp.ListOf(amp.Unicode()))]


class Delay(amp.Command):
    arguments = [(b"ms", amp.Integer()), (b"value", amp.Integer())]
    response = [(b"value", amp.Integer())]


class Greet(amp.Command):
    arguments = [(b"name", amp.Unicode())]
    response = [(b"greeting", amp.Unicode())]
    errors = {GreetRefused: b"GREET_REFUSED"}


class PleaseCallMe(amp.Command):
    arguments = [(b"name", amp.Unicode())]
    response = [(b"greeting", amp.Unicode())]
    errors = {GreetRefused: b"GREET_REFUSED"}


class PleaseNotifyMe(amp.Command):
    arguments = [(b"channel", amp.Unicode()), (b"message", amp.Unicode()), (b"count", amp.Integer())]
    response = [(b"sent", amp.Integer())]


class ConnectionInfo(amp.Command):
    arguments = []
    response = [
        (b"tls", amp.Boolean()),
        (b"peer_cert_cn", amp.Unicode(optional=True)),
        (b"implementation", amp.Unicode()),
    ]


class SwitchToEcho(amp.ProtocolSwitchCommand):
    commandName = b"SwitchToEcho"
    arguments = []
    response = []


class ReadDescriptor(amp.Command):
    arguments = [(b"fd", amp.Descriptor())]
    response = [(b"data", amp.String())]


class OpenDescriptor(amp.Command):
    arguments = [(b"data", amp.String())]
    response = [(b"fd", amp.Descriptor())]


MAX_READ = 65535


def read_fd(fd, limit=MAX_READ):
    """Reads fd to its end (at most `limit` bytes) and closes it."""
    chunks = []
    total = 0
    try:
        while total < limit:
            chunk = os.read(fd, limit - total)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks)


def pipe_with(data):
    """The read end of a new pipe holding `data`, its write end closed."""
    r, w = os.pipe()
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(w, view):]
    finally:
        os.close(w)
    return r


def close_when_sent(transport, fd):
    """Closes our copy of fd once the UNIX transport has sent it (it leaves _sendmsgQueue): closing it
    right after answering would beat the sendmsg (Twisted issue #6367)."""
    if fd in getattr(transport, "_sendmsgQueue", ()) and transport.connected:
        reactor.callLater(0.01, close_when_sent, transport, fd)
    else:
        os.close(fd)


# ---------------------------------------------------------------------------------------------------
# Sample values and their exact wire bytes

UTC = timezone.utc


def tz(minutes):
    return timezone(timedelta(minutes=minutes))


def sample_items():
    return [
        {
            "id": 1,
            "name": "first",
            "tags": ["a", "b"],
            "weight": 2.5,
            "children": [{"x": 1, "label": "one"}, {"x": 2, "label": None}],
        },
        {"id": 2, "name": "\u2603", "tags": [], "weight": None, "children": []},
    ]


SAMPLES = {
    "int_zero": 0,
    "int_negative": -42,
    "int_big": 2**100,
    "int_big_negative": -(2**80) - 1,
    "string_binary": bytes(range(256)),
    "string_empty": b"",
    "unicode_text": "h\u00e9llo \u2603 \U0001f389 \u65e5\u672c\u8a9e",
    "unicode_empty": "",
    "float_simple": 1.5,
    "float_tenth": 0.1,
    "float_negative_zero": -0.0,
    "float_big": 1e300,
    "float_tiny": 5e-324,
    "float_nan": float("nan"),
    "float_inf": float("inf"),
    "float_neg_inf": float("-inf"),
    "bool_true": True,
    "bool_false": False,
    "decimal_precise": Decimal("1.10"),
    "decimal_big": Decimal("-123456789012345678901234567890.000000001"),
    "decimal_exp": Decimal("1E+2"),
    "decimal_neg_zero": Decimal("-0"),
    "decimal_inf": Decimal("Infinity"),
    "decimal_neg_inf": Decimal("-Infinity"),
    "decimal_nan": Decimal("NaN"),
    "datetime_utc": datetime(2012, 3, 4, 5, 6, 7, 890123, tzinfo=UTC),
    "datetime_plus": datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=tz(5 * 60 + 30)),
    "datetime_minus": datetime(2000, 1, 1, 0, 0, 0, 0, tzinfo=tz(-8 * 60)),
    "int_list": [0, -1, 2**64, 7],
    "int_list_empty": [],
    "unicode_list": ["", "a", "\u2603", "\U0001f389"],
    "items": sample_items(),
    "items_empty": [],
    "path": FilePath("/tmp/amp peer/\u00fc.txt"),
}


def ser(pairs):
    """A box serialized by hand (keys sorted bytewise), independent of Twisted's encoder."""
    out = b""
    for k, v in sorted(pairs.items()):
        out += struct.pack("!H", len(k)) + k + struct.pack("!H", len(v)) + v
    return out + b"\x00\x00"


def strings(values):
    return b"".join(struct.pack("!H", len(v)) + v for v in values)


EXPECTED_WIRE = {
    b"int_zero": b"0",
    b"int_negative": b"-42",
    b"int_big": b"1267650600228229401496703205376",
    b"int_big_negative": b"-1208925819614629174706177",
    b"string_binary": bytes(range(256)),
    b"string_empty": b"",
    b"unicode_text": "h\u00e9llo \u2603 \U0001f389 \u65e5\u672c\u8a9e".encode("utf-8"),
    b"unicode_empty": b"",
    b"float_simple": b"1.5",
    b"float_tenth": b"0.1",
    b"float_negative_zero": b"-0.0",
    b"float_big": b"1e+300",
    b"float_tiny": b"5e-324",
    b"float_nan": b"nan",
    b"float_inf": b"inf",
    b"float_neg_inf": b"-inf",
    b"bool_true": b"True",
    b"bool_false": b"False",
    b"decimal_precise": b"1.10",
    b"decimal_big": b"-123456789012345678901234567890.000000001",
    b"decimal_exp": b"1E+2",
    b"decimal_neg_zero": b"-0",
    b"decimal_inf": b"Infinity",
    b"decimal_neg_inf": b"-Infinity",
    b"decimal_nan": b"NaN",
    b"datetime_utc": b"2012-03-04T05:06:07.890123-00:00",
    b"datetime_plus": b"1999-12-31T23:59:59.999999+05:30",
    b"datetime_minus": b"2000-01-01T00:00:00.000000-08:00",
    b"int_list": b"\x00\x010\x00\x02-1\x00\x1418446744073709551616\x00\x017",
    b"int_list_empty": b"",
    b"unicode_list": b"\x00\x00\x00\x01a\x00\x03\xe2\x98\x83\x00\x04\xf0\x9f\x8e\x89",
    b"items": ser(
        {
            b"id": b"1",
            b"name": b"first",
            b"tags": strings([b"a", b"b"]),
            b"weight": b"2.5",
            b"children": ser({b"x": b"1", b"label": b"one"}) + ser({b"x": b"2"}),
        }
    )
    + ser({b"id": b"2", b"name": "\u2603".encode("utf-8"), b"tags": b"", b"children": b""}),
    b"items_empty": b"",
    b"path": "/tmp/amp peer/\u00fc.txt".encode("utf-8"),
}


def same(a, b):
    """Equality for decoded AMP values: nan == nan, -0.0 != 0.0, Decimal by exact text, datetime with
    its offset, FilePath by path, lists and AmpList elements member by member."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    if isinstance(a, Decimal) and isinstance(b, Decimal):
        return str(a) == str(b)
    if isinstance(a, datetime) and isinstance(b, datetime):
        return a == b and a.utcoffset() == b.utcoffset()
    if isinstance(a, FilePath) and isinstance(b, FilePath):
        return a.path == b.path
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return set(a) == set(b) and all(same(a[k], b[k]) for k in a)
    if type(a) is not type(b):
        return False
    return a == b


# ---------------------------------------------------------------------------------------------------
# The protocol: every responder, on both ends

NOTIFICATIONS = collections.defaultdict(list)


class TLSConfig:
    """What the StartTLS responder answers with (the TLS server side)."""

    def __init__(self, cert=None, ca=None, require_client_cert=False):
        self.cert = cert
        self.ca = ca
        self.require_client_cert = require_client_cert


SERVER_TLS = TLSConfig()


class ServerCertificate:
    """Returned as `tls_localCertificate`: amp calls `.options()` on it to build the TLS context. With a
    CA, client certificates are asked for and verified (required with --require-client-cert)."""

    def __init__(self, config):
        self.config = config

    def options(self, *authorities):
        cert = self.config.cert
        if self.config.ca is None:
            return ssl.CertificateOptions(privateKey=cert.privateKey.original, certificate=cert.original)
        return ssl.CertificateOptions(
            privateKey=cert.privateKey.original,
            certificate=cert.original,
            verify=True,
            caCerts=[self.config.ca.original],
            requireCertificate=self.config.require_client_cert,
        )

    def __repr__(self):
        return "<ServerCertificate %r>" % (self.config.cert,)


class Echo(protocol.Protocol):
    """What SwitchToEcho switches to: writes back every byte."""

    def dataReceived(self, data):
        self.transport.write(data)


def peer_cert_cn(transport):
    if not ISSLTransport.providedBy(transport):
        return None
    try:
        cert = transport.getPeerCertificate()
    except Exception:
        return None
    if cert is None:
        return None
    return cert.get_subject().commonName


class PeerAMP(amp.AMP):
    def __init__(self):
        super().__init__()
        self.closed = defer.Deferred()
        self.close_reason = None
        self.greeted = []

    def connectionLost(self, reason):
        super().connectionLost(reason)
        self.close_reason = reason
        if not self.closed.called:
            self.closed.callback(None)

    @Sum.responder
    def sum(self, a, b):
        return {"total": a + b}

    def echo(self, value):
        return {"value": value}

    for _cmd in ECHO_COMMANDS:
        _cmd.responder(echo)
    del _cmd

    @EchoOptional.responder
    def echo_optional(self, required, opt_int, opt_text, opt_list):
        given = {"opt_int": opt_int, "opt_text": opt_text, "opt_list": opt_list}
        out = dict(given, required=required)
        out["present"] = sorted(k for k, v in given.items() if v is not None)
        return out

    @EchoAll.responder
    def echo_all(self, **kw):
        return kw

    @NameMangling.responder
    def name_mangling(self, From, dashed_name):
        return {"From": From, "dashed_name": dashed_name}

    @GetSamples.responder
    def get_samples(self):
        return dict(SAMPLES)

    @CheckSamples.responder
    def check_samples(self, **kw):
        mismatches = sorted(k for k, v in SAMPLES.items() if not same(kw.get(k), v))
        return {"ok": not mismatches, "mismatches": mismatches}

    @Divide.responder
    def divide(self, numerator, denominator):
        if denominator == 0:
            raise ZeroDivisionError("division by zero")
        return {"result": numerator / denominator}

    @Fatal.responder
    def fatal(self, message):
        raise FatalTest(message)

    @Undeclared.responder
    def undeclared(self):
        raise UndeclaredError("this error is not declared")

    @Notify.responder
    def notify(self, channel, message):
        NOTIFICATIONS[channel].append(message)
        return {}

    @GetNotifications.responder
    def get_notifications(self, channel, clear):
        messages = list(NOTIFICATIONS[channel])
        if clear:
            del NOTIFICATIONS[channel]
        return {"messages": messages}

    @Delay.responder
    def delay(self, ms, value):
        d = defer.Deferred()
        reactor.callLater(max(0, min(10000, ms)) / 1000.0, d.callback, {"value": value})
        return d

    @Greet.responder
    def greet(self, name):
        self.greeted.append(name)
        if not name:
            raise GreetRefused("empty name")
        return {"greeting": "Hello, %s!" % (name,)}

    @PleaseCallMe.responder
    def please_call_me(self, name):
        d = self.callRemote(Greet, name=name)
        d.addCallback(lambda answer: {"greeting": answer["greeting"]})
        return d

    @PleaseNotifyMe.responder
    def please_notify_me(self, channel, message, count):
        n = max(0, min(10000, count))
        for i in range(n):
            self.callRemote(Notify, channel=channel, message="%s %d" % (message, i))
        return {"sent": n}

    @ConnectionInfo.responder
    def connection_info(self):
        return {
            "tls": bool(ISSLTransport.providedBy(self.transport)),
            "peer_cert_cn": peer_cert_cn(self.transport),
            "implementation": IMPLEMENTATION,
        }

    @amp.StartTLS.responder
    def start_tls(self):
        if SERVER_TLS.cert is None:
            raise amp.RemoteAmpError(b"TLS_UNAVAILABLE", "TLS is not configured on this peer")
        return {"tls_localCertificate": ServerCertificate(SERVER_TLS)}

    @SwitchToEcho.responder
    def switch_to_echo(self):
        return Echo()

    @ReadDescriptor.responder
    def read_descriptor(self, fd):
        return {"data": read_fd(fd)}

    @OpenDescriptor.responder
    def open_descriptor(self, data):
        fd = pipe_with(data)
        reactor.callLater(0, close_when_sent, self.transport, fd)
        return {"fd": fd}

    def amp_RAWECHO(self, box):
        """Raw responder (SimpleStringLocator: `RawEcho` is upper-cased to `amp_RAWECHO`)."""
        return amp.AmpBox({k: v for k, v in box.items() if k not in (b"_ask", b"_command")})


# ---------------------------------------------------------------------------------------------------
# Logging


def start_logging(verbose):
    level = LogLevel.info if verbose else LogLevel.warn
    observer = FilteringLogObserver(
        textFileLogObserver(sys.stderr), [LogLevelFilterPredicate(defaultLogLevel=level)]
    )
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)


def out(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def stop_on_signals():
    """SIGINT and SIGTERM stop the reactor (so the process exits 0), even when SIGINT was inherited as
    ignored (a background job of a shell), where Twisted would leave it alone."""

    def handler(signum, frame):
        reactor.callFromThread(lambda: reactor.running and reactor.stop())

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def read(path):
    with open(path, "rb") as f:
        return f.read()


# ---------------------------------------------------------------------------------------------------
# Server


def run_server(args):
    if bool(args.tls_cert) != bool(args.tls_key):
        sys.exit("--tls-cert and --tls-key go together")
    if args.require_client_cert and not args.tls_ca:
        sys.exit("--require-client-cert needs --tls-ca")
    if args.tls_cert:
        SERVER_TLS.cert = ssl.PrivateCertificate.loadPEM(read(args.tls_cert) + b"\n" + read(args.tls_key))
    if args.tls_ca:
        SERVER_TLS.ca = ssl.Certificate.loadPEM(read(args.tls_ca))
    SERVER_TLS.require_client_cert = args.require_client_cert

    factory = protocol.Factory.forProtocol(PeerAMP)
    stop_on_signals()
    if args.unix:
        reactor.listenUNIX(args.unix, factory)
        out("LISTENING %s" % args.unix)
    else:
        port = reactor.listenTCP(args.port, factory, interface=args.host)
        out("LISTENING %d" % port.getHost().port)
    reactor.run(installSignalHandlers=False)
    return 0


# ---------------------------------------------------------------------------------------------------
# Client checks


class CheckFailed(Exception):
    pass


def expect(condition, message):
    if not condition:
        raise CheckFailed(message)


def sleep(seconds):
    d = defer.Deferred()
    reactor.callLater(seconds, d.callback, None)
    return d


def within(d, seconds, what):
    """d, or CheckFailed(what) if it has not fired after `seconds`."""
    result = defer.Deferred()
    timer = reactor.callLater(seconds, lambda: result.called or result.errback(CheckFailed(what)))

    def done(value):
        if timer.active():
            timer.cancel()
        if not result.called:
            result.callback(value)

    def failed(f):
        if timer.active():
            timer.cancel()
        if not result.called:
            result.errback(f)

    d.addCallbacks(done, failed)
    return result


@defer.inlineCallbacks
def raw_call(proto, command, box):
    """Sends a box as it is (bytes keys) with callRemoteString; returns the answer box without _answer."""
    answer = yield proto.callRemoteString(command, **{k.decode("ascii"): v for k, v in box.items()})
    expect(b"_answer" in answer, "answer without _answer: %r" % (answer,))
    rest = dict(answer)
    del rest[b"_answer"]
    return rest


@defer.inlineCallbacks
def raw_error(proto, command, box):
    """Sends a box expecting an error answer; returns (code, description)."""
    try:
        answer = yield proto.callRemoteString(command, **{k.decode("ascii"): v for k, v in box.items()})
    except amp.UnhandledCommand as e:
        return e.args[0], e.args[1]
    except amp.RemoteAmpError as e:
        return e.errorCode, e.description
    raise CheckFailed("expected an error, got the answer %r" % (answer,))


@defer.inlineCallbacks
def still_open(proto):
    expect(not proto.closed.called, "connection was closed")
    result = yield proto.callRemote(Sum, a=20, b=22)
    expect(result["total"] == 42, "Sum after the error gave %r" % (result,))


@defer.inlineCallbacks
def closed_soon(proto, after):
    yield within(proto.closed, 5, "connection still open 5 s after %s" % (after,))


def short(value, limit=160):
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def echo_check(command, values):
    @defer.inlineCallbacks
    def check(proto, ctx):
        for value in values:
            sent = command.makeArguments({"value": value}, proto)
            answer = yield raw_call(proto, command.commandName, sent)
            expect(answer == dict(sent), "sent %s, got back %s" % (short(dict(sent)), short(answer)))
            # and the typed call decodes to the same value
            typed = yield proto.callRemote(command, value=value)
            expect(same(typed["value"], value), "typed echo of %s gave %s" % (short(value), short(typed["value"])))

    return check


ECHO_VALUES = {
    EchoInteger: [0, 1, -1, 2**100, -(2**100), 2**64, -(2**80) - 1, 10**300],
    EchoString: [b"", b"\x00", bytes(range(256)), b"\x00\x00\x00\x00", b"x" * 60000],
    EchoUnicode: ["", "a", "\x00", "h\u00e9llo \u2603 \U0001f389 \u65e5\u672c\u8a9e", "\ufeffA", "\u2603" * 20000],
    EchoFloat: [
        0.0, -0.0, 1.5, 0.1, 1 / 3, 100.0, 1e15, 1e16, 1e-4, 1e-5, 1.5e-7, 1e300, 5e-324,
        1.7976931348623157e308, -2.5e-300, float("nan"), float("inf"), float("-inf"),
    ],
    EchoBoolean: [True, False],
    EchoDecimal: [
        Decimal(s)
        for s in [
            "0", "-0", "1.10", "0.00", "-0.00", "1E+2", "0E+6", "1E-7", "0.000001", "123E-10",
            "-123456789012345678901234567890.000000001", "Infinity", "-Infinity", "NaN", "-NaN",
            "sNaN", "NaN123", "1E+999999",
        ]
    ],
    EchoDateTime: [
        SAMPLES["datetime_utc"],
        SAMPLES["datetime_plus"],
        SAMPLES["datetime_minus"],
        datetime(1, 1, 1, 0, 0, 0, 1, tzinfo=tz(3 * 60 + 30)),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=tz(-(23 * 60 + 59))),
        datetime(2010, 12, 25, 0, 0, 0, 0, tzinfo=tz(23 * 60 + 59)),
    ],
    EchoListOfInteger: [[], [0], [0, -1, 2**64, 7], list(range(-50, 50))],
    EchoListOfUnicode: [[], [""], ["", "a", "\u2603", "\U0001f389"], ["x" * 300] * 10],
    EchoAmpList: [
        [],
        sample_items(),
        [
            {"id": -1, "name": "", "tags": [""], "weight": float("nan"), "children": [{"x": 0, "label": ""}]},
            {"id": 2**70, "name": "\u2603", "tags": [], "weight": -0.0, "children": []},
        ],
    ],
    EchoPath: [FilePath("/tmp/amp peer/\u00fc.txt"), FilePath("/"), FilePath("/a/b c/d")],
}


ALL_VALUES = {
    "int": 2**70,
    "string": b"\x00\xffbytes",
    "unicode": "\u2603 snow",
    "float": -0.0,
    "boolean": False,
    "decimal": Decimal("-0.00"),
    "datetime": SAMPLES["datetime_plus"],
    "int_list": [1, -2, 3],
    "unicode_list": ["x", ""],
    "items": sample_items(),
    "path": FilePath("/tmp/amp peer/\u00fc.txt"),
}


@defer.inlineCallbacks
def check_echo_all(proto, ctx):
    sent = EchoAll.makeArguments(dict(ALL_VALUES), proto)
    answer = yield raw_call(proto, b"EchoAll", sent)
    expect(answer == dict(sent), "sent %s, got back %s" % (short(dict(sent)), short(answer)))
    typed = yield proto.callRemote(EchoAll, **ALL_VALUES)
    expect(same(typed, ALL_VALUES), "typed EchoAll gave %s" % short(typed))


@defer.inlineCallbacks
def check_name_mangling(proto, ctx):
    sent = {b"from": "fr\u00f6m".encode("utf-8"), b"dashed-name": b"-17"}
    answer = yield raw_call(proto, b"NameMangling", sent)
    expect(answer == sent, "got back %s" % short(answer))
    typed = yield proto.callRemote(NameMangling, From="x", dashed_name=5)
    expect(typed == {"From": "x", "dashed_name": 5}, "typed NameMangling gave %s" % short(typed))


@defer.inlineCallbacks
def check_get_samples(proto, ctx):
    answer = yield raw_call(proto, b"GetSamples", {})
    missing = sorted(k.decode() for k in EXPECTED_WIRE if k not in answer)
    extra = sorted(k.decode("latin-1") for k in answer if k not in EXPECTED_WIRE)
    wrong = sorted(k.decode() for k in EXPECTED_WIRE if k in answer and answer[k] != EXPECTED_WIRE[k])
    expect(not missing and not extra and not wrong, "missing %s, extra %s, wrong %s%s" % (
        missing, extra, wrong, "" if not wrong else " (first: got %s, want %s)" % (
            short(answer[wrong[0].encode()]), short(EXPECTED_WIRE[wrong[0].encode()]))))
    typed = yield proto.callRemote(GetSamples)
    bad = sorted(k for k in SAMPLES if not same(typed[k], SAMPLES[k]))
    expect(not bad, "decoded samples differ: %s" % bad)


@defer.inlineCallbacks
def check_check_samples(proto, ctx):
    result = yield proto.callRemote(CheckSamples, **SAMPLES)
    expect(result == {"ok": True, "mismatches": []}, "with the samples: %s" % short(result))
    # also sent as the exact wire bytes
    answer = yield raw_call(proto, b"CheckSamples", EXPECTED_WIRE)
    expect(answer == {b"ok": b"True", b"mismatches": b""}, "with the sample wire bytes: %s" % short(answer))


@defer.inlineCallbacks
def check_check_samples_mismatch(proto, ctx):
    altered = dict(SAMPLES)
    altered.update(
        int_zero=1,
        string_empty=b"x",
        float_negative_zero=0.0,
        float_nan=1.0,
        decimal_precise=Decimal("1.1"),
        unicode_list=["", "a", "\u2603"],
    )
    result = yield proto.callRemote(CheckSamples, **altered)
    want = ["decimal_precise", "float_nan", "float_negative_zero", "int_zero", "string_empty", "unicode_list"]
    expect(result == {"ok": False, "mismatches": want}, "got %s, want mismatches %s" % (short(result), want))


@defer.inlineCallbacks
def check_divide(proto, ctx):
    result = yield proto.callRemote(Divide, numerator=7, denominator=2)
    expect(same(result["result"], 3.5), "7/2 gave %r" % (result,))
    answer = yield raw_call(proto, b"Divide", {b"numerator": b"1", b"denominator": b"3"})
    expect(answer == {b"result": b"0.3333333333333333"}, "1/3 gave %s" % short(answer))


@defer.inlineCallbacks
def check_divide_by_zero(proto, ctx):
    code, description = yield raw_error(proto, b"Divide", {b"numerator": b"1", b"denominator": b"0"})
    expect((code, description) == (b"ZERO_DIVISION", "division by zero"), "got %r %r" % (code, description))
    try:
        yield proto.callRemote(Divide, numerator=1, denominator=0)
    except ZeroDivisionError as e:
        expect(str(e) == "division by zero", "typed error text %r" % str(e))
    else:
        raise CheckFailed("typed Divide by zero did not fail")
    yield still_open(proto)


@defer.inlineCallbacks
def check_fatal(proto, ctx):
    message = "boom \u2603"
    code, description = yield raw_error(proto, b"Fatal", {b"message": message.encode("utf-8")})
    expect((code, description) == (b"FATAL_TEST", message), "got %r %r" % (code, description))
    yield closed_soon(proto, "FATAL_TEST")


@defer.inlineCallbacks
def check_undeclared(proto, ctx):
    code, description = yield raw_error(proto, b"Undeclared", {})
    expect((code, description) == (b"UNKNOWN", "Unknown Error"), "got %r %r" % (code, description))
    yield closed_soon(proto, "UNKNOWN")


@defer.inlineCallbacks
def check_unknown_command(proto, ctx):
    code, description = yield raw_error(proto, b"NoSuchCommand", {b"x": b"1"})
    expect(
        (code, description) == (b"UNHANDLED", "Unhandled Command: b'NoSuchCommand'"),
        "got %r %r" % (code, description),
    )
    yield still_open(proto)


@defer.inlineCallbacks
def check_malformed(proto, ctx):
    code, description = yield raw_error(proto, b"EchoBoolean", {b"value": b"yes"})
    expect((code, description) == (b"UNKNOWN", "Unknown Error"), "got %r %r" % (code, description))
    yield closed_soon(proto, "the malformed argument")


@defer.inlineCallbacks
def check_missing_argument(proto, ctx):
    code, description = yield raw_error(proto, b"Sum", {b"a": b"1"})
    expect((code, description) == (b"UNKNOWN", "Unknown Error"), "got %r %r" % (code, description))
    yield closed_soon(proto, "the missing argument")


@defer.inlineCallbacks
def check_notify(proto, ctx):
    channel = "notify-%d-%d" % (os.getpid(), id(proto))
    for i in range(3):
        expect(proto.callRemote(Notify, channel=channel, message="m%d \u2603" % i) is None, "Notify returned a Deferred")
    got = yield proto.callRemote(GetNotifications, channel=channel)
    want = ["m0 \u2603", "m1 \u2603", "m2 \u2603"]
    expect(got["messages"] == want, "GetNotifications gave %s" % short(got))
    got = yield proto.callRemote(GetNotifications, channel=channel, clear=True)
    expect(got["messages"] == want, "GetNotifications(clear) gave %s" % short(got))
    got = yield proto.callRemote(GetNotifications, channel=channel)
    expect(got["messages"] == [], "after clear: %s" % short(got))


@defer.inlineCallbacks
def check_delay_pipelining(proto, ctx):
    order = []

    def call(ms, value):
        d = proto.callRemote(Delay, ms=ms, value=value)
        d.addCallback(lambda r: order.append((value, r["value"])))
        return d

    yield defer.gatherResults([call(600, 1), call(300, 2), call(0, 3), call(450, 4)], consumeErrors=True)
    expect(order == [(3, 3), (2, 2), (4, 4), (1, 1)], "answers came back as %r" % (order,))


@defer.inlineCallbacks
def check_sum_pipelined(proto, ctx):
    n = 1000
    calls = [proto.callRemote(Sum, a=i * 2**40, b=-i * 7 - 1) for i in range(n)]
    expect(len(proto._outstandingRequests) == n, "only %d calls outstanding" % len(proto._outstandingRequests))
    results = yield defer.gatherResults(calls, consumeErrors=True)
    wrong = [i for i, r in enumerate(results) if r["total"] != i * 2**40 - i * 7 - 1]
    expect(not wrong, "%d wrong totals, first at %d" % (len(wrong), wrong[0] if wrong else -1))


@defer.inlineCallbacks
def check_please_call_me(proto, ctx):
    result = yield proto.callRemote(PleaseCallMe, name="Ada \u2603")
    expect(result == {"greeting": "Hello, Ada \u2603!"}, "got %s" % short(result))
    expect(proto.greeted == ["Ada \u2603"], "our Greet responder saw %r" % (proto.greeted,))


@defer.inlineCallbacks
def check_please_call_me_refused(proto, ctx):
    code, description = yield raw_error(proto, b"PleaseCallMe", {b"name": b""})
    expect(code == b"GREET_REFUSED", "got %r %r" % (code, description))
    expect(proto.greeted == [""], "our Greet responder saw %r" % (proto.greeted,))
    yield still_open(proto)


@defer.inlineCallbacks
def check_please_notify_me(proto, ctx):
    channel = "please-notify-%d-%d" % (os.getpid(), id(proto))
    count = 25
    seen_at_answer = []
    d = proto.callRemote(PleaseNotifyMe, channel=channel, message="hi \u2603", count=count)
    d.addCallback(lambda r: (seen_at_answer.extend(NOTIFICATIONS[channel]), r)[1])
    result = yield d
    expect(result == {"sent": count}, "got %s" % short(result))
    want = ["hi \u2603 %d" % i for i in range(count)]
    expect(seen_at_answer == want, "notifications before the answer: %s" % short(seen_at_answer))
    del NOTIFICATIONS[channel]


@defer.inlineCallbacks
def check_connection_info(proto, ctx):
    result = yield proto.callRemote(ConnectionInfo)
    expect(result["tls"] is False, "tls is %r" % (result["tls"],))
    expect(result["peer_cert_cn"] is None, "peer_cert_cn is %r" % (result["peer_cert_cn"],))
    expect(isinstance(result["implementation"], str) and result["implementation"], "no implementation")
    answer = yield raw_call(proto, b"ConnectionInfo", {})
    expect(set(answer) == {b"tls", b"implementation"}, "answer keys %r" % (sorted(answer),))


@defer.inlineCallbacks
def check_echo_optional(proto, ctx):
    cases = [
        ({b"required": b"r"}, []),
        ({b"required": b"", b"opt_int": b"5"}, ["opt_int"]),
        ({b"required": b"r", b"opt_text": b"", b"opt_list": b""}, ["opt_list", "opt_text"]),
        (
            {b"required": b"\xe2\x98\x83", b"opt_int": b"-3", b"opt_text": b"t", b"opt_list": b"\x00\x011\x00\x012"},
            ["opt_int", "opt_list", "opt_text"],
        ),
    ]
    for sent, present in cases:
        answer = yield raw_call(proto, b"EchoOptional", sent)
        want = dict(sent)
        want[b"present"] = b"".join(struct.pack("!H", len(p)) + p.encode() for p in present)
        expect(answer == want, "sent %s, got %s" % (short(sent), short(answer)))
    typed = yield proto.callRemote(EchoOptional, required="x", opt_int=None, opt_text="y")
    expect(
        typed == {"required": "x", "opt_int": None, "opt_text": "y", "opt_list": None, "present": ["opt_text"]},
        "typed EchoOptional gave %s" % short(typed),
    )


@defer.inlineCallbacks
def check_raw_echo(proto, ctx):
    sent = {b"x": b"\x00\xff", b"hello": b"", b"Z-key": b"1", b"big": bytes(range(256)) * 100}
    answer = yield raw_call(proto, b"RawEcho", sent)
    expect(answer == sent, "got %s" % short(answer))
    answer = yield raw_call(proto, b"RawEcho", {})
    expect(answer == {}, "empty RawEcho gave %s" % short(answer))


class Collector(protocol.Protocol):
    def __init__(self):
        self.data = b""
        self.waiting = None

    def dataReceived(self, data):
        self.data += data
        if self.waiting is not None and len(self.data) >= self.waiting[0]:
            d = self.waiting[1]
            self.waiting = None
            d.callback(self.data)

    def wait_for(self, n):
        if len(self.data) >= n:
            return defer.succeed(self.data)
        d = defer.Deferred()
        self.waiting = (n, d)
        return d


class CollectorFactory(protocol.ClientFactory):
    def __init__(self, collector):
        self.collector = collector

    def buildProtocol(self, addr):
        return self.collector


@defer.inlineCallbacks
def check_switch_to_echo(proto, ctx):
    collector = Collector()
    result = yield proto.callRemote(SwitchToEcho, CollectorFactory(collector))
    expect(result == {}, "answer %r" % (result,))
    expect(collector.transport is proto.transport, "switched protocol not connected")
    payloads = [b"hello echo", amp.AmpBox(_ask=b"1", _command=b"Sum", a=b"1", b=b"2").serialize(),
                bytes(range(256)) * 400]
    expected = b""
    for p in payloads:
        collector.transport.write(p)
        expected += p
        got = yield within(collector.wait_for(len(expected)), 5, "echo incomplete: %d of %d bytes" % (
            len(collector.data), len(expected)))
        expect(got == expected, "echoed bytes differ")


@defer.inlineCallbacks
def check_start_tls(proto, ctx):
    kw = {"tls_verifyAuthorities": [ctx.ca]}
    if ctx.client_cert is not None:
        kw["tls_localCertificate"] = ctx.client_cert
    result = yield proto.callRemote(amp.StartTLS, **kw)
    expect(result == {}, "StartTLS answer %r" % (result,))
    info = yield proto.callRemote(ConnectionInfo)
    expect(ISSLTransport.providedBy(proto.transport), "our transport is not TLS")
    expect(info["tls"] is True, "server says tls=%r" % (info["tls"],))
    if ctx.client_cert is not None:
        want = ctx.client_cert.original.get_subject().commonName
        expect(info["peer_cert_cn"] == want, "server saw peer_cert_cn=%r, want %r" % (info["peer_cert_cn"], want))
    expect(peer_cert_cn(proto.transport) is not None, "no server certificate")
    value = bytes(range(256)) * 50
    answer = yield proto.callRemote(EchoString, value=value)
    expect(answer["value"] == value, "echo over TLS differs")
    result = yield proto.callRemote(PleaseCallMe, name="tls")
    expect(result == {"greeting": "Hello, tls!"}, "PleaseCallMe over TLS gave %s" % short(result))


CHECKS = [(cmd.commandName.decode(), echo_check(cmd, ECHO_VALUES[cmd])) for cmd in ECHO_COMMANDS] + [
    ("EchoAll", check_echo_all),
    ("NameMangling", check_name_mangling),
    ("GetSamples", check_get_samples),
    ("CheckSamples", check_check_samples),
    ("CheckSamplesMismatch", check_check_samples_mismatch),
    ("Divide", check_divide),
    ("DivideByZero", check_divide_by_zero),
    ("Fatal", check_fatal),
    ("Undeclared", check_undeclared),
    ("UnknownCommand", check_unknown_command),
    ("MalformedArgument", check_malformed),
    ("MissingArgument", check_missing_argument),
    ("Notify", check_notify),
    ("DelayPipelining", check_delay_pipelining),
    ("SumPipelined1000", check_sum_pipelined),
    ("PleaseCallMe", check_please_call_me),
    ("PleaseCallMeRefused", check_please_call_me_refused),
    ("PleaseNotifyMe", check_please_notify_me),
    ("ConnectionInfo", check_connection_info),
    ("EchoOptional", check_echo_optional),
    ("RawEcho", check_raw_echo),
    ("SwitchToEcho", check_switch_to_echo),
]
TLS_CHECKS = [("StartTLS", check_start_tls)]


@defer.inlineCallbacks
def check_read_descriptor(proto, ctx):
    """We send pipes and a regular file; the peer reads them (several in flight, empty, 65535 bytes)."""
    payload = "through a pipe \u2603\x00end".encode("utf-8")
    fd = pipe_with(payload)
    try:
        result = yield proto.callRemote(ReadDescriptor, fd=fd)
    finally:
        reactor.callLater(0, close_when_sent, proto.transport, fd)
    expect(result["data"] == payload, "pipe read back as %r" % (result["data"],))
    path = os.path.join(ctx.tmpdir, "amp-peer-file-%d" % os.getpid())
    with open(path, "wb") as f:
        f.write(b"a regular file\n" * 100)
    ffd = os.open(path, os.O_RDONLY)
    os.unlink(path)
    try:
        result = yield proto.callRemote(ReadDescriptor, fd=ffd)
    finally:
        reactor.callLater(0, close_when_sent, proto.transport, ffd)
    expect(result["data"] == b"a regular file\n" * 100, "file read back as %r" % (result["data"][:40],))
    sizes = [0, 1, 1000, MAX_READ] * 3
    fds = [pipe_with(bytes((i * 7) & 0xFF for i in range(size))) for size in sizes]
    try:
        results = yield defer.gatherResults([proto.callRemote(ReadDescriptor, fd=f) for f in fds], consumeErrors=True)
    finally:
        for f in fds:
            reactor.callLater(0, close_when_sent, proto.transport, f)
    for size, r in zip(sizes, results):
        expect(r["data"] == bytes((i * 7) & 0xFF for i in range(size)), "a %d-byte pipe read back wrong" % size)


@defer.inlineCallbacks
def check_open_descriptor(proto, ctx):
    """The peer sends pipes; we read them."""
    for data in [b"from the server's pipe", b"", b"a" * MAX_READ]:
        result = yield proto.callRemote(OpenDescriptor, data=data)
        got = read_fd(result["fd"])
        expect(got == data, "read %d bytes, want %d" % (len(got), len(data)))
    results = yield defer.gatherResults(
        [proto.callRemote(OpenDescriptor, data=b"%d" % i) for i in range(20)], consumeErrors=True)
    for i, r in enumerate(results):
        got = read_fd(r["fd"])
        expect(got == b"%d" % i, "pipe %d read %r" % (i, got))


UNIX_CHECKS = [("ReadDescriptor", check_read_descriptor), ("OpenDescriptor", check_open_descriptor)]


class ClientContext:
    def __init__(self, host, port, ca, client_cert, unix=None):
        self.host = host
        self.port = port
        self.unix = unix
        self.tmpdir = os.environ.get("TMPDIR", "/tmp")
        self.ca = ca
        self.client_cert = client_cert


def describe(e):
    if isinstance(e, CheckFailed):
        text = str(e)
    elif isinstance(e, defer.TimeoutError):
        text = "timed out after %g s" % CHECK_TIMEOUT
    else:
        text = "%s: %s" % (type(e).__name__, e)
    return " ".join(text.split()) or type(e).__name__


@defer.inlineCallbacks
def run_check(fn, ctx):
    proto = None
    try:
        endpoint = (UNIXClientEndpoint(reactor, ctx.unix, timeout=5) if ctx.unix
                    else TCP4ClientEndpoint(reactor, ctx.host, ctx.port, timeout=5))
        proto = yield connectProtocol(endpoint, PeerAMP())
        yield fn(proto, ctx)
    finally:
        if proto is not None and proto.transport is not None:
            proto.transport.abortConnection()


@defer.inlineCallbacks
def run_client_checks(checks, ctx, counts):
    for name, fn in checks:
        d = run_check(fn, ctx)
        d.addTimeout(CHECK_TIMEOUT, reactor)
        try:
            yield d
        except Exception as e:
            counts[1] += 1
            out("FAIL %s: %s" % (name, describe(e)))
        else:
            counts[0] += 1
            out("PASS %s" % name)


def run_client(args):
    if args.list:
        for name, _ in CHECKS + TLS_CHECKS + (UNIX_CHECKS if args.unix else []):
            out(name)
        return 0
    if args.unix:
        if args.connect:
            sys.exit("give either --connect HOST:PORT or --unix PATH")
        host, port = "", "0"
    else:
        host, _, port = (args.connect or "").rpartition(":")
        if not host or not port.isdigit():
            sys.exit("--connect wants HOST:PORT")
    if bool(args.tls_cert) != bool(args.tls_key):
        sys.exit("--tls-cert and --tls-key go together")
    ca = ssl.Certificate.loadPEM(read(args.tls_ca)) if args.tls_ca else None
    client_cert = None
    if args.tls_cert:
        client_cert = ssl.PrivateCertificate.loadPEM(read(args.tls_cert) + b"\n" + read(args.tls_key))
    checks = CHECKS + (TLS_CHECKS if ca is not None else []) + (UNIX_CHECKS if args.unix else [])
    if args.only:
        wanted = [n for n in args.only.split(",") if n]
        known = {name for name, _ in CHECKS + TLS_CHECKS + UNIX_CHECKS}
        unknown = [n for n in wanted if n not in known]
        if unknown:
            sys.exit("unknown check(s): %s (see --list)" % ", ".join(unknown))
        if not args.unix and any(name for name, _ in UNIX_CHECKS if name in wanted):
            sys.exit("the ReadDescriptor and OpenDescriptor checks need --unix PATH")
        if "StartTLS" in wanted and ca is None:
            sys.exit("the StartTLS check needs --tls-ca")
        checks = [(name, fn) for name, fn in checks if name in wanted]
    ctx = ClientContext(host, int(port), ca, client_cert, args.unix)
    counts = [0, 0]
    code = []

    def go():
        d = run_client_checks(checks, ctx, counts)

        def finish(result):
            out("%d passed, %d failed" % (counts[0], counts[1]))
            code.append(0 if counts[1] == 0 else 1)
            reactor.stop()
            return result

        d.addBoth(finish)

    reactor.callWhenRunning(go)
    reactor.run()
    return code[0] if code else 1


def main(argv=None):
    parser = argparse.ArgumentParser(description="AMP conformance peer on Twisted")
    sub = parser.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("server")
    s.add_argument("--port", type=int, default=0)
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--unix")
    s.add_argument("--tls-cert")
    s.add_argument("--tls-key")
    s.add_argument("--tls-ca")
    s.add_argument("--require-client-cert", action="store_true")
    s.add_argument("--verbose", action="store_true")
    c = sub.add_parser("client")
    c.add_argument("--connect")
    c.add_argument("--unix")
    c.add_argument("--tls-ca")
    c.add_argument("--tls-cert")
    c.add_argument("--tls-key")
    c.add_argument("--only")
    c.add_argument("--list", action="store_true")
    c.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    start_logging(args.verbose)
    if args.mode == "server":
        return run_server(args)
    return run_client(args)


if __name__ == "__main__":
    sys.exit(main())
