"""What every benchmark shares: start-up, the run's context, threads, timing and printing.

Nothing here knows the application's API: each benchmark keeps the calls into ragllm in small
adapter functions of its own, so that they are easy to repoint when the code changes.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var" / "bench"  # throwaway files of the benchmarks (LiteLLM's venv, configs, logs)

# The usage figures are prompt 12 + completion 6 tokens: what the fake provider reports.
PROMPT_TOKENS, COMPLETION_TOKENS = 12, 6
TOKENS = PROMPT_TOKENS + COMPLETION_TOKENS

ENV_DEFAULTS = {
    "DJANGO_SETTINGS_MODULE": "ragllm.settings",
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/ragllm_bench",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "SECRET_KEY": "benchmark-only-secret-key-0123456789-abcdefghij",
    "CREDENTIALS_ENCRYPTION_KEY": "benchmark-only-credentials-key-0123456789",
    "LLM_HOSTED_ALLOWED_NETWORKS": "127.0.0.0/8",
    # The writer runs as a process of its own, as beat's drain task on a worker would.
    "USAGE_WRITER_THREAD": "False",
    "LOG_LEVEL": "WARNING",
    # 16 threads of one benchmark process each use a connection of their own (quota's
    # database path): a pool smaller than that would make them wait for one another.
    "DB_POOL_MAX_SIZE": "20",
}

T = TypeVar("T")


def bootstrap() -> None:
    """Environment defaults, then Django (for run.py and the processes it starts)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    for name, value in ENV_DEFAULTS.items():
        os.environ.setdefault(name, value)
    import django

    django.setup()


class NotAvailable(Exception):
    """A target or variant that does not exist yet, or cannot run here: printed, not fatal."""


@dataclass
class Context:
    """One run of the benchmarks: the options, the fake provider, measurements to share."""

    args: argparse.Namespace
    fake_url: str  # the fake provider's root, e.g. http://127.0.0.1:41234
    _memo: dict[str, Any] = field(default_factory=dict)

    def measured(self, key: str) -> bool:
        return key in self._memo

    def once(self, key: str, compute: Callable[[], T]) -> T:
        """Measure something once per run (a baseline two benchmarks compare against)."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]


def database_url() -> str:
    """The URL of the database this run uses (the throwaway test database), for children."""
    from django.conf import settings

    db = settings.DATABASES["default"]
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def psycopg_url() -> str:
    return database_url().replace("postgres://", "postgresql://", 1)


# --- printing ---------------------------------------------------------------------------


def heading(title: str) -> None:
    print(f"\n{title}", flush=True)


def line(label: str, value: str = "", note: str = "") -> None:
    print(f"  {label:<50} {value:>18}  {note}".rstrip(), flush=True)


def per_second(count: float, seconds: float, unit: str = "events/s") -> str:
    return f"{count / seconds:,.0f} {unit}" if seconds > 0 else f"- {unit}"


def times(value: float, base: float) -> str:
    """A ratio as the README prints it: 0.52x, 4.1x, 21x."""
    if base <= 0:
        return "-"
    r = value / base
    return f"{r:.2f}x" if r < 1 else f"{r:.1f}x" if r < 10 else f"{r:.0f}x"


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


# --- load in threads ----------------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    start: float  # time.perf_counter() when the first thread began its calls
    end: float  # when the last call of the last thread returned

    @property
    def seconds(self) -> float:
        return self.end - self.start


Worker = Callable[[int], AbstractContextManager[Callable[[], object]]]


def in_threads(threads: int, calls: int, worker: Worker) -> Timing:
    """Make `calls` calls spread over `threads` threads, as web workers would.

    `worker(index)` is a context manager giving a thread its call (and its own connection,
    opened before the clock starts and closed after it stops). All threads start together.
    """
    shares = [calls // threads + (1 if i < calls % threads else 0) for i in range(threads)]
    barrier = threading.Barrier(threads + 1)
    started = [0.0] * threads
    finished = [0.0] * threads
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            with worker(index) as call:
                barrier.wait()
                # Each thread's own clock: the main thread may get the GIL back only after the
                # callers have run for a while, so its reading would start the clock late.
                started[index] = time.perf_counter()
                for _ in range(shares[index]):
                    call()
                finished[index] = time.perf_counter()
        except BaseException as exc:
            errors.append(exc)
            barrier.abort()

    pool = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(threads)]
    for thread in pool:
        thread.start()
    with suppress(threading.BrokenBarrierError):  # a thread failed: reported below
        barrier.wait()
    for thread in pool:
        thread.join()
    if errors:
        raise errors[0]
    return Timing(min(started), max(finished))


# --- processes and ports ------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) used so far by process `pid` and all its descendants that are
    alive (Linux /proc; 0.0 elsewhere): what a server costs whatever else runs on the host."""
    proc = Path("/proc")
    if not proc.is_dir():
        return 0.0
    stats: dict[int, tuple[int, int]] = {}  # pid -> (parent, user + system ticks)
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        stats[int(entry.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    tree, ticks = {pid}, 0
    changed = True
    while changed:
        changed = False
        for child, (parent, _) in stats.items():
            if parent in tree and child not in tree:
                tree.add(child)
                changed = True
    ticks = sum(stats[p][1] for p in tree if p in stats)
    return ticks / os.sysconf("SC_CLK_TCK")


def stop_process(process: subprocess.Popen, timeout: float = 15) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout)


def wait_for_http(url: str, process: subprocess.Popen, timeout: float, log: Path) -> None:
    """Poll `url` until it answers 200; fail with the log's tail if the process dies."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise NotAvailable(f"exited with code {process.returncode}; {tail(log)}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise NotAvailable(f"not ready after {timeout:.0f} s; {tail(log)}")


def tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return f"no log at {path}"
    shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    return f"see {shown}: " + " | ".join(text[-lines:])
