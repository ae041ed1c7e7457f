"""ragllm benchmarks: each prints a ratio against a baseline measured in the same run.

    make bench                    # all three, on PostgreSQL + Redis
    python benchmarks/run.py recording overhead rollup --events 1000000

Needs PostgreSQL and Redis (DATABASE_URL / REDIS_URL, default the local servers). A throwaway
database `test_<name>` is created and dropped; the fake provider runs in its own process.
"""

from __future__ import annotations

import argparse
import os
import select
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ragllm.settings")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/ragllm_bench")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")
os.environ.setdefault("SECRET_KEY", "benchmark-only-secret-key-0123456789-abcdefghij")
os.environ.setdefault("CREDENTIALS_ENCRYPTION_KEY", "benchmark-only-credentials-key-0123456789")
os.environ.setdefault("LLM_ALLOWED_NETWORKS", "127.0.0.0/8")
os.environ.setdefault("USAGE_WRITER_THREAD", "False")
os.environ.setdefault("LOG_LEVEL", "WARNING")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.db.models import F, Sum  # noqa: E402


def line(label: str, value: str) -> None:
    print(f"  {label:<44} {value}")


def setup_tenant(base_url: str):
    from django.contrib.auth import get_user_model

    from providers.models import LLMFactory
    from tenants.models import Tenant, TenantLLM

    user = get_user_model().objects.create_user(
        username=f"bench-{uuid.uuid4().hex[:6]}@example.com"
    )
    tenant = Tenant.objects.get(members__user=user)
    config = TenantLLM.objects.create(
        tenant=tenant,
        factory=LLMFactory.objects.get(name="OpenAI"),
        llm_name="gpt-4o-mini",
        model_type="chat",
        api_key="sk-benchmark-key-000000000000",
        api_base=base_url,
    )
    return tenant, config


def _in_threads(threads: int, n: int, work) -> None:
    """Run work() n times spread over `threads` threads (as web workers would call)."""
    from concurrent.futures import ThreadPoolExecutor

    def run(count: int) -> None:
        try:
            for _ in range(count):
                work()
        finally:
            connection.close()

    share = [n // threads + (1 if i < n % threads else 0) for i in range(threads)]
    with ThreadPoolExecutor(threads) as pool:
        for future in [pool.submit(run, count) for count in share]:
            future.result()


def bench_recording(config, n: int, threads: int) -> None:
    """Our recorder (Redis stream + batched writer) vs RAGFlow's per-call SELECT + UPDATE."""
    from tenants.models import Tenant, TenantLLM
    from usage.buffer import redis_buffer
    from usage.models import UsageEvent, UsageHourly
    from usage.recorder import record_usage
    from usage.records import UsageRecord

    print(f"\nRecording {n:,} usage events from {threads} threads")
    tenant_id = str(config.tenant_id)
    TenantLLM.objects.filter(pk=config.pk).update(used_tokens=0)

    def ragflow_style() -> None:  # look the tenant up, then UPDATE the counter, per call
        Tenant.objects.get(pk=tenant_id)
        TenantLLM.objects.filter(tenant_id=tenant_id, llm_name=config.llm_name).update(
            used_tokens=F("used_tokens") + 18
        )

    start = time.perf_counter()
    _in_threads(threads, n, ragflow_style)
    baseline = time.perf_counter() - start
    assert TenantLLM.objects.get(pk=config.pk).used_tokens == 18 * n

    TenantLLM.objects.filter(pk=config.pk).update(used_tokens=0)
    UsageEvent.objects.all().delete()
    UsageHourly.objects.all().delete()
    buffer = redis_buffer()
    buffer.client.delete(buffer.stream)
    buffer._group_ready = False

    def ours() -> None:
        record_usage(
            UsageRecord(
                tenant_id=tenant_id,
                tenant_llm_id=config.pk,
                factory="OpenAI",
                llm_name=config.llm_name,
                model_type="chat",
                prompt_tokens=12,
                completion_tokens=6,
                total_tokens=18,
            )
        )

    # The writer is a process of its own, as beat's drain task on a Celery worker would be.
    writer = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--writer"],
        stdin=subprocess.PIPE,
        env={**os.environ, "DATABASE_URL": _database_url()},
    )
    start = time.perf_counter()
    _in_threads(threads, n, ours)
    from usage.recorder import flush_forwarder

    flush_forwarder()
    callers = time.perf_counter() - start
    writer.stdin.close()  # "finish what is in the stream, then stop"
    writer.wait(timeout=600)
    end_to_end = time.perf_counter() - start
    used = TenantLLM.objects.get(pk=config.pk).used_tokens
    events = UsageEvent.objects.aggregate(t=Sum("total_tokens"))["t"]
    exact = used == events == 18 * n
    line("RAGFlow-style SELECT + UPDATE per call", f"{n / baseline:10,.0f} events/s")
    line("ragllm: calls recording into the buffer", f"{n / callers:10,.0f} events/s")
    line("ragllm: until every event is in the database", f"{n / end_to_end:10,.0f} events/s")
    line("ratio (callers)", f"{baseline / callers:10.1f}x")
    line("ratio (end to end)", f"{baseline / end_to_end:10.1f}x   totals exact: {exact}")
    if not exact:
        raise SystemExit("recording totals are wrong")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def bench_overhead(tenant, base_url: str, n: int) -> None:
    """LLMBundle.chat vs a raw httpx call to the same loopback fake provider."""
    import httpx

    from gateway.bundle import LLMBundle
    from usage.services.events import usage_drain

    print(f"\nLLMBundle overhead over {n} chat calls (fake provider in its own process)")
    history = [{"role": "user", "content": "Hi"}]
    bundle = LLMBundle(tenant.pk, "chat", "gpt-4o-mini@OpenAI")
    client = httpx.Client()
    body = {"model": "gpt-4o-mini", "messages": history}
    headers = {"Authorization": "Bearer sk-benchmark-key-000000000000"}
    url = f"{base_url}/chat/completions"
    for _ in range(50):  # warm both paths
        bundle.chat(history)
        client.post(url, json=body, headers=headers).json()
    raw, ours = [], []
    for _ in range(n):  # interleaved, so both see the same machine
        t = time.perf_counter()
        client.post(url, json=body, headers=headers).json()
        raw.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        bundle.chat(history)
        ours.append((time.perf_counter() - t) * 1000)
    usage_drain(claim_idle_ms=0)
    for name, p in (("p50", 50), ("p99", 99)):
        r, o = percentile(raw, p), percentile(ours, p)
        line(f"{name}: raw httpx {r:.2f} ms, LLMBundle {o:.2f} ms", f"added {o - r:+.2f} ms")
    line(
        "ratio of medians (LLMBundle / raw)",
        f"{statistics.median(ours) / statistics.median(raw):.2f}x",
    )


