#!/usr/bin/python3
"""Twisted baseline for end-to-end RPC benchmarks: an AMP `Sum`/`Text` server and a load-generating client.

    rpc_bench.py server --port 0 [--host 127.0.0.1]
        Prints "LISTENING <port>" (flushed) once listening; serves
        Sum(a: Integer, b: Integer) -> total: Integer and Text(text: Unicode) -> length: Integer until
        SIGTERM/SIGINT, then exits 0.

    rpc_bench.py client --connect HOST:PORT --mode sequential|pipelined [--outstanding N] [--seconds S]
                        [--warmup W] [--workload sum|text]
        One connection. sequential: one call outstanding at a time; pipelined: keeps N (default 1) calls
        outstanding. Every answer is checked (a + b). After an uncounted warm-up of W seconds (default 0;
        20 sequential calls are always made first), calls are issued for S seconds (default 5), then the
        outstanding ones are awaited. Prints one JSON line {"calls": n, "seconds": s, "rate": r, "errors": e,
        "p50ms": x, "p99ms": y} (rate = calls / seconds, counting completed calls up to the last answer;
        p50/p99 = latency of the counted calls, issue to answer) and exits 0 if e == 0. Prints "WINDOW"
        when the timed window starts; "cpuSeconds" is this process's CPU time in the window.
        --workload sum (the default) calls Sum; --workload text calls Text with a 60 KiB ASCII text
        (61440 bytes) and checks that every answer is 61440.
"""
import argparse
import json
import signal
import sys
import time

from twisted.internet import defer, protocol, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.protocols import amp


class Sum(amp.Command):
    arguments = [(b"a", amp.Integer()), (b"b", amp.Integer())]
    response = [(b"total", amp.Integer())]


class Text(amp.Command):
    arguments = [(b"text", amp.Unicode())]
    response = [(b"length", amp.Integer())]


# The Text workload's text: 61440 printable ASCII characters (the same in all three implementations).
LARGE_TEXT = "".join(chr(32 + i % 95) for i in range(61440))


class SumServer(amp.AMP):
    @Sum.responder
    def sum(self, a, b):
        return {"total": a + b}

    @Text.responder
    def text(self, text):
        return {"length": len(text)}


def stop_on_signals():
    def handler(signum, frame):
        reactor.callFromThread(lambda: reactor.running and reactor.stop())

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def run_server(args):
    port = reactor.listenTCP(args.port, protocol.Factory.forProtocol(SumServer), interface=args.host)
    stop_on_signals()
    sys.stdout.write("LISTENING %d\n" % port.getHost().port)
    sys.stdout.flush()
    reactor.run(installSignalHandlers=False)
    return 0


class Load:
    def __init__(self, proto, outstanding, seconds, workload="sum"):
        self.proto = proto
        self.workload = workload
        self.outstanding = outstanding
        self.seconds = seconds
        self.calls = 0
        self.errors = 0
        self.in_flight = 0
        self.next = 0
        self.done = defer.Deferred()
        self.start = None
        self.deadline = None
        self.end = None
        self.first_error = None
        self.latencies = []

    def run(self):
        self.start = time.perf_counter()
        self.deadline = self.start + self.seconds
        for _ in range(self.outstanding):
            self.issue()
        return self.done

    def issue(self):
        self.in_flight += 1
        if self.workload == "text":
            t0 = time.perf_counter()
            d = self.proto.callRemote(Text, text=LARGE_TEXT)
            d.addCallbacks(self.answered, self.failed, callbackArgs=("length", len(LARGE_TEXT), t0))
        else:
            i = self.next
            self.next += 1
            a, b = i, 1000003 - 2 * i
            t0 = time.perf_counter()
            d = self.proto.callRemote(Sum, a=a, b=b)
            d.addCallbacks(self.answered, self.failed, callbackArgs=("total", a + b, t0))

    def answered(self, result, key, expected, t0):
        self.in_flight -= 1
        if result[key] == expected:
            self.calls += 1
            if len(self.latencies) < 1000000:
                self.latencies.append(time.perf_counter() - t0)
        else:
            self.errors += 1
            self.first_error = self.first_error or "wrong %s %r, want %r" % (key, result[key], expected)
        self.after()

    def failed(self, failure):
        self.in_flight -= 1
        self.errors += 1
        self.first_error = self.first_error or str(failure.value)
        if self.proto.transport is None:
            # connection gone: nothing more will arrive
            self.finish()
        else:
            self.after()

    def after(self):
        if self.errors == 0 and time.perf_counter() < self.deadline:
            self.issue()
        elif self.in_flight == 0:
            self.finish()

    def finish(self):
        if not self.done.called:
            self.end = time.perf_counter()
            self.done.callback(None)


