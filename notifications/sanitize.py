"""The one HTML sanitiser, with the allowlist of IBL §8.3.

It lives in the core because the core's own paths (bulk email, the pipeline's
`Message.html`, the email backend, the org inbox) use it; templates keep their
`{{ }}`/`{% %}` syntax through it with `templates_app.sanitize`.

Every field that can carry HTML to a person goes through `sanitize_html`:
`email_html_template` (the source when saved, the output when rendered), the
v1 bulk-email `html` (when the job is stored, and every `Message.html` the
pipeline writes and the email backend sends), and the org inbox `body`, which
the document says may contain HTML (so clients insert it as HTML). Values
placed into HTML templates are escaped (autoescape), not sanitised: a learner's
`<b>` in a ticket reads as typed.

The document names bleach; bleach is no longer maintained (its 6.x changelog
says so), so this uses nh3 (ammonia) with the same allowlist.
"""

from __future__ import annotations

import functools
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
# the element out of the flow (background-image, position, behavior, ...) go,
# and so does any declaration whose value calls a function other than
# `SAFE_CSS_FUNCTIONS` (`url()`, `image-set()`, `expression()`, ...), so the
# `background` shorthand keeps its colour and never loads an image.
ALLOWED_STYLE_PROPERTIES = frozenset(
    {
        "background",
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
        "text-indent",
        "text-transform",
        "vertical-align",
        "white-space",
        "width",
    }
)


SAFE_CSS_FUNCTIONS = frozenset(
    {"rgb", "rgba", "hsl", "hsla", "calc", "min", "max", "clamp", "linear-gradient", "radial-gradient"}
)
_CSS_FUNCTION = re.compile(r"([a-zA-Z_-][a-zA-Z0-9_-]*)?\s*\(")


def _declarations(style: str) -> list[str]:
    """Split a style attribute at `;` outside quotes and parentheses."""
    parts, current, depth, quote = [], [], 0, ""
    for ch in style:
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth = max(depth - 1, 0)
        elif ch == ";" and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(ch)
    parts.append("".join(current))
    return parts


def _safe_declaration(declaration: str) -> bool:
    _, sep, value = declaration.partition(":")
    if not sep:
        return False
    # Escapes and comments can spell anything (`u\72l(`, `ur/**/l(`); no email needs them.
    if "\\" in value or "/*" in value or "@" in value:
        return False
    functions = [(name or "").lower() for name in _CSS_FUNCTION.findall(value)]
    return all(name in SAFE_CSS_FUNCTIONS for name in functions)


def clean_style(style: str) -> str:
    """The declarations of a style attribute whose values load nothing (property names are nh3's job)."""
    return ";".join(d.strip() for d in _declarations(style) if d.strip() and _safe_declaration(d))


def _attribute_filter(tag: str, attribute: str, value: str) -> str | None:
    # A link may open a new tab or stay; `_parent`/`_top` or a named frame has no place in an email.
    if attribute == "target" and value not in ("_blank", "_self"):
        return None
    if attribute == "style":
        return clean_style(value) or None
    return value


class SanitizedHTML(str):
    """HTML that has been through `sanitize_html`; passing it again returns it as it is."""

    __slots__ = ()


@functools.cache
def _cleaner() -> nh3.Cleaner:
    # Built once: the allowlist does not change, and a prepared Cleaner is
    # noticeably faster than nh3.clean() rebuilding it for every message.
    return nh3.Cleaner(
        tags=set(ALLOWED_TAGS),
        attributes={tag: set(attrs) for tag, attrs in ALLOWED_ATTRIBUTES.items()},
        url_schemes=set(URL_SCHEMES),
        clean_content_tags={"script", "style"},
        strip_comments=True,
        link_rel="noopener noreferrer",
        filter_style_properties=set(ALLOWED_STYLE_PROPERTIES),
        attribute_filter=_attribute_filter,
    )


def sanitize_html(html: str) -> str:
    """Remove every tag, attribute, style property and URL scheme outside the allowlist."""
    if isinstance(html, SanitizedHTML):
        return html
    if not html:
        return SanitizedHTML("")
    return SanitizedHTML(_cleaner().clean(str(html)))
