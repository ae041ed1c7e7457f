"""Baselines for metering (issue 12): RAGFlow's per-call write, and the COPY-batched ceiling.

RAGFlow records usage with `TenantLLMService.increase_usage` after every model call: its peewee
ORM reads the tenant (`SELECT ... FROM tenant WHERE id = %s LIMIT 1 OFFSET 0`), then runs
`UPDATE tenant_llm SET used_tokens = used_tokens + n, update_time = .., update_date = ..
WHERE tenant_id = .. AND llm_name = .. AND llm_factory = ..`, each statement in autocommit, on
a pooled connection of the calling thread. Here the same statements run in plain SQL (psycopg,
one connection per thread, opened before the clock starts), on one hot row and spread over 20
tenants x 25 models, at 8 and 16 threads, on RAGFlow's own table shapes and on ragllm's
`TenantLLM` table (fewer indexes: faster). Comparisons use the BEST of these figures.

The ceiling is what this PostgreSQL allows a batched ledger: COPY of 2,000 events a batch into
an events table (unique request id) plus one UPDATE per touched counter row, one transaction
per batch, one writer.
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from .common import (
    COMPLETION_TOKENS,
    PROMPT_TOKENS,
    TOKENS,
    Context,
    in_threads,
    line,
    per_second,
    psycopg_url,
    times,
)
from .workload import Row, pick, ragflow_rows, ragllm_rows, ragllm_tables

THREADS = (8, 16)


@dataclass(frozen=True)
class Figure:
    label: str
    events: int
    seconds: float
    exact: bool

    @property
    def rate(self) -> float:
        return self.events / self.seconds


@dataclass(frozen=True)
class Schema:
    """Where RAGFlow's two statements run, and how to read the counters back."""

    name: str
    select_tenant: str
    update_usage: str
    update_params: Callable[[Row], tuple]
    rows: Callable[[Context], list[Row]]
    counters: str  # the table holding used_tokens, for resetting and summing


def _ragflow_params(row: Row) -> tuple:
    # RAGFlow's base model sets update_time and update_date on every UPDATE.
    return (
        TOKENS,
        int(time.time() * 1000),
        datetime.now(),
        row.tenant_id,
        row.llm_name,
        row.factory,
    )


def _schemas() -> list[Schema]:
    from providers.models import LLMFactory

    tenant_table, config_table = ragllm_tables()
    factory_ids = dict(LLMFactory.objects.values_list("name", "pk"))
    return [
        Schema(
            name="RAGFlow's tables",
            select_tenant=(
                "SELECT t1.id, t1.name, t1.public_key, t1.llm_id, t1.embd_id, t1.asr_id,"
                " t1.img2txt_id, t1.rerank_id, t1.tts_id, t1.parser_ids, t1.credit, t1.status,"
                " t1.create_time, t1.create_date, t1.update_time, t1.update_date"
                " FROM ragflow.tenant AS t1 WHERE t1.id = %s LIMIT 1 OFFSET 0"
            ),
            update_usage=(
                "UPDATE ragflow.tenant_llm SET used_tokens = (tenant_llm.used_tokens + %s),"
                " update_time = %s, update_date = %s"
                " WHERE tenant_id = %s AND llm_name = %s AND llm_factory = %s"
            ),
            update_params=_ragflow_params,
            rows=ragflow_rows,
            counters="ragflow.tenant_llm",
        ),
        Schema(
            name="ragllm's tables",
            select_tenant=f"SELECT * FROM {tenant_table} WHERE id = %s LIMIT 1 OFFSET 0",
            update_usage=(
                f"UPDATE {config_table} SET used_tokens = used_tokens + %s"
                " WHERE tenant_id = %s AND llm_name = %s AND factory_id = %s"
            ),
            update_params=lambda row: (
                TOKENS,
                row.tenant_id,
                row.llm_name,
                factory_ids[row.factory],
            ),
            rows=ragllm_rows,
            counters=config_table,
        ),
    ]


def _ragflow_worker(schema: Schema, rows: list[Row]):
    import psycopg

    url = psycopg_url()

    @contextmanager
    def worker(index: int) -> Iterator[Callable[[], None]]:
        conn = psycopg.connect(url, autocommit=True)
        next_row = pick(rows, seed=index)

        def call() -> None:
            row = next_row()
            conn.execute(schema.select_tenant, (row.tenant_id,)).fetchone()
            conn.execute(schema.update_usage, schema.update_params(row))

        try:
            yield call
        finally:
            conn.close()

    return worker


def _sum_counters(schema: Schema, *, reset: bool = False) -> int:
    import psycopg

    with psycopg.connect(psycopg_url(), autocommit=True) as conn:
        if reset:
            conn.execute(f"UPDATE {schema.counters} SET used_tokens = 0")
        return conn.execute(
            f"SELECT coalesce(sum(used_tokens), 0) FROM {schema.counters}"
        ).fetchone()[0]


