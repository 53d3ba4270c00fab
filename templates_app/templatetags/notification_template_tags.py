"""Tags and filters every notification template gets without `{% load %}`.

Template authors are platform admins, and the values come from events posted
by other systems, so every tag here takes anything and never raises: a value
of the wrong shape renders as something sensible (or nothing), not a 500.
"""

from __future__ import annotations

import zoneinfo
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from urllib.parse import urljoin, urlsplit

from django import template
from django.utils import dateformat
from django.utils.dateparse import parse_date, parse_datetime

from templates_app import budget

register = template.Library()

SAFE_SCHEMES = {"http", "https", "mailto"}


def _number(value) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(Decimal(str(value).strip()))
    except (InvalidOperation, ValueError):
        return None


def _trim(number: float) -> str:
    """2.0 -> "2", 2.5 -> "2.5", 2.25 -> "2.25" (at most two decimals)."""
    text = f"{number:.2f}".rstrip("0").rstrip(".")
    return text if text != "-0" else "0"


@register.simple_tag(takes_context=True)
def absolute_url(context, value) -> str:
    """`value` as an absolute URL on the platform's site; unsafe schemes give ""."""
    url = str(value or "").strip()
    if not url:
        return ""
    scheme = urlsplit(url).scheme.lower()
    if scheme:
        return url if scheme in SAFE_SCHEMES else ""
    if url.startswith("//"):
        return "https:" + url
    base = str(context.get("site_url") or "")
    if not base:
        return url
    return urljoin(base.rstrip("/") + "/", url.lstrip("/"))


@register.simple_tag
def plural(count, singular: str = "", plural_form: str = "") -> str:
    """`{% plural days 'day' 'days' %}` -> "1 day", "3 days"."""
    number = _number(count)
    if number is None:
        number = 0.0
    word = singular if number == 1 else (plural_form or f"{singular}s")
    return f"{_trim(number)} {word}".strip()


def _to_datetime(value):
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    text = str(value or "").strip()
    if not text:
        return None
    try:
        parsed = parse_datetime(text)
        if parsed is None:
            day = parse_date(text)
            parsed = datetime(day.year, day.month, day.day) if day else None
    except ValueError:
        return None
    return parsed


@register.simple_tag(takes_context=True)
def local_datetime(context, value, fmt: str = "N j, Y, H:i T") -> str:
    """An ISO date-time shown in the recipient's timezone (`recipient_timezone`).

    Unparseable values are shown as they came.
    """
    moment = _to_datetime(value)
    if moment is None:
        return str(value or "")
    try:
        tz = zoneinfo.ZoneInfo(str(context.get("recipient_timezone") or "UTC"))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        tz = zoneinfo.ZoneInfo("UTC")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zoneinfo.ZoneInfo("UTC"))
    budget.reserve(len(str(fmt)) * budget.DATE_FORMAT_EXPANSION, what="'local_datetime' tag")
    return dateformat.format(moment.astimezone(tz), str(fmt))


@register.filter
def as_date(value, fmt: str = "N j, Y") -> str:
    """An ISO date or date-time formatted with Django's date format characters."""
    moment = _to_datetime(value)
    if moment is None:
        return str(value or "")
    budget.reserve(len(str(fmt)) * budget.DATE_FORMAT_EXPANSION, what="'as_date' filter")
    return dateformat.format(moment, str(fmt))


@register.filter
def hours(value) -> str:
    """Hours as words: 1 -> "1 hour", 5.5 -> "5.5 hours", missing -> "0 hours"."""
    number = _number(value)
    if number is None:
        number = 0.0
    return f"{_trim(number)} {'hour' if number == 1 else 'hours'}"


@register.filter
def percent(value) -> str:
    """0.8 and 80 both read as "80%" (a ratio at most 1 is scaled)."""
    number = _number(value)
    if number is None:
        return ""
    if 0 < number <= 1 and not isinstance(value, int):
        number *= 100
    return f"{_trim(round(number, 1))}%"


def _name_of(item) -> str:
    if isinstance(item, dict):
        for key in ("name", "title", "display_name", "course_name", "program_name", "id"):
            if item.get(key) not in (None, ""):
                return str(item[key])
        return ""
    return "" if item is None else str(item)


@register.simple_tag
def item_name(item) -> str:
    """A list entry's name: the string itself, or a dict's name/title."""
    return _name_of(item)


@register.simple_tag
def course_progress(item) -> str:
    """A course entry's progress as a percentage, or an em dash when unknown."""
    if isinstance(item, dict):
        for key in ("progress", "completion", "percent"):
            if key in item:
                shown = percent(item[key])
                if shown:
                    return shown
    return "—"


@register.simple_tag
def course_line(item) -> str:
    """ "Python Fundamentals (80%)", or just the name when progress is unknown."""
    name = _name_of(item)
    shown = course_progress(item)
    return f"{name} ({shown})" if shown != "—" else name


@register.filter
def join_and(value, conjunction: str = "and") -> str:
    """["a", "b", "c"] -> "a, b and c"."""
    if not isinstance(value, (list, tuple)):
        return _name_of(value)
    items = [_name_of(v) for v in value if _name_of(v)]
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} {conjunction} {items[-1]}"


@register.filter
def bullet_list(value, bullet: str = "-") -> str:
    """A list as lines of "- item" (plain-text bodies)."""
    if not isinstance(value, (list, tuple)):
        value = [value] if value not in (None, "") else []
    bullet = str(bullet)
    budget.reserve(len(value) * (len(bullet) + 2) + sum(len(_name_of(v)) for v in value), what="'bullet_list' filter")
    return "\n".join(f"{bullet} {_name_of(v)}" for v in value if _name_of(v))
