"""Filters of the sandbox, each charging the render budget (see `budget`).

Django's builtin filters trust their template; ours come from platform admins
and their arguments from events. Audit of the builtins:

- can multiply their input without bound, so replaced here by versions that
  reserve the exact size of their result first: `join` (items x separator),
  `add` (a `{% with a=a|add:a %}` chain doubles each time), `make_list` (a list
  item per character), `center`/`ljust`/`rjust` (the width is the argument),
  `stringformat` (width and precision are the argument), `floatformat` (the
  precision is the argument), and our own `bullet_list` and `as_date` (a date
  format character can stand for 30);
- grow their input by a bounded factor (`escape`, `force_escape`, `escapejs`,
  `addslashes`, `iriencode`, `urlencode`, `linebreaks`, `linebreaksbr`,
  `linenumbers`, `urlize`, `urlizetrunc`, `unordered_list`, `wordwrap`,
  `json_script`, `title`/`upper`/`lower`/`capfirst`): their input is itself
  bounded, and their result is charged as soon as it is built;
- never grow it (`truncate*`, `slice`, `striptags`, `cut`, `first`, `last`,
  `dictsort`, `pluralize`, `yesno`, `default`, ...): charged like the rest;
- `pprint` shows Python reprs and is left out.
"""

from __future__ import annotations

import functools
import re

from django.template import defaultfilters
from django.utils.html import conditional_escape
from django.utils.safestring import mark_safe

from templates_app import budget

MAX_FLOATFORMAT_DIGITS = 20
REFUSED_FILTERS = frozenset({"pprint"})


def charged(name: str, func):
    """`func` that ticks the clock before it runs and charges its result after."""

    @functools.wraps(func)  # keeps is_safe/needs_autoescape/expects_localtime and the argument check
    def checked(value, *args, **kwargs):
        current = budget.current()
        if current is not None:
            current.tick()
        result = func(value, *args, **kwargs)
        if current is not None:
            current.charge(budget.size_of(result), what=f"'{name}' filter")
        return result

    return checked


def _reserve(n: int, name: str) -> None:
    budget.reserve(n, what=f"'{name}' filter")


def join(value, arg, autoescape=True):
    """Django's `join`, refusing a result over the budget before joining."""
    try:
        if autoescape:
            items = [conditional_escape(v) for v in value]
            sep = conditional_escape(arg)
        else:
            items = list(value)
            sep = arg
        size = sum(len(item) for item in items) + max(len(items) - 1, 0) * len(sep)
    except TypeError:  # Django fails silently when arg or the items are not strings
        return value
    _reserve(size, "join")
    try:
        return mark_safe(sep.join(items))
    except TypeError:
        return value


def add(value, arg):
    """Django's `add`, refusing a concatenation over the budget before building it."""
    try:
        return int(value) + int(arg)
    except (ValueError, TypeError):
        pass
    try:
        _reserve(len(value) + len(arg), "add")
    except TypeError:
        pass  # no length: not a concatenation that can grow
    try:
        return value + arg
    except Exception:  # noqa: BLE001 - Django's add renders "" for anything it cannot add
        return ""


def make_list(value):
    text = str(value)
    _reserve((budget.ITEM_COST + 1) * len(text), "make_list")  # an item and a character each
    return list(text)


def _width(arg) -> int:
    return int(arg)


def _padded(method: str):
    def pad(value, arg):
        text = str(value)
        width = _width(arg)
        _reserve(max(width, len(text)), method)
        return getattr(text, method)(width)

    pad.__name__ = method
    return pad


_NUMBERS = re.compile(r"\d+")


def stringformat(value, arg):
    """Django's `stringformat` with its width and precision counted before formatting."""
    spec = str(arg)
    numbers = [len(n) for n in _NUMBERS.findall(spec)]
    if any(n > 7 for n in numbers):
        _reserve(10**8, "stringformat")  # refuses: no width or precision of that size fits
    width = sum(int(n) for n in _NUMBERS.findall(spec))
    shown = str(value) if not isinstance(value, (int, float)) else ""
    _reserve(width + len(shown) + len(spec) + 32, "stringformat")
    return defaultfilters.stringformat(value, arg)


def floatformat(value, arg=-1):
    """floatformat with its precision capped (a huge one allocates huge Decimals)."""
    text = str(arg)
    digits = "".join(ch for ch in text if ch.isdigit() or ch == "-")
    suffix = "".join(ch for ch in text if ch in "gu")
    try:
        precision = int(digits) if digits not in ("", "-") else -1
    except ValueError:
        precision = -1
    precision = max(-MAX_FLOATFORMAT_DIGITS, min(MAX_FLOATFORMAT_DIGITS, precision))
    return defaultfilters.floatformat(value, f"{precision}{suffix}")


def date_format_reserve(fmt, name: str) -> None:
    _reserve(len(str(fmt)) * budget.DATE_FORMAT_EXPANSION, name)


def _date_like(name: str, func):
    def formatted(value, arg=None):
        if arg is not None:
            date_format_reserve(arg, name)
        return func(value, arg)

    return formatted


# name -> (replacement, flags). Flags are Django's, so escaping behaves as before.
REPLACED = {
    "join": (join, {"is_safe": True, "needs_autoescape": True}),
    "add": (add, {"is_safe": False}),
    "make_list": (make_list, {"is_safe": False}),
    "center": (_padded("center"), {"is_safe": True}),
    "ljust": (_padded("ljust"), {"is_safe": True}),
    "rjust": (_padded("rjust"), {"is_safe": True}),
    "stringformat": (stringformat, {"is_safe": True}),
    "floatformat": (floatformat, {"is_safe": True}),
    "date": (_date_like("date", defaultfilters.date), {"is_safe": False, "expects_localtime": True}),
    "time": (_date_like("time", defaultfilters.time), {"is_safe": False, "expects_localtime": True}),
}
