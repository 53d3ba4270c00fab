"""The JSON body parser of every surface: hostile bodies are 4xx before any view sees them.

DRF's own parser reads any size, recurses as deep as the body nests (a body
nested 100,000 deep ends in `RecursionError`), accepts any top-level value
(views expect an object) and lets NUL bytes and lone surrogates through, which
PostgreSQL and the UTF-8 encoders refuse later, mid-write. This one refuses
all of these with a `ParseError` (400), or `RequestDataTooBig` (413), which the
exception handler words in the caller's surface format.
"""

from __future__ import annotations

import json

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from rest_framework import parsers
from rest_framework.exceptions import ParseError

from notifications.bounds import text_problem


def json_value_problem(value, *, max_depth: int) -> str | None:
    """Why a parsed JSON value may not be stored, or None.

    Iterative, so that checking a deep value cannot itself overflow the stack.
    """
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            problem = text_problem(item)
            if problem:
                return problem
        elif isinstance(item, (dict, list)):
            if depth > max_depth:
                return f"JSON nested deeper than {max_depth} levels"
            if isinstance(item, dict):
                for key, child in item.items():
                    problem = text_problem(key)
                    if problem:
                        return problem
                    stack.append((child, depth + 1))
            else:
                stack.extend((child, depth + 1) for child in item)
    return None


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def _reject_huge_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


class JSONParser(parsers.JSONParser):
    """JSON bodies: at most DATA_UPLOAD_MAX_MEMORY_SIZE bytes, an object, API_JSON_MAX_DEPTH deep."""

    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raw = stream.read(limit + 1) if limit is not None else stream.read()
        if limit is not None and len(raw) > limit:
            raise RequestDataTooBig("Request body exceeded settings.DATA_UPLOAD_MAX_MEMORY_SIZE.")
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = raw.decode(encoding)
            data = json.loads(text, parse_constant=_reject_constant, parse_float=_reject_huge_float)
        except RecursionError:
            raise ParseError(f"JSON parse error - nested deeper than {settings.API_JSON_MAX_DEPTH} levels") from None
        except ValueError as exc:  # also UnicodeDecodeError and over-long integers
            raise ParseError(f"JSON parse error - {exc}") from None
        if not isinstance(data, dict):
            raise ParseError("JSON parse error - the body must be a JSON object")
        problem = json_value_problem(data, max_depth=settings.API_JSON_MAX_DEPTH)
        if problem:
            raise ParseError(f"JSON parse error - {problem}")
        return data
