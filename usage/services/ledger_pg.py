"""The ledger on PostgreSQL: one batch, one transaction, a few set-based statements.

1. COPY the records, as they are (tuples in `records.FIELDS` order), into a temporary staging
   table: no per-record conversion in Python.
2. One `INSERT INTO usage_usageevent ... SELECT ... FROM staging ON CONFLICT (request_id,
   created_at) DO NOTHING RETURNING ...` keeps the events of live tenants (links to deleted
   configs cut), skips those already stored, and puts the new ones in a second temporary table
   (`fresh`): a replayed batch inserts nothing, so it adds nothing below.
3. The new tokens per configuration go to `TenantLLM.used_tokens` through the tenants service
   that owns the counter (one UPDATE, rows locked in key order).
4. One `INSERT ... SELECT ... GROUP BY ... ON CONFLICT DO UPDATE SET c = c + EXCLUDED.c` each
   for the hourly and the daily rollups, rows in key order (two writers cannot deadlock).
"""

from __future__ import annotations

from django.db import connection

from tenants.models import Tenant, TenantLLM
from tenants.services.configs import tenant_llm_add_used_tokens

from ..models import ROLLUP_SUMS, UsageDaily, UsageEvent, UsageHourly
from ..records import FIELDS, UsageRecord
from .partitions import ensure_for_epoch_days

_CREATED_AT = FIELDS.index("created_at")
_EVENT = UsageEvent._meta.db_table
_TENANT = Tenant._meta.db_table
_CONFIG = TenantLLM._meta.db_table

_STAGING_DDL = """
CREATE TEMPORARY TABLE IF NOT EXISTS usage_staging (
    tenant_id uuid, factory text, llm_name text, model_type text, prompt_tokens bigint,
    completion_tokens bigint, total_tokens bigint, estimated boolean, tenant_llm_id bigint,
    cost numeric, latency_ms integer, outcome text, error_code text,
    created_at double precision, request_id uuid, token_id integer
) ON COMMIT DELETE ROWS;
CREATE TEMPORARY TABLE IF NOT EXISTS usage_fresh (
    tenant_id uuid, tenant_llm_id bigint, token_id integer, factory text, llm_name text,
    model_type text, prompt_tokens bigint, completion_tokens bigint, total_tokens bigint,
    cost numeric, outcome text, created_at timestamptz
) ON COMMIT DELETE ROWS
"""
_COPY = f"COPY usage_staging ({', '.join(FIELDS)}) FROM STDIN"
_FRESH_COLUMNS = (
    "tenant_id, tenant_llm_id, token_id, factory, llm_name, model_type, prompt_tokens,"
    " completion_tokens, total_tokens, cost, outcome, created_at"
)
_INSERT_EVENTS = f"""
WITH inserted AS (
    INSERT INTO {_EVENT} (request_id, tenant_id, tenant_llm_id, token_id, factory, llm_name,
        model_type, prompt_tokens, completion_tokens, total_tokens, cost, estimated, latency_ms,
        outcome, error_code, created_at)
    SELECT s.request_id, s.tenant_id, c.id, s.token_id, s.factory, s.llm_name, s.model_type,
        s.prompt_tokens, s.completion_tokens, s.total_tokens, s.cost, s.estimated, s.latency_ms,
        s.outcome, s.error_code, to_timestamp(s.created_at)
    FROM usage_staging s
    JOIN {_TENANT} t ON t.id = s.tenant_id
    LEFT JOIN {_CONFIG} c ON c.id = s.tenant_llm_id
    ON CONFLICT (request_id, created_at) DO NOTHING
    RETURNING {_FRESH_COLUMNS}
)
INSERT INTO usage_fresh ({_FRESH_COLUMNS}) SELECT {_FRESH_COLUMNS} FROM inserted
"""
_ORPHANS = (
    f"SELECT count(*) FROM usage_staging s WHERE NOT EXISTS"
    f" (SELECT 1 FROM {_TENANT} t WHERE t.id = s.tenant_id)"
)
_PER_CONFIG = (
    "SELECT tenant_llm_id, sum(total_tokens) FROM usage_fresh"
    " WHERE tenant_llm_id IS NOT NULL GROUP BY tenant_llm_id HAVING sum(total_tokens) <> 0"
)


def _rollup_sql(model, period: str, period_expr: str) -> str:
    table = model._meta.db_table
    keys = ("tenant_id", period, "factory", "llm_name", "model_type", "token_id")
    sums = (
        "count(*), count(*) FILTER (WHERE outcome <> 'ok'), sum(prompt_tokens),"
        " sum(completion_tokens), sum(total_tokens), sum(cost)"
    )
    updates = ", ".join(f"{c} = {table}.{c} + EXCLUDED.{c}" for c in ROLLUP_SUMS)
    return (
        f"INSERT INTO {table} ({', '.join(keys + ROLLUP_SUMS)})"
        f" SELECT tenant_id, {period_expr}, factory, llm_name, model_type, coalesce(token_id, 0),"
        f" {sums} FROM usage_fresh GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6"
        f" ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {updates}"
    )


_HOURLY = _rollup_sql(
    UsageHourly, "bucket", "date_trunc('hour', created_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
)
_DAILY = _rollup_sql(UsageDaily, "day", "(created_at AT TIME ZONE 'UTC')::date")


def prepare(records: list[UsageRecord]) -> None:
    """Before the batch's transaction: partitions for the days of its events."""
    ensure_for_epoch_days({int(r[_CREATED_AT] // 86400) for r in records})


def apply_in_transaction(records: list[UsageRecord], *, outermost: bool) -> tuple[int, int]:
    """Steps 1-4 inside the caller's transaction; returns (inserted, dropped).

    The temporary tables empty themselves at commit; inside a longer transaction
    (`outermost` false) they are emptied here, for the next batch of that transaction.
    """
    import psycopg

    connection.ensure_connection()
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(_STAGING_DDL)
        with cursor.copy(_COPY) as copy:
            write = copy.write_row
            for record in records:
                write(record)
        cursor.execute(_INSERT_EVENTS)
        inserted = cursor.rowcount
        dropped = 0
        if inserted < len(records):
            cursor.execute(_ORPHANS)
            (dropped,) = cursor.fetchone()
        if inserted:
            cursor.execute(_PER_CONFIG)
            per_config = {config_id: int(tokens) for config_id, tokens in cursor.fetchall()}
            tenant_llm_add_used_tokens(tokens_by_config=per_config)
            cursor.execute(_HOURLY)
            cursor.execute(_DAILY)
        if not outermost:
            cursor.execute("DELETE FROM usage_staging; DELETE FROM usage_fresh")
    return inserted, dropped
