"""Brute-force limits: the admin login locks out, failed API token authentications throttle."""

import uuid

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from rest_framework.test import APIClient

from tenants.services.tokens import api_token_issue

ADMIN_PASSWORD = "pw-root-123"  # the superuser fixture's


def an_address() -> str:
    """A client address of this test's own (the throttle's counters live in a shared cache)."""
    n = uuid.uuid4().int
    return f"10.{n % 250}.{(n >> 8) % 250}.{(n >> 16) % 250 + 1}"


def admin_login(client, password: str, address: str):
    return client.post(
        "/admin/login/?next=/admin/",
        {"username": "root", "password": password},
        REMOTE_ADDR=address,
    )


def logged_in(client) -> bool:
    return client.get("/admin/").status_code == 200


def test_the_admin_login_locks_out_after_the_failure_limit(client, superuser, settings):
    address = an_address()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        response = admin_login(client, "wrong-password", address)
        assert response.status_code == 200  # the login form again, with its error
    assert admin_login(client, "wrong-password", address).status_code == 429
    response = admin_login(client, ADMIN_PASSWORD, address)
    assert response.status_code == 429
    assert b"Too many failed logins" in response.content
    assert not logged_in(client)


def test_a_locked_out_pair_does_not_lock_the_admin_out_elsewhere(client, superuser, settings):
    address = an_address()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        admin_login(client, "wrong-password", address)
    response = admin_login(client, ADMIN_PASSWORD, an_address())
    assert response.status_code == 302
    assert logged_in(client)


def test_fewer_failures_than_the_limit_still_let_the_right_password_in(client, superuser, settings):
    address = an_address()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        admin_login(client, "wrong-password", address)
    assert admin_login(client, ADMIN_PASSWORD, address).status_code == 302


def test_a_password_reset_lifts_the_lockout(client, superuser, settings, monkeypatch):
    address = an_address()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        admin_login(client, "wrong-password", address)
    monkeypatch.setenv("ADMIN_USERNAME", "root")
    monkeypatch.setenv("ADMIN_PASSWORD", "a-brand-new-password-42")
    call_command("bootstrap_admin", "--reset-password")
    assert get_user_model().objects.get(username="root").check_password("a-brand-new-password-42")
    assert admin_login(client, "a-brand-new-password-42", address).status_code == 302


@pytest.fixture
def throttle_limit(settings):
    settings.API_AUTH_FAILURE_LIMIT = 5
    settings.API_AUTH_COOLOFF_SECONDS = 300
    return 5


def get(path: str, token: str, address: str):
    return APIClient().get(path, HTTP_AUTHORIZATION=f"Bearer {token}", REMOTE_ADDR=address)


def test_failed_token_authentications_are_throttled_per_address(throttle_limit, owner):
    _, good = api_token_issue(user=owner, name="t")
    attacker = an_address()
    for i in range(throttle_limit):
        response = get("/api/v1/llm/my_llms", f"rgl_deadbeef_{i:043d}", attacker)
        assert response.status_code == 401

    response = get("/api/v1/llm/my_llms", "rgl_deadbeef_" + "B" * 43, attacker)
    assert response.status_code == 429
    assert 0 < int(response["Retry-After"]) <= 300
    assert response.json()["message"].startswith("Too many failed authentications")
    # A blocked address learns nothing, not even whether a token is good.
    assert get("/api/v1/llm/my_llms", good, attacker).status_code == 429
    # Everyone else is unaffected.
    assert get("/api/v1/llm/my_llms", good, an_address()).status_code == 200


def test_successful_authentications_do_not_count(throttle_limit, owner):
    _, good = api_token_issue(user=owner, name="t")
    address = an_address()
    for _ in range(throttle_limit * 3):
        assert get("/api/v1/llm/my_llms", good, address).status_code == 200
    assert get("/api/v1/llm/my_llms", "rgl_deadbeef_" + "C" * 43, address).status_code == 401


def test_malformed_authorization_headers_count_as_failures(throttle_limit, db):
    address = an_address()
    client = APIClient()
    for _ in range(throttle_limit):
        response = client.get(
            "/api/v1/llm/my_llms", HTTP_AUTHORIZATION="Bearer a b c", REMOTE_ADDR=address
        )
        assert response.status_code == 401
    assert get("/api/v1/llm/my_llms", "x", address).status_code == 429


def test_behind_a_trusted_proxy_the_forwarded_address_is_throttled(throttle_limit, settings, db):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    proxy, attacker = an_address(), an_address()
    client = APIClient()
    for _ in range(throttle_limit + 1):
        last = client.get(
            "/api/v1/llm/my_llms",
            HTTP_AUTHORIZATION="Bearer rgl_deadbeef_" + "D" * 43,
            HTTP_X_FORWARDED_FOR=attacker,
            REMOTE_ADDR=proxy,
        )
    assert last.status_code == 429
    other = client.get(
        "/api/v1/llm/my_llms",
        HTTP_AUTHORIZATION="Bearer rgl_deadbeef_" + "D" * 43,
        HTTP_X_FORWARDED_FOR=an_address(),
        REMOTE_ADDR=proxy,
    )
    assert other.status_code == 401
