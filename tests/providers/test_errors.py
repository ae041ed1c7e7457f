import pickle

import httpx
import pytest

from providers.classify import classify, from_transport_error
from providers.errors import (
    AuthError,
    ContentFilteredError,
    ErrorCode,
    GenericProviderError,
    InvalidRequestError,
    MaxRetriesExceededError,
    ModelError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeout,
    QuotaExceededError,
    RateLimitError,
    ServerError,
)
from providers.scrub import scrub

SECRET = "sk-live-0123456789abcdef"


def classified(status, body):
    return classify(status, body, provider="OpenAI", model="gpt-4o", secrets=[SECRET])


def openai_error(message, type_="invalid_request_error", code=None):
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (401, openai_error("Incorrect API key provided", code="invalid_api_key"), AuthError),
        (401, openai_error("You didn't provide an API key."), AuthError),
        (403, openai_error("Country not supported", "request_forbidden"), AuthError),
        (
            429,
            openai_error("Rate limit reached", "requests", "rate_limit_exceeded"),
            RateLimitError,
        ),
        (
            429,
            openai_error(
                "You exceeded your current quota", "insufficient_quota", "insufficient_quota"
            ),
            QuotaExceededError,
        ),
        (429, {"message": "Please check your plan and billing details"}, QuotaExceededError),
        (404, openai_error("The model does not exist", code="model_not_found"), ModelError),
        (400, openai_error("filtered", code="content_filter"), ContentFilteredError),
        (400, openai_error("Invalid value for 'messages'"), InvalidRequestError),
        (
            400,
            openai_error("context too long", code="context_length_exceeded"),
            InvalidRequestError,
        ),
        (500, openai_error("The server had an error", "server_error"), ServerError),
        # Not a provider's error body: no words read from it, the status decides or it is
        # "could not reach a model server at this address".
        (503, "<html>Service Unavailable</html>", ProviderConnectionError),
        (402, {"error": {"message": "Insufficient Balance"}}, QuotaExceededError),
        (408, b"", ProviderTimeout),
    ],
)
def test_it_classifies_openai_style_errors(status, body, expected):
    error = classified(status, body)
    assert type(error) is expected
    assert error.status == status


def test_it_classifies_anthropic_errors():
    overloaded = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    assert type(classified(529, overloaded)) is ServerError
    # In a 200 stream the error event carries no status: the body type decides.
    assert type(classified(None, overloaded)) is ServerError
    auth = {"type": "error", "error": {"type": "authentication_error", "message": "bad key"}}
    assert type(classified(401, auth)) is AuthError
    limited = {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}
    assert type(classified(None, limited)) is RateLimitError


def test_it_classifies_gemini_errors():
    exhausted = {
        "error": {"code": 429, "message": "Resource exhausted", "status": "RESOURCE_EXHAUSTED"}
    }
    assert type(classified(429, exhausted)) is RateLimitError
    bad_key = {
        "error": {
            "code": 400,
            "message": "API key not valid. Please pass a valid API key.",
            "status": "INVALID_ARGUMENT",
            "details": [
                {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}
            ],
        }
    }
    assert type(classified(400, bad_key)) is AuthError
    missing = {"error": {"code": 404, "message": "models/x is not found", "status": "NOT_FOUND"}}
    assert type(classified(404, missing)) is ModelError


def test_it_reads_gemini_retry_info():
    body = {
        "error": {
            "code": 429,
            "status": "RESOURCE_EXHAUSTED",
            "message": "Quota exceeded for metric",
            "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37s"}],
        }
    }
    error = classified(429, body)
    assert type(error) is RateLimitError
    assert error.retry_after == 37.0


def test_it_uses_an_embedded_status_when_the_response_had_none():
    assert type(classified(None, {"error": {"code": 503, "message": "busy"}})) is ServerError


def test_it_classifies_cohere_and_plain_errors():
    assert type(classified(401, {"message": "invalid api token"})) is AuthError
    assert type(classified(429, {"message": "You are using a Trial key"})) is RateLimitError
    ollama = {"error": 'model "llama9" not found, try pulling it first'}
    assert type(classified(404, ollama)) is ModelError
    assert type(classified(400, {"detail": "Invalid request"})) is InvalidRequestError


