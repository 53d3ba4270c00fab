"""HTML templates through the one sanitiser (`notifications.sanitize`), their syntax kept."""

from __future__ import annotations

import re
import secrets

from notifications.sanitize import sanitize_html

_TEMPLATE_SYNTAX = re.compile(r"{{.*?}}|{%.*?%}|{#.*?#}", re.DOTALL)


def sanitize_template_source(source: str) -> str:
    """Sanitise an HTML template while keeping its `{{ }}`/`{% %}` syntax intact.

    The sanitiser would otherwise escape the `>` of `{% if a > b %}` or the
    quotes of `{{ x|default:"y" }}`. Template syntax is swapped for inert
    placeholders, the HTML is cleaned, and the syntax is put back. The rendered
    output is sanitised again, because values can carry markup too.

    The placeholders carry a random key that does not occur in the source, so
    text of the template cannot pose as one (a template that contains
    `tplslot0x` is just text).
    """
    if not source:
        return ""
    key = secrets.token_hex(8)
    while key in source:
        key = secrets.token_hex(8)
    pieces: list[str] = []

    def stash(match: re.Match) -> str:
        pieces.append(match.group(0))
        return f"tpl{key}s{len(pieces) - 1}x"

    protected = _TEMPLATE_SYNTAX.sub(stash, source)
    cleaned = sanitize_html(protected)

    def restore(match: re.Match) -> str:
        index = int(match.group(1))
        return pieces[index] if index < len(pieces) else ""

    return re.sub(rf"tpl{key}s(\d+)x", restore, cleaned)
