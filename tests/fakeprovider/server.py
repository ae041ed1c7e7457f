"""A real HTTP server that plays model providers in tests.

One server per test session on 127.0.0.1 with a random port (ThreadingHTTPServer in a daemon
thread, HTTP/1.1 with keep-alive, chunked streaming, concurrent requests). Provider families
register routes from their own modules (`register(server)`); a test shapes behaviour with
`server.script(path, [Reply, ...])`, and reads what the adapters sent in `server.requests`.
"""

from __future__ import annotations

import contextlib
import email.parser
import email.policy
import json
import re
import socket
import sys
import threading
import traceback
import weakref
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit


@dataclass
class UploadedFile:
    filename: str | None
    content_type: str
    content: bytes


@dataclass
class Form:
    """A parsed multipart/form-data body."""

    fields: dict[str, str] = field(default_factory=dict)
    files: dict[str, UploadedFile] = field(default_factory=dict)


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # names lower-cased
    body: bytes
    json: Any = None  # the parsed body when it is JSON, else None
    path_params: dict[str, str] = field(default_factory=dict)  # named groups of the route
    client_port: int = 0  # the same port on two requests means a reused connection
    # Set when the client hung up before the reply was complete (a stream it closed).
    hung_up: threading.Event = field(default_factory=threading.Event, repr=False, compare=False)

    @property
    def bearer(self) -> str | None:
        """The token of an `Authorization: Bearer <token>` header, if that is what was sent."""
        value = self.headers.get("authorization", "")
        scheme, _, token = value.partition(" ")
        return token if scheme.lower() == "bearer" and token else None

    def form(self) -> Form:
        content_type = self.headers.get("content-type", "")
        if not content_type.startswith("multipart/form-data"):
            raise ValueError(f"not a multipart body: {content_type!r}")
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + self.body
        )
        form = Form()
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True) or b""
            filename = part.get_filename()
            if filename is not None:
                form.files[name] = UploadedFile(filename, part.get_content_type(), payload)
            else:
                form.fields[name] = payload.decode("utf-8")
        return form


