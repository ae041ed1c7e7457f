"""The usage record: what one call used, in the shape it travels through the buffer.

A record is a plain tuple (a NamedTuple): building one and appending it to the forwarder's
queue is all a caller pays, a few microseconds. Its request id and time are filled in when it
is built: the id from a per-process random prefix and a counter (new prefix after a fork), the
time from the clock. A record keeps both through every replay, which is what makes recording
exactly once: the ledger stores an event once per (request id, time).
"""

from __future__ import annotations

import itertools
import os
import time
from decimal import Decimal
from typing import NamedTuple

_clock = time.time


def _new_prefix() -> None:
    """A new random 64-bit prefix (its top bit set, so that every id has 32 digits) above a
    64-bit counter: the ids are the counter's values, written in hex."""
    global _ids
    prefix = int.from_bytes(os.urandom(8)) | 1 << 63
    _ids = itertools.count((prefix << 64) + 1)


_ids = itertools.count(1)
_new_prefix()
os.register_at_fork(after_in_child=_new_prefix)


def new_request_id() -> str:
    """32 hex digits, unique across processes (a random 64-bit prefix and a counter)."""
    return hex(next(_ids))[2:]


class _Fields(NamedTuple):
    tenant_id: str
    factory: str
    llm_name: str
    model_type: str
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    estimated: bool
    tenant_llm_id: int | None
    cost: str
    latency_ms: int
    outcome: str
    error_code: str
    created_at: float  # seconds since the epoch (UTC)
    request_id: str
    token_id: int | None  # the tenants.APIToken that made the call (gateway), else None


FIELDS = _Fields._fields


class UsageRecord(_Fields):
    __slots__ = ()

    def __new__(
        cls,
        tenant_id: str,
        factory: str,
        llm_name: str,
        model_type: str,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
        total_tokens: int = 0,
        estimated: bool = False,
        tenant_llm_id: int | None = None,
        cost: str = "0",
        latency_ms: int = 0,
        outcome: str = "ok",
        error_code: str = "",
        created_at: float | None = None,
        request_id: str | None = None,
        token_id: int | None = None,
    ) -> UsageRecord:
        return tuple.__new__(
            cls,
            (
                tenant_id,
                factory,
                llm_name,
                model_type,
                prompt_tokens,
                completion_tokens,
                total_tokens,
                estimated,
                tenant_llm_id,
                cost,
                latency_ms,
                outcome,
                error_code,
                _clock() if created_at is None else created_at,
                request_id or hex(next(_ids))[2:],
                token_id,
            ),
        )

    @classmethod
    def from_values(cls, values) -> UsageRecord:
        """A record from its field values in order, as they come off the wire (no defaults)."""
        return tuple.__new__(cls, values)

    @property
    def cost_decimal(self) -> Decimal:
        return Decimal(self.cost)
