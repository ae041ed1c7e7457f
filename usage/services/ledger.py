"""Applying usage records to the database: exactly once per (request id, time), in batches.

One transaction per batch, which
1. inserts the events, skipping those already stored (`ON CONFLICT (request_id, created_at)
   DO NOTHING`), so a batch replayed after a crash inserts nothing the second time;
2. adds only the newly inserted tokens to `TenantLLM.used_tokens`, through the tenants service
   that owns that counter (one `UPDATE ... SET used_tokens = used_tokens + n` per batch);
3. adds them to the hourly and daily rollups with
   `INSERT ... ON CONFLICT DO UPDATE SET x = x + EXCLUDED.x`.
Counters are never read and written back from Python; rows are touched in a fixed order so two
writers cannot deadlock. On PostgreSQL this is COPY and set-based SQL (`ledger_pg`); on SQLite
(`make run` without Redis) the same rules as multi-row VALUES statements built here.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from operator import attrgetter

from django.db import connection, transaction

from tenants.models import Tenant
from tenants.services.configs import tenant_llm_add_used_tokens

from ..models import NO_TOKEN, ROLLUP_SUMS, UsageDaily, UsageEvent, UsageHourly
from ..records import UsageRecord
from . import ledger_pg

logger = logging.getLogger(__name__)

CHUNK = 500  # rows per VALUES statement (SQLite)
# Every column of an event but its id, in the model's order; records name their values alike.
_EVENT_COLUMNS = tuple(f.attname for f in UsageEvent._meta.concrete_fields if not f.primary_key)
# How each column's value is read from a record (request ids stay hex strings: both backends
# parse them as uuid).
_EVENT_VALUES = tuple(
    {
        "cost": attrgetter("cost_decimal"),
        "created_at": lambda r: datetime.fromtimestamp(r.created_at, tz=UTC),
    }.get(column, attrgetter(column))
    for column in _EVENT_COLUMNS
)


@dataclass
class ApplyResult:
    inserted: int = 0
    duplicates: int = 0
    dropped: int = 0  # events whose tenant no longer exists

    def __iadd__(self, other: ApplyResult) -> ApplyResult:
        self.inserted += other.inserted
        self.duplicates += other.duplicates
        self.dropped += other.dropped
        return self


def _field(model, column: str):
    return next(f for f in model._meta.concrete_fields if f.attname == column)


def _hour(ts: float) -> datetime:
    moment = datetime.fromtimestamp(ts, tz=UTC)
    return moment.replace(minute=0, second=0, microsecond=0)


def _bulk_insert(
    model,
    columns: tuple[str, ...],
    rows: list[tuple],
    *,
    conflict: tuple[str, ...],
    add: tuple[str, ...] = (),
    returning: str | None = None,
) -> list:
    """INSERT many rows with ON CONFLICT: DO NOTHING, or DO UPDATE SET c = c + EXCLUDED.c,
    as multi-row VALUES lists of converted values (the portable path)."""
    qn = connection.ops.quote_name
    table = qn(model._meta.db_table)
    column_list = ", ".join(qn(c) for c in columns)
    on_conflict = f"ON CONFLICT ({', '.join(qn(c) for c in conflict)}) " + (
        "DO UPDATE SET " + ", ".join(f"{qn(c)} = {table}.{qn(c)} + EXCLUDED.{qn(c)}" for c in add)
        if add
        else "DO NOTHING"
    )
    tail = f" RETURNING {qn(returning)}" if returning else ""
    found: list = []
    with connection.cursor() as cursor:
        fields = [_field(model, c) for c in columns]
        row_sql = "(" + ", ".join(["%s"] * len(columns)) + ")"
        for start in range(0, len(rows), CHUNK):
            chunk = rows[start : start + CHUNK]
            params = [
                field.get_db_prep_save(value, connection)
                for values in chunk
                for field, value in zip(fields, values, strict=True)
            ]
            sql = (
                f"INSERT INTO {table} ({column_list}) VALUES {', '.join([row_sql] * len(chunk))} "
                f"{on_conflict}{tail}"
            )
            cursor.execute(sql, params)
            if returning:
                found.extend(value for (value,) in cursor.fetchall())
    return found


def _insert_events(records: list[UsageRecord]) -> set[str]:
    """Insert the events; return the request ids (hex) that were new."""
    rows = [tuple(value_of(r) for value_of in _EVENT_VALUES) for r in records]
    new = _bulk_insert(
        UsageEvent,
        _EVENT_COLUMNS,
        rows,
        conflict=("request_id", "created_at"),
        returning="request_id",
    )
    return {value.hex if isinstance(value, uuid.UUID) else uuid.UUID(value).hex for value in new}


def _sums_of(record: UsageRecord) -> tuple:
    """What one record adds to a rollup row, in ROLLUP_SUMS order."""
    return (
        1,
        int(record.outcome != "ok"),
        record.prompt_tokens,
        record.completion_tokens,
        record.total_tokens,
        record.cost_decimal,
    )


def _add_to_rollup(model, period: str, records: list[UsageRecord], period_of) -> None:
    """Add the records' sums to `model`'s rows (their `period` is period_of(record)): one upsert."""
    sums: dict[tuple, list] = {}
    for r in records:
        token = NO_TOKEN if r.token_id is None else r.token_id
        key = (r.tenant_id, period_of(r), r.factory, r.llm_name, r.model_type, token)
        acc = sums.setdefault(key, [0, 0, 0, 0, 0, Decimal(0)])
        for index, value in enumerate(_sums_of(r)):
            acc[index] += value
    if not sums:
        return
    # A fixed order of rows, so that two writers lock them in the same order (no deadlock).
    rows = [(*key, *acc) for key, acc in sorted(sums.items())]
    key_columns = ("tenant_id", period, "factory", "llm_name", "model_type", "token_id")
    _bulk_insert(model, key_columns + ROLLUP_SUMS, rows, conflict=key_columns, add=ROLLUP_SUMS)


def _drop_orphans(records: list[UsageRecord]) -> tuple[list[UsageRecord], int]:
    """Events of deleted tenants are dropped; those of deleted configs are kept, with their
    config's id as recorded (the counter of a deleted config is not there to add to)."""
    tenant_ids = {r.tenant_id for r in records}
    live_tenants = {
        t.hex for t in Tenant.objects.filter(pk__in=tenant_ids).values_list("pk", flat=True)
    }
    kept = [r for r in records if r.tenant_id in live_tenants]
    return kept, len(records) - len(kept)