@dataclass
class Reply:
    """What the server answers. Build with the class methods."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before the status line
    chunks: list[bytes] | None = None  # sent with chunked transfer encoding when set
    chunk_delay: float = 0.0
    drop_after: int | None = None  # abort the connection after this many chunks

    @classmethod
    def json(
        cls, payload: Any, status: int = 200, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> Reply:
        return cls(
            status=status,
            body=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json", **(headers or {})},
            **kwargs,
        )

    @classmethod
    def raw(
        cls, body: bytes, status: int = 200, content_type: str = "application/json", **kwargs: Any
    ) -> Reply:
        return cls(status=status, body=body, headers={"Content-Type": content_type}, **kwargs)

    @classmethod
    def sse(
        cls,
        events: Iterable[Any],
        *,
        done: bool = True,
        status: int = 200,
        drop_after: int | None = None,
        chunk_delay: float = 0.0,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        """One `data: ...` event per chunk (dicts become JSON), then `data: [DONE]`."""
        chunks = [
            f"data: {e if isinstance(e, str) else json.dumps(e)}\n\n".encode() for e in events
        ]
        if done:
            chunks.append(b"data: [DONE]\n\n")
        return cls(
            status=status,
            headers={"Content-Type": "text/event-stream", **(headers or {})},
            chunks=chunks,
            drop_after=drop_after,
            chunk_delay=chunk_delay,
        )

    @classmethod
    def stream(
        cls, chunks: list[bytes], content_type: str = "application/octet-stream", **kwargs: Any
    ) -> Reply:
        return cls(headers={"Content-Type": content_type}, chunks=list(chunks), **kwargs)


Handler = Callable[[RecordedRequest], Reply]
ScriptItem = Reply | Handler


@dataclass
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler


class FakeProviderServer:
    """The fake provider. `start()` it once; `reset()` it before each test."""

    _running: weakref.WeakSet[FakeProviderServer] = weakref.WeakSet()

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self._routes: list[Route] = []
        self._scripts: dict[tuple[str, str], deque[ScriptItem]] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()  # set to cut short the delays of a finished test
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ---

    def start(
        self, families: Iterable[Callable[[FakeProviderServer], None]] = (), host: str = "127.0.0.1"
    ) -> FakeProviderServer:
        for register in families:
            register(self)
        server_class = _HTTPServer6 if ":" in host else _HTTPServer
        httpd = server_class((host, 0), _RequestHandler)
        httpd.fake = self
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, name="fake-provider", daemon=True
        )
        self._thread.start()
        FakeProviderServer._running.add(self)
        return self

    def stop(self) -> None:
        self._wake.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        FakeProviderServer._running.discard(self)

    @classmethod
    def running(cls) -> list[FakeProviderServer]:
        return list(cls._running)

    def reset(self) -> None:
        """Forget requests and scripts, and wake replies still sleeping for an earlier test."""
        with self._lock:
            self.requests.clear()
            self._scripts.clear()
            self._wake.set()
            self._wake = threading.Event()

    # --- addresses ---

    @property
    def port(self) -> int:
        assert self._httpd is not None, "the fake provider is not started"
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        assert self._httpd is not None, "the fake provider is not started"
        host = self._httpd.server_address[0]
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    def url(self, path: str = "") -> str:
        return self.base_url + "/" + path.lstrip("/")

    # --- behaviour ---

    def route(self, method: str, pattern: str, handler: Handler) -> None:
        """Serve paths fully matching the regex `pattern`; named groups go to path_params.
        Routes are tried in registration order; give each family its own path prefix."""
        self._routes.append(Route(method.upper(), re.compile(pattern), handler))

    def script(self, path: str, replies: Iterable[ScriptItem], *, method: str = "POST") -> None:
        """Answer the next requests to `path` with these replies, in order, before the routes.
        An item is a Reply or a function of the request returning one."""
        with self._lock:
            self._scripts.setdefault((method.upper(), path), deque()).extend(replies)

    def requests_to(self, path: str) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    @property
    def last_request(self) -> RecordedRequest:
        with self._lock:
            assert self.requests, "the fake provider received no request"
            return self.requests[-1]

    def wait(self, seconds: float) -> bool:
        """Sleep in a handler; returns True when cut short by reset() or stop()."""
        return self._wake.wait(seconds)

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _dispatch(self, request: RecordedRequest) -> Reply:
        with self._lock:
            queue = self._scripts.get((request.method, request.path))
            scripted = queue.popleft() if queue else None
        if scripted is not None:
            return scripted if isinstance(scripted, Reply) else scripted(request)
        for route in self._routes:
            if route.method != request.method:
                continue
            match = route.pattern.fullmatch(request.path)
            if match:
                request.path_params = {k: v for k, v in match.groupdict().items() if v}
                return route.handler(request)
        return Reply.json(
            {"error": {"message": f"no fake route for {request.method} {request.path}"}},
            status=404,
        )


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog of 5 drops connections that a burst of clients (a
    # gateway under load) opens at once; they would wait for a SYN retry.
    request_queue_size = 128
    fake: FakeProviderServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hanging up (timeouts, closed streams) are part of the tests, not failures.
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)


class _HTTPServer6(_HTTPServer):
    address_family = socket.AF_INET6


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive and chunked responses
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without NODELAY, Nagle plus the
        # client's delayed ACK add ~40 ms to every keep-alive request.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    @property
    def fake(self) -> FakeProviderServer:
        return self.server.fake

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return body
                body += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _handle(self) -> None:
        body = self._read_body()
        parts = urlsplit(self.path)
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        request = RecordedRequest(
            method=self.command,
            path=parts.path,
            query=dict(parse_qsl(parts.query, keep_blank_values=True)),
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
            json=parsed,
            client_port=self.client_address[1],
        )
        self.fake._record(request)
        try:
            reply = self.fake._dispatch(request)
        except Exception:
            traceback.print_exc(file=sys.stderr)
            reply = Reply.json({"error": {"message": "the fake provider crashed"}}, status=500)
        try:
            self._send(reply)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (a timeout test): fine
            request.hung_up.set()

    def _send(self, reply: Reply) -> None:
        if reply.delay and self.fake.wait(reply.delay):
            self.close_connection = True
            return
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if reply.chunks is None:
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)
            return
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for index, chunk in enumerate(reply.chunks):
            if reply.drop_after is not None and index >= reply.drop_after:
                self._drop()
                return
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.flush()
            if reply.chunk_delay and self.fake.wait(reply.chunk_delay):
                break
        self.wfile.write(b"0\r\n\r\n")

    def _drop(self) -> None:
        # Close mid-body, without the terminating chunk: the client sees an incomplete read.
        self.close_connection = True
        self.wfile.flush()
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)
