"""The benchmarks are not tests (speed goes there, not here); this only keeps them importable
and their small pure helpers right, so a refactoring that breaks them shows up in `make test`."""

from __future__ import annotations

import importlib
from contextlib import contextmanager

import pytest

from benchmarks import common, run


@pytest.mark.parametrize("name", run.BENCHMARKS)
def test_it_imports_every_benchmark_module(name):
    module = importlib.import_module(f"benchmarks.{name}")
    assert callable(module.run)


def test_it_runs_every_benchmark_by_default_and_refuses_unknown_names(capsys):
    assert run.parse_args([]).which == list(run.BENCHMARKS)
    assert run.parse_args(["quota", "ledger"]).which == ["quota", "ledger"]
    with pytest.raises(SystemExit):
        run.parse_args(["recordings"])
    assert "unknown benchmark(s): recordings" in capsys.readouterr().err


def test_it_makes_every_call_once_across_threads():
    made = []

    @contextmanager
    def worker(index):
        yield lambda: made.append(index)

    timing = common.in_threads(3, 10, worker)
    assert sorted(made) == [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert timing.seconds >= 0


def test_it_reports_a_failing_thread():
    @contextmanager
    def worker(index):
        def call():
            if index == 1:
                raise ValueError("boom")

        yield call

    with pytest.raises(ValueError, match="boom"):
        common.in_threads(2, 4, worker)


def test_it_prints_ratios_as_the_readme_does():
    assert common.times(1, 4) == "0.25x"
    assert common.times(45, 10) == "4.5x"
    assert common.times(920, 44) == "21x"
    assert common.times(1, 0) == "-"


def test_it_counts_the_cpu_time_of_a_process_and_its_children():
    import os
    import signal
    import subprocess
    import sys
    import time

    # A grandchild burns 0.3 s of CPU, then sleeps; its parent, asleep, uses next to none.
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass\n"
    burn += "time.sleep(30)\n"
    parent = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {burn!r}])"
    child = subprocess.Popen([sys.executable, "-c", parent], start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and common.cpu_seconds(child.pid) < 0.3:
            time.sleep(0.05)
        assert 0.3 <= common.cpu_seconds(child.pid) < 5
        assert common.cpu_seconds(os.getpid()) > 0
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
