import asyncio
import gc

import pytest

from providers.classify import ErrorContext
from providers.errors import (
    GenericProviderError,
    InvalidRequestError,
    ProviderConnectionError,
    ServerError,
)
from providers.factories import strip_name_suffix
from providers.kinds.chat import ChatModel, ChatRequest, StreamStep
from providers.kinds.embedding import EmbeddingModel, RerankModel
from providers.registry import coverage
from providers.results import ChatResult, EmbeddingResult, RerankResult, Usage
from providers.streams import (
    AsyncChatStream,
    AudioState,
    AudioStream,
    ChatState,
    ChatStream,
    StreamDelta,
)
from providers.tokens import num_tokens_from_string
from tests.fakeprovider import Reply

CONTEXT = ErrorContext("Test", "test-model", ("secret-0123456789",))


def make_stream(deltas, on_close=None):
    stream = ChatStream(iter(deltas), ChatState(CONTEXT, lambda: 7, "cl100k_base"))
    if on_close is not None:
        stream.on_close(lambda state: on_close())
    return stream


def failing(deltas, error):
    yield from deltas
    raise error


# Adapters for these tests get their factories after class creation, so they stay out of the
# registry.
class ScriptedChat(ChatModel):
    """A wire protocol of the tests' own: POST chat answers {"text", "usage": [in, out]};
    streamed, the same objects as SSE events, then [DONE]."""

    default_base_url = "http://scripted.invalid"

    def chat_request(self, request, *, stream):
        return self.post("chat", json={"stream": stream})

    def parse_chat(self, data, request):
        return ChatResult(data["text"], Usage(*data["usage"]))

    def stream_step(self, event):
        if event.is_done:
            return StreamStep(complete=True, stop=True)
        data = event.json()
        usage = Usage(*data["usage"]) if "usage" in data else None
        return StreamStep((StreamDelta(text=data.get("text", ""), usage=usage),))


class ScriptedEmbedding(EmbeddingModel):
    default_base_url = "http://scripted.invalid"
    batch_size = 2

    def embed_flow(self, texts, *, query):
        return EmbeddingResult([[float(len(t))] for t in texts], Usage(len(texts)))
        yield  # answered without I/O


class ShortRerank(RerankModel):
    default_base_url = "http://scripted.invalid"

    def rerank_flow(self, query, texts):
        return RerankResult([1.0], Usage(1))
        yield  # answered without I/O


for cls in (ScriptedChat, ScriptedEmbedding, ShortRerank):
    cls.factories = ("Scripted",)


def scripted(cls, **kwargs):
    return cls(factory="Scripted", model_name="m___VLLM", credentials="secret-0123456789", **kwargs)


def test_test_adapters_are_not_registered():
    assert "Scripted" not in coverage()


def test_a_stream_yields_only_text_and_records_everything_else():
    stream = make_stream(
        [
            StreamDelta(text="Hel"),
            StreamDelta(usage=Usage(5, 1)),
            StreamDelta(text="lo", finish_reason="stop"),
            StreamDelta(usage=Usage(5, 2)),
        ]
    )
    assert list(stream) == ["Hel", "lo"]
    assert stream.text == "Hello"
    assert stream.usage == Usage(5, 2)  # replaced, not summed
    assert stream.reported_usage == Usage(5, 2)
    assert stream.finish_reason == "stop"
    assert stream.done


def test_a_stream_estimates_usage_without_a_report():
    stream = make_stream([StreamDelta(text="hello world")])
    list(stream)
    assert stream.usage == Usage(7, 2, estimated=True)
    assert stream.reported_usage is None


def test_a_stream_merges_tool_call_fragments():
    stream = make_stream(
        [
            StreamDelta(
                tool_calls=[
                    {
                        "index": 0,
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "f", "arguments": ""},
                    }
                ]
            ),
            StreamDelta(
                tool_calls=[{"index": 1, "id": "c2", "function": {"name": "g", "arguments": "{}"}}]
            ),
            StreamDelta(tool_calls=[{"index": 0, "function": {"name": "f", "arguments": '{"a":'}}]),
            StreamDelta(tool_calls=[{"index": 0, "function": {"arguments": " 1}"}}]),
        ]
    )
    list(stream)
    assert stream.tool_calls == [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}},
        {"id": "c2", "type": "function", "function": {"name": "g", "arguments": "{}"}},
    ]
    assert stream.usage.completion_tokens == num_tokens_from_string('{"a": 1}') + 1


def test_a_stream_keeps_state_when_it_fails():
    error = ServerError("boom", provider="Test", model="test-model")
    closed = []
    stream = make_stream(
        failing([StreamDelta(text="part")], error), on_close=lambda: closed.append(1)
    )
    assert next(stream) == "part"
    with pytest.raises(ServerError):
        next(stream)
    assert stream.error is error
    assert stream.closed
    assert closed == [1]
    assert stream.text == "part"
    assert stream.usage.estimated


