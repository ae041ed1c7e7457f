"""The usage load every metering benchmark shares: 20 tenants x 25 models, plus one hot row.

The same rows exist twice: as ragllm's `Tenant` / `TenantLLM` rows (what ragllm's ledger
counts into, and one table RAGFlow's statements are measured on) and as RAGFlow's own `tenant`
/ `tenant_llm` tables (schema `ragflow`, shaped as its peewee models declare them).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from .common import Context, psycopg_url

TENANTS, MODELS = 20, 25
FACTORY = "OpenAI"
API_KEY = "sk-benchmark-key-000000000000"  # the fake provider's idea of a valid key


@dataclass(frozen=True)
class Row:
    """One model configuration that calls are recorded against."""

    tenant_id: str  # 32 hex digits
    config_id: int
    llm_name: str
    factory: str = FACTORY


def pick(rows: list[Row], seed: int) -> Callable[[], Row]:
    """A caller's next row: uniform over `rows` (one thread's own random sequence)."""
    if len(rows) == 1:
        only = rows[0]
        return lambda: only
    choose = random.Random(seed).choice
    return lambda: choose(rows)


def model_name(index: int) -> str:
    return f"bench-model-{index:02d}"


# --- ragllm's rows -----------------------------------------------------------------------


def ragllm_rows(ctx: Context) -> list[Row]:
    """20 tenants x 25 TenantLLM rows in ragllm's tables (created once per run)."""
    return ctx.once("ragllm-rows", lambda: _create_ragllm_rows(ctx.fake_url + "/v1"))


def _create_ragllm_rows(api_base: str) -> list[Row]:
    from providers.models import LLMFactory
    from tenants.models import Tenant, TenantLLM

    factory = LLMFactory.objects.get(name=FACTORY)
    tenants = Tenant.objects.bulk_create(
        [Tenant(name=f"bench-tenant-{i:02d}") for i in range(TENANTS)]
    )
    TenantLLM.objects.bulk_create(
        [
            TenantLLM(
                tenant=tenant,
                factory=factory,
                llm_name=model_name(m),
                model_type="chat",
                api_key=API_KEY,
                api_base=api_base,
            )
            for tenant in tenants
            for m in range(MODELS)
        ]
    )
    configs = TenantLLM.objects.filter(tenant__in=tenants).order_by("tenant_id", "llm_name")
    return [Row(c.tenant_id.hex, c.pk, c.llm_name) for c in configs]


def ragllm_tables() -> tuple[str, str]:
    """ragllm's tenant and tenant-model tables, for the plain-SQL baseline."""
    from tenants.models import Tenant, TenantLLM

    return Tenant._meta.db_table, TenantLLM._meta.db_table


# --- RAGFlow's rows ----------------------------------------------------------------------

# RAGFlow's peewee models index almost every column (`index=True`), including `used_tokens`
# and the `update_time` / `update_date` its base model sets on every UPDATE: so each usage
# UPDATE rewrites index entries. Kept as declared, since that is what RAGFlow runs.
_RAGFLOW_DDL = """
DROP SCHEMA IF EXISTS ragflow CASCADE;
CREATE SCHEMA ragflow;
CREATE TABLE ragflow.tenant (
    id varchar(32) PRIMARY KEY,
    name varchar(100),
    public_key varchar(255),
    llm_id varchar(128) NOT NULL,
    embd_id varchar(128) NOT NULL,
    asr_id varchar(128) NOT NULL,
    img2txt_id varchar(128) NOT NULL,
    rerank_id varchar(128) NOT NULL,
    tts_id varchar(256),
    parser_ids varchar(256) NOT NULL,
    credit integer NOT NULL DEFAULT 512,
    status varchar(1) DEFAULT '1',
    create_time bigint, create_date timestamp, update_time bigint, update_date timestamp
);
CREATE TABLE ragflow.tenant_llm (
    id serial PRIMARY KEY,
    tenant_id varchar(32) NOT NULL,
    llm_factory varchar(128) NOT NULL,
    model_type varchar(128),
    llm_name varchar(128) DEFAULT '',
    api_key text,
    api_base varchar(255),
    max_tokens integer NOT NULL DEFAULT 8192,
    used_tokens integer NOT NULL DEFAULT 0,
    status varchar(1) NOT NULL DEFAULT '1',
    create_time bigint, create_date timestamp, update_time bigint, update_date timestamp
);
CREATE UNIQUE INDEX tenant_llm_tenant_factory_name ON ragflow.tenant_llm
    (tenant_id, llm_factory, llm_name);
"""
_RAGFLOW_INDEXED = (
    "tenant_id",
    "llm_factory",
    "model_type",
    "llm_name",
    "max_tokens",
    "used_tokens",
    "status",
    "create_time",
    "create_date",
    "update_time",
    "update_date",
)


def ragflow_rows(ctx: Context) -> list[Row]:
    """The same 20 x 25 rows in RAGFlow's own table shapes (schema `ragflow`)."""
    return ctx.once("ragflow-rows", _create_ragflow_rows)


def _create_ragflow_rows() -> list[Row]:
    import psycopg

    rows: list[Row] = []
    with psycopg.connect(psycopg_url(), autocommit=True) as conn:
        conn.execute(_RAGFLOW_DDL)
        for column in _RAGFLOW_INDEXED:
            conn.execute(f"CREATE INDEX ON ragflow.tenant_llm ({column})")
        with conn.cursor() as cursor:
            for t in range(TENANTS):
                tenant_id = uuid.uuid4().hex
                default = f"{model_name(0)}@{FACTORY}"
                cursor.execute(
                    "INSERT INTO ragflow.tenant (id, name, llm_id, embd_id, asr_id, img2txt_id,"
                    " rerank_id, tts_id, parser_ids, create_time, update_time)"
                    " VALUES (%s, %s, %s, '', '', '', '', '', 'naive:General', 0, 0)",
                    (tenant_id, f"bench-tenant-{t:02d}", default),
                )
                for m in range(MODELS):
                    cursor.execute(
                        "INSERT INTO ragflow.tenant_llm (tenant_id, llm_factory, model_type,"
                        " llm_name, api_key, create_time, update_time)"
                        " VALUES (%s, %s, 'chat', %s, %s, 0, 0) RETURNING id",
                        (tenant_id, FACTORY, model_name(m), API_KEY),
                    )
                    (config_id,) = cursor.fetchone()
                    rows.append(Row(tenant_id, config_id, model_name(m)))
    return rows
