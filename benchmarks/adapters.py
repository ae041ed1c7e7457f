"""Every call the benchmarks make into ragllm's code, one small function per use.

The ledger (issue 12) and the gateway (issue 10) are being rewritten: when an API changes,
repoint the function here and the benchmarks measure the new code unchanged. Functions that
sit on a hot path return a closure, so that imports and look-ups happen once, not per call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .common import COMPLETION_TOKENS, PROMPT_TOKENS, TOKENS, NotAvailable
from .workload import API_KEY, FACTORY, Row

# --- recording: callers, the writer process, the ledger's totals -------------------------


def _chat_record() -> Callable[..., object]:
    """Builds the usage record of one chat call of a row (extra fields by keyword)."""
    from usage.records import UsageRecord

    def make(row: Row, **extra) -> object:
        return UsageRecord(
            tenant_id=row.tenant_id,
            tenant_llm_id=row.config_id,
            factory=row.factory,
            llm_name=row.llm_name,
            model_type="chat",
            prompt_tokens=PROMPT_TOKENS,
            completion_tokens=COMPLETION_TOKENS,
            total_tokens=TOKENS,
            **extra,
        )

    return make


def recorder() -> Callable[[Row], None]:
    """A caller's `record_usage` for one chat call of `row` (returns without waiting): the
    record built as LLMBundle builds it, then handed over."""
    from usage.recorder import record_usage
    from usage.records import UsageRecord

    def record(row: Row) -> None:
        record_usage(
            UsageRecord(
                tenant_id=row.tenant_id,
                tenant_llm_id=row.config_id,
                factory=row.factory,
                llm_name=row.llm_name,
                model_type="chat",
                prompt_tokens=PROMPT_TOKENS,
                completion_tokens=COMPLETION_TOKENS,
                total_tokens=TOKENS,
            )
        )

    return record


def flush_recorder() -> None:
    """Hand what this process still holds to the buffer (Redis) now."""
    from usage.recorder import flush_forwarder

    flush_forwarder()


def drain() -> None:
    """One pass of the usage writer: apply what the buffer holds (the writer process's loop).

    Entries other writers hold are theirs to finish: they are claimed only after a minute
    idle (as `usage_writer` does after `--claim-idle-ms`), never at once, which would make two
    writers apply them (harmless, but each then does the work of a replay).
    """
    from usage.services.events import usage_drain

    usage_drain(claim_idle_ms=60_000)


def writer_loop(stop) -> None:
    """The usage writer's loop (`usage_writer`'s) until `stop` is set: blocking reads of the
    stream, one batch of up to 10 entries a transaction. Entries of the other writers are
    claimed only after a minute idle (see drain)."""
    from usage.services.events import usage_writer_run

    usage_writer_run(stop=stop, claim_idle_ms=60_000, block_ms=10)


def reset_ledger() -> None:
    """An empty buffer, no events, no rollups, every counter at zero (between runs)."""
    from django.db import connection

    from tenants.models import TenantLLM
    from usage.buffer import redis_buffer
    from usage.models import UsageDaily, UsageEvent, UsageHourly

    buffer = redis_buffer()
    if buffer is not None:
        buffer.client.delete(buffer.stream)
        buffer._group_ready = False
    tables = ", ".join(m._meta.db_table for m in (UsageEvent, UsageHourly, UsageDaily))
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {tables}")
    TenantLLM.objects.update(used_tokens=0)


@dataclass(frozen=True)
class LedgerTotals:
    events: int
    event_tokens: int
    hourly_tokens: int
    used_tokens: int  # the sum of TenantLLM.used_tokens

    def exact(self, events: int) -> bool:
        tokens = TOKENS * events
        return (self.events, self.event_tokens, self.hourly_tokens, self.used_tokens) == (
            events,
            tokens,
            tokens,
            tokens,
        )


def ledger_totals() -> LedgerTotals:
    from django.db.models import Count, Sum

    from tenants.models import TenantLLM
    from usage.models import UsageEvent, UsageHourly

    events = UsageEvent.objects.aggregate(n=Count("pk"), t=Sum("total_tokens"))
    return LedgerTotals(
        events=events["n"],
        event_tokens=events["t"] or 0,
        hourly_tokens=UsageHourly.objects.aggregate(t=Sum("total_tokens"))["t"] or 0,
        used_tokens=TenantLLM.objects.aggregate(t=Sum("used_tokens"))["t"] or 0,
    )


# --- the ledger writer over many events ---------------------------------------------------


def usage_records(rows: list[Row], created_at: list[float]) -> list:
    """The writer's input for a batch: one record per (row, time) pair, as a writer gets
    them off the stream (tuples of the fields)."""
    make = _chat_record()
    return [
        make(row, cost="0.0000054", created_at=at).as_tuple()
        for row, at in zip(rows, created_at, strict=True)
    ]


def apply_usage_records(records: list) -> None:
    """The ledger writer's work for one batch: events, counters and rollups, one transaction."""
    from usage.services.ledger import apply_records

    apply_records(records)


