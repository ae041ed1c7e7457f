"""LiteLLM's proxy as a gateway benchmark target (the comparison issue 10 asks for).

On first use it is installed into a throwaway venv under var/bench/litellm (`pip install
'litellm[proxy]==<version>'`; BENCH_LITELLM_SPEC overrides the requirement), then started as
`litellm --config <generated yaml>` on 127.0.0.1, with no database: one model, `bench-chat`,
sends `openai/<model>` to the fake upstream; clients authenticate with a master key. It runs
as LiteLLM's production guide advises where that applies without a database: offline mode
(the model cost map bundled with the package, nothing fetched at start), `LITELLM_LOG=ERROR`,
`set_verbose` off, `--num_workers` as many as every target gets (by default one per core, as
LiteLLM's deployment guide has it), uvicorn with uvloop (installed with the proxy extras).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .common import ROOT, VAR, NotAvailable, free_port, stop_process, tail, wait_for_http
from .targets import Target

SPEC = os.environ.get("BENCH_LITELLM_SPEC", "litellm[proxy]==1.108.7")
HOME = VAR / "litellm"
MODEL = "bench-chat"
MASTER_KEY = "sk-bench-litellm-master-key"  # loopback only, for this benchmark

_CONFIG = """\
model_list:
  - model_name: {model}
    litellm_params:
      model: openai/{upstream_model}
      api_base: {api_base}
      api_key: os.environ/BENCH_UPSTREAM_API_KEY
litellm_settings:
  set_verbose: false
general_settings:
  master_key: os.environ/BENCH_LITELLM_MASTER_KEY
"""


def install() -> Path:
    """The `litellm` command of the throwaway venv, installed once per requirement."""
    venv = HOME / "venv"
    marker = venv / ".installed"
    if marker.is_file() and marker.read_text() == SPEC:
        return venv / "bin" / "litellm"
    HOME.mkdir(parents=True, exist_ok=True)
    log = HOME / "install.log"
    print(f"  installing {SPEC} into {venv.relative_to(ROOT)} (once)", flush=True)
    with log.open("w") as out:
        steps = (
            [sys.executable, "-m", "venv", "--clear", str(venv)],
            [str(venv / "bin" / "pip"), "install", "--quiet", SPEC],
        )
        for step in steps:
            if subprocess.run(step, stdout=out, stderr=subprocess.STDOUT).returncode != 0:
                raise NotAvailable(f"`{' '.join(step[-2:])}` failed; {tail(log)}")
    marker.write_text(SPEC)
    return venv / "bin" / "litellm"


@contextmanager
def litellm_proxy(upstream: Target, workers: int) -> Iterator[Target]:
    command = install()
    port = free_port()
    config = HOME / "config.yaml"
    config.write_text(
        _CONFIG.format(model=MODEL, upstream_model=upstream.model, api_base=upstream.base_url)
    )
    # No database: LiteLLM would use DATABASE_URL (ours) if it saw it.
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env.update(
        LITELLM_OFFLINE_MODE="true",
        LITELLM_LOCAL_MODEL_COST_MAP="True",
        LITELLM_LOG="ERROR",
        BENCH_UPSTREAM_API_KEY=upstream.api_key,
        BENCH_LITELLM_MASTER_KEY=MASTER_KEY,
    )
    log = HOME / "proxy.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [
                str(command),
                "--config",
                str(config),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--num_workers",
                str(workers),
                # uvicorn kills a worker that has not answered its supervisor within 5 s,
                # which is less than importing LiteLLM takes on a busy machine: startup only.
                *(["--timeout_worker_healthcheck", "120"] if workers > 1 else []),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=HOME,
            env=env,
        )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/health/liveliness", process, 180, log)
        version = SPEC.partition("==")[2] or "(latest)"
        base = f"http://127.0.0.1:{port}/v1"
        yield Target(f"LiteLLM {version} proxy", base, MASTER_KEY, MODEL, process.pid)
    finally:
        stop_process(process)