def measure_ragflow(ctx: Context) -> list[Figure]:
    """Every variant of RAGFlow's per-call write; printed as measured."""
    spread_events = ctx.args.baseline_events
    hot_events = max(spread_events // 4, 1_000)  # the hot row is ~6x slower: fewer calls
    print(
        "  RAGFlow's per-call write: SELECT tenant + UPDATE tenant_llm, autocommit, a connection"
        " per thread"
    )
    figures: list[Figure] = []
    for schema in _schemas():
        rows = schema.rows(ctx)
        for label, chosen, events in (
            ("hot row", rows[:1], hot_events),
            ("spread 20x25", rows, spread_events),
        ):
            for threads in THREADS:
                _sum_counters(schema, reset=True)
                timing = in_threads(threads, events, _ragflow_worker(schema, chosen))
                exact = _sum_counters(schema) == TOKENS * events
                figure = Figure(
                    f"{label}, {schema.name}, {threads} threads", events, timing.seconds, exact
                )
                figures.append(figure)
                line(figure.label, per_second(events, timing.seconds), _exact(exact))
    return figures


def best_ragflow(ctx: Context) -> Figure:
    """The fastest of RAGFlow's variants, measured once per run (every ratio's baseline)."""
    again = ctx.measured("ragflow-best")
    best = ctx.once("ragflow-best", lambda: max(measure_ragflow(ctx), key=lambda f: f.rate))
    label = "RAGFlow's best (above)" if again else "best"
    line(f"{label}: {best.label}", per_second(best.events, best.seconds), "<- baseline")
    return best


# --- the ceiling --------------------------------------------------------------------------

CEILING_BATCH = 2_000


def ceiling(ctx: Context) -> Figure:
    """The COPY-batched ledger on this PostgreSQL, measured once per run."""
    again = ctx.measured("ceiling")
    figure = ctx.once("ceiling", lambda: _measure_ceiling(ctx))
    label = "ceiling (above)" if again else "ceiling"
    line(
        f"{label}: {figure.label}", per_second(figure.events, figure.seconds), _exact(figure.exact)
    )
    return figure


_CEILING_DDL = """
CREATE TABLE bench_ceiling_event (
    request_id uuid PRIMARY KEY,
    tenant_id uuid NOT NULL,
    config_id integer,
    llm_name text NOT NULL,
    prompt_tokens integer NOT NULL,
    completion_tokens integer NOT NULL,
    total_tokens integer NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE TABLE bench_ceiling_counter (id integer PRIMARY KEY, used_tokens bigint NOT NULL);
"""
_CEILING_COPY = (
    "COPY bench_ceiling_event (request_id, tenant_id, config_id, llm_name, prompt_tokens,"
    " completion_tokens, total_tokens, created_at) FROM STDIN"
)
_CEILING_UPDATE = "UPDATE bench_ceiling_counter SET used_tokens = used_tokens + %s WHERE id = %s"


def _ceiling_batch(next_row: Callable[[], Row], first: int, count: int, now: float):
    """`count` events (spread over the rows and 30 days of hours) and their sums per row."""
    events, sums = [], defaultdict(int)
    for i in range(first, first + count):
        row = next_row()
        created = datetime.fromtimestamp(now - (i % 720) * 3600, tz=UTC)
        tokens = (PROMPT_TOKENS, COMPLETION_TOKENS, TOKENS)
        events.append((uuid.uuid4(), row.tenant_id, row.config_id, row.llm_name, *tokens, created))
        sums[row.config_id] += TOKENS
    return events, sorted(sums.items())


def _measure_ceiling(ctx: Context) -> Figure:
    import psycopg

    events = ctx.args.events
    rows = ragllm_rows(ctx)
    next_row = pick(rows, seed=0)
    now = time.time()
    spent = 0.0
    with psycopg.connect(psycopg_url(), autocommit=True) as conn:
        conn.execute(_CEILING_DDL)
        try:
            with conn.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO bench_ceiling_counter VALUES (%s, 0)",
                    [(r.config_id,) for r in rows],
                )
            for first in range(0, events, CEILING_BATCH):
                batch, sums = _ceiling_batch(
                    next_row, first, min(CEILING_BATCH, events - first), now
                )
                start = time.perf_counter()  # only the writer's work is timed
                with conn.transaction(), conn.cursor() as cursor:
                    with cursor.copy(_CEILING_COPY) as copy:
                        for values in batch:
                            copy.write_row(values)
                    cursor.executemany(_CEILING_UPDATE, [(n, key) for key, n in sums])
                spent += time.perf_counter() - start
            (counted,) = conn.execute(
                "SELECT sum(used_tokens) FROM bench_ceiling_counter"
            ).fetchone()
            stored = conn.execute(
                "SELECT count(*), sum(total_tokens) FROM bench_ceiling_event"
            ).fetchone()
        finally:
            conn.execute("DROP TABLE IF EXISTS bench_ceiling_event, bench_ceiling_counter")
    exact = counted == TOKENS * events and tuple(stored) == (events, TOKENS * events)
    return Figure(f"COPY {CEILING_BATCH:,} a batch + UPDATE per row", events, spent, exact)


def print_baselines(ctx: Context) -> tuple[Figure, Figure]:
    """The best RAGFlow figure and the ceiling, with the ceiling's ratio to RAGFlow."""
    best = best_ragflow(ctx)
    top = ceiling(ctx)
    line("ceiling / RAGFlow at its best", times(top.rate, best.rate))
    return best, top


def _exact(exact: bool) -> str:
    return "totals exact" if exact else "TOTALS WRONG"