def _hex(value: str) -> str:
    return value if len(value) == 32 else uuid.UUID(value).hex


def _normalized(record: UsageRecord | tuple) -> UsageRecord:
    if type(record) is not UsageRecord:  # fields in order, as they come off the stream
        record = UsageRecord.from_values(record)
    if len(record.request_id) == 32 and len(record.tenant_id) == 32:
        return record
    return record.replace(request_id=_hex(record.request_id), tenant_id=_hex(record.tenant_id))


def apply_records(records: Iterable[UsageRecord]) -> ApplyResult:
    """Apply a batch in one transaction. Replaying any part of it changes nothing.

    Records are UsageRecords or plain tuples of their fields in `records.FIELDS` order (as
    the stream's entries unpack)."""
    batch = records if isinstance(records, list) else list(records)
    if not batch:
        return ApplyResult()
    if connection.vendor == "postgresql":
        # Rows for COPY: the stream's records are tuples already, this process's are not.
        batch = [r if type(r) is tuple else r.as_tuple() for r in batch]
        ledger_pg.prepare(batch)
        outermost = not connection.in_atomic_block
        with transaction.atomic():
            inserted, dropped = ledger_pg.apply_in_transaction(batch, outermost=outermost)
        duplicates = len(batch) - inserted - dropped
    else:
        inserted, dropped, duplicates = _apply_portable(batch)
    if dropped:
        logger.warning("dropped %d usage event(s) of deleted tenants", dropped)
    return ApplyResult(inserted=inserted, duplicates=duplicates, dropped=dropped)


def _apply_portable(records: list[UsageRecord]) -> tuple[int, int, int]:
    # Ids in one spelling (32 hex digits), and each once: a batch may repeat an id.
    batch = list({r.request_id: r for r in map(_normalized, records)}.values())
    with transaction.atomic():
        batch, dropped = _drop_orphans(batch)
        new_ids = _insert_events(batch) if batch else set()
        fresh = [r for r in batch if r.request_id in new_ids]
        per_config: dict[int, int] = defaultdict(int)
        for r in fresh:
            if r.tenant_llm_id is not None and r.total_tokens:
                per_config[r.tenant_llm_id] += r.total_tokens
        tenant_llm_add_used_tokens(tokens_by_config=per_config)
        _add_to_rollup(UsageHourly, "bucket", fresh, lambda r: _hour(r.created_at))
        _add_to_rollup(UsageDaily, "day", fresh, lambda r: _hour(r.created_at).date())
    return len(fresh), dropped, len(batch) - len(fresh)


def usage_purge_tenant(*, tenant_id) -> int:
    """Delete every event and rollup row of a tenant being deleted (run inside its deletion,
    after the tenant's row is gone: a ledger writer holding the tenant has committed by then,
    and a later one no longer finds it). Returns the rows deleted."""
    deleted = 0
    for model in (UsageEvent, UsageHourly, UsageDaily):
        deleted += model.objects.filter(tenant_id=tenant_id).delete()[0]
    return deleted