def test_it_falls_back_to_keywords_without_status_or_structure():
    assert type(classified(None, {"message": "rate limit exceeded, slow down"})) is RateLimitError
    assert type(classified(None, {"message": "request timed out"})) is ProviderTimeout
    assert type(classified(None, {"message": "something odd"})) is GenericProviderError


def test_it_never_calls_a_failed_connection_an_auth_error():
    request = httpx.Request("POST", "http://127.0.0.1:9/v1/chat?key=abc123456")
    error = from_transport_error(
        httpx.ConnectError("[Errno 111] Connection refused", request=request),
        provider="OpenAI",
        model="gpt-4o",
    )
    assert type(error) is ProviderConnectionError
    assert error.code is ErrorCode.CONNECTION_ERROR
    # The same words as for a refused address or a server that is no model server.
    assert error.detail == "could not reach a model server at this address"
    assert "abc123456" not in str(error)
    assert error.retryable


def test_it_maps_timeouts():
    request = httpx.Request("GET", "https://api.example.com/v1")
    assert (
        type(from_transport_error(httpx.ReadTimeout("t", request=request), provider="p", model="m"))
        is ProviderTimeout
    )
    assert (
        type(
            from_transport_error(
                httpx.ConnectTimeout("t", request=request), provider="p", model="m"
            )
        )
        is ProviderConnectionError  # nothing answered: the same as a refused connection
    )


def test_its_message_names_provider_and_model():
    error = classified(500, openai_error("boom", "server_error"))
    assert str(error) == "[SERVER_ERROR] OpenAI model gpt-4o: HTTP 500: boom"
    assert error.provider == "OpenAI"
    assert error.model == "gpt-4o"


def test_it_scrubs_secrets_from_messages_and_reprs():
    error = classified(
        401, openai_error(f"Incorrect API key provided: {SECRET}", code="invalid_api_key")
    )
    assert SECRET not in str(error)
    assert SECRET not in repr(error)
    assert SECRET not in error.detail
    assert "***" in str(error)


def test_it_scrubs_bearer_tokens_and_key_parameters_it_was_not_told_about():
    text = scrub("sent Authorization: Bearer abcdefghijkl to https://x/y?key=AIzaSecret123&alt=sse")
    assert "abcdefghijkl" not in text
    assert "AIzaSecret123" not in text
    assert "alt=sse" in text


def test_it_scrubs_encoded_forms_of_a_secret():
    secret = "key/with+special=chars"
    assert "special" not in scrub("echo: key%2Fwith%2Bspecial%3Dchars", [secret])


def test_it_does_not_scrub_very_short_secrets():
    assert scrub("a bad request", ["a"]) == "a bad request"


def test_only_transient_errors_are_retryable():
    retryable = {
        type(classified(429, openai_error("x", code="rate_limit_exceeded"))),
        type(classified(502, openai_error("bad gateway", "server_error"))),
    }
    assert retryable == {RateLimitError, ServerError}
    assert all(
        cls("x").retryable
        for cls in (RateLimitError, ServerError, ProviderTimeout, ProviderConnectionError)
    )
    assert not any(
        cls("x").retryable
        for cls in (AuthError, InvalidRequestError, QuotaExceededError, ModelError)
    )


def test_max_retries_error_carries_the_last_error():
    last = RateLimitError("HTTP 429: slow down", provider="OpenAI", model="gpt-4o")
    error = MaxRetriesExceededError(last_error=last, retries=3)
    assert error.last_error is last
    assert error.code is ErrorCode.MAX_RETRIES_EXCEEDED
    assert "RATE_LIMIT_EXCEEDED" in str(error)
    assert "3 retries" in str(error)
    assert not error.retryable


def test_errors_survive_pickling():
    error = MaxRetriesExceededError(
        last_error=ServerError("boom", provider="p", model="m"), retries=1
    )
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is MaxRetriesExceededError
    assert str(copy) == str(error)
    assert type(copy.last_error) is ServerError
    assert isinstance(copy, ProviderError)
