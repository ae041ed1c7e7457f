"""providers.h1, the plain-HTTP path of the async transport: framing, keep-alive, failures.

A raw socket server answers each request with scripted bytes, so that the answer's framing
(Content-Length, chunked, up to the close, HTTP/1.0) and the connection's fate are exact.
"""

from __future__ import annotations

import asyncio
import socket
import threading

import httpx
import pytest

from providers.aiotransport import AiohttpTransport


class RawServer:
    """Answers requests in order with `answers` (bytes each; None: hang up without one)."""

    def __init__(self, answers: list[bytes | None]) -> None:
        self.answers = list(answers)
        self.requests: list[bytes] = []
        self.connections = 0
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen()
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while self.answers:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._talk, args=(conn,), daemon=True).start()

    def _talk(self, conn: socket.socket) -> None:
        with conn:  # kept open until the client closes it or an answer says close
            buffer = b""
            while True:
                while b"\r\n\r\n" not in buffer:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buffer += data
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                while len(buffer) < length:
                    buffer += conn.recv(65536)
                self.requests.append(head + b"\r\n\r\n" + buffer[:length])
                buffer = buffer[length:]
                if not self.answers:
                    return
                answer = self.answers.pop(0)
                if answer is None:
                    return
                conn.sendall(answer)
                if b"connection: close" in answer.lower() or not answer.startswith(b"HTTP/1.1"):
                    return

    def url(self, path: str = "/x") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def raw():
    servers: list[RawServer] = []

    def make(answers):
        server = RawServer(answers)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


def calls(urls: list[str], *, timeout: float = 5.0, body: bytes = b"{}"):
    """POST each URL in turn on one transport; the responses, read, and the transport."""

    async def run():
        transport = AiohttpTransport()
        client = httpx.AsyncClient(transport=transport, timeout=timeout)
        responses = []
        try:
            for url in urls:
                response = await client.post(url, content=body)
                responses.append(response)
        finally:
            await client.aclose()
        return responses

    return asyncio.run(run())


def ok(body: bytes, *headers: str) -> bytes:
    extra = "".join(f"{h}\r\n" for h in headers)
    return f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode() + body


def test_content_length_answers_share_one_connection(raw):
    server = raw([ok(b'{"n":1}'), ok(b'{"n":2}')])
    first, second = calls([server.url(), server.url()])
    assert (first.json(), second.json()) == ({"n": 1}, {"n": 2})
    assert server.connections == 1
    request = server.requests[0]
    assert request.startswith(b"POST /x HTTP/1.1\r\n")
    assert b"\r\nHost: 127.0.0.1:" in request and request.endswith(b"\r\n\r\n{}")


def test_a_chunked_answer_is_read_whole(raw):
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"4;ext=1\r\nabcd\r\n6\r\nef\r\ngh\r\n0\r\nX-Trailer: 1\r\n\r\n"
    )
    server = raw([chunked, ok(b"next")])
    first, second = calls([server.url(), server.url()])
    assert first.content == b"abcdef\r\ngh"
    assert second.content == b"next"
    assert server.connections == 1  # the chunked answer ended cleanly: kept alive


def test_an_answer_without_length_ends_with_the_connection(raw):
    server = raw([b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end", ok(b"again")])
    first, second = calls([server.url(), server.url()])
    assert first.content == b"until the end"
    assert second.content == b"again"
    assert server.connections == 2


def test_http_1_0_and_connection_close_are_not_reused(raw):
    server = raw(
        [b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nhi", ok(b"x", "Connection: close"), ok(b"y")]
    )
    responses = calls([server.url()] * 3)
    assert [r.content for r in responses] == [b"hi", b"x", b"y"]
    assert server.connections == 3


def test_no_body_statuses_and_informational_answers(raw):
    server = raw([b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n", ok(b"after")])
    first, second = calls([server.url(), server.url()])
    assert first.status_code == 204 and first.content == b""
    assert second.content == b"after"
    assert server.connections == 1


def test_headers_reason_and_redirects_are_handed_back(raw):
    redirect = b"HTTP/1.1 302 Found\r\nLocation: http://elsewhere/\r\nContent-Length: 0\r\n\r\n"
    server = raw([redirect])
    (response,) = calls([server.url()])
    assert response.status_code == 302
    assert response.headers["location"] == "http://elsewhere/"
    assert response.reason_phrase == "Found"


@pytest.mark.parametrize(
    "answer",
    [
        None,  # hung up without an answer
        b"-ERR unknown command 'POST'\r\n",  # not HTTP at all, then hung up
        b"HTTP/1.1 2x0 OK\r\n\r\n",  # a bad status
    ],
)
def test_failures_before_an_answer_are_protocol_errors(raw, answer):
    server = raw([answer])
    with pytest.raises(httpx.RemoteProtocolError):
        calls([server.url()])


def test_a_body_cut_short_is_a_protocol_error(raw):
    server = raw([b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nConnection: close\r\n\r\nabc"])
    with pytest.raises(httpx.RemoteProtocolError):
        calls([server.url()])


def test_a_closed_port_is_a_connect_error():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(httpx.ConnectError):
        calls([f"http://127.0.0.1:{port}/x"])


def test_a_silent_server_times_out(raw):
    server = raw([b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab"])  # never the rest
    with pytest.raises(httpx.ReadTimeout):
        calls([server.url()], timeout=0.3)


def test_streamed_request_bodies_are_sent_with_their_framing(raw):
    server = raw([ok(b"done")])

    async def run():
        async def parts():
            yield b"hello "
            yield b"world"

        transport = AiohttpTransport()
        client = httpx.AsyncClient(transport=transport)
        try:
            return await client.post(server.url(), content=parts())
        finally:
            await client.aclose()

    assert asyncio.run(run()).content == b"done"
    request = server.requests[0]
    assert b"Transfer-Encoding: chunked" in request
    # The test server reads Content-Length bodies only: the chunked one follows the head.
    assert request.endswith(b"\r\n\r\n")


def test_a_partly_read_stream_closes_its_connection(raw):
    server = raw([ok(b"x" * 100), ok(b"second")])

    async def run():
        transport = AiohttpTransport()
        client = httpx.AsyncClient(transport=transport)
        try:
            request = client.build_request("POST", server.url(), content=b"{}")
            response = await client.send(request, stream=True)
            await response.aclose()  # nothing read
            return await client.post(server.url(), content=b"{}")
        finally:
            await client.aclose()

    assert asyncio.run(run()).content == b"second"
    assert server.connections == 2
