"""The usage writer as a process of its own: `python -m benchmarks.writer` (from the root).

Prints READY, runs `usage_writer`'s loop until its standard input closes, then applies what is
left, prints DONE and exits. The recording benchmark starts it, as a deployment runs
`manage.py usage_writer`.
"""

from __future__ import annotations

import sys
import threading


def main() -> None:
    from benchmarks.common import bootstrap

    bootstrap()
    from benchmarks import adapters

    print("READY", flush=True)
    stop = threading.Event()

    def until_closed() -> None:
        sys.stdin.read()
        stop.set()

    threading.Thread(target=until_closed, daemon=True).start()
    adapters.writer_loop(stop)
    adapters.drain()  # what is left once the callers are done
    # Every event this writer took is a row now: said before the interpreter's exit (closing
    # connections, atexit hooks), which is not the ledger's work.
    print("DONE", flush=True)


if __name__ == "__main__":
    main()