def rollup_daily() -> int:
    """Recompute every daily rollup row from the hourly ones; returns the rows written."""
    from datetime import date

    from usage.services.rollups import usage_rollup_daily

    return usage_rollup_daily(since=date(1970, 1, 1))


# --- quotas ------------------------------------------------------------------------------


def create_tenant_with_quota(tokens: int) -> str:
    """A tenant whose calls all count against a monthly quota of `tokens` (its id)."""
    from tenants.models import Tenant

    return str(Tenant.objects.create(name="bench-quota", token_quota=tokens).pk)


def _quota_path(tenant_id: str, redis_url: str):
    from django.conf import settings

    from tenants.models import Tenant
    from usage.quotas import tenant_rule
    from usage.selectors.quotas import quota_used
    from usage.services.quota_redis import reset_store
    from usage.services.quotas import quota_reserve, quota_settle

    settings.QUOTA_REDIS_URL = redis_url
    reset_store()
    rule = tenant_rule(Tenant.objects.get(pk=tenant_id))

    def reserve_and_settle(reserve: int, actual: int) -> None:
        quota_settle(reservation=quota_reserve(rules=(rule,), tokens=reserve), actual_tokens=actual)

    return reserve_and_settle, lambda: quota_used(rule=rule)


def database_quota(tenant_id: str) -> tuple[Callable[[int, int], None], Callable[[], int]]:
    """The database path for a tenant (QUOTA_REDIS_URL empty, as without Redis or while it is
    down): a conditional UPDATE of the counter row before the call, settled after it."""
    return _quota_path(tenant_id, "")


def redis_quota(tenant_id: str) -> tuple[Callable[[int, int], None], Callable[[], int]]:
    """The Redis path for the same tenant: one atomic script to reserve, one to settle."""
    from django.conf import settings

    url = settings.REDIS_URL
    if not url:
        raise NotAvailable("no REDIS_URL")
    return _quota_path(tenant_id, url)


# --- LLMBundle ---------------------------------------------------------------------------


def create_chat_tenant(api_base: str, llm_name: str) -> str:
    """A tenant with one OpenAI chat model aimed at `api_base` (the fake provider); its id."""
    from tenants.models import Tenant

    tenant = Tenant.objects.create(name="bench-chat")
    _add_chat_model(tenant, api_base, llm_name)
    return str(tenant.pk)


def _add_chat_model(tenant, api_base: str, llm_name: str) -> None:
    from providers.models import LLMFactory
    from tenants.models import TenantLLM

    TenantLLM.objects.create(
        tenant=tenant,
        factory=LLMFactory.objects.get(name=FACTORY),
        llm_name=llm_name,
        model_type="chat",
        api_key=API_KEY,
        api_base=api_base,
    )


def bundle_chat(tenant_id: str, model: str) -> Callable[[list[dict]], object]:
    """`LLMBundle(tenant, "chat", model).chat`: a Python caller's whole call path."""
    from gateway.bundle import LLMBundle

    return LLMBundle(tenant_id, "chat", model).chat


# --- the gateway -------------------------------------------------------------------------


def create_gateway_caller(
    api_base: str, llm_name: str, *, token_quota: int | None, key_limits: dict | None = None
) -> str:
    """A user whose tenant has one OpenAI chat model aimed at `api_base` and, if given, a
    token quota (so that every call reserves and settles); its API token, carrying
    `key_limits` (APIToken fields: rpm, tpm, budget) if given. One per run of a target: the
    user's name carries a counter."""
    from django.contrib.auth import get_user_model

    from tenants.selectors import tenant_owned_by
    from tenants.services.tokens import api_token_issue

    users = get_user_model().objects
    user = users.create_user(username=f"bench-gateway-{users.count()}", password=None)
    tenant = tenant_owned_by(user=user)
    tenant.token_quota = token_quota
    tenant.save()
    _add_chat_model(tenant, api_base, llm_name)
    token, raw = api_token_issue(user=user, name="bench")
    if key_limits:
        for name, value in key_limits.items():
            setattr(token, name, value)
        token.save()
    return raw
