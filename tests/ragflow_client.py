"""A client that sends what RAGFlow's web app sends to the RAGFlow-compatible routes.

The app (umi-request) puts its token in `Authorization` with no scheme, posts JSON as
`application/json;charset=UTF-8` with `Accept: application/json`, and reads every answer's
body whatever its status. RAGFlow's own tests send `Content-Type: application/json` even on
GETs and also check only the body.
"""

from __future__ import annotations

import json
from typing import Any

from django.test import Client

JSON = "application/json;charset=UTF-8"


class RAGFlowClient:
    def __init__(self, token: str | None, *, prefix: str = "/v1") -> None:
        self.client = Client()
        self.prefix = prefix
        self.headers = {"HTTP_ACCEPT": "application/json"}
        if token is not None:
            self.headers["HTTP_AUTHORIZATION"] = token

    def url(self, path: str) -> str:
        return f"{self.prefix}/{path.lstrip('/')}"

    def get(self, path: str, params: dict[str, Any] | None = None, **extra: Any):
        return self.client.get(self.url(path), params or {}, **{**self.headers, **extra})

    def post(self, path: str, body: Any = None, **extra: Any):
        data = json.dumps({} if body is None else body)
        return self.client.post(
            self.url(path), data, content_type=JSON, **{**self.headers, **extra}
        )

    def post_raw(self, path: str, data: bytes | str, content_type: str, **extra: Any):
        return self.client.post(
            self.url(path), data, content_type=content_type, **{**self.headers, **extra}
        )


def body(response) -> dict[str, Any]:
    """The answer's JSON, after checking it came as RAGFlow sends answers: HTTP 200, JSON."""
    assert response.status_code == 200, (response.status_code, response.content)
    assert response["Content-Type"].startswith("application/json")
    return response.json()


def token_for(user) -> str:
    from tenants.services.tokens import api_token_issue

    return api_token_issue(user=user, name="ragflow web app")[1]
