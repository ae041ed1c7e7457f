"""Records on the stream (issue 12): many to an entry, msgpack, exactly as recorded."""

import json

import pytest

from usage import wire
from usage.buffer import redis_buffer
from usage.recorder import FORWARD_BATCH, flush_forwarder, record_usage
from usage.records import UsageRecord, new_request_id


def record(**extra):
    return UsageRecord(
        tenant_id="ab" * 16,
        factory="OpenAI",
        llm_name="gpt-4o",
        model_type="chat",
        prompt_tokens=7,
        completion_tokens=3,
        total_tokens=10,
        cost="0.00012345",
        **extra,
    )


def test_a_record_gets_its_id_and_time_when_built_and_keeps_them():
    first, second = record(), record()
    assert len(first.request_id) == 32 and int(first.request_id, 16) >= 0
    assert first.request_id != second.request_id
    assert first.created_at <= second.created_at
    assert record(request_id="f" * 32, created_at=12.5).as_tuple()[-3:-1] == (12.5, "f" * 32)
    assert new_request_id() != new_request_id()


def test_packed_records_come_back_equal():
    records = [record(token_id=None), record(token_id=42, outcome="error", error_code="429")]
    payload = wire.pack(records)
    assert isinstance(payload, bytes)
    back = wire.unpack({wire.PACKED: payload})
    assert back == [r.as_tuple() for r in records]  # plain tuples, the fields in order
    assert all(type(r) is tuple for r in back)
    second = UsageRecord.from_values(back[1])
    assert second.token_id == 42 and second.error_code == "429"
    assert UsageRecord.from_values(back[0]).created_at == records[0].created_at  # exact


def test_a_legacy_json_entry_is_still_read():
    legacy = {
        "tenant_id": "cd" * 16,
        "factory": "OpenAI",
        "llm_name": "gpt-4o",
        "model_type": "chat",
        "total_tokens": 5,
        "created_at": 1700000000.25,
        "request_id": "1" * 32,
    }
    (values,) = wire.unpack({b"r": json.dumps(legacy).encode()})
    back = UsageRecord.from_values(values)
    assert (back.total_tokens, back.request_id, back.token_id) == (5, "1" * 32, None)
    assert back.created_at == 1700000000.25


@pytest.mark.parametrize(
    "fields",
    [{}, {wire.PACKED: b"\xc1"}, {wire.PACKED: wire.pack([("short",)])}, {b"r": b"{}"}],
)
def test_a_malformed_entry_is_refused(fields):
    with pytest.raises(ValueError):
        wire.unpack(fields)


@pytest.mark.django_db(transaction=True)
def test_the_forwarder_sends_a_batch_as_one_entry(usage_redis):
    buffer = redis_buffer()
    buffer.client.delete(buffer.stream)
    sent = [record() for _ in range(FORWARD_BATCH + 5)]
    for r in sent:
        record_usage(r)
    flush_forwarder()
    entries = buffer.client.xrange(buffer.stream)
    # Many records an entry (the forwarder thread may have sent a part before the flush).
    sizes = [len(wire.unpack(fields)) for _id, fields in entries]
    assert len(entries) <= 5 and max(sizes) <= FORWARD_BATCH
    received = [r for _id, fields in entries for r in wire.unpack(fields)]
    assert received == [r.as_tuple() for r in sent]
