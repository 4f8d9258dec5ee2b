#!/usr/bin/python3
"""Twisted's side of the file-descriptor tests beyond the conformance set (test/descriptor.test.ts).

    fds.py many PATH    connects to our server on the Unix socket PATH, then
                        - calls ReadMany with several descriptors in one box (pipes, a regular file, an
                          empty pipe) and checks what was read;
                        - calls OpenMany and reads the several pipes the answer box carries.
                        Prints "OK" and exits 0, or prints the failure and exits 1.
    fds.py vanish PATH  connects, sends three descriptors with the first bytes of a box that never ends,
                        then drops the connection (the fds are "in flight": received, never claimed).
"""
import os
import sys

from twisted.internet import defer, reactor
from twisted.internet.endpoints import UNIXClientEndpoint, connectProtocol
from twisted.protocols import amp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peer import pipe_with, read_fd  # noqa: E402


class ReadMany(amp.Command):
    arguments = [(b"items", amp.AmpList([(b"fd", amp.Descriptor())])), (b"extra", amp.Descriptor())]
    response = [(b"data", amp.ListOf(amp.String()))]


class OpenMany(amp.Command):
    arguments = [(b"sizes", amp.ListOf(amp.Integer()))]
    response = [(b"items", amp.AmpList([(b"fd", amp.Descriptor()), (b"size", amp.Integer())]))]


def content(size):
    return bytes((i * 13) & 0xFF for i in range(size))


@defer.inlineCallbacks
def many(path):
    proto = yield connectProtocol(UNIXClientEndpoint(reactor, path, timeout=5), amp.AMP())
    tmp = os.path.join(os.environ.get("TMPDIR", "/tmp"), "amp-fds-%d" % os.getpid())
    with open(tmp, "wb") as f:
        f.write(b"regular file contents\n")
    ffd = os.open(tmp, os.O_RDONLY)
    os.unlink(tmp)
    fds = [pipe_with(b"first pipe"), ffd, pipe_with(b""), pipe_with(content(60000))]
    extra = pipe_with(b"extra")
    result = yield proto.callRemote(ReadMany, items=[{"fd": fd} for fd in fds], extra=extra)
    want = [b"first pipe", b"regular file contents\n", b"", content(60000), b"extra"]
    if result["data"] != want:
        raise Exception("ReadMany read %r" % ([d[:20] for d in result["data"]],))
    sizes = [0, 1, 5000, 65535, 7]
    answer = yield proto.callRemote(OpenMany, sizes=sizes)
    for item, size in zip(answer["items"], sizes):
        got = read_fd(item["fd"])
        if got != content(size) or item["size"] != size:
            raise Exception("OpenMany pipe of %d bytes read back %d bytes" % (size, len(got)))
    if len(answer["items"]) != len(sizes):
        raise Exception("OpenMany gave %d items" % len(answer["items"]))
    # our copies: sent by now (the answers came back after the boxes that carried them)
    for fd in fds + [extra]:
        os.close(fd)
    proto.transport.loseConnection()
    print("OK")


@defer.inlineCallbacks
def vanish(path):
    proto = yield connectProtocol(UNIXClientEndpoint(reactor, path, timeout=5), amp.AMP())
    fds = [pipe_with(b"lost %d" % i) for i in range(3)]
    for fd in fds:
        proto.transport.sendFileDescriptor(fd)
    proto.transport.write(b"\x00\x04_ask\x00\x011\x00\x08_command\x00\x08ReadMa")  # a box that never ends
    d = defer.Deferred()
    reactor.callLater(0.5, d.callback, None)
    yield d
    for fd in fds:
        os.close(fd)
    proto.transport.abortConnection()
    print("OK")


def main():
    mode, path = sys.argv[1], sys.argv[2]
    status = []

    def go():
        d = many(path) if mode == "many" else vanish(path)

        def ok(_):
            status.append(0)

        def failed(f):
            print("FAIL %s" % f.getErrorMessage())
            status.append(1)

        d.addCallbacks(ok, failed)
        d.addBoth(lambda _: reactor.callLater(0.1, reactor.stop))

    reactor.callWhenRunning(go)
    reactor.callLater(30, lambda: reactor.running and (status.append(1), reactor.stop()))
    reactor.run()
    return status[0] if status else 1


if __name__ == "__main__":
    sys.exit(main())
