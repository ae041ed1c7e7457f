import json
import pickle

import pytest

from providers.api_keys import Credentials
from providers.errors import InvalidRequestError


def test_it_parses_a_plain_key():
    credentials = Credentials.parse("  sk-plain-123456  ")
    assert credentials.key == "sk-plain-123456"
    assert not credentials.is_json
    assert credentials.secrets() == ("sk-plain-123456",)


def test_it_parses_an_empty_key():
    for raw in (None, "", "   "):
        credentials = Credentials.parse(raw)
        assert credentials.key == ""
        assert not credentials
        assert credentials.secrets() == ()


def test_it_parses_json_credentials():
    raw = json.dumps({"ark_api_key": "ark-secret-123456", "endpoint_id": "ep-2024-abc"})
    credentials = Credentials.parse(raw)
    assert credentials.is_json
    assert credentials.get("endpoint_id") == "ep-2024-abc"
    assert credentials.key == ""  # no api_key field
    assert credentials.secrets() == ("ark-secret-123456",)


def test_it_takes_the_key_from_a_json_api_key():
    credentials = Credentials.parse({"api_key": "azure-key-123456", "api_version": "2024-10-21"})
    assert credentials.key == "azure-key-123456"
    assert credentials.get("api_version") == "2024-10-21"
    assert credentials.secrets() == ("azure-key-123456",)


def test_it_treats_unknown_fields_as_secret():
    credentials = Credentials.parse({"yiyan_ak": "ak-123456789", "yiyan_sk": "sk-987654321"})
    assert set(credentials.secrets()) == {"ak-123456789", "sk-987654321"}


def test_it_collects_secrets_inside_a_service_account_key():
    account = {"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----abc"}
    credentials = Credentials.parse(
        {"google_project_id": "proj", "google_service_account_key": json.dumps(account)}
    )
    secrets = credentials.secrets()
    assert "-----BEGIN PRIVATE KEY-----abc" in secrets
    assert json.dumps(account) in secrets
    assert "proj" not in secrets
    assert "service_account" not in secrets


def test_it_keeps_a_key_that_only_looks_like_json_as_plain():
    assert Credentials.parse("{not json").key == "{not json"


def test_it_requires_fields_and_names_every_missing_one():
    credentials = Credentials.parse({"ark_api_key": "ark-secret-123456"})
    with pytest.raises(InvalidRequestError) as caught:
        credentials.require("ark_api_key", "endpoint_id", "region", provider="VolcEngine")
    message = str(caught.value)
    assert "endpoint_id, region" in message
    assert "VolcEngine" in message
    assert "ark-secret-123456" not in message
    assert credentials.require("ark_api_key") == ("ark-secret-123456",)


def test_its_repr_never_shows_a_secret():
    plain = Credentials.parse("sk-plain-123456")
    structured = Credentials.parse({"bedrock_ak": "AKIA123456", "bedrock_sk": "secret-123456"})
    for credentials in (plain, structured):
        for text in (repr(credentials), str(credentials), f"{credentials}"):
            assert "123456" not in text
    assert "bedrock_ak" in repr(structured)


def test_it_compares_by_value():
    assert Credentials.parse('{"a": "1"}') == Credentials.parse({"a": "1"})
    assert len({Credentials.parse("k1"), Credentials.parse("k1")}) == 1
    assert pickle.loads(pickle.dumps(Credentials.parse("k1"))) == Credentials.parse("k1")