def test_a_stream_translates_transport_failures():
    import httpx

    stream = make_stream(failing([], httpx.ReadError("reset")))
    with pytest.raises(ProviderConnectionError) as caught:
        list(stream)
    assert stream.error is caught.value
    assert "Test model test-model" in str(caught.value)


def test_a_stream_closes_once_and_on_garbage_collection():
    closed = []
    stream = make_stream([StreamDelta(text="x")], on_close=lambda: closed.append(1))
    stream.close()
    stream.close()
    assert closed == [1]
    forgotten = make_stream([StreamDelta(text="x")], on_close=lambda: closed.append(2))
    del forgotten
    gc.collect()
    assert closed == [1, 2]


def test_an_async_stream_closes_on_garbage_collection():
    closed = []

    async def deltas():
        yield StreamDelta(text="x")

    def on_close():
        closed.append(1)

    async def run():
        stream = AsyncChatStream(deltas(), ChatState(CONTEXT, lambda: 1, "cl100k_base"))
        stream.on_close(lambda state: on_close())
        del stream
        gc.collect()
        for _ in range(3):
            await asyncio.sleep(0)

    asyncio.run(run())
    assert closed == [1]


def test_one_description_serves_sync_and_async_calls(fake_provider):
    adapter = scripted(ScriptedChat, base_url=fake_provider.url("/scripted"))
    answer = Reply.json({"text": "sync", "usage": [1, 1]})
    events = Reply.sse([{"text": "a"}, {"text": "b"}, {"usage": [3, 2]}])
    fake_provider.script("/scripted/chat", [answer, events, answer, events])
    history = [{"role": "user", "content": "hi"}]

    async def run():
        result = await adapter.achat(history)
        stream = await adapter.achat_streamly(history)
        return result, [d async for d in stream], stream

    sync_result = adapter.chat(history)
    sync_stream = adapter.chat_streamly(history)
    runs = [(sync_result, list(sync_stream), sync_stream), asyncio.run(run())]
    for result, deltas, stream in runs:
        assert result.text == "sync"
        assert deltas == ["a", "b"]
        assert stream.usage == Usage(3, 2)
        assert stream.done
    sent = [request.json["stream"] for request in fake_provider.requests]
    assert sent == [False, True, False, True]


def test_a_chat_request_puts_the_system_prompt_first():
    request = ChatRequest([{"role": "user", "content": "hi"}], system="sys")
    assert request.messages() == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "hi"},
    ]
    assert ChatRequest([{"role": "user", "content": "hi"}]).messages() == [
        {"role": "user", "content": "hi"}
    ]


def test_an_adapter_strips_name_suffixes_and_hides_its_key():
    adapter = scripted(ScriptedChat)
    assert adapter.wire_model_name == "m"
    assert strip_name_suffix("plain") == "plain"
    assert "secret-0123456789" not in repr(adapter)


def test_an_adapter_refuses_a_factory_it_does_not_serve():
    with pytest.raises(ValueError, match="does not serve factory 'Other'"):
        ScriptedChat(factory="Other", model_name="m", credentials="")


def test_an_adapter_uses_the_given_base_url_without_trailing_slash():
    assert (
        scripted(ScriptedChat, base_url=" http://host:8000/v1/ ").base_url == "http://host:8000/v1"
    )
    assert scripted(ScriptedChat).base_url == "http://scripted.invalid"


def test_embedding_batches_and_sums_usage():
    result = scripted(ScriptedEmbedding).encode(["a", "bb", "ccc"])
    assert result.vectors == [[1.0], [2.0], [3.0]]
    assert result.usage == Usage(3)


def test_rerank_checks_one_score_per_text():
    adapter = scripted(ShortRerank)
    assert adapter.similarity("q", []) == RerankResult([], Usage.zero())
    with pytest.raises(GenericProviderError, match="1 scores for 2 texts"):
        adapter.similarity("q", ["a", "b"])


def test_an_audio_stream_yields_bytes_and_closes():
    closed = []
    stream = AudioStream(
        iter([b"ab", b"", b"cd"]), AudioState(CONTEXT, Usage(2, estimated=True), None)
    )
    stream.on_close(lambda state: closed.append(1))
    assert stream.read() == b"abcd"
    assert stream.done
    assert closed == [1]


def test_missing_base_url_is_an_invalid_request():
    class NoURL(ChatModel):
        pass

    NoURL.factories = ("Scripted",)
    with pytest.raises(InvalidRequestError, match="Scripted needs a base URL"):
        NoURL(factory="Scripted", model_name="m", credentials="")
