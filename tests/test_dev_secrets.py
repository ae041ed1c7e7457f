"""In DEBUG without explicit secrets, every process of a checkout uses the secrets in var/ that
`make run` uses: a key saved by the web server decrypts in `manage.py` and vice versa."""

import os
import secrets
import stat
import subprocess
import sys

import pytest
from django.conf import settings

PRINT_KEYS = (
    "import django; django.setup(); from django.conf import settings as s; "
    "print(s.SECRET_KEY); print(s.CREDENTIALS_ENCRYPTION_KEY)"
)


def run(var_dir, *args, **env_overrides) -> subprocess.CompletedProcess:
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in {"SECRET_KEY", "CREDENTIALS_ENCRYPTION_KEY", "DEBUG", "DATABASE_URL", "REDIS_URL"}
    }
    env.update({"DEBUG": "True", "VAR_DIR": str(var_dir), **env_overrides})
    result = subprocess.run(
        [sys.executable, *args],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return result


def test_debug_creates_the_var_secrets_once_and_every_process_reads_them(tmp_path):
    first = run(tmp_path, "-c", PRINT_KEYS).stdout.split()
    second = run(tmp_path, "-c", PRINT_KEYS).stdout.split()

    secret_file, credentials_file = tmp_path / "secret_key", tmp_path / "credentials_key"
    assert (
        first == second == [secret_file.read_text().strip(), credentials_file.read_text().strip()]
    )
    assert len(first[1]) >= 40 and first[0] != first[1]
    for path in (secret_file, credentials_file):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_explicit_secrets_win_over_the_var_files(tmp_path):
    run(tmp_path, "-c", PRINT_KEYS)
    explicit = run(
        tmp_path,
        "-c",
        PRINT_KEYS,
        CREDENTIALS_ENCRYPTION_KEY="explicit-credentials-key-" + "x" * 30,
    ).stdout.split()
    assert explicit[1] == "explicit-credentials-key-" + "x" * 30


@pytest.mark.slow
def test_a_key_saved_by_one_process_decrypts_in_manage_py(tmp_path):
    """The new user's path: `make run` saves a key, `manage.py ...` later reads it."""
    # The web server as `make run` has always started it: secrets from the var/ files.
    (tmp_path / "credentials_key").write_text(secrets.token_urlsafe(48) + "\n")
    web_server = {"CREDENTIALS_ENCRYPTION_KEY_FILE": str(tmp_path / "credentials_key")}
    run(tmp_path, "manage.py", "migrate", "--no-input", "-v", "0")
    save = (
        "from django.contrib.auth import get_user_model; from providers.models import LLMFactory; "
        "from tenants.models import TenantLLM; from tenants.selectors import tenant_owned_by; "
        "u = get_user_model().objects.create_user(username='new@example.com'); "
        "TenantLLM.objects.create(tenant=tenant_owned_by(user=u), llm_name='gpt-4o', "
        "model_type='chat', factory=LLMFactory.objects.get(name='OpenAI'), "
        "api_key='sk-from-the-web-server-0123456789')"
    )
    run(tmp_path, "manage.py", "shell", "-c", save, **web_server)
    # Then the user's own command, with nothing set but DEBUG.
    read = "from tenants.models import TenantLLM; print(TenantLLM.objects.get().api_key)"
    output = run(tmp_path, "manage.py", "shell", "-c", read).stdout
    assert output.strip().splitlines()[-1] == "sk-from-the-web-server-0123456789"
