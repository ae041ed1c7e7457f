"""The usage record: what one call used, in the shape it travels through the buffer.

A record is a msgspec Struct (array-like, frozen, not tracked by the garbage collector): a
C object whose constructor takes the same keywords as before, about a third of the cost of
a NamedTuple's Python `__new__`, and which msgspec packs as a msgpack array of its fields in
`FIELDS` order at a fraction of msgpack's cost for tuples. Building one and appending it to the
forwarder's queue is all a caller pays. Off the stream, records come back as plain tuples of
those fields (usage.wire), which the ledger takes as they are.

Its request id and time are filled in when it is built: the id from a per-process random
prefix and a counter (new prefix after a fork), the time from the clock. A record keeps both
through every replay, which is what makes recording exactly once: the ledger stores an event
once per (request id, time).
"""

from __future__ import annotations

import itertools
import os
import time
from decimal import Decimal

import msgspec


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


class UsageRecord(msgspec.Struct, array_like=True, frozen=True, gc=False):
    tenant_id: str
    factory: str
    llm_name: str
    model_type: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    estimated: bool = False
    tenant_llm_id: int | None = None
    cost: str = "0"
    latency_ms: int = 0
    outcome: str = "ok"
    error_code: str = ""
    created_at: float = msgspec.field(default_factory=time.time)  # seconds since the epoch
    request_id: str = msgspec.field(default_factory=new_request_id)
    token_id: int | None = None  # the tenants.APIToken that made the call (gateway), else None

    @classmethod
    def from_values(cls, values) -> UsageRecord:
        """A record from its field values in order, as they come off the wire."""
        return cls(*values)

    def as_tuple(self) -> tuple:
        """The field values in `FIELDS` order (what the ledger's COPY writes)."""
        return msgspec.structs.astuple(self)

    def replace(self, **changes) -> UsageRecord:
        return msgspec.structs.replace(self, **changes)

    @property
    def cost_decimal(self) -> Decimal:
        return Decimal(self.cost)


FIELDS: tuple[str, ...] = UsageRecord.__struct_fields__
