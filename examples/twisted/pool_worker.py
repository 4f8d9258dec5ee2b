#!/usr/bin/python3
"""A Twisted AMP worker for examples/python-pool.ts: serves AMP on its standard input and output (as
ampoule's children do) until the parent closes them. Logs go to stderr: stdout is the protocol.

    CountPrimes(below) -> count, pid     (CPU work in Python; NEGATIVE for below < 0)
"""
import os
import sys

from twisted.internet import reactor, stdio
from twisted.protocols import amp


class NegativeInput(Exception):
    pass


class CountPrimes(amp.Command):
    arguments = [(b"below", amp.Integer())]
    response = [(b"count", amp.Integer()), (b"pid", amp.Integer())]
    errors = {NegativeInput: b"NEGATIVE"}


def count_primes(below):
    if below < 3:
        return 0
    sieve = bytearray([1]) * below
    sieve[0] = sieve[1] = 0
    for i in range(2, int(below ** 0.5) + 1):
        if sieve[i]:
            sieve[i * i :: i] = bytes(len(range(i * i, below, i)))
    return sum(sieve)


class Worker(amp.AMP):
    @CountPrimes.responder
    def count(self, below):
        if below < 0:
            raise NegativeInput("below must be >= 0, got %d" % below)
        return {"count": count_primes(below), "pid": os.getpid()}

    def connectionLost(self, reason):
        amp.AMP.connectionLost(self, reason)
        if reactor.running:
            reactor.stop()


if __name__ == "__main__":
    stdio.StandardIO(Worker())
    reactor.run()
