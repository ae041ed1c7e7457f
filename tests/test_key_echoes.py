"""A provider that echoes the key, altered, in its errors: nothing of the key reaches the
validation's stored message, its attempts, the API (a normal member's view included) or logs."""

from __future__ import annotations

import base64
import logging

import pytest

from tenants.models import KeyValidation, TenantLLM
from tests.fakeprovider import RecordedRequest, Reply

KEY = "sk-Qz7Rw2Lm9Xv4Tp8Kc3Hy6Fb1Nd5Gs0Ju"


def echo_the_key_altered(request: RecordedRequest) -> Reply:
    key = request.bearer or ""
    basic = base64.b64encode(f"user:{key}".encode()).decode()
    message = (
        f"Incorrect API key provided: {key[:14]}...{key[-4:]}. Received {key.upper()}; "
        f"as Basic {basic}; in pieces {key[:9]} {key[9:18]} {key[18:27]} {key[27:]}."
    )
    body = {
        "error": {"message": message, "type": "invalid_request_error", "code": "invalid_api_key"}
    }
    return Reply.json(body, status=401)


def leaked(text: str) -> set[str]:
    """Pieces of 6+ characters of the key, or of its base64 text, left in `text`."""
    forms = [KEY, base64.b64encode(KEY.encode()).decode()[:-4]]
    found = set()
    for form in forms:
        lowered = form.lower()
        for i in range(len(lowered) - 5):
            if lowered[i : i + 6] in text.lower():
                found.add(lowered[i : i + 6])
    return found


@pytest.fixture
def echoing_provider(fake_provider):
    for path in ("/v1/chat/completions", "/v1/embeddings"):
        fake_provider.script(path, [echo_the_key_altered] * 8)
    return fake_provider


def test_altered_echoes_of_the_key_are_never_stored_or_shown(
    api_for, owner, member, tenant, tasks, catalog, echoing_provider, caplog
):
    caplog.set_level(logging.DEBUG)
    owner_api = api_for(owner)
    answers = [
        owner_api.post(
            "/api/v1/llm/add_llm",
            {
                "llm_factory": "OpenAI",
                "llm_name": "gpt-4o-mini",
                "model_type": "chat",
                "api_key": KEY,
                "api_base": echoing_provider.url("/v1"),
            },
        ),
        owner_api.post(
            "/api/v1/llm/set_api_key",
            {"llm_factory": "OpenAI", "api_key": KEY, "base_url": echoing_provider.url("/v1")},
        ),
    ]
    assert [a.status_code for a in answers] == [400, 400]
    assert echoing_provider.requests and all(r.bearer == KEY for r in echoing_provider.requests)

    member_api = api_for(member, tenant_id=tenant.id)
    validations = list(KeyValidation.objects.all())
    assert len(validations) == 2
    texts = [a.content.decode() for a in answers]
    for validation in validations:
        shown = member_api.get(f"/api/v1/llm/tasks/{validation.pk}")
        assert shown.status_code == 200
        texts += [shown.content.decode(), validation.message, str(validation.attempts)]
        # The classified message, then a short scrubbed excerpt of what the provider said.
        first = validation.message.splitlines()[0]
        assert "the provider rejected the credentials (key problem)." in first
        assert 'The provider said (HTTP 401): "Incorrect API key provided: ***' in first
        assert len(first) < 400
    texts += [row.last_error for row in TenantLLM.objects.all()]
    texts.append("\n".join(record.getMessage() for record in caplog.records))
    for text in texts:
        assert leaked(text) == set(), text
