#!/usr/bin/python3
"""Twisted baseline for the codec benchmarks (bench/codec.ts): Twisted's own AMP box code on the same data.

    codec_bench.py [--quick] [--only PREFIX[,PREFIX...]]

Prints one JSON object per line on stdout: {"name": ..., "unit": "boxes/s", "value": ...}

- codec.parse.small: the Sum command box {_ask: "1", _command: "Sum", a: "13", b: "81"} (40 bytes),
  16384 copies back to back, fed in 64 KiB chunks to a BinaryBoxProtocol with a trivial box receiver.
- codec.parse.large: {_ask: "1", _command: "Blob", data: <60 KiB>}, 64 copies, fed the same way.
- codec.serialize.small / codec.serialize.large: AmpBox.serialize() of the same boxes.

Each is a warm-up of half a run, then three timed runs of ~1 s (0.25 s with --quick); the best is reported.
Every pass checks its result, so a broken benchmark never reports a number.

    codec_bench.py --serve

Worker mode, used by bench/codec.ts to interleave rounds with ours: reads lines "<name> <seconds>" on
stdin and answers each with one JSON line {"name", "unit", "value"} (one timed run of that many CPU seconds;
the first request for a name is preceded by a warm-up of the same length), or {"name", "error"}.
Exits at the end of stdin.
"""
import argparse
import json
import sys
import time

from twisted.internet.testing import StringTransport
from twisted.protocols import amp

CHUNK = 64 * 1024
LARGE_VALUE = 60 * 1024

SMALL_BOX = amp.AmpBox({b"_ask": b"1", b"_command": b"Sum", b"a": b"13", b"b": b"81"})
LARGE_DATA = bytes((i * 31 + 7) & 0xFF for i in range(LARGE_VALUE))
LARGE_BOX = amp.AmpBox({b"_ask": b"1", b"_command": b"Blob", b"data": LARGE_DATA})


class Counter:
    """A trivial IBoxReceiver: counts boxes and keeps the last one."""

    def __init__(self):
        self.count = 0
        self.last = None

    def startReceivingBoxes(self, sender):
        pass

    def ampBoxReceived(self, box):
        self.count += 1
        self.last = box

    def stopReceivingBoxes(self, reason):
        pass


def chunked(data):
    # copies, as a socket delivers fresh buffers
    return [bytes(data[i : i + CHUNK]) for i in range(0, len(data), CHUNK)]


def parse_work(box, copies, valid):
    chunks = chunked(box.serialize() * copies)

    def work():
        receiver = Counter()
        proto = amp.BinaryBoxProtocol(receiver)
        proto.makeConnection(StringTransport())
        for chunk in chunks:
            proto.dataReceived(chunk)
        if receiver.count != copies or not valid(receiver.last):
            raise RuntimeError("self-check failed: parsed %d boxes of %d" % (receiver.count, copies))
        return copies

    return work


def serialize_work(box, copies):
    size = len(box.serialize())
    expected = box.serialize()

    def work():
        total = 0
        out = None
        for _ in range(copies):
            out = box.serialize()
            total += len(out)
        if total != size * copies or out != expected:
            raise RuntimeError("self-check failed: serialized bytes")
        return copies

    return work


def run_for(work, seconds, clock=time.perf_counter):
    start = clock()
    units = 0
    while True:
        units += work()
        elapsed = clock() - start
        if elapsed >= seconds:
            return units / elapsed


def measure(work, quick):
    seconds = 0.25 if quick else 1.0
    run_for(work, seconds / 2)
    return max(run_for(work, seconds) for _ in range(3))


BENCHMARKS = [
    (
        "codec.parse.small",
        lambda: parse_work(SMALL_BOX, 16384, lambda b: len(b) == 4 and b[b"b"] == b"81"),
    ),
    (
        "codec.parse.large",
        lambda: parse_work(
            LARGE_BOX,
            64,
            lambda b: len(b[b"data"]) == LARGE_VALUE and b[b"data"][12345] == LARGE_DATA[12345],
        ),
    ),
    ("codec.serialize.small", lambda: serialize_work(SMALL_BOX, 10000)),
    ("codec.serialize.large", lambda: serialize_work(LARGE_BOX, 64)),
]


def serve():
    makers = dict(BENCHMARKS)
    works = {}
    for line in sys.stdin:
        parts = line.split()
        if len(parts) != 2:
            continue
        name, seconds = parts[0], float(parts[1])
        try:
            if name not in works:
                works[name] = makers[name]()
                run_for(works[name], seconds, time.process_time)
            # CPU time of this process, as bench/support.ts measures ours (robust to a shared machine)
            value = run_for(works[name], seconds, time.process_time)
            answer = {"name": name, "unit": "boxes/s", "value": round(value, 1)}
        except Exception as e:  # an unknown name or a failed self-check: reported, not fatal
            answer = {"name": name, "error": "%s: %s" % (type(e).__name__, e)}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description="Twisted AMP codec baseline")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--serve", action="store_true")
    parser.add_argument("--only", action="append", default=[])
    args = parser.parse_args(argv)
    if args.serve:
        return serve()
    prefixes = [p for arg in args.only for p in arg.split(",") if p]
    for name, make in BENCHMARKS:
        if prefixes and not any(name.startswith(p) for p in prefixes):
            continue
        value = measure(make(), args.quick)
        sys.stdout.write(json.dumps({"name": name, "unit": "boxes/s", "value": round(value, 1)}) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
