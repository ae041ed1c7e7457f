"""Small readers of providers' JSON, shared by the families."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def dig(data: Any, *path: str) -> Any:
    """data[path[0]][path[1]]..., or None where a step is missing or not an object."""
    for key in path:
        if not isinstance(data, Mapping):
            return None
        data = data.get(key)
    return data


def mapping(value: Any) -> Mapping[str, Any]:
    """`value` if it is a JSON object, else an empty one."""
    return value if isinstance(value, Mapping) else {}


def content_parts(content: Any) -> list[Mapping[str, Any]]:
    """The parts of an OpenAI message content: a string is one text part."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list | tuple):
        return []
    return [part for part in content if isinstance(part, Mapping)]


def content_text(content: Any, *, text_parts_only: bool = False) -> str:
    """The text of an OpenAI message content: a string, or the texts of its parts joined
    (with `text_parts_only`, only parts of type "text")."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    return "".join(
        str(part.get("text") or "")
        for part in content
        if isinstance(part, Mapping) and (not text_parts_only or part.get("type") == "text")
    )


def add_turn(
    turns: list[dict[str, Any]], role: str, items: list[Any], key: str = "content"
) -> None:
    """Append a turn, or extend the last one if it has the same role: APIs that want user and
    assistant turns to alternate take the results of parallel tool calls in one user turn."""
    if turns and turns[-1]["role"] == role:
        turns[-1][key].extend(items)
    else:
        turns.append({"role": role, key: items})
