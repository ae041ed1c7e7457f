import socket

import pytest
import tiktoken

from providers import tokens
from providers.results import Usage
from providers.tokens import (
    encoding_for_model,
    get_encoding,
    num_tokens_from_messages,
    num_tokens_from_string,
    total_token_count_from_response,
    truncate,
    usage_from_response,
)


@pytest.fixture
def fresh_encodings(monkeypatch):
    """Forget built encodings so the test builds them again (under its own conditions)."""
    monkeypatch.setattr(tokens, "_encodings", {})


def test_it_counts_tokens_without_network(fresh_encodings, no_network):
    with pytest.raises(AssertionError, match="network access attempted"):
        socket.create_connection(("openaipublic.blob.core.windows.net", 443))
    assert num_tokens_from_string("hello world") == 2
    assert num_tokens_from_string("hello world", "o200k_base") == 2
    assert num_tokens_from_string("The quick brown fox jumps over the lazy dog.") == 10
    assert get_encoding("cl100k_base").encode("hello world") == [15339, 1917]
    assert get_encoding("o200k_base").encode("hello world") == [24912, 2375]


def test_it_never_asks_tiktoken_to_download(fresh_encodings, monkeypatch):
    def download(*args, **kwargs):
        raise AssertionError("tiktoken.get_encoding would download")

    monkeypatch.setattr(tiktoken, "get_encoding", download)
    monkeypatch.setattr("tiktoken.load.read_file", download)
    assert num_tokens_from_string("hello world") == 2


def test_it_builds_the_encodings_tiktoken_would():
    cl100k = get_encoding("cl100k_base")
    assert cl100k.name == "cl100k_base"
    assert cl100k.n_vocab == 100277
    assert cl100k.eot_token == 100257
    o200k = get_encoding("o200k_base")
    assert o200k.eot_token == 199999
    assert get_encoding("cl100k_base") is cl100k  # cached per process


def test_it_refuses_bundled_data_with_the_wrong_hash():
    with pytest.raises(RuntimeError, match="sha256"):
        tokens._load_bundled_bpe("https://example/cl100k_base.tiktoken", expected_hash="0" * 64)


def test_it_leaves_tiktokens_own_loader_alone(fresh_encodings):
    from tiktoken.load import load_tiktoken_bpe
    from tiktoken_ext import openai_public

    get_encoding("cl100k_base")
    assert openai_public.load_tiktoken_bpe is load_tiktoken_bpe


def test_it_counts_special_token_text_as_plain_text():
    assert num_tokens_from_string("<|endoftext|>") > 1


def test_it_counts_nothing_for_empty_text():
    assert num_tokens_from_string("") == 0
    assert num_tokens_from_string(None) == 0


def test_it_picks_the_encoding_by_model():
    for model in (
        "gpt-4o",
        "gpt-4o-mini",
        "gpt-4.1-nano",
        "gpt-5",
        "o1",
        "o3-mini",
        "o4-mini",
        "openai/gpt-4o",
    ):
        assert encoding_for_model(model) == "o200k_base", model
    for model in ("gpt-4", "gpt-3.5-turbo", "deepseek-chat", "o3de", "qwen-max", "", None):
        assert encoding_for_model(model) == "cl100k_base", model


def test_it_truncates_to_a_token_budget():
    assert truncate("hello world again", 2) == "hello world"
    assert truncate("short", 10) == "short"


def test_it_estimates_chat_prompts_from_text_parts():
    messages = [
        {"role": "system", "content": "hello world"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "hello world"},
                {"type": "image_url", "image_url": {"url": "data:"}},
            ],
        },
    ]
    assert num_tokens_from_messages(messages) == 4


@pytest.mark.parametrize(
    ("response", "total"),
    [
        ({"usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}}, 7),
        ({"usage_metadata": {"total_tokens": 11}}, 11),
        ({"usageMetadata": {"promptTokenCount": 5, "totalTokenCount": 12}}, 12),
        ({"meta": {"billed_units": {"input_tokens": 8, "output_tokens": 2}}}, 10),
        ({"meta": {"billed_units": {"input_tokens": 8}}}, 8),
        ({"usage": {"input_tokens": 6, "output_tokens": 9}}, 15),
        ({"meta": {"tokens": {"input_tokens": 1, "output_tokens": 2}}}, 3),
        ({"choices": []}, 0),
        ({}, 0),
        (None, 0),
    ],
)
def test_it_reads_total_tokens_in_ragflow_order(response, total):
    assert total_token_count_from_response(response) == total


def test_it_reads_usage_from_every_shape():
    assert usage_from_response(
        {"usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}}
    ) == Usage(3, 4, 7)
    assert usage_from_response({"usage": {"prompt_tokens": 5, "total_tokens": 5}}) == Usage(5, 0, 5)
    assert usage_from_response(
        {"usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 100}}
    ) == Usage(110, 5, 115)
    assert usage_from_response(
        {"usage": {"type": "tokens", "input_tokens": 14, "output_tokens": 6, "total_tokens": 20}}
    ) == Usage(14, 6, 20)
    assert usage_from_response(
        {
            "usageMetadata": {
                "promptTokenCount": 4,
                "candidatesTokenCount": 3,
                "thoughtsTokenCount": 2,
                "totalTokenCount": 9,
            }
        }
    ) == Usage(4, 5, 9)
    assert usage_from_response(
        {"meta": {"billed_units": {"input_tokens": 8, "output_tokens": 2}}}
    ) == Usage(8, 2)
    assert usage_from_response(
        {"usage": {"billed_units": {"input_tokens": 8, "output_tokens": 2}}}
    ) == Usage(8, 2)
    assert usage_from_response({"usage": {"type": "duration", "seconds": 3}}) is None
    assert usage_from_response({"choices": []}) is None
    assert usage_from_response("nope") is None
