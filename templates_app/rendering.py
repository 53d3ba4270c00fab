"""The locked-down template engine every notification template renders through.

Django's template language is not safe against untrusted authors as shipped:
`{% include %}`/`{% extends %}` read files, `{% load %}` pulls in any installed
library, `{% debug %}` dumps the context, and a lazy object in the context can
reach settings. Platform admins write these templates, so the engine here:

- has no loaders and no libraries, and its builtins are an allowlist: a copy of
  the harmless default tags and filters plus `notification_template_tags`.
  `load`, `include`, `extends`, `block`, `debug`, `ssi`, `url`, `lorem`,
  `csrf_token` and `querystring` are registered only to refuse themselves with
  a clear error (and a line number);
- renders a context of plain values only (strings, numbers, booleans, None,
  lists, dicts), converted fresh for every render so nothing leaks between
  recipients;
- stops a render that runs too long or produces too much output, checking at
  every node (loops included) rather than trusting the template to be small.
"""

from __future__ import annotations

import functools
import time
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from datetime import time as dtime
from decimal import Decimal

from django.conf import settings
from django.template import Context, Engine, Library, Node, TemplateSyntaxError, defaultfilters, defaulttags
from django.template.base import FilterExpression, TextNode, Variable, VariableNode
from django.template.library import import_library

TAG_LIBRARY = "templates_app.templatetags.notification_template_tags"

ALLOWED_TAGS = (
    "autoescape",
    "comment",
    "cycle",
    "filter",
    "firstof",
    "for",
    "if",
    "ifchanged",
    "now",
    "regroup",
    "resetcycle",
    "spaceless",
    "templatetag",
    "verbatim",
    "widthratio",
    "with",
)
REFUSED_TAGS = (
    "load",
    "include",
    "extends",
    "block",
    "debug",
    "ssi",
    "url",
    "lorem",
    "csrf_token",
    "querystring",
)
# Left out: center/ljust/rjust/stringformat take a width that allocates
# gigabytes in one call; pprint shows Python reprs. floatformat is wrapped below.
REFUSED_FILTERS = frozenset({"center", "ljust", "rjust", "stringformat", "pprint", "floatformat"})
MAX_FLOATFORMAT_DIGITS = 20
MAX_CONTEXT_DEPTH = 8


class TemplateError(Exception):
    """A template that cannot be compiled or rendered; `line` is 1-based when known."""

    def __init__(self, message: str, *, line: int | None = None):
        super().__init__(message)
        self.message = message
        self.line = line

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line else self.message


class RenderLimitExceeded(TemplateError):
    pass


def _refuse(name: str):
    def compile_refused(parser, token):
        raise TemplateSyntaxError(f"The '{name}' tag is not allowed in notification templates.")

    return compile_refused


def _floatformat(value, arg=-1):
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


@functools.cache
def _sandbox_library() -> Library:
    library = Library()
    for name in ALLOWED_TAGS:
        library.tags[name] = defaulttags.register.tags[name]
    for name in REFUSED_TAGS:
        library.tags[name] = _refuse(name)
    for name, func in defaultfilters.register.filters.items():
        if name not in REFUSED_FILTERS:
            library.filters[name] = func
    library.filter("floatformat", _floatformat, is_safe=True)
    return library


class SandboxEngine(Engine):
    # Engine() would otherwise prepend Django's full default tag set
    # (including load, include, extends and debug).
    default_builtins: list[str] = []

    def get_template_builtins(self, builtins):
        return [_sandbox_library(), *[import_library(path) for path in builtins]]


# debug=True only makes compile errors carry their line number; there is no
# {% debug %} tag to expose anything.
ENGINE = SandboxEngine(loaders=[], libraries={}, builtins=[TAG_LIBRARY], debug=True, string_if_invalid="")


def _limits() -> tuple[int, float]:
    return (
        getattr(settings, "NOTIFY_TEMPLATE_MAX_OUTPUT_CHARS", 200_000),
        getattr(settings, "NOTIFY_TEMPLATE_MAX_RENDER_SECONDS", 2.0),
    )


class _Budget:
    def __init__(self, max_chars: int, max_seconds: float):
        self.max_chars = max_chars
        self.deadline = time.monotonic() + max_seconds
        self.max_seconds = max_seconds
        self.chars = 0

    def tick(self) -> None:
        if time.monotonic() > self.deadline:
            raise RenderLimitExceeded(f"Rendering took longer than {self.max_seconds:g} s and was stopped.")

    def add(self, n: int) -> None:
        self.chars += n
        if self.chars > self.max_chars:
            raise RenderLimitExceeded(f"Rendered output exceeds {self.max_chars} characters and was stopped.")


class _BudgetContext(Context):
    budget: _Budget | None = None


def _guard(node: Node) -> None:
    """Make one node check the render budget before (and, for leaves, after) rendering."""
    original = node.render_annotated
    leaf = isinstance(node, (TextNode, VariableNode))

    def render_annotated(context):
        budget = getattr(context, "budget", None)
        if budget is not None:
            budget.tick()
        output = original(context)
        if leaf and budget is not None:
            budget.add(len(output))
        return output

    node.render_annotated = render_annotated


