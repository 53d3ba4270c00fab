"""XSS vectors for every HTML sink, and the sanitiser's rules to check outputs against.

The vectors follow the OWASP XSS filter evasion cheat sheet and the HTML5
Security Cheatsheet: script and event handlers, URL schemes in every spelling,
CSS that loads or runs, markup that parsers disagree on. Each one that runs
calls `alert`, `confirm` or `prompt`.
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

from notifications.sanitize import ALLOWED_ATTRIBUTES, ALLOWED_TAGS, URL_SCHEMES

VECTORS = [
    "<script>alert(1)</script>",
    "<SCRIPT SRC=https://xss.example/x.js></SCRIPT>",
    "<script>alert(String.fromCharCode(88,83,83))</script>",
    "<<SCRIPT>alert(1);//<</SCRIPT>",
    "<scr<script>ipt>alert(1)</script>",
    '<img src=x onerror="alert(1)">',
    "<img src=x onerror=alert(1)//",
    "<IMG SRC=\"javascript:alert('XSS');\">",
    "<IMG SRC=JaVaScRiPt:alert(1)>",
    "<IMG SRC=`javascript:alert(1)`>",
    "<IMG SRC=&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;&#58;"
    "&#97;&#108;&#101;&#114;&#116;&#40;&#49;&#41;>",
    "<IMG SRC=&#x6A&#x61&#x76&#x61&#x73&#x63&#x72&#x69&#x70&#x74&#x3A&#x61&#x6C&#x65&#x72&#x74&#x28&#x31&#x29>",
    '<IMG SRC="jav\tascript:alert(1);">',
    '<IMG SRC="jav&#x09;ascript:alert(1);">',
    '<IMG SRC=" &#14;  javascript:alert(1);">',
    '<IMG """><SCRIPT>alert(1)</SCRIPT>">',
    "<img/src/onerror=alert(1)>",
    "<svg onload=alert(1)>",
    "<svg><script>alert(1)</script></svg>",
    '<svg><a xlink:href="javascript:alert(1)"><text x="20" y="20">XSS</text></a></svg>',
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)></style></mglyph></table></mtext></math>",
    "<body onload=alert(1)>",
    "<BODY BACKGROUND=\"javascript:alert('XSS')\">",
    '<iframe src="javascript:alert(1)"></iframe>',
    '<iframe srcdoc="&lt;script&gt;alert(1)&lt;/script&gt;"></iframe>',
    '<object data="javascript:alert(1)"></object>',
    '<embed src="javascript:alert(1)">',
    '<a href="javascript:alert(1)">click</a>',
    '<a href="JAVASCRIPT:alert(1)">click</a>',
    '<a href="  javascript:alert(1)">click</a>',
    '<a href="java&#x09;script:alert(1)">click</a>',
    '<a href="java\nscript:alert(1)">click</a>',
    '<a href="&#106;avascript:alert(1)">click</a>',
    '<a href="vbscript:msgbox(1)">click</a>',
    '<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">click</a>',
    '<a href="https://ok.example" onclick="alert(1)">click</a>',
    '<a href="https://ok.example" onmouseover=alert(1)>hover</a>',
    '<div style="background-image: url(javascript:alert(1))">x</div>',
    '<div style="background:url(&quot;javascript:alert(1)&quot;)">x</div>',
    '<div style="width: expression(alert(1));">x</div>',
    '<div style="background:u\\72l(javascript:alert(1))">x</div>',
    '<div style="-moz-binding:url(https://xss.example/xss.xml#xss)">x</div>',
    '<p style="color:red;behavior:url(xss.htc)">x</p>',
    "<style>@import 'https://xss.example/xss.css';</style>",
    "<style>body{background:url(javascript:alert(1))}</style>",
    '<link rel="stylesheet" href="javascript:alert(1)">',
    '<meta http-equiv="refresh" content="0;url=javascript:alert(\'XSS\');">',
    "<base href=\"javascript:alert('XSS');//\">",
    '<form action="javascript:alert(1)"><input type="submit"></form>',
    '<input autofocus onfocus="alert(1)">',
    '<button formaction="javascript:alert(1)">x</button>',
    '<details open ontoggle="alert(1)">x</details>',
    '<video><source onerror="alert(1)"></video>',
    '<audio src=x onerror="alert(1)"></audio>',
    '<marquee onstart="alert(1)">x</marquee>',
    '<table background="javascript:alert(1)"><tr><td>x</td></tr></table>',
    '<td background="javascript:alert(1)">x</td>',
    "<!--<img src=x onerror=alert(1)>-->",
    '<![CDATA[<img src=x onerror="alert(1)">]]>',
    '<noscript><p title="</noscript><img src=x onerror=alert(1)>">',
    "<xss id=x tabindex=1 onfocusin=alert(1)></xss>",
    '<a href="https://ok.example" target="_top">x</a>',
    '<img src="https://ok.example/a.png" srcset="javascript:alert(1)">',
    '"><img src=x onerror=alert(1)>',
    "'><script>alert(1)</script>",
    "</textarea><script>confirm(1)</script>",
    '<template><img src=x onerror="alert(1)"></template>',
    '<div id="x" data-x="1" onpointerenter=prompt(1)>x</div>',
]

_URL_ATTRIBUTES = {"href", "src", "action", "formaction", "background", "srcset", "xlink:href", "data", "poster"}
_CONTROL = re.compile(r"[\x00-\x20]+")
# A URL's scheme as browsers parse it; anything else before a colon makes a relative URL.
_SCHEME = re.compile(r"^([a-z][a-z0-9+.-]*):")


class _Collector(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag not in ALLOWED_TAGS:
            self.problems.append(f"tag <{tag}>")
        allowed = ALLOWED_ATTRIBUTES.get("*", set()) | ALLOWED_ATTRIBUTES.get(tag, set()) | {"rel"}
        for name, value in attrs:
            value = value or ""
            if name.startswith("on") or name not in allowed:
                self.problems.append(f"attribute {name} on <{tag}>")
            if name in _URL_ATTRIBUTES:
                plain = _CONTROL.sub("", html.unescape(value)).lower()
                scheme = _SCHEME.match(plain)
                if scheme and scheme.group(1) not in URL_SCHEMES:
                    self.problems.append(f"{scheme.group(1)}: URL in {name}")
            if name == "style":
                lowered = value.lower()
                for bad in ("url(", "expression", "javascript", "\\", "binding", "behavior", "@import"):
                    if bad in lowered:
                        self.problems.append(f"style with {bad}")
            if name == "target" and value not in ("_blank", "_self"):
                self.problems.append(f"target={value}")

    handle_startendtag = handle_starttag


def html_problems(markup: str) -> list[str]:
    """What in `markup` breaks the sanitiser's rules (empty when it is safe)."""
    collector = _Collector()
    collector.feed(markup)
    collector.close()
    lowered = markup.lower()
    for raw in ("<script", "<style", "<iframe", "<svg", "<math", "<object", "<embed", "<base", "<meta", "<link"):
        if raw in lowered:
            collector.problems.append(f"raw {raw}")
    return collector.problems
