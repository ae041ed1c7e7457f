"""A small progress bar for management commands (writes to the command's stdout)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sized
from typing import TypeVar

T = TypeVar("T")


def progress_bar(items: Iterable[T], *, stream, label: str = "", width: int = 30) -> Iterator[T]:
    """Yield `items`, redrawing `[#####.....] n/total label` on `stream` as they pass.

    On a terminal the bar redraws in place; in a log or pipe it prints at most ~10 lines.
    """
    total = len(items) if isinstance(items, Sized) else None
    is_tty = getattr(stream, "isatty", lambda: False)()
    step = max(1, (total or 0) // 10)
    for done, item in enumerate(items, start=1):
        yield item
        if total and (is_tty or done % step == 0 or done == total):
            filled = int(width * done / total)
            line = f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {label}"
            stream.write(("\r" + line) if is_tty else line, ending="" if is_tty else "\n")
            stream.flush()
    if total and is_tty:
        stream.write("", ending="\n")
