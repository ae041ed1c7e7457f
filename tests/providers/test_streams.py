"""Provider streams close once, whatever ends them, releasing the upstream connection at once;
then each on_close callback runs once with the stream's state. Sync and async alike."""

import asyncio
import contextlib
import gc
import json

import pytest

from providers.errors import ProviderConnectionError
from providers.results import Usage
from tests.fakeprovider import Reply
from tests.fakeprovider.openai import CHAT_PIECES, CHAT_TEXT

HISTORY = [{"role": "user", "content": "hi"}]
PATH = "/v1/chat/completions"
REPORTED = Usage(12, 6, 18)


def slow_answer(pieces: int = 200) -> Reply:
    """An answer that takes its time: the client can hang up before it ends."""
    chunk = {"choices": [{"index": 0, "delta": {"content": "x"}, "finish_reason": None}]}
    return Reply.sse([json.dumps(chunk)] * pieces, chunk_delay=0.05)


def test_on_close_runs_once_with_the_state_when_a_stream_ends(make_adapter):
    states = []
    stream = make_adapter().chat_streamly(HISTORY)
    stream.on_close(states.append)
    assert list(stream) == CHAT_PIECES
    stream.close()
    assert states == [stream.state]
    state = states[0]
    assert (state.closed, state.done, state.error) == (True, True, None)
    assert state.usage == REPORTED
    assert state.text == CHAT_TEXT


def test_on_close_sees_the_failure_that_ended_a_stream(make_adapter):
    seen = []
    stream = make_adapter(model_name="fake-drop").chat_streamly(HISTORY)
    stream.on_close(lambda state: seen.append(state.error))
    with pytest.raises(ProviderConnectionError) as caught:
        list(stream)
    assert seen == [caught.value]


def test_a_callback_added_to_a_closed_stream_runs_at_once(make_adapter):
    stream = make_adapter().chat_streamly(HISTORY)
    stream.close()
    states = []
    stream.on_close(states.append)
    assert states == [stream.state]


def test_a_failing_callback_does_not_stop_the_others(make_adapter):
    ran = []
    stream = make_adapter().chat_streamly(HISTORY)
    stream.on_close(lambda state: 1 / 0)
    stream.on_close(lambda state: ran.append(state.closed))
    stream.close()
    assert ran == [True]


def test_closing_a_stream_hangs_up_on_the_provider_at_once(fake_provider, make_adapter):
    fake_provider.script(PATH, [slow_answer()])
    stream = make_adapter().chat_streamly(HISTORY)
    assert next(stream) == "x"
    stream.close()
    assert stream.closed
    assert not stream.done
    assert fake_provider.last_request.hung_up.wait(5)


def test_a_stream_closed_before_it_was_read_releases_the_upstream(fake_provider, make_adapter):
    fake_provider.script(PATH, [slow_answer()])
    states = []
    stream = make_adapter().chat_streamly(HISTORY)
    stream.on_close(states.append)
    stream.close()
    assert len(states) == 1
    assert fake_provider.last_request.hung_up.wait(5)


def test_a_dropped_stream_is_closed_and_its_callbacks_run(fake_provider, make_adapter):
    fake_provider.script(PATH, [slow_answer()])
    states = []
    stream = make_adapter().chat_streamly(HISTORY)
    stream.on_close(states.append)
    next(stream)
    del stream
    gc.collect()
    assert len(states) == 1
    assert states[0].closed and not states[0].done
    assert fake_provider.last_request.hung_up.wait(5)


def test_an_async_stream_closes_the_upstream_when_its_reader_is_cancelled(
    fake_provider, make_adapter
):
    # What an async view forwarding the chunks does when its client disconnects.
    fake_provider.script(PATH, [slow_answer()])
    adapter = make_adapter()
    states, received = [], []

    async def run():
        stream = await adapter.achat_streamly(HISTORY)
        stream.on_close(states.append)

        async def forward():
            try:
                async for piece in stream:
                    received.append(piece)
            finally:
                await stream.aclose()

        task = asyncio.create_task(forward())
        while not received:
            await asyncio.sleep(0.01)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        # Still on the loop: the provider saw the hang-up before the loop (and its client) ended.
        hung_up = await asyncio.to_thread(fake_provider.last_request.hung_up.wait, 5)
        return stream, hung_up

    stream, hung_up = asyncio.run(run())
    assert hung_up
    assert states == [stream.state]
    assert stream.closed
    assert not stream.done
    assert stream.error is None  # abandoned by its reader, not failed
    assert stream.text == "".join(received)


def test_a_dropped_async_stream_is_closed_on_its_loop(fake_provider, make_adapter):
    fake_provider.script(PATH, [slow_answer()])
    adapter = make_adapter()
    states = []

    async def run():
        stream = await adapter.achat_streamly(HISTORY)
        stream.on_close(states.append)
        await anext(stream)
        del stream
        gc.collect()
        return await asyncio.to_thread(fake_provider.last_request.hung_up.wait, 5)

    assert asyncio.run(run())
    assert len(states) == 1
    assert states[0].closed and not states[0].done
