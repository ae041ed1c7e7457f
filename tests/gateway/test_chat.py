"""POST /v1/chat/completions through the official SDK, for each protocol family."""

from __future__ import annotations

import asyncio
import base64

from tests.fakeprovider.openai import CHAT_TEXT, CHAT_USAGE, TOOL_CALL, VISION_TEXT

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 16).decode()
HI = [{"role": "user", "content": "Hi"}]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def test_it_answers_a_chat_completion_in_openais_shape(client, cast, fake_provider):
    completion = client.chat.completions.create(model="gpt-4o-mini@OpenAI", messages=HI)

    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl-")
    assert completion.model == "gpt-4o-mini@OpenAI"
    assert completion.choices[0].message.content == CHAT_TEXT
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.total_tokens == CHAT_USAGE["total_tokens"]
    upstream = fake_provider.requests[-1]
    assert upstream.bearer == "sk-gateway-openai-0001"
    [event] = cast.events(1)
    assert (event.llm_name, event.total_tokens, event.outcome) == ("gpt-4o-mini", 18, "ok")
