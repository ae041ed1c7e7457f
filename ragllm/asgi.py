"""The ASGI application: admin, API and gateway, served by `manage.py serve` (granian).

The OpenAI-compatible gateway's paths (gateway.app.handles) go to the gateway's own lean ASGI
application; everything else (the admin, the management API, RAGFlow's routes) to Django's.
Both run in the same process with the same settings, ORM, cache and services; the gateway
skips only Django's request stack (middleware, URL resolver, request objects), which costs
more per call than the rest of a gateway call together (README, "The gateway").
"""

from __future__ import annotations

import asyncio
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ragllm.settings")
django_application = get_asgi_application()


class BoundedConcurrency:
    """At most `limit` HTTP requests in progress in this process; the others wait their turn.

    Requests, not connections: an idle keep-alive connection holds nothing. Django runs each
    sync view in a thread of its own holding a pooled database connection, so this bounds the
    threads and the waits on the pool; a streamed response keeps its place until it ends.
    """

    def __init__(self, app, limit: int) -> None:
        self.app = app
        self.limit = limit
        self._semaphore: asyncio.Semaphore | None = None  # made on the serving event loop

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self.limit)
        async with self._semaphore:
            await self.app(scope, receive, send)


def routed(gateway, django, is_gateway_path):
    """Requests for `is_gateway_path(path)` to `gateway`, every other one to `django`."""

    async def app(scope, receive, send) -> None:
        if scope["type"] == "http" and is_gateway_path(scope["path"]):
            await gateway(scope, receive, send)
        else:
            await django(scope, receive, send)

    return app


def _build():
    from django.conf import settings

    from gateway import app as gateway

    app = routed(gateway.application, django_application, gateway.handles)
    return BoundedConcurrency(app, settings.WEB_MAX_CONCURRENCY)


application = _build()
