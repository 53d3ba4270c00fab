"""Log filter that keeps tokens out of the logs.

The WebSocket authenticates with `?token=` in its URL, and access logs print
URLs; the token is replaced before any handler writes the line.
"""

import logging
import re

_TOKEN_RE = re.compile(r"(token=)[^&\s\"']+", re.IGNORECASE)
_HEADER_RE = re.compile(r"((?:Token|Bearer)\s+)[A-Za-z0-9_\-\.]{8,}")


def redact(text: str) -> str:
    # Every access-log line passes here: most hold neither word, and a
    # substring test is far cheaper than two regular-expression scans.
    folded = text.lower()
    if "token" not in folded and "bearer" not in folded:
        return text
    return _HEADER_RE.sub(r"\1[redacted]", _TOKEN_RE.sub(r"\1[redacted]", text))


class RedactTokensFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.args = (
                tuple(redact(a) if isinstance(a, str) else a for a in record.args)
                if isinstance(record.args, tuple)
                else record.args
            )
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        return True
