"""ragllm's benchmarks. Every figure is printed with its ratio to a baseline of the same run.

    make bench                                  # all of them (installs wrk if missing)
    python benchmarks/run.py recording quota    # some of them, by name
    python benchmarks/run.py ledger --events 200000

Benchmarks (one module each in benchmarks/):
  recording  RAGFlow's per-call usage write (hot row and spread, 8 and 16 threads, best of
             them), the COPY-batched ceiling, ragllm's callers and end to end (issue 12)
  ledger     ragllm's ledger writer over 1,000,000 events against the ceiling (issue 12)
  drill      4 recorder and 3 writer processes, a writer SIGKILLed, Redis restarted: exact
  quota      quota reservations/s, one tenant, 16 threads: database path, Redis path (12)
  overhead   LLMBundle's added latency over a raw httpx call
  gateway    OpenAI-compatible chat: direct, LiteLLM's proxy, ragllm's gateway (issue 10)
  limits     the gateway with a key carrying RPM/TPM/budget vs without (issue 11)

Needs PostgreSQL and Redis (DATABASE_URL / REDIS_URL; defaults: the local servers). A
throwaway database `test_<name>` is created and dropped; the fake provider runs in its own
process. The machine's cores are shared by every process: compare ratios, not absolutes.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from pathlib import Path

# Run as a script, Python puts benchmarks/ first on the path, where `gateway.py` or
# `limits.py` would shadow the app and the library of the same names: the root goes there.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from benchmarks.common import Context, bootstrap  # noqa: E402

BENCHMARKS = ("recording", "ledger", "drill", "quota", "overhead", "gateway", "limits")


def _counts(text: str) -> list[int]:
    counts = sorted({int(part) for part in text.split(",") if part.strip()})
    if not counts or counts[0] < 1:
        raise argparse.ArgumentTypeError("worker counts are positive integers, e.g. 1,2")
    return counts


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("which", nargs="*", metavar="BENCHMARK", help=" ".join(BENCHMARKS))
    parser.add_argument(
        "--baseline-events",
        type=int,
        default=20_000,
        help="calls per RAGFlow spread variant (hot-row variants make a quarter)",
    )
    parser.add_argument(
        "--recording-events", type=int, default=100_000, help="ragllm calls per thread count"
    )
    parser.add_argument(
        "--events", type=int, default=1_000_000, help="events for the ledger and the ceiling"
    )
    parser.add_argument("--reservations", type=int, default=5_000, help="quota calls per path")
    parser.add_argument("--calls", type=int, default=2_000, help="LLMBundle overhead calls")
    parser.add_argument("--seconds", type=int, default=10, help="wrk seconds per figure")
    parser.add_argument(
        "--workers",
        type=_counts,
        default=sorted({1, os.cpu_count() or 1}),
        help="server processes per proxy, e.g. 2 or 1,2: each proxy is measured with each "
        "count and its best is compared (default: 1 and one per core, as LiteLLM's "
        "--num_workers and ragllm's WEB_WORKERS are run in production)",
    )
    args = parser.parse_args(argv)
    unknown = sorted(set(args.which) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}; choose from {BENCHMARKS}")
    args.which = args.which or list(BENCHMARKS)
    return args


def main() -> None:
    args = parse_args()
    bootstrap()
    from django.conf import settings
    from django.db import connection

    from tests.usage_helpers import FakeProviderProcess

    if connection.vendor != "postgresql":
        raise SystemExit("benchmarks run on PostgreSQL: set DATABASE_URL")
    if not settings.USAGE_REDIS_URL:
        raise SystemExit("benchmarks run with Redis: set REDIS_URL")
    db = settings.DATABASES["default"]
    print(f"ragllm benchmarks: {', '.join(args.which)}; PostgreSQL at {db['HOST']}, Redis")
    started = time.monotonic()
    test_db = connection.creation.create_test_db(verbosity=0, keepdb=False)
    fake = FakeProviderProcess()
    try:
        ctx = Context(args=args, fake_url=fake.url())
        for name in args.which:
            importlib.import_module(f"benchmarks.{name}").run(ctx)
    finally:
        fake.stop()
        connection.close()
        connection.creation.destroy_test_db(test_db, verbosity=0)
    print(f"\nDone in {time.monotonic() - started:.0f} s.")


if __name__ == "__main__":
    main()
