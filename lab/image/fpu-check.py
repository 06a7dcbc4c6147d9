#!/usr/bin/python3
"""Detect corrupted SIMD/FPU state (lazy FPU under TCG): hash one buffer in several processes at
once and count results that differ from the first. Prints 'fpu-check mismatches: N'."""
import hashlib
import multiprocessing
import os
import sys


def hash_rounds(args):
    data, rounds = args
    return [hashlib.sha256(data).hexdigest() for _ in range(rounds)]


if __name__ == "__main__":
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 4
    data = os.urandom(8 << 20)
    reference = hashlib.sha256(data).hexdigest()
    with multiprocessing.Pool(3) as pool:
        results = pool.map(hash_rounds, [(data, rounds)] * 3)
    bad = sum(1 for digests in results for d in digests if d != reference)
    print("fpu-check mismatches: %d" % bad)
    sys.exit(1 if bad else 0)