def bench_rollup(tenant, config, n: int) -> None:
    """Applying n events (events + used_tokens + hourly and daily rollups), then the repair."""
    from usage.models import UsageDaily, UsageEvent, UsageHourly
    from usage.records import UsageRecord
    from usage.services.ledger import apply_records
    from usage.services.rollups import usage_rollup_daily

    print(f"\nLedger and rollup of {n:,} events")
    now = time.time()
    batch_size = 5000
    models = [f"model-{i}" for i in range(10)]
    UsageEvent.objects.all().delete()
    UsageHourly.objects.all().delete()
    UsageDaily.objects.all().delete()
    start = time.perf_counter()
    for offset in range(0, n, batch_size):
        records = [
            UsageRecord(
                tenant_id=str(tenant.pk),
                tenant_llm_id=config.pk,
                factory="OpenAI",
                llm_name=models[i % 10],
                model_type="chat",
                prompt_tokens=12,
                completion_tokens=6,
                total_tokens=18,
                cost="0.0000054",
                created_at=now - (i % (30 * 24)) * 3600,  # spread over 30 days of hours
            )
            for i in range(offset, min(n, offset + batch_size))
        ]
        apply_records(records)
    applied = time.perf_counter() - start
    start = time.perf_counter()
    rows = usage_rollup_daily(since=__import__("datetime").date(1970, 1, 1))
    rolled = time.perf_counter() - start
    total = UsageHourly.objects.aggregate(t=Sum("total_tokens"))["t"]
    daily = UsageDaily.objects.aggregate(t=Sum("total_tokens"))["t"]
    line(
        "ledger writer (events, counters, rollups)",
        f"{applied:8.1f} s  {n / applied:10,.0f} events/s",
    )
    line(f"daily repair ({rows} daily rows)", f"{rolled:8.2f} s  {n / rolled:10,.0f} events/s")
    line("hourly and daily totals exact", str(total == daily == 18 * n))


def _database_url() -> str:
    db = settings.DATABASES["default"]
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"


def writer_loop() -> None:
    """The usage writer process: drain until stdin closes, then drain what is left."""
    from usage.services.events import usage_drain

    while not select.select([sys.stdin], [], [], 0.01)[0]:
        usage_drain(claim_idle_ms=60_000)
    sys.stdin.read()
    usage_drain(claim_idle_ms=0)


def main() -> None:
    if "--writer" in sys.argv:
        writer_loop()
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("which", nargs="*", default=["recording", "overhead", "rollup"])
    parser.add_argument("--recording-events", type=int, default=20_000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--calls", type=int, default=2_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        raise SystemExit("benchmarks run on PostgreSQL: set DATABASE_URL")
    from tests.usage_helpers import FakeProviderProcess

    print(f"ragllm benchmarks on PostgreSQL ({settings.DATABASES['default']['HOST']}) and Redis")
    test_db = connection.creation.create_test_db(verbosity=0, keepdb=False)
    fake = FakeProviderProcess()
    try:
        base_url = fake.url("/v1")
        tenant, config = setup_tenant(base_url)
        if "recording" in args.which:
            bench_recording(config, args.recording_events, args.threads)
        if "overhead" in args.which:
            bench_overhead(tenant, base_url, args.calls)
        if "rollup" in args.which:
            bench_rollup(tenant, config, args.events)
    finally:
        fake.stop()
        connection.creation.destroy_test_db(test_db, verbosity=0)


if __name__ == "__main__":
    main()
