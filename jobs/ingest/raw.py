"""What the rejection log keeps of a raw row: the row as received, within bounds.

A client or a file may send anything: deep nesting, huge strings, integers no reader can parse
back, NUL (that no database takes). The log keeps the row exactly while it is within the bounds
below, and the excess as text, so every reader can have it back.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

RAW_MAX_DEPTH = 32
"""Arrays and objects nested deeper are kept as their JSON text."""
RAW_MAX_STRING = 8192
"""Characters kept of a string inside a row (and of such a JSON text)."""
RAW_MAX_CHARS = 65536
"""Characters kept of a whole row: its JSON, or its text (a file's line, whose reader bounds it
the same way, ``jobs/csv_files.py``). A larger row is kept as its JSON text, cut."""
RAW_INT_BITS = 64
"""Integers wider than a signed 64-bit one are kept as their decimal text."""
_INT_RANGE = range(-(2 ** (RAW_INT_BITS - 1)), 2 ** (RAW_INT_BITS - 1))
_TRUNCATED = re.compile(r"\.\.\. \[truncated: [0-9,]+ characters in all\]\Z")


def raw_for_log(raw: Any) -> Any:
    """The row as the log keeps it: exactly as received while it is within the bounds above,
    so that every reader (and orjson, which refuses wider integers and deeper nesting) can have
    it back. Beyond them the excess is kept as text; a text that was cut ends with
    ``... [truncated: N characters in all]``. NUL and lone surrogates are escaped (no database
    takes them)."""
    if isinstance(raw, str):
        return _log_text(raw, limit=RAW_MAX_CHARS)
    value, size = _bounded(raw, 0)
    if size <= RAW_MAX_CHARS:
        return value
    return _log_text(*_json_text(raw, RAW_MAX_CHARS), limit=RAW_MAX_CHARS)


def _bounded(raw: Any, depth: int) -> tuple[Any, int]:
    """``raw`` within the bounds, and about how many characters of JSON it takes; the walk
    stops once the row is over ``RAW_MAX_CHARS``, which is then kept as text anyway."""
    if raw is None or isinstance(raw, bool):
        return raw, 5
    if isinstance(raw, int):
        if raw in _INT_RANGE:
            return raw, 20
        return _bounded(_digits(raw), depth)
    if isinstance(raw, float):
        return (raw, 24) if math.isfinite(raw) else (str(raw), 10)
    if isinstance(raw, str):
        text = _log_text(raw, limit=RAW_MAX_STRING)
        return text, len(text) + 2
    if not isinstance(raw, Mapping | list | tuple):
        return _bounded(str(raw), depth)
    if depth >= RAW_MAX_DEPTH:
        text = _log_text(*_json_text(raw, RAW_MAX_STRING), limit=RAW_MAX_STRING)
        return text, len(text) + 2
    size = 2
    if isinstance(raw, Mapping):
        mapping: dict[str, Any] = {}
        for key, item in raw.items():
            name, key_size = _bounded(str(key), depth)
            mapping[name], item_size = _bounded(item, depth + 1)
            size += key_size + item_size + 2
            if size > RAW_MAX_CHARS:
                return None, size
        return mapping, size
    items = []
    for item in raw:
        value, item_size = _bounded(item, depth + 1)
        items.append(value)
        size += item_size + 1
        if size > RAW_MAX_CHARS:
            return None, size
    return items, size


def _log_text(text: str, total: int | None = None, *, limit: int) -> str:
    """``text`` (the start of one ``total`` characters long) escaped, and cut to ``limit``
    characters and marked if it is longer. A text its reader cut already is left as it is."""
    text = text.replace("\x00", "\\u0000").encode("utf-8", "backslashreplace").decode()
    total = len(text) if total is None else total
    if total <= limit or (len(text) <= limit + 64 and _TRUNCATED.search(text)):
        return text
    return f"{text[:limit]}... [truncated: {total:,} characters in all]"


def _digits(number: int) -> str:
    try:
        return str(number)
    except ValueError:  # Python writes at most 4,300 digits; JSON parsing refuses more anyway
        return hex(number)


class _Token(str):
    """Text the JSON writer copies as it is."""


def _json_text(value: Any, limit: int) -> tuple[str, int]:
    """The compact JSON text of ``value``, written without recursion (the value may nest as
    deeply as the request parser allowed): its first ``limit`` characters, and its length."""
    out: list[str] = []
    size = 0
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, _Token):
            piece = str(item)
        elif isinstance(item, Mapping):
            entries = list(item.items())
            stack.append(_Token("}"))
            for index in range(len(entries) - 1, -1, -1):
                key, child = entries[index]
                stack.append(child)
                stack.append(_Token(json.dumps(str(key), ensure_ascii=False) + ":"))
                if index:
                    stack.append(_Token(","))
            piece = "{"
        elif isinstance(item, list | tuple):
            stack.append(_Token("]"))
            for index in range(len(item) - 1, -1, -1):
                stack.append(item[index])
                if index:
                    stack.append(_Token(","))
            piece = "["
        elif isinstance(item, int) and not isinstance(item, bool):
            piece = _digits(item)
        elif item is None or isinstance(item, bool | float | str):
            piece = json.dumps(item, ensure_ascii=False)
        else:
            piece = json.dumps(str(item), ensure_ascii=False)
        if size < limit:
            out.append(piece)
        size += len(piece)
    return "".join(out)[:limit], size


def jsonable(raw: Any) -> Any:
    """The raw row as JSON: mappings and lists as they are, anything else as its text."""
    if isinstance(raw, float) and not math.isfinite(raw):
        return str(raw)  # NaN and Infinity are not JSON
    if isinstance(raw, str):  # jsonb refuses NUL, and no database takes a lone surrogate
        return raw.replace("\x00", "\\u0000").encode("utf-8", "backslashreplace").decode()
    if raw is None or isinstance(raw, bool | int | float):
        return raw
    if isinstance(raw, Mapping):
        return {jsonable(str(k)): jsonable(v) for k, v in raw.items()}
    if isinstance(raw, list | tuple):
        return [jsonable(v) for v in raw]
    return str(raw)
