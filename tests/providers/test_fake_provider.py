"""The fake provider itself: it must check requests as strictly as the real API does."""

import contextlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.fakeprovider import Reply

from .conftest import KEY

AUTH = {"Authorization": f"Bearer {KEY}"}
CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}


def wait_until(condition, timeout=5.0):
    """Poll `condition` until it holds; False if it never did within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def post(fake_provider, path, **kwargs):
    return httpx.post(fake_provider.url(path), timeout=5, **kwargs)


def error_of(response):
    return response.json()["error"]


def test_it_records_requests(fake_provider):
    post(fake_provider, "/v1/chat/completions?x=1", headers=AUTH, json=CHAT)
    request = fake_provider.last_request
    assert (request.method, request.path, request.query) == (
        "POST",
        "/v1/chat/completions",
        {"x": "1"},
    )
    assert request.json == CHAT
    assert request.bearer == KEY


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"messages": CHAT["messages"]}, "must provide a model"),
        ({"model": "m", "messages": []}, "at least one message"),
        ({"model": "m", "messages": [{"role": "robot", "content": "x"}]}, "role"),
        ({**CHAT, "temprature": 1}, "Unrecognized request argument supplied: temprature"),
        ({**CHAT, "stream_options": {"include_usage": True}}, "only allowed when 'stream'"),
        (
            {
                "model": "m",
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "image_url", "image_url": {"url": "data:image/png;base64,%%%"}}
                        ],
                    }
                ],
            },
            "base64",
        ),
    ],
)
def test_it_rejects_malformed_chat_requests_like_openai(fake_provider, body, message):
    response = post(fake_provider, "/v1/chat/completions", headers=AUTH, json=body)
    assert response.status_code == 400
    assert message in error_of(response)["message"]
    assert error_of(response)["type"] == "invalid_request_error"


def test_it_rejects_a_body_that_is_not_json(fake_provider):
    response = post(fake_provider, "/v1/chat/completions", headers=AUTH, content=b"{nope")
    assert response.status_code == 400
    assert "could not parse the JSON body" in error_of(response)["message"]


def test_it_requires_bearer_auth_on_the_hosted_root(fake_provider):
    assert post(fake_provider, "/v1/chat/completions", json=CHAT).status_code == 401
    basic = post(fake_provider, "/v1/chat/completions", headers={"Authorization": KEY}, json=CHAT)
    assert basic.status_code == 401
    assert post(fake_provider, "/keyless/v1/chat/completions", json=CHAT).status_code == 200


def test_it_requires_azure_headers_and_version(fake_provider):
    path = "/openai/deployments/d/chat/completions"
    body = {"messages": CHAT["messages"]}
    assert post(fake_provider, path, headers={"api-key": "k"}, json=body).status_code == 404
    assert post(fake_provider, path + "?api-version=1", json=body).status_code == 401
    ok = post(fake_provider, path + "?api-version=1", headers={"api-key": "k"}, json=body)
    assert ok.status_code == 200


def test_it_sends_usage_in_a_stream_only_when_asked(fake_provider):
    def events(body):
        with httpx.stream(
            "POST", fake_provider.url("/v1/chat/completions"), headers=AUTH, json=body
        ) as response:
            return [line for line in response.iter_lines() if line.startswith("data: ")]

    plain = events({**CHAT, "stream": True})
    assert plain[-1] == "data: [DONE]"
    assert not any('"usage"' in line for line in plain)
    with_usage = events({**CHAT, "stream": True, "stream_options": {"include_usage": True}})
    assert '"choices": []' in with_usage[-2]
    assert '"total_tokens": 18' in with_usage[-2]


def test_scripted_replies_come_first_and_in_order(fake_provider):
    fake_provider.script(
        "/v1/chat/completions",
        [Reply.json({"n": 1}), lambda request: Reply.json({"n": request.json["model"]})],
    )
    assert post(fake_provider, "/v1/chat/completions", json=CHAT).json() == {"n": 1}
    assert post(fake_provider, "/v1/chat/completions", json=CHAT).json() == {"n": "gpt-4o"}
    assert (
        post(fake_provider, "/v1/chat/completions", headers=AUTH, json=CHAT).json()["object"]
        == "chat.completion"
    )


def test_it_answers_unknown_routes_with_404(fake_provider):
    assert post(fake_provider, "/nowhere", json={}).status_code == 404


def test_it_serves_concurrent_requests(fake_provider):
    gate = threading.Event()

    def held(request):
        gate.wait(5)  # answers only once the test lets it
        return Reply.json({"slow": True})

    fake_provider.script("/slow", [held], method="GET")
    with ThreadPoolExecutor(4) as pool:
        slow = pool.submit(httpx.get, fake_provider.url("/slow"), timeout=10)
        assert wait_until(lambda: fake_provider.requests_to("/slow"))
        fast = [
            pool.submit(post, fake_provider, "/v1/chat/completions", headers=AUTH, json=CHAT)
            for _ in range(3)
        ]
        assert all(f.result().status_code == 200 for f in fast)
        assert not slow.done()  # the fast ones were not queued behind the held one
        gate.set()
        assert slow.result().json() == {"slow": True}


def test_reset_forgets_requests_and_wakes_sleeping_replies(fake_provider):
    fake_provider.script("/sleepy", [Reply.json({}, delay=30)], method="GET")
    done = threading.Event()

    def call():
        with contextlib.suppress(httpx.HTTPError):
            httpx.get(fake_provider.url("/sleepy"), timeout=10)
        done.set()

    threading.Thread(target=call, daemon=True).start()
    assert wait_until(lambda: fake_provider.requests_to("/sleepy"))  # the reply is sleeping
    fake_provider.reset()
    assert done.wait(5)
    assert fake_provider.requests == []
