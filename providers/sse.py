"""Server-sent events, parsed incrementally as the WHATWG spec describes.

Feed it raw bytes in arbitrary chunks (LineBuffer splits them on CR, LF and CRLF), or decoded
lines. Comments (":" lines) are skipped, several `data:` lines join with "\\n", and an event is
dispatched at the blank line that ends it; an event cut off by the end of the stream is
dropped, as the spec says, so a half-received JSON chunk is never handed on. "[DONE]"
(OpenAI's end marker) is an ordinary event whose `is_done` is true.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class SSEEvent:
    data: str
    event: str = "message"
    id: str | None = None
    retry: int | None = None

    @property
    def is_done(self) -> bool:
        return self.data.strip() == "[DONE]"

    def json(self) -> Any:
        """The data as JSON; ValueError when it is not."""
        return json.loads(self.data)


class LineBuffer:
    """Splits bytes arriving in any chunking into lines ending in CR, LF or CRLF, each decoded
    as UTF-8 once complete (so a character split across chunks is decoded whole)."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[str]:
        """The lines `chunk` completes, without their terminators."""
        self._buffer += chunk
        lines = []
        while True:
            lf = self._buffer.find(b"\n")
            cr = self._buffer.find(b"\r")
            if lf < 0 and cr < 0:
                break
            if cr >= 0 and (lf < 0 or cr < lf):
                if cr == len(self._buffer) - 1:
                    break  # a CR at the end may be the first half of a CRLF: wait for more
                end, skip = cr, 2 if self._buffer[cr + 1 : cr + 2] == b"\n" else 1
            else:
                end, skip = lf, 1
            lines.append(self._buffer[:end].decode("utf-8", errors="replace"))
            self._buffer = self._buffer[end + skip :]
        return lines

    def close(self) -> list[str]:
        """The last line, if the stream ended without a terminator after it (a lone CR left
        waiting for a LF ends an empty line)."""
        rest, self._buffer = self._buffer, b""
        return [rest.rstrip(b"\r").decode("utf-8", errors="replace")] if rest else []


class SSEParser:
    """Incremental parser: `feed_line()` per line, or `feed()` per chunk of bytes."""

    def __init__(self) -> None:
        self._data: list[str] = []
        self._event = ""
        self._last_id: str | None = None
        self._retry: int | None = None
        self._lines = LineBuffer()
        self._first_line = True

    def feed_line(self, line: str) -> SSEEvent | None:
        """One line without its terminator; returns the event this line completes, if any."""
        if self._first_line:
            self._first_line = False
            line = line.removeprefix("\ufeff")
        line = line.rstrip("\r\n")
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self._last_id = value
        elif name == "retry" and value.isdigit():
            self._retry = int(value)
        return None

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Raw bytes in any chunking; a CRLF split across two chunks is handled."""
        return self._events(self._lines.feed(chunk))

    def close(self) -> list[SSEEvent]:
        """End of stream: a last line without terminator still counts; an unfinished event
        (no blank line after it) is discarded."""
        events = self._events(self._lines.close())
        self._data = []
        self._event = ""
        return events

    def _events(self, lines: list[str]) -> list[SSEEvent]:
        events = [self.feed_line(line) for line in lines]
        return [event for event in events if event is not None]

    def _dispatch(self) -> SSEEvent | None:
        data, event = self._data, self._event
        self._data, self._event = [], ""
        if not data:
            return None
        return SSEEvent(
            data="\n".join(data), event=event or "message", id=self._last_id, retry=self._retry
        )


def iter_sse_bytes(chunks: Iterable[bytes]) -> Iterator[SSEEvent]:
    """Events from raw byte chunks, e.g. `response.iter_bytes()`."""
    parser = SSEParser()
    for chunk in chunks:
        yield from parser.feed(chunk)
    yield from parser.close()
