"""The ledger on PostgreSQL: one batch, one transaction, a few set-based statements.

1. COPY the records, as they are (tuples in `records.FIELDS` order), into a temporary staging
   table: no per-record conversion in Python.
2. The batch's tenants are locked (key share) until the commit, then one plain
   `INSERT INTO usage_usageevent ... SELECT ... FROM staging JOIN tenant` keeps the
   events of live tenants. When it inserted every record (the common case) the sums below are
   taken from the staging table; otherwise (a replay: the unique index on (request_id,
   created_at) refuses the batch; deleted tenants) it is rolled back to a savepoint and run
   again with `ON CONFLICT (request_id, created_at) DO NOTHING RETURNING` into a second
   temporary table (`fresh`), which the sums are taken from: a replayed batch inserts
   nothing, so it adds nothing below.
3. The new tokens per configuration go to `TenantLLM.used_tokens` through the tenants service
   that owns the counter (one UPDATE of the live configurations, rows locked in key order).
4. The new events are summed per hourly key once (`GROUP BY` into a third temporary table,
   `hours`), then one `INSERT ... SELECT ... ON CONFLICT DO UPDATE SET c = c + EXCLUDED.c`
   each for the hourly rollup (those rows) and the daily one (those rows summed per day: a
   few thousand rows rather than every event), rows in key order (two writers cannot
   deadlock).
"""

from __future__ import annotations

from operator import itemgetter

from django.db import connection

from tenants.models import Tenant
from tenants.services.configs import tenant_llm_add_used_tokens

from ..models import ROLLUP_SUMS, UsageDaily, UsageEvent, UsageHourly
from ..records import FIELDS, UsageRecord
from .partitions import ensure_for_epoch_days

_CREATED_AT = FIELDS.index("created_at")
_EVENT = UsageEvent._meta.db_table
_TENANT = Tenant._meta.db_table

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
) ON COMMIT DELETE ROWS;
CREATE TEMPORARY TABLE IF NOT EXISTS usage_hours (
    bucket timestamptz, tenant_id uuid, factory text, llm_name text, model_type text,
    token_id integer, calls bigint, errors bigint, prompt_tokens bigint,
    completion_tokens bigint, total_tokens bigint, cost numeric
) ON COMMIT DELETE ROWS
"""
_COPY = f"COPY usage_staging ({', '.join(FIELDS)}) FROM STDIN"
_EVENT_COLUMNS = (
    "request_id, tenant_id, tenant_llm_id, token_id, factory, llm_name, model_type,"
    " prompt_tokens, completion_tokens, total_tokens, cost, estimated, latency_ms, outcome,"
    " error_code, created_at"
)
_SELECT_STAGING = f"""
    SELECT s.request_id, s.tenant_id, s.tenant_llm_id, s.token_id, s.factory, s.llm_name,
        s.model_type, s.prompt_tokens, s.completion_tokens, s.total_tokens, s.cost, s.estimated,
        s.latency_ms, s.outcome, s.error_code, to_timestamp(s.created_at)
    FROM usage_staging s JOIN {_TENANT} t ON t.id = s.tenant_id
