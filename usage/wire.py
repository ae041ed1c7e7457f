"""Usage records on the Redis stream: many records per entry, packed with msgpack.

An entry holds one field, `m`: a msgpack array of records, each an array of the record's
fields in `records.FIELDS` order. msgpack, not JSON: a record is a tuple of strings, numbers,
booleans and nulls, which msgpack's C packer writes as it finds them (no dict per record, no
key names repeated 2,000 times an entry, floats exact, bytes-safe) at a fraction of the cost
of building and encoding JSON objects; orjson would need dicts or a custom schema to be as
compact. Entries written by older versions (one JSON record in field `r`) are still read.
"""

from __future__ import annotations

import json

import msgpack

from .records import FIELDS, UsageRecord

PACKED = b"m"
_LEGACY = b"r"
_packer = msgpack.Packer(use_bin_type=True)
_WIDTH = len(FIELDS)


def pack(records: list[UsageRecord]) -> bytes:
    """One stream entry's payload (records are tuples: packed as arrays, as they are)."""
    return msgpack.packb(records, use_bin_type=True)


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
        return [UsageRecord(**json.loads(legacy))]
    except TypeError as exc:
        raise ValueError(str(exc)) from exc
