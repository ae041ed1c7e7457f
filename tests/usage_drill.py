"""The metering drill (issue 12): recorder processes, writer processes, a writer SIGKILLed in
the middle of a batch, the usage Redis restarted mid-run; then every total must equal what
was recorded. Small as a test (tests/test_usage_drill.py), large in `make bench`
(benchmarks/drill.py).

Runs against a redis-server of its own (`PrivateRedis`: AOF with fsync always, so a restart
loses nothing acknowledged), never the shared one. A recorder is `python -m tests.usage_drill
record ...`: it records through `record_usage` as LLMBundle does, prints what it recorded as
JSON and exits (its queues are flushed at exit). Writers are `manage.py usage_writer`.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOKEN_IDS = (None, 7, 8)  # the API tokens calls are recorded under (None: no token)


@dataclass
class Recorded:
    events: int = 0
    tokens: int = 0
    per_config: Counter = field(default_factory=Counter)
    per_token: Counter = field(default_factory=Counter)  # keys: token id, or 0 for none


@dataclass
class DrillReport:
    recorded: Recorded
    killed_pending: int  # entries the SIGKILLed writer held unacknowledged when it died
    redis_restarted: bool
    seconds: float
    writer_exit_codes: list[int]


def _record(argv: list[str]) -> None:
    """The recorder process: `record <config_id:tenant:llm_name>... --count N --seed S`."""
    import django

    args = iter(argv)
    configs, count, seed, chunk, pause = [], 0, 0, 200, 0.01
    for arg in args:
        if arg == "--count":
            count = int(next(args))
        elif arg == "--seed":
            seed = int(next(args))
        elif arg == "--chunk":
            chunk = int(next(args))
        elif arg == "--pause":
            pause = float(next(args))
        else:
            config_id, tenant_id, llm_name = arg.split(":", 2)
            configs.append((int(config_id), tenant_id, llm_name))
    django.setup()
    from usage.recorder import flush_forwarder, record_usage
    from usage.records import UsageRecord

    rng = random.Random(seed)
    recorded = Recorded()
    for start in range(0, count, chunk):
        for _ in range(min(chunk, count - start)):
            config_id, tenant_id, llm_name = rng.choice(configs)
            tokens = rng.randint(2, 200)
            token_id = rng.choice(TOKEN_IDS)
            record_usage(
                UsageRecord(
                    tenant_id=tenant_id,
                    tenant_llm_id=config_id,
                    factory="OpenAI",
                    llm_name=llm_name,
                    model_type="chat",
                    prompt_tokens=tokens - 1,
                    completion_tokens=1,
                    total_tokens=tokens,
                    cost="0.000001",
                    token_id=token_id,
                )
            )
            recorded.events += 1
            recorded.tokens += tokens
            recorded.per_config[config_id] += tokens
            recorded.per_token[token_id or 0] += tokens
        time.sleep(pause)
    flush_forwarder()
    print(
        json.dumps(
            {
                "events": recorded.events,
                "tokens": recorded.tokens,
                "per_config": recorded.per_config,
                "per_token": recorded.per_token,
            }
        ),
        flush=True,
    )


def _env(database_url: str, redis_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "ragllm.settings",
        "DATABASE_URL": database_url,
        "USAGE_REDIS_URL": redis_url,
        "USAGE_WRITER_THREAD": "True",
        "LOG_LEVEL": "ERROR",
        "DB_POOL_MAX_SIZE": "2",
    }


def _consumers(redis_url: str) -> dict[str, int]:
    """Pending entries per writer of the usage group."""
    import redis

    from usage.buffer import GROUP, STREAM

    client = redis.Redis.from_url(redis_url, socket_timeout=1)
    try:
        return {
            c["name"].decode(): int(c["pending"]) for c in client.xinfo_consumers(STREAM, GROUP)
        }
    except redis.RedisError:
        return {}


def _backlog(redis_url: str) -> int | None:
    import redis

    from usage.buffer import STREAM

    try:
        return int(redis.Redis.from_url(redis_url, socket_timeout=1).xlen(STREAM))
    except redis.RedisError:
        return None


def run_drill(
    *,
    redis_server,
    database_url: str,
    configs: list[tuple[int, str, str]],
    workdir: Path,
    recorders: int = 4,
    writers: int = 3,
    per_recorder: int = 2_000,
    chunk: int = 100,
    pause: float = 0.02,
    timeout: float = 300,
    log=lambda message: None,
) -> DrillReport:
    """Run the drill; returns what the recorders recorded (the test compares the database)."""
    started = time.monotonic()
    deadline = started + timeout
    env = _env(database_url, redis_server.url)
    logs = []

    def spawn(name: str, argv: list[str]) -> subprocess.Popen:
        out = open(workdir / f"{name}.log", "w+")  # noqa: SIM115 (closed at the end)
        logs.append(out)
        return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)

    writer_procs = [
        spawn(
            f"writer-{i}",
            [
                sys.executable,
                "manage.py",
                "usage_writer",
                "--consumer",
                f"drill-writer-{i}",
                "--claim-idle-ms",
                "1000",
                "--batch-entries",
                "2",
                "--progress-seconds",
                "0",
            ],
        )
        for i in range(writers)
    ]
    spec = [f"{c}:{t}:{n}" for c, t, n in configs]
    recorder_procs = [
        subprocess.Popen(
            [
                *(sys.executable, "-m", "tests.usage_drill", "record", *spec),
                *("--count", str(per_recorder), "--seed", str(i)),
                *("--chunk", str(chunk), "--pause", str(pause)),
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(recorders)
    ]
    try:
        # SIGKILL writer 0 while it holds a batch (read, not yet acknowledged).
        victim, killed_pending = writer_procs[0], 0
        while time.monotonic() < deadline and victim.poll() is None:
            killed_pending = _consumers(redis_server.url).get("drill-writer-0", 0)
            if killed_pending:
                victim.send_signal(signal.SIGKILL)
                break
            time.sleep(0.002)
        victim.wait(timeout=30)
        log(f"writer 0 killed holding {killed_pending} entries")
        # Restart the usage Redis while the recorders are still recording.
        redis_restarted = False
        if any(p.poll() is None for p in recorder_procs):
            redis_server.stop()
            time.sleep(0.3)
            redis_server.start()
            redis_restarted = True
            log("redis restarted")
        recorded = Recorded()
        for proc in recorder_procs:
            out, _ = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
            if proc.returncode != 0:
                raise RuntimeError(f"a recorder failed (exit code {proc.returncode})")
            summary = json.loads(out.strip().splitlines()[-1])
            recorded.events += summary["events"]
            recorded.tokens += summary["tokens"]
            recorded.per_config.update({int(k): v for k, v in summary["per_config"].items()})
            recorded.per_token.update({int(k): v for k, v in summary["per_token"].items()})
        log(f"recorders done: {recorded.events} events")
        # The surviving writers drain the stream, the dead one's entries included.
        while time.monotonic() < deadline:
            if _backlog(redis_server.url) == 0 and not any(_consumers(redis_server.url).values()):
                break
            time.sleep(0.1)
        else:
            raise RuntimeError("the writers did not drain the stream in time")
        for proc in writer_procs[1:]:
            proc.send_signal(signal.SIGTERM)
        codes = [proc.wait(timeout=60) for proc in writer_procs]
        return DrillReport(
            recorded, killed_pending, redis_restarted, time.monotonic() - started, codes
        )
    finally:
        for proc in writer_procs + recorder_procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for out in logs:
            out.close()


if __name__ == "__main__" and sys.argv[1:2] == ["record"]:
    _record(sys.argv[2:])