def _line_of(exc: Exception) -> int | None:
    info = getattr(exc, "template_debug", None)
    return info.get("line") if isinstance(info, dict) else None


@functools.lru_cache(maxsize=1024)
def compile_template(source: str):
    """Compile once per distinct source; raises TemplateError naming the line."""
    try:
        template = ENGINE.from_string(source)
    except TemplateSyntaxError as exc:
        raise TemplateError(str(exc), line=_line_of(exc)) from None
    for node in template.nodelist.get_nodes_by_type(Node):
        _guard(node)
    return template


def plain(value, _depth: int = 0):
    """The value as plain data: str, int, float, bool, None, list, dict. Anything else becomes a string."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if _depth >= MAX_CONTEXT_DEPTH:
        return ""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, (datetime, date, dtime)):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return {str(k): plain(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain(v, _depth + 1) for v in value]
    return str(value)


def render(source: str, context: dict, *, html: bool = False) -> str:
    """Render `source` with a plain-value copy of `context`.

    `html=True` autoescapes variables (email HTML); text fields (titles, SMS,
    push, in-app bodies) render unescaped. Raises TemplateError on failure.
    """
    if not source:
        return ""
    template = compile_template(source)
    max_chars, max_seconds = _limits()
    ctx = _BudgetContext(plain(context), autoescape=html)
    ctx.budget = _Budget(max_chars, max_seconds)
    try:
        output = template.render(ctx)
    except TemplateError:
        raise
    except Exception as exc:  # noqa: BLE001 - a filter choking on a value must be a clear error, never a 500
        raise TemplateError(f"Rendering failed: {exc}", line=_line_of(exc)) from None
    if len(output) > max_chars:
        raise RenderLimitExceeded(f"Rendered output exceeds {max_chars} characters and was stopped.")
    return output


# --- static checks ---------------------------------------------------------------

_LITERAL_NAMES = frozenset({"True", "False", "None", "forloop", "block"})


@dataclass
class _Names:
    used: dict[str, int]  # name -> first line it appears on
    defined: set[str]


def _variable_root(var) -> str | None:
    if isinstance(var, Variable) and var.lookups:
        return var.lookups[0]
    return None


def _expressions(obj, seen: set[int]):
    """Every FilterExpression reachable from a node's attributes (not its child nodes)."""
    if id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, FilterExpression):
        yield obj
        return
    if isinstance(obj, Node) or obj is None or isinstance(obj, (str, int, float, bool)):
        return
    if isinstance(obj, (list, tuple)):
        for item in obj:
            yield from _expressions(item, seen)
        return
    if isinstance(obj, dict):
        for item in obj.values():
            yield from _expressions(item, seen)
        return
    module = type(obj).__module__ or ""
    if module.startswith("django.template") and hasattr(obj, "__dict__"):
        for item in vars(obj).values():
            yield from _expressions(item, seen)


def _names_in(template) -> _Names:
    names = _Names(used={}, defined=set())
    for node in template.nodelist.get_nodes_by_type(Node):
        line = None
        token = getattr(node, "token", None)
        if token is not None:
            line = getattr(token, "lineno", None)
        for attr in ("loopvars",):
            names.defined.update(getattr(node, attr, None) or [])
        extra = getattr(node, "extra_context", None)
        if isinstance(extra, dict):
            names.defined.update(extra)
        for attr in ("var_name", "variable_name", "target_var", "asvar"):
            value = getattr(node, attr, None)
            if isinstance(value, str):
                names.defined.add(value)
        children = [getattr(node, a, None) for a in ("nodelist", *getattr(node, "child_nodelists", ()))]
        seen: set[int] = {id(c) for c in children if c is not None}
        for attr, value in vars(node).items():
            if attr in ("token", "origin", "render_annotated") or attr in getattr(node, "child_nodelists", ()):
                continue
            for expr in _expressions(value, seen):
                roots = [_variable_root(expr.var)]
                for _func, args in expr.filters:
                    roots.extend(_variable_root(arg) for lookup, arg in args if lookup)
                for root in roots:
                    if root and root not in _LITERAL_NAMES:
                        names.used.setdefault(root, line or 0)
    return names


def template_check(source: str, *, known: set[str]) -> list[dict]:
    """Compile `source` (raises TemplateError) and list variables the type does not provide.

    Returns warnings as `{"variable", "line", "message"}`.
    """
    if not source:
        return []
    template = compile_template(source)
    names = _names_in(template)
    warnings = []
    for name, line in sorted(names.used.items(), key=lambda item: (item[1], item[0])):
        if name in known or name in names.defined:
            continue
        warnings.append(
            {
                "variable": name,
                "line": line or None,
                "message": f"'{name}' is not provided for this notification type and will render empty.",
            }
        )
    return warnings
