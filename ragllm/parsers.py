"""The API's JSON parser: DRF's, refusing bodies nested deeper than any request of ours needs.

Python's decoder recurses once per level: 100,000 nested arrays exhaust the interpreter's
stack (a RecursionError, which used to answer 500), and a few hundred levels that do parse
would still be walked recursively by anything that reads them later (scrubbing, JSONB). Our
requests are at most a few levels deep, so anything past MAX_JSON_DEPTH is refused as a parse
error (400) before a view sees it.
"""

from __future__ import annotations

from typing import Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError

MAX_JSON_DEPTH = 32


def json_depth_exceeds(value: Any, limit: int) -> bool:
    """Whether `value` nests containers more than `limit` deep (iterative: no recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        too_deep = ParseError(f"JSON parse error - nested deeper than {MAX_JSON_DEPTH} levels")
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise too_deep from None
        if json_depth_exceeds(data, MAX_JSON_DEPTH):
            raise too_deep
        return data