"""
_FROM_STAGING = f"{_SELECT_STAGING} ON CONFLICT (request_id, created_at) DO NOTHING"
# The common case: every event is new and of a live tenant (checked by the row count). A
# plain INSERT, no ON CONFLICT: the unique index still refuses a stored (request id, time),
# raising an error that sends the batch to the slower path below, and it skips the
# speculative insertion ON CONFLICT makes per row (about a quarter of the statement's time).
_INSERT_ALL = f"INSERT INTO {_EVENT} ({_EVENT_COLUMNS}) {_SELECT_STAGING}"
# After a replay or with events of deleted tenants: the new events are kept apart.
_FRESH_COLUMNS = (
    "tenant_id, tenant_llm_id, token_id, factory, llm_name, model_type, prompt_tokens,"
    " completion_tokens, total_tokens, cost, outcome, created_at"
)
_INSERT_FRESH = f"""
WITH inserted AS (
    INSERT INTO {_EVENT} ({_EVENT_COLUMNS}) {_FROM_STAGING}
    RETURNING {_FRESH_COLUMNS}
)
INSERT INTO usage_fresh ({_FRESH_COLUMNS}) SELECT {_FRESH_COLUMNS} FROM inserted
"""
# The batch's tenants stay alive until it commits: a tenant's deletion locks the tenant's row
# first, so it waits for this batch and then deletes what the batch wrote (usage.signals).
# Tenants deleted before are not found: the joins below drop their events. (The usage tables
# have no foreign key to do this per row.)
_LOCK_TENANTS = (
    f"SELECT 1 FROM {_TENANT} WHERE id IN (SELECT DISTINCT tenant_id FROM usage_staging)"
    " FOR KEY SHARE"
)
_ORPHANS = (
    f"SELECT count(*) FROM usage_staging s WHERE NOT EXISTS"
    f" (SELECT 1 FROM {_TENANT} t WHERE t.id = s.tenant_id)"
)


def _per_config(source: str) -> str:
    return (
        f"SELECT tenant_llm_id, sum(total_tokens) FROM {source}"
        " WHERE tenant_llm_id IS NOT NULL GROUP BY tenant_llm_id HAVING sum(total_tokens) <> 0"
    )


_KEYS = ("tenant_id", "factory", "llm_name", "model_type", "token_id")
_SUMS = ", ".join(ROLLUP_SUMS)


def _hours_sql(source: str, created_at: str) -> str:
    """The new events' sums per hourly key, into `usage_hours` (the daily rows are summed
    from these: a few thousand rows rather than every event)."""
    return (
        f"INSERT INTO usage_hours (bucket, {', '.join(_KEYS)}, {_SUMS})"
        f" SELECT date_trunc('hour', {created_at} AT TIME ZONE 'UTC') AT TIME ZONE 'UTC',"
        " tenant_id, factory, llm_name, model_type, coalesce(token_id, 0), count(*),"
        " count(*) FILTER (WHERE outcome <> 'ok'), sum(prompt_tokens), sum(completion_tokens),"
        f" sum(total_tokens), sum(cost) FROM {source} GROUP BY 1, 2, 3, 4, 5, 6"
    )


def _upsert_sql(model, period: str, period_of: str, *, grouped: bool) -> str:
    """The rollup's rows in key order (two writers cannot deadlock), added to the stored
    ones."""
    table = model._meta.db_table
    keys = ("tenant_id", period, "factory", "llm_name", "model_type", "token_id")
    sums = ", ".join(f"sum({c})" for c in ROLLUP_SUMS) if grouped else _SUMS
    group = " GROUP BY 1, 2, 3, 4, 5, 6" if grouped else ""
    updates = ", ".join(f"{c} = {table}.{c} + EXCLUDED.{c}" for c in ROLLUP_SUMS)
    return (
        f"INSERT INTO {table} ({', '.join(keys + ROLLUP_SUMS)})"
        f" SELECT tenant_id, {period_of}, factory, llm_name, model_type, token_id, {sums}"
        f" FROM usage_hours{group} ORDER BY 1, 2, 3, 4, 5, 6"
        f" ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {updates}"
    )


_HOURLY = _upsert_sql(UsageHourly, "bucket", "bucket", grouped=False)
_DAILY = _upsert_sql(UsageDaily, "day", "(bucket AT TIME ZONE 'UTC')::date", grouped=True)

# (per-config sums, hourly sums) from each source of new events.
_ADD = {
    source: (_per_config(source), _hours_sql(source, created_at))
    for source, created_at in (
        ("usage_staging", "to_timestamp(created_at)"),
        ("usage_fresh", "created_at"),
    )
}


def prepare(records: list[UsageRecord]) -> None:
    """Before the batch's transaction: partitions for the days of its events."""
    times = list(map(itemgetter(_CREATED_AT), records))
    first, last = int(min(times) // 86400), int(max(times) // 86400)
    # A batch nearly always falls within one day: two passes in C instead of one in Python.
    days = {first} if first == last else {int(t // 86400) for t in times}
    ensure_for_epoch_days(days)


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
        cursor.execute(_LOCK_TENANTS)
        cursor.execute("SAVEPOINT usage_batch")
        try:
            cursor.execute(_INSERT_ALL)
            inserted = cursor.rowcount
        except psycopg.errors.UniqueViolation:  # some were applied before (a replay)
            inserted = -1
        dropped = 0
        if inserted == len(records):
            cursor.execute("RELEASE SAVEPOINT usage_batch")
            source = "usage_staging"
        else:  # some were applied before, or are of deleted tenants: find the new ones
            cursor.execute("ROLLBACK TO SAVEPOINT usage_batch")
            cursor.execute(_INSERT_FRESH)
            inserted = cursor.rowcount
            cursor.execute(_ORPHANS)
            (dropped,) = cursor.fetchone()
            source = "usage_fresh"
        if inserted:
            # Sums first, from this batch's own tables; then the shared rows (counters and
            # rollups, which other writers update too), locked for as short a time as can be.
            per_config, hours = _ADD[source]
            cursor.execute(per_config)
            tokens_by_config = {config: int(tokens) for config, tokens in cursor.fetchall()}
            cursor.execute(hours)
            tenant_llm_add_used_tokens(tokens_by_config=tokens_by_config)
            cursor.execute(_HOURLY)
            cursor.execute(_DAILY)
        if not outermost:
            cursor.execute(
                "DELETE FROM usage_staging; DELETE FROM usage_fresh; DELETE FROM usage_hours"
            )
    return inserted, dropped
