"""The admin's "Issue API token" action shows the token once, on a page of its own."""

import re

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from tenants.models import APIToken
from tenants.selectors import api_token_authenticate

TOKEN_RE = re.compile(r"rgl_[0-9a-f]{8}_[A-Za-z0-9_-]{20,}")


@pytest.fixture
def admin_client_(client, superuser):
    client.force_login(superuser)
    return client


def issue(admin_client_, *users):
    return admin_client_.post(
        reverse("admin:auth_user_changelist"),
        {"action": "issue_api_token", "_selected_action": [u.pk for u in users]},
    )


def test_it_shows_each_token_once_on_a_page_of_its_own(admin_client_, owner, member):
    response = issue(admin_client_, owner, member)

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    body = response.content.decode()
    tokens = TOKEN_RE.findall(body)
    assert len(tokens) == 2
    # Each token is a real, working token of the user it is listed with.
    assert {api_token_authenticate(raw=t).user for t in tokens} == {owner, member}
    assert APIToken.objects.filter(user__in=[owner, member]).count() == 2
    assert "shown on this page only" in body


def test_the_token_is_in_no_cookie_and_no_message(admin_client_, owner):
    response = issue(admin_client_, owner)
    (token,) = TOKEN_RE.findall(response.content.decode())

    cookies = "; ".join(f"{name}={morsel.value}" for name, morsel in response.cookies.items())
    assert token not in cookies
    assert "messages" not in response.cookies
    assert not [str(m) for m in get_messages(response.wsgi_request)]
    # Nor is it carried to the next page through the session or the messages storage.
    follow = admin_client_.get(reverse("admin:auth_user_changelist"))
    assert token not in follow.content.decode()
    assert token not in str(dict(admin_client_.session))


def test_it_is_not_logged(admin_client_, owner, caplog):
    with caplog.at_level("DEBUG"):
        response = issue(admin_client_, owner)
    (token,) = TOKEN_RE.findall(response.content.decode())
    assert token not in caplog.text
    assert token[-20:] not in caplog.text
