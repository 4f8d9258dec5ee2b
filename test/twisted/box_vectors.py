"""Box codec vectors from real Twisted, for test/box.test.ts.

Reads one JSON object on stdin:

    {"boxes":   [[[keyhex, valuehex], ...], ...],   # boxes to serialize with AmpBox(...).serialize()
     "encoded": hex,                                 # our encoding of those boxes, for amp.parseString
     "streams": [hex, ...]}                          # arbitrary byte streams for BinaryBoxProtocol

and writes one JSON object on stdout:

    {"serialized": [hex, ...],                       # AmpBox(box).serialize() per box
     "parsed":     [[[keyhex, valuehex], ...], ...], # amp.parseString(encoded), pairs sorted by key
     "streams":    [{"boxes": [...], "disconnected": bool}, ...]}

Each stream is fed to a BinaryBoxProtocol on a StringTransport in one dataReceived call: "boxes" are
the boxes its receiver got (pairs sorted by key) and "disconnected" is whether the protocol dropped
the connection (a key-length prefix over 255).
"""
import json
import sys

from twisted.internet.testing import StringTransport
from twisted.protocols import amp


def pairs(box):
    return [[k.hex(), v.hex()] for k, v in sorted(box.items())]


class Receiver:
    def __init__(self):
        self.boxes = []

    def startReceivingBoxes(self, sender):
        pass

    def ampBoxReceived(self, box):
        self.boxes.append(box)

    def stopReceivingBoxes(self, reason):
        pass


def feed(data):
    receiver = Receiver()
    proto = amp.BinaryBoxProtocol(receiver)
    transport = StringTransport()
    proto.makeConnection(transport)
    proto.dataReceived(data)
    return {"boxes": [pairs(b) for b in receiver.boxes], "disconnected": bool(transport.disconnecting)}


def main():
    request = json.load(sys.stdin)
    serialized = []
    for box in request.get("boxes", []):
        ampbox = amp.AmpBox({bytes.fromhex(k): bytes.fromhex(v) for k, v in box})
        serialized.append(ampbox.serialize().hex())
    parsed = [pairs(b) for b in amp.parseString(bytes.fromhex(request.get("encoded", "")))]
    streams = [feed(bytes.fromhex(s)) for s in request.get("streams", [])]
    json.dump({"serialized": serialized, "parsed": parsed, "streams": streams}, sys.stdout)


if __name__ == "__main__":
    main()
