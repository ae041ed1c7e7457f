"""Run the fake provider in a process of its own (load tests and benchmarks).

    python -m tests.fakeprovider        # prints "PORT <n>", serves until stdin closes

In its own process the server does not compete with the client for the interpreter lock, so
many client threads measure the client, not the fake.
"""

from __future__ import annotations

import collections
import sys

from . import start_fake_provider


def main() -> None:
    server = start_fake_provider()
    # No test can read this process's request log: keep only the last few, or load tests
    # and benchmarks grow it by thousands a second (and its garbage collections show as
    # 70 ms stalls in their latency figures).
    server.requests = collections.deque(maxlen=100)
    print(f"PORT {server.port}", flush=True)
    try:
        sys.stdin.read()  # until the parent closes our stdin (or dies)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
