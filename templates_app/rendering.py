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
  every node (loops included) and inside every filter (`budget`,
  `sandbox_filters`): a filter that would build a value over the budget is
  refused before it builds it;
- bounds the context it is given (`NOTIFY_TEMPLATE_MAX_CONTEXT_CHARS`);
- reports errors by line and name, never with the context's values (a
  recipient's data or signed unsubscribe link must not end up in an error
  shown to an admin or stored on a build).
"""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from datetime import time as dtime
from decimal import Decimal

from django.conf import settings
from django.template import (
    Context,
    Engine,
    Library,
    Node,
    TemplateSyntaxError,
    VariableDoesNotExist,
    defaultfilters,
    defaulttags,
)
from django.template.base import FilterExpression, Variable, VariableNode
from django.template.library import import_library
from django.utils.html import conditional_escape

from templates_app import budget as render_budget
from templates_app import sandbox_filters
from templates_app.budget import RenderLimitExceeded, TemplateError

__all__ = [
    "RenderLimitExceeded",
    "SharedContext",
    "TemplateError",
    "compile_template",
    "names_read",
    "plain",
    "render",
    "substitution",
    "template_check",
]

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
MAX_CONTEXT_DEPTH = 8
MAX_NESTING = 50
NESTED_TOO_DEEP = f"Tags are nested more than {MAX_NESTING} deep; no notification needs that many levels."


def _refuse(name: str):
    def compile_refused(parser, token):
        raise TemplateSyntaxError(f"The '{name}' tag is not allowed in notification templates.")

    return compile_refused


@functools.cache
def _sandbox_library() -> Library:
    """The allowlisted tags, and every filter (Django's and ours) charging the render budget."""
    ours = import_library(TAG_LIBRARY)
    library = Library()
    for name in ALLOWED_TAGS:
        library.tags[name] = defaulttags.register.tags[name]
    for name in REFUSED_TAGS:
        library.tags[name] = _refuse(name)
    library.tags.update(ours.tags)
    filters = {
        name: func
        for name, func in defaultfilters.register.filters.items()
        if name not in sandbox_filters.REFUSED_FILTERS
    }
    filters.update(ours.filters)
    for name, func in filters.items():
        if name in sandbox_filters.REPLACED:
            func, flags = sandbox_filters.REPLACED[name]
            library.filter(name, func, **flags)
            func = library.filters[name]
        library.filters[name] = sandbox_filters.charged(name, func)
    return library


class SandboxEngine(Engine):
    # Engine() would otherwise prepend Django's full default tag set
    # (including load, include, extends and debug).
    default_builtins: list[str] = []

    def get_template_builtins(self, builtins):
        return [_sandbox_library()]


# debug=True only makes compile errors carry their line number; there is no
# {% debug %} tag to expose anything.
ENGINE = SandboxEngine(loaders=[], libraries={}, builtins=[], debug=True, string_if_invalid="")


def _limits() -> tuple[int, float, int]:
    return (
        getattr(settings, "NOTIFY_TEMPLATE_MAX_OUTPUT_CHARS", 200_000),
        getattr(settings, "NOTIFY_TEMPLATE_MAX_RENDER_SECONDS", 2.0),
        getattr(settings, "NOTIFY_TEMPLATE_MAX_CONTEXT_CHARS", 1_000_000),
    )


def _is_leaf(node: Node) -> bool:
    return not any(getattr(node, attr, None) for attr in node.child_nodelists)


def _guard(node: Node) -> None:
    """Make one node check the render budget before (and, for leaves, after) rendering."""
    original = node.render_annotated
    leaf = _is_leaf(node)

    def render_annotated(context):
        budget = render_budget.current()
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
    except RecursionError:
        # Django's parser recurses once per nested block tag.
        raise TemplateError(NESTED_TOO_DEEP) from None
    if _depth(template.nodelist) > MAX_NESTING:
        # Rendering recurses too, a few frames per level: refuse now, not at every send.
        raise TemplateError(NESTED_TOO_DEEP)
    for node in template.nodelist.get_nodes_by_type(Node):
        _guard(node)
    return template


def _depth(nodelist) -> int:
    deepest = 0
    stack = [(node, 1) for node in nodelist]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        # ({% if %}'s `nodelist` is every branch's nodes together.)
        for attr in node.child_nodelists:
            stack.extend((child, depth + 1) for child in getattr(node, attr, None) or ())
    return deepest - 1  # block tags around the deepest node


class _Room:
    """What is left of the context size limit while a context is copied."""

    def __init__(self, limit: int):
        self.limit = limit
        self.left = limit

    def take(self, n: int) -> None:
        self.left -= n
        if self.left < 0:
            raise RenderLimitExceeded(
                f"The values given to the template exceed {self.limit:,} characters; nothing was rendered."
            )


def plain(value, _depth: int = 0, _room: _Room | None = None):
    """The value as plain data: str, int, float, bool, None, list, dict. Anything else becomes a string.

    With `_room`, the copy counts characters and items against it and stops
    as soon as the value is too large.
    """
    if isinstance(value, str):
        if _room is not None:
            _room.take(len(value))
        return value
    if value is None or isinstance(value, (bool, int, float)):
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
        if _room is not None:
            _room.take(render_budget.ITEM_COST * len(value))
        return {plain(str(k), _depth, _room): plain(v, _depth + 1, _room) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        if _room is not None:
            _room.take(render_budget.ITEM_COST * len(value))
        return [plain(v, _depth + 1, _room) for v in value]
    return plain(str(value), _depth, _room)


def _missing_name(exc: VariableDoesNotExist) -> str:
    params = getattr(exc, "params", ()) or ()
    return params[0] if params and isinstance(params[0], str) else ""


def _render_error(exc: Exception) -> TemplateError:
    """A TemplateError naming the line and, for a failed lookup, the name, never a value.

    Django's own messages print the whole context for a failed lookup
    ("Failed lookup for key [x] in [{...}]") and Python's quote the value
    they choked on, so neither is passed on.
    """
    line = _line_of(exc)
    if isinstance(exc, RecursionError):
        return TemplateError(NESTED_TOO_DEEP, line=line)
    if isinstance(exc, VariableDoesNotExist):
        name = _missing_name(exc)
        return TemplateError(f"'{name}' is not defined; a filter argument or tag value must exist.", line=line)
    if isinstance(exc, TemplateSyntaxError):
        # Raised by tags at render time with text about the template itself.
        return TemplateError(str(exc).split("\n", 1)[0][:300], line=line)
    return TemplateError(f"A filter or tag could not handle its value ({type(exc).__name__}).", line=line)


class SharedContext:
    """The part of a context that many renders share (a send's globals and variables), made plain once.

    A 100k-recipient send would otherwise convert the same thirty values
    100k times. Its scalars are reused as they are; its lists and dicts are
    copied again for every render, because a template can change them
    (`{{ items.pop }}` calls the method).
    """

    def __init__(self, context: dict):
        room = _Room(_limits()[2])
        # Too large a context is an error of each render (the caller's error per field), not of the send.
        self.error: RenderLimitExceeded | None = None
        try:
            self.values = plain(context, _room=room)
        except RenderLimitExceeded as exc:
            self.values, self.error = {}, exc
        self.size = room.limit - room.left
        self._mutable = [key for key, value in self.values.items() if isinstance(value, (list, dict))]

    def fresh(self) -> dict:
        values = dict(self.values)
        for key in self._mutable:
            values[key] = plain(values[key], 1)
        return values


def render(source: str, context: dict, *, html: bool = False, shared: SharedContext | None = None) -> str:
    """Render `source` with a plain-value copy of `context` (over a copy of `shared`, when given).

    `html=True` autoescapes variables (email HTML); text fields (titles, SMS,
    push, in-app bodies) render unescaped. Raises TemplateError on failure,
    RenderLimitExceeded when the render or its context is over budget.
    """
    if not source:
        return ""
    template = compile_template(source)
    max_chars, max_seconds, max_context = _limits()
    room = _Room(max_context)
    if shared is None:
        values = plain(context, _room=room)
    else:
        if shared.error is not None:
            raise RenderLimitExceeded(shared.error.message)
        room.take(shared.size)
        values = shared.fresh()
        values.update(plain(context, _room=room))
    ctx = Context(values, autoescape=html)
    token = render_budget.activate(render_budget.Budget(max_chars, max_seconds))
    try:
        output = template.render(ctx)
    except TemplateError as exc:
        if exc.line is None:
            exc.line = _line_of(exc)
        raise
    except Exception as exc:  # noqa: BLE001 - a filter choking on a value must be a clear error, never a 500
        raise _render_error(exc) from None
    finally:
        render_budget.deactivate(token)
    if len(output) > max_chars:
        raise RenderLimitExceeded(f"Rendered output exceeds {max_chars} characters and was stopped.")
    return output


class Substitution:
    """A field rendered once for a whole send, with holes where it shows a recipient's `{{ name }}`.

    "Hi {{ username }}, we restart at 02:00." renders once over the send's
    context; per recipient only the name's value goes into its place, as
    Django would put it there (escaped in HTML). `substitution` builds one
    only when every use of the recipient's names is such a bare variable.
    """

    def __init__(self, parts: list[str], names: list[str], *, html: bool, defaults: dict):
        self.parts = parts  # literal, name, literal, name, ..., literal
        self.names = names
        self.html = html
        self.defaults = defaults

    def fill(self, values: dict) -> str | None:
        """The field for one recipient's `values`; None when a value is not text (render it in full)."""
        out = [self.parts[0]]
        for name, literal in zip(self.names, self.parts[1:], strict=True):
            value = values[name] if name in values else self.defaults.get(name, "")
            if not isinstance(value, str):
                return None  # numbers, dates ... go through Django's localisation
            out.append(conditional_escape(value) if self.html else value)
            out.append(literal)
        text = "".join(out)
        max_chars = _limits()[0]
        if len(text) > max_chars:
            raise RenderLimitExceeded(f"Rendered output exceeds {max_chars} characters and was stopped.")
        return text


def _bare_name(node: Node) -> str | None:
    """`name` for a `{{ name }}` with no filter and no attribute lookup."""
    if not isinstance(node, VariableNode) or node.filter_expression.filters:
        return None
    var = node.filter_expression.var
    if isinstance(var, Variable) and var.lookups and len(var.lookups) == 1 and not var.translate:
        return var.lookups[0]
    return None


def substitution(source: str, *, names: frozenset[str], shared: SharedContext, html: bool) -> Substitution | None:
    """`source` as a Substitution for `names`, or None when it uses them otherwise (see Substitution).

    Raises TemplateError when the shared part cannot render.
    """
    template = compile_template(source)
    for node in template.nodelist:
        if _bare_name(node) in names:
            continue
        found = _names_in_nodes(node.get_nodes_by_type(Node))
        if found.open or not names.isdisjoint(found.used):
            return None  # in a tag, through a filter: rendered per recipient in full
    marker = uuid.uuid4().hex
    order = sorted(names)
    output = render(source, {name: f"{marker}{i}{marker}" for i, name in enumerate(order)}, html=html, shared=shared)
    pieces = output.split(marker)
    # literal, index, "", index, ..., literal: a hole is `marker index marker`.
    parts, holes = [pieces[0]], []
    for i in range(1, len(pieces), 2):
        holes.append(order[int(pieces[i])])
        parts.append(pieces[i + 1])
    return Substitution(parts, holes, html=html, defaults=shared.values)


# --- static checks ---------------------------------------------------------------

_LITERAL_NAMES = frozenset({"True", "False", "None", "forloop", "block"})


@dataclass
class _Names:
    used: dict[str, int]  # name -> first line it appears on
    defined: set[str]
    # A tag reads the context beyond its arguments, or the output changes from one render to the next.
    open: bool = False


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
    return _names_in_nodes(template.nodelist.get_nodes_by_type(Node))


def _names_in_nodes(nodes) -> _Names:
    names = _Names(used={}, defined=set())
    unstable = _sandbox_library().filters["random"]
    for node in nodes:
        if getattr(node, "takes_context", False) or isinstance(node, defaulttags.NowNode):
            names.open = True
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
                for func, args in expr.filters:
                    roots.extend(_variable_root(arg) for lookup, arg in args if lookup)
                    names.open = names.open or func is unstable
                for root in roots:
                    if root and root not in _LITERAL_NAMES:
                        names.used.setdefault(root, line or 0)
    return names


def names_read(source: str) -> frozenset[str] | None:
    """The context names `source` reads, or None when that cannot be told from its text.

    None for a tag handed the whole context (`local_datetime` reads
    `recipient_timezone` by itself) and for output that changes from one
    render to the next (`{% now %}`, `random`). A send renders a field that
    reads no recipient's variable once for all its recipients (see
    `messages.renderer_for`). Raises TemplateError.
    """
    if not source:
        return frozenset()
    names = _names_in(compile_template(source))
    return None if names.open else frozenset(names.used)


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
