"""Usage stays exact through the gateway under load: 32 concurrent clients x 50 mixed calls
(plain, streamed, embeddings, streams abandoned midway), against a tenant with a quota."""

from __future__ import annotations

import threading

from openai import OpenAI

from tests.fakeprovider.openai import CHAT_TEXT, CHAT_USAGE, EMBEDDING_TOKENS_PER_INPUT
from usage.quotas import tenant_rule
from usage.selectors.quotas import quota_used

from .conftest import configure

CLIENTS, CALLS = 32, 50
HI = [{"role": "user", "content": "Hi"}]
CHAT = CHAT_USAGE["total_tokens"]
EMBED = 2 * EMBEDDING_TOKENS_PER_INPUT


def call(client: OpenAI, kind: int) -> None:
    if kind == 0:
        answer = client.chat.completions.create(model="gpt-4o-mini@OpenAI", messages=HI)
        assert answer.choices[0].message.content == CHAT_TEXT
    elif kind == 1:
        stream = client.chat.completions.create(
            model="gpt-4o-mini@OpenAI",
            messages=HI,
            stream=True,
            stream_options={"include_usage": True},
        )
        assert list(stream)[-1].usage.total_tokens == CHAT
    elif kind == 2:
        result = client.embeddings.create(model="default", input=["a", "b"])
        assert result.usage.total_tokens == EMBED
    else:  # read one chunk of a slow stream, then hang up
        stream = client.chat.completions.create(
            model="fake-slow-stream@OpenAI", messages=HI, stream=True
        )
        next(iter(stream))
        stream.close()


def test_concurrent_mixed_calls_are_each_recorded_once_and_exactly(cast, fake_provider):
    configure(cast.tenant, fake_provider, [("fake-slow-stream", "OpenAI", "chat", "/v1", "sk-x")])
    cast.tenant.token_quota = 10**9
    cast.tenant.save()
    errors: list[BaseException] = []
    barrier = threading.Barrier(CLIENTS)

    def client_thread(index: int) -> None:
        client = OpenAI(base_url=cast.url, api_key=cast.token, max_retries=0, timeout=60)
        barrier.wait()
        try:
            for n in range(CALLS):
                call(client, (index + n) % 4)
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            client.close()

    threads = [threading.Thread(target=client_thread, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []

    total = CLIENTS * CALLS
    events = cast.events(total, timeout=60)
    assert len(events) == total
    assert len({event.request_id for event in events}) == total
    by_outcome = {}
    for event in events:
        by_outcome.setdefault(event.outcome, []).append(event)
    assert sorted(by_outcome) == ["abandoned", "ok"]
    abandoned = by_outcome["abandoned"]
    assert len(abandoned) == total // 4
    assert all(event.llm_name == "fake-slow-stream" for event in abandoned)
    assert all(event.estimated for event in abandoned)  # the upstream reported nothing yet
    reported = by_outcome["ok"]
    assert not any(event.estimated for event in reported)
    expected = (total // 4) * (CHAT + CHAT + EMBED)
    assert sum(event.total_tokens for event in reported) == expected
    # Every abandoned stream was hung up on upstream, not read to its end.
    slow = [r for r in fake_provider.requests if (r.json or {}).get("model") == "fake-slow-stream"]
    assert len(slow) == total // 4
    assert all(r.hung_up.wait(timeout=10) for r in slow)
    # The quota counter holds exactly what was used once every reservation is settled.
    rule = tenant_rule(cast.tenant)
    ledger_total = sum(event.total_tokens for event in events)
    import time

    deadline = time.monotonic() + 30
    while quota_used(rule=rule) != ledger_total:
        assert time.monotonic() < deadline, "reservations were not all settled"
        time.sleep(0.1)
