"""HTML sanitising for `email_html_template`, with the allowlist of IBL §8.3.

The document names bleach; bleach is no longer maintained (its 6.x changelog
says so), so this uses nh3 (ammonia) with the same allowlist. `sanitize_html`
is the one function that cleans HTML; everything else calls it.
"""

from __future__ import annotations

import re

import nh3

ALLOWED_TAGS = frozenset(
    {
        "a",
        "abbr",
        "b",
        "blockquote",
        "br",
        "code",
        "div",
        "em",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "hr",
        "i",
        "img",
        "li",
        "ol",
        "p",
        "pre",
        "span",
        "strong",
        "sub",
        "sup",
        "table",
        "tbody",
        "td",
        "th",
        "thead",
        "tr",
        "u",
        "ul",
        "main",
        "footer",
    }
)
# All elements: style, class, id; <a>: href, title, target; <img>: the
# attributes an email image needs. (The document's list is cut off after <a>.)
ALLOWED_ATTRIBUTES = {
    "*": {"style", "class", "id"},
    "a": {"href", "title", "target"},
    "img": {"src", "alt", "title", "width", "height"},
    "td": {"colspan", "rowspan", "align"},
    "th": {"colspan", "rowspan", "align"},
}
URL_SCHEMES = frozenset({"http", "https", "mailto"})
# Inline CSS is how emails are styled; properties that can load URLs or take
# the element out of the flow (background-image, position, behavior, ...) go.
ALLOWED_STYLE_PROPERTIES = frozenset(
    {
        "background-color",
        "border",
        "border-bottom",
        "border-collapse",
        "border-color",
        "border-left",
        "border-radius",
        "border-right",
        "border-spacing",
        "border-style",
        "border-top",
        "border-width",
        "color",
        "display",
        "font",
        "font-family",
        "font-size",
        "font-style",
        "font-weight",
        "height",
        "letter-spacing",
        "line-height",
        "margin",
        "margin-bottom",
        "margin-left",
        "margin-right",
        "margin-top",
        "max-width",
        "min-width",
        "padding",
        "padding-bottom",
        "padding-left",
        "padding-right",
        "padding-top",
        "text-align",
        "text-decoration",
        "text-transform",
        "vertical-align",
        "white-space",
        "width",
    }
)


def _attribute_filter(tag: str, attribute: str, value: str) -> str | None:
    # A link may open a new tab or stay; `_parent`/`_top` or a named frame has no place in an email.
    if attribute == "target" and value not in ("_blank", "_self"):
        return None
    return value


def sanitize_html(html: str) -> str:
    """Remove every tag, attribute, style property and URL scheme outside the allowlist."""
    if not html:
        return ""
    return nh3.clean(
        html,
        tags=set(ALLOWED_TAGS),
        attributes={tag: set(attrs) for tag, attrs in ALLOWED_ATTRIBUTES.items()},
        url_schemes=set(URL_SCHEMES),
        clean_content_tags={"script", "style"},
        strip_comments=True,
        link_rel="noopener noreferrer",
        filter_style_properties=set(ALLOWED_STYLE_PROPERTIES),
        attribute_filter=_attribute_filter,
    )


_TEMPLATE_SYNTAX = re.compile(r"{{.*?}}|{%.*?%}|{#.*?#}", re.DOTALL)


def sanitize_template_source(source: str) -> str:
    """Sanitise an HTML template while keeping its `{{ }}`/`{% %}` syntax intact.

    The sanitiser would otherwise escape the `>` of `{% if a > b %}` or the
    quotes of `{{ x|default:"y" }}`. Template syntax is swapped for inert
    placeholders, the HTML is cleaned, and the syntax is put back. The rendered
    output is sanitised again, because values can carry markup too.
    """
    if not source:
        return ""
    pieces: list[str] = []

    def stash(match: re.Match) -> str:
        pieces.append(match.group(0))
        return f"tplslot{len(pieces) - 1}x"

    protected = _TEMPLATE_SYNTAX.sub(stash, source)
    cleaned = sanitize_html(protected)
    return re.sub(r"tplslot(\d+)x", lambda m: pieces[int(m.group(1))], cleaned)
