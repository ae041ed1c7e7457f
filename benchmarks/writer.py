"""The usage writer as a process of its own: `python -m benchmarks.writer` (from the root).

Prints READY, applies the buffer until its standard input closes, then applies what is left
and exits. The recording benchmark starts it, as beat's drain task runs on a Celery worker.
"""

from __future__ import annotations

import select
import sys


def main() -> None:
    from benchmarks.common import bootstrap

    bootstrap()
    from benchmarks import adapters

    print("READY", flush=True)
    while not select.select([sys.stdin], [], [], 0.01)[0]:
        adapters.drain()
    sys.stdin.read()
    adapters.drain()


if __name__ == "__main__":
    main()
