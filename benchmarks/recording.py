"""Recording usage (issue 12): RAGFlow's per-call write against ragllm's ledger, same load.

Calls are spread over 20 tenants x 25 models from 8 and 16 threads. Printed, from one run:
RAGFlow's per-call write in every variant (see baselines.py) and the best of them; the
COPY-batched ceiling; ragllm's callers (`record_usage` calls/s in this process, until the last
call returns) and ragllm end to end (until every event is a row in PostgreSQL, drained by
writer processes of their own, as `usage_writer` runs). Totals are checked.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from . import adapters
from .baselines import THREADS, print_baselines
from .common import ROOT, Context, database_url, heading, in_threads, line, per_second, times
from .workload import MODELS, TENANTS, pick, ragllm_rows


def run(ctx: Context) -> None:
    heading(f"Recording usage, calls spread over {TENANTS} tenants x {MODELS} models (issue 12)")
    best, top = print_baselines(ctx)
    events = ctx.args.recording_events
    print(
        f"  ragllm: record_usage (a deque append) -> forwarder (msgpack, one XADD per 2,000)"
        f" -> {WRITERS} writer processes (COPY + set-based SQL), {events:,} calls"
    )
    rows = ragllm_rows(ctx)
    for threads in THREADS:
        callers, handed, end_to_end, exact = _ragllm_run(rows, threads, events)
        line(
            f"callers' record_usage, {threads} threads",
            per_second(events, callers, "calls/s"),
            f"{times(events / callers, best.rate)} RAGFlow",
        )
        line(
            "  ... until the process has handed all to Redis",
            per_second(events, handed),
            f"{times(events / handed, best.rate)} RAGFlow",
        )
        line(
            f"end to end, {threads} threads",
            per_second(events, end_to_end),
            f"{times(events / end_to_end, best.rate)} RAGFlow, "
            f"{times(events / end_to_end, top.rate)} ceiling, "
            + ("totals exact" if exact else "TOTALS WRONG"),
        )
        if not exact:
            raise SystemExit("recording: ragllm's totals are wrong")


# Writer processes draining the stream (`usage_writer`'s loop), as a deployment runs several:
# while one waits on PostgreSQL, another decodes and copies.
WRITERS = int(os.environ.get("BENCH_USAGE_WRITERS", "2"))


def _ragllm_run(rows, threads: int, events: int) -> tuple[float, float, float, bool]:
    """Seconds until the callers returned, until the buffer had every record, until the
    database had every event; and whether the totals are exact. For one thread count."""
    adapters.reset_ledger()
    writers = [start_writer() for _ in range(WRITERS)]
    record = adapters.recorder()

    @contextmanager
    def caller(index: int) -> Iterator[Callable[[], None]]:
        # The thread's rows are chosen before the clock starts: only record_usage is timed
        # (random.choice costs about as much as a call).
        choose = pick(rows, seed=1000 + index)
        next_row = iter([choose() for _ in range(events // threads + 1)]).__next__
        yield lambda: record(next_row())

    try:
        timing = in_threads(threads, events, caller)
        adapters.flush_recorder()
        handed = time.perf_counter() - timing.start
        for writer in writers:
            writer.stdin.close()  # apply what is left, then say DONE
        for writer in writers:
            wait_done(writer)
        end_to_end = time.perf_counter() - timing.start
        for writer in writers:
            finish_writer(writer)
    finally:
        for writer in writers:
            if writer.poll() is None:
                writer.kill()
    return timing.seconds, handed, end_to_end, adapters.ledger_totals().exact(events)


def start_writer() -> subprocess.Popen:
    """The usage writer in its own process (benchmarks/writer.py), started and ready."""
    writer = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.writer"],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "DATABASE_URL": database_url()},
    )
    if writer.stdout.readline().strip() != "READY":
        writer.kill()
        raise SystemExit("the usage writer process did not start")
    return writer


def wait_done(writer: subprocess.Popen) -> None:
    """Wait until the writer says every event it took is a row (its standard input closed)."""
    if writer.stdout.readline().strip() != "DONE":
        raise SystemExit(f"the usage writer process failed (exit code {writer.wait()})")


def finish_writer(writer: subprocess.Popen) -> None:
    """Tell the writer to apply what is left and stop; wait for it."""
    if not writer.stdin.closed:
        writer.stdin.close()
    if writer.wait(timeout=1800) != 0:
        raise SystemExit(f"the usage writer process failed (exit code {writer.returncode})")
