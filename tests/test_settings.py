import json
import os
import subprocess
import sys

import pytest
from django.conf import settings
from django.test import override_settings

from tenants.checks import check_credential_key, check_default_llm_config, check_llm_call_settings


def start_django(**env_overrides) -> subprocess.CompletedProcess:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"SECRET_KEY", "CREDENTIALS_ENCRYPTION_KEY", "DEBUG"}
    }
    env.update(env_overrides)
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_start_up_refuses_production_without_a_secret_key():
    result = start_django(DEBUG="False", CREDENTIALS_ENCRYPTION_KEY="x" * 40)
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr


def test_start_up_refuses_production_without_a_credentials_key():
    result = start_django(DEBUG="False", SECRET_KEY="y" * 50)
    assert result.returncode != 0
    assert "CREDENTIALS_ENCRYPTION_KEY is not set" in result.stderr


def test_start_up_accepts_a_complete_production_configuration():
    result = start_django(DEBUG="False", SECRET_KEY="y" * 50, CREDENTIALS_ENCRYPTION_KEY="x" * 40)
    assert result.returncode == 0, result.stderr


def test_secrets_can_come_from_files(tmp_path):
    (tmp_path / "sk").write_text("z" * 50)
    result = start_django(
        DEBUG="False", SECRET_KEY_FILE=str(tmp_path / "sk"), CREDENTIALS_ENCRYPTION_KEY="x" * 40
    )
    assert result.returncode == 0, result.stderr


def test_the_credentials_key_must_differ_from_the_secret_key():
    with override_settings(CREDENTIALS_ENCRYPTION_KEY=settings.SECRET_KEY):
        assert [e.id for e in check_credential_key(None)] == ["ragllm.E001"]
    assert check_credential_key(None) == []


@pytest.mark.parametrize(
    ("name", "value", "code"),
    [
        ("LLM_TIMEOUT_SECONDS", 0, "ragllm.E010"),
        ("LLM_MAX_RETRIES", -1, "ragllm.E011"),
        ("LLM_BASE_DELAY", -0.5, "ragllm.E012"),
    ],
)
def test_llm_call_settings_are_checked(name, value, code):
    with override_settings(**{name: value}):
        assert [e.id for e in check_llm_call_settings(None)] == [code]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("{not json", "not valid JSON"),
        (json.dumps({"factory": "OpenAI", "colour": "red"}), "unknown keys: colour"),
        (json.dumps({"default_models": {"chat_model": "gpt-4o"}}), "names no factory"),
        (
            json.dumps({"factory": "X", "default_models": {"chatmodel": "m"}}),
            "unknown keys: chatmodel",
        ),
    ],
)
def test_a_malformed_default_model_config_is_reported_clearly(raw, message):
    with override_settings(USER_DEFAULT_LLM=raw):
        errors = check_default_llm_config(None)
    assert [e.id for e in errors] == ["ragllm.E020"]
    assert message in errors[0].msg


def test_the_default_model_config_can_come_from_a_file(tmp_path):
    path = tmp_path / "defaults.json"
    path.write_text(json.dumps({"factory": "OpenAI", "default_models": {"chat_model": "gpt-4o"}}))
    with override_settings(USER_DEFAULT_LLM_FILE=str(path)):
        assert check_default_llm_config(None) == []
    with override_settings(USER_DEFAULT_LLM_FILE=str(tmp_path / "missing.json")):
        assert "cannot be read" in check_default_llm_config(None)[0].msg


def test_every_setting_read_from_the_environment_is_documented():
    import re
    from pathlib import Path

    base = Path(settings.BASE_DIR)
    source = (base / "ragllm" / "settings.py").read_text()
    names = set(re.findall(r'env\.\w+\("([A-Z_]+)"', source))
    names |= set(re.findall(r'_secret\("([A-Z_]+)"\)', source))
    documented = (base / ".env.example").read_text()
    assert names, "no settings found"
    assert sorted(n for n in names if n not in documented) == []
