"""Usage records on the Redis stream: many records per entry, packed with msgpack.

An entry holds one field, `m`: a msgpack array of records, each an array of the record's
fields in `records.FIELDS` order. msgpack, not JSON: a record is a row of strings, numbers,
booleans and nulls, which a C packer writes as it finds them (no dict per record, no key
names repeated 2,000 times an entry, floats exact, bytes-safe) at a fraction of the cost of
building and encoding JSON objects; orjson would need dicts or a custom schema to be as
compact. msgspec packs the records (array-like structs: about 80 ns a record, a quarter of
msgpack's cost for tuples); msgpack unpacks them to tuples, the ledger's input. Entries
written by older versions (one JSON record in field `r`) are still read.
"""

from __future__ import annotations

import json

import msgpack
import msgspec

from .records import FIELDS, UsageRecord

PACKED = b"m"
_LEGACY = b"r"
_WIDTH = len(FIELDS)


def pack(records: list[UsageRecord] | list[tuple]) -> bytes:
    """One stream entry's payload: an array of arrays, one a record."""
    return msgspec.msgpack.encode(records)


def unpack(fields: dict) -> list[tuple]:
    """The records of one stream entry, as tuples of their fields in `records.FIELDS` order
    (what the ledger takes: wrapping each in a UsageRecord cost more than decoding it);
    raises ValueError on a malformed entry."""
    packed = fields.get(PACKED, fields.get(PACKED.decode()))
    if packed is not None:
        try:
            items = msgpack.unpackb(packed, use_list=False, raw=False)
        except Exception as exc:
            raise ValueError(f"not a packed usage entry: {exc}") from exc
        # Every item an array of the record's width (checked in C: map, not a Python loop).
        if not isinstance(items, tuple) or (
            items and (set(map(type, items)) != {tuple} or set(map(len, items)) != {_WIDTH})
        ):
            raise ValueError("not a packed usage entry")
        return list(items)
    legacy = fields.get(_LEGACY, fields.get(_LEGACY.decode()))
    if legacy is None:
        raise ValueError("an entry without usage records")
    try:
        # A missing or null time or id is filled in, as when the record was first built.
        values = {k: v for k, v in json.loads(legacy).items() if v is not None}
        return [UsageRecord(**values).as_tuple()]
    except TypeError as exc:
        raise ValueError(str(exc)) from exc
