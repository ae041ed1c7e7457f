"""The little HTTP the gateway needs, straight on ASGI: read a bounded body, send JSON, send a
stream that stops (and closes its source) when the client goes away.

The gateway's routes are served here rather than through Django's request stack (see
ragllm.asgi): no middleware, no URL resolver, no request object per call, which is most of
what a call through Django costs when the provider answers in a fraction of a millisecond.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from .errors import GatewayError

JSON_TYPE = b"application/json"


def dumps(payload: Any) -> bytes:
    """Compact UTF-8 JSON, as json.dumps(separators=(",", ":"), ensure_ascii=False) writes it,
    by orjson (several times faster on the hot path); what orjson refuses (an integer past 64
    bits, say) goes to the standard library."""
    try:
        return orjson.dumps(payload, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:
        return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(slots=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names; a repeated header keeps its last value
    client: str  # the connection's address
    body: bytes = b""

    @classmethod
    def of(cls, scope: Mapping[str, Any]) -> Request:
        headers = {
            name.decode("latin-1").lower(): value.decode("latin-1")
            for name, value in scope["headers"]
        }
        client = scope.get("client") or ("", 0)
        return cls(scope["method"], scope["path"], headers, client[0] or "")

    def json(self) -> dict[str, Any]:
        """The body as a JSON object, or a 400 in OpenAI's words."""
        try:
            # The standard library's parser: orjson would read an integer past 64 bits as a
            # float, silently; a request body is small enough for the difference not to count.
            data = json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            data = None
        if not isinstance(data, dict):
            raise GatewayError(
                400,
                "We could not parse the JSON body of your request: send a JSON object with "
                "Content-Type: application/json.",
            )
        return data


async def read_body(request: Request, receive, limit: int) -> None:
    """Read the body into `request.body`; past `limit` bytes, a 413 (before reading it all
    when Content-Length says so)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            parts.append(chunk)
        if not message.get("more_body", False):
            break
    request.body = parts[0] if len(parts) == 1 else b"".join(parts)


def _too_large(limit: int) -> GatewayError:
    return GatewayError(
        413,
        f"The request is larger than this server accepts ({limit // (1024 * 1024)} MB; "
        "GATEWAY_MAX_REQUEST_MB).",
        code="request_too_large",
    )


class ClientGone(Exception):
    """The client disconnected before the request was read."""


def _headers(content_type: bytes, extra: Mapping[str, str] | None) -> list[tuple[bytes, bytes]]:
    headers = [(b"content-type", content_type)]
    for name, value in (extra or {}).items():
        headers.append((name.lower().encode("latin-1"), value.encode("latin-1")))
    return headers


async def send_json(
    send, status: int, payload: Any, headers: Mapping[str, str] | None = None
) -> None:
    await send_body(send, status, dumps(payload), JSON_TYPE, headers)


async def send_body(
    send, status: int, body: bytes, content_type: bytes, headers: Mapping[str, str] | None = None
) -> None:
    response_headers = _headers(content_type, headers)
    response_headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": response_headers})
    await send({"type": "http.response.body", "body": body})


async def send_error(send, error: GatewayError) -> None:
    await send_json(send, error.status, error.body(), error.headers)


async def send_stream(
    send,
    receive,
    status: int,
    content_type: bytes,
    chunks: AsyncIterator[bytes],
    headers: Mapping[str, str] | None = None,
) -> None:
    """Send `chunks` as they come. If the client disconnects first, stop: `chunks` is closed
    (its `finally` blocks run, closing the upstream) and nothing more is sent."""
    response_headers = _headers(content_type, headers)
    response_headers.append((b"cache-control", b"no-cache"))
    response_headers.append((b"x-accel-buffering", b"no"))  # nginx: do not buffer the stream

    async def pump() -> None:
        try:
            await send(
                {"type": "http.response.start", "status": status, "headers": response_headers}
            )
            async for chunk in chunks:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            await chunks.aclose()  # type: ignore[attr-defined]

    async def disconnected() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    sender = asyncio.ensure_future(pump())
    watcher = asyncio.ensure_future(disconnected())
    try:
        await asyncio.wait({sender, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (sender, watcher):
            if not task.done():
                task.cancel()
        with contextlib.suppress(asyncio.CancelledError, OSError):
            await sender
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