def run_client(args):
    host, _, port = args.connect.rpartition(":")
    if not host or not port.isdigit():
        sys.exit("--connect wants HOST:PORT")
    outstanding = 1 if args.mode == "sequential" else args.outstanding
    if outstanding < 1:
        sys.exit("--outstanding must be at least 1")
    result = {}

    @defer.inlineCallbacks
    def go():
        try:
            proto = yield connectProtocol(TCP4ClientEndpoint(reactor, host, int(port), timeout=10), amp.AMP())
            # warm-up: a few calls so connection setup is not timed
            for i in range(20):
                if args.workload == "text":
                    r = yield proto.callRemote(Text, text=LARGE_TEXT)
                    assert r["length"] == len(LARGE_TEXT)
                else:
                    r = yield proto.callRemote(Sum, a=i, b=i)
                    assert r["total"] == 2 * i
            if args.warmup > 0:
                warm = Load(proto, outstanding, args.warmup, args.workload)
                yield warm.run()
                if warm.errors:
                    raise RuntimeError("warm-up failed: %s" % warm.first_error)
            load = Load(proto, outstanding, args.seconds, args.workload)
            # the harness samples the server's CPU time now and at the result line
            sys.stdout.write("WINDOW\n")
            sys.stdout.flush()
            cpu_start = time.process_time()
            yield load.run()
            cpu_seconds = time.process_time() - cpu_start
            seconds = load.end - load.start
            result.update(
                calls=load.calls,
                seconds=round(seconds, 6),
                rate=round(load.calls / seconds, 1) if seconds > 0 else 0.0,
                errors=load.errors,
                cpuSeconds=round(cpu_seconds, 6),
            )
            lat = sorted(load.latencies)
            if lat:
                result.update(
                    p50ms=round(lat[min(len(lat) - 1, len(lat) // 2)] * 1000, 4),
                    p99ms=round(lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000, 4),
                )
            if load.first_error:
                sys.stderr.write("first error: %s\n" % load.first_error)
            proto.transport.loseConnection()
        except Exception as e:
            sys.stderr.write("rpc_bench client failed: %s: %s\n" % (type(e).__name__, e))
        finally:
            reactor.stop()

    stop_on_signals()
    reactor.callWhenRunning(go)
    reactor.run(installSignalHandlers=False)
    if not result:
        return 1
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0 if result["errors"] == 0 else 1


def main(argv=None):
    parser = argparse.ArgumentParser(description="Twisted AMP RPC baseline")
    parser.add_argument("--quick", action="store_true", help="ignored (the client's --seconds decides)")
    sub = parser.add_subparsers(dest="mode_", required=True)
    s = sub.add_parser("server")
    s.add_argument("--port", type=int, default=0)
    s.add_argument("--host", default="127.0.0.1")
    c = sub.add_parser("client")
    c.add_argument("--connect", required=True)
    c.add_argument("--mode", choices=["sequential", "pipelined"], default="sequential")
    c.add_argument("--outstanding", type=int, default=1)
    c.add_argument("--seconds", type=float, default=5.0)
    c.add_argument("--warmup", type=float, default=0.0)
    c.add_argument("--workload", choices=["sum", "text"], default="sum")
    for p in (s, c):
        p.add_argument("--quick", action="store_true", dest="quick_", help="ignored")
    args = parser.parse_args(argv)
    if args.mode_ == "server":
        return run_server(args)
    return run_client(args)


if __name__ == "__main__":
    sys.exit(main())
