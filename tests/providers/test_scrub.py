"""Secrets are scrubbed from every text we keep, in whatever altered form a provider echoes them."""

from __future__ import annotations

import base64
from urllib.parse import quote

import pytest

from providers.classify import classify
from providers.errors import AuthError
from providers.scrub import EXCERPT_LENGTH, excerpt, scrub

KEY = "sk-Qz7Rw2Lm9Xv4Tp8Kc3Hy6Fb1Nd5Gs0Ju"


def pieces(text: str, size: int = 6) -> set[str]:
    lowered = text.lower()
    return {lowered[i : i + size] for i in range(len(lowered) - size + 1)}


def leaked(text: str, secret: str = KEY) -> set[str]:
    """Pieces of 6+ characters of the secret, or of its base64 text, left in `text`."""
    encoded = base64.b64encode(secret.encode()).decode()[:-4]
    return {p for p in pieces(secret) | pieces(encoded) if p in text.lower()}


@pytest.mark.parametrize(
    "echo",
    [
        pytest.param(KEY, id="whole"),
        pytest.param(f"{KEY[:10]}...{KEY[-4:]}", id="truncated"),
        pytest.param(KEY[3:], id="without its prefix"),
        pytest.param(KEY.upper(), id="upper-cased"),
        pytest.param(KEY.lower(), id="lower-cased"),
        pytest.param(base64.b64encode(KEY.encode()).decode(), id="base64"),
        pytest.param(base64.b64encode(f"user:{KEY}".encode()).decode(), id="basic auth"),
        pytest.param(base64.b64encode(f"x{KEY}".encode()).decode(), id="base64 shifted"),
        pytest.param(base64.urlsafe_b64encode(f"ab{KEY}".encode()).decode(), id="urlsafe"),
        pytest.param(f"{KEY[:8]} {KEY[8:16]} {KEY[16:24]} {KEY[24:]}", id="in pieces"),
        pytest.param(quote(KEY + "/+", safe=""), id="url-quoted"),
    ],
)
def test_every_altered_echo_of_the_key_is_removed(echo):
    text = f"Incorrect API key provided: {echo}. Check it."
    scrubbed = scrub(text, [KEY])
    assert leaked(scrubbed) == set()
    assert scrubbed.startswith("Incorrect API key provided: ")
    assert scrubbed.endswith(". Check it.")


def test_text_without_the_key_is_left_alone():
    text = "The model gpt-4o does not exist or you do not have access to it."
    assert scrub(text, [KEY]) == text


def test_short_secrets_are_not_scrubbed_but_everything_else_is():
    assert scrub("abc is fine", ["abc"]) == "abc is fine"
    assert scrub("Authorization: Bearer zzzzzzzzzz", []) == "Authorization: Bearer ***"


def test_a_json_credential_is_removed_whole_and_its_secret_fields_in_pieces():
    private = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"
    account = '{"type": "service_account", "token_uri": "https://oauth2.googleapis.com/token"}'
    text = f"bad key {account}; private key {private[:12]}; see https://cloud.google.com"
    scrubbed = scrub(text, [account, private])
    assert account not in scrubbed
    assert private[:12].lower() not in scrubbed.lower()
    # The credential's structure is no secret: common words elsewhere survive.
    assert scrubbed.endswith("see https://cloud.google.com")


def test_an_excerpt_is_short_single_line_and_scrubbed():
    text = "line one\nline two " + KEY.upper() + " " + "x" * 500
    kept = excerpt(text, [KEY])
    assert "\n" not in kept
    assert len(kept) <= EXCERPT_LENGTH
    assert leaked(kept) == set()
    assert kept.startswith("line one line two ***")


def test_errors_keep_a_scrubbed_excerpt_of_the_providers_own_message():
    body = {
        "error": {
            "message": f"Incorrect API key provided: {KEY[:12]}****{KEY[-4:]}. {'More. ' * 80}",
            "type": "invalid_request_error",
            "code": "invalid_api_key",
        }
    }
    error = classify(401, body, provider="OpenAI", model="gpt-4o", secrets=[KEY])
    assert isinstance(error, AuthError)
    assert error.provider_message.startswith("Incorrect API key provided: ***")
    assert len(error.provider_message) <= EXCERPT_LENGTH
    for text in (error.provider_message, error.detail, str(error), repr(error)):
        assert leaked(text) == set()


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (404, b"<html><body>Not Found: the page you asked for</body></html>"),
        (400, b"-ERR unknown command 'POST', with args beginning with: "),
        (500, b"Traceback (most recent call last): internal details"),
        (401, b"<html>401 Authorization Required</html>"),
        (404, b'{"status": "ok", "service": "internal-inventory"}'),
    ],
)
def test_a_body_that_is_not_a_providers_error_is_never_kept(status, body):
    error = classify(status, body, provider="OpenAI-API-Compatible", model="m")
    assert error.provider_message == ""
    for word in ("Not Found", "-ERR", "Traceback", "Authorization", "inventory"):
        assert word not in str(error)
