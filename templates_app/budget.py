"""The budget of one template render: time, output, and what filters build on the way.

Checking the output between nodes is not enough: one filter call can build a
value far larger than anything it is given (`{{ s|make_list|join:s }}` turns
40,000 characters into 1.6 billion), and a `{% with %}` can keep doubling a
value that never reaches the output. So every filter of the sandbox charges
the budget of the render in progress: the ones that can multiply their input
*reserve* the exact size of their result before building it, and every
result is charged after it is built. One value may not exceed the output
limit, and everything filters build in one render together may not exceed
`BUILT_FACTOR` times it.

The budget travels in a context variable, so filters (which are not given the
template context) find it, and renders in other threads or tasks do not share it.
"""

from __future__ import annotations

import contextvars
import time

# Filters may build, in total, this many times the output limit in one render:
# room for loops over formatted values, none for runaway intermediates.
BUILT_FACTOR = 4
# A date format character expands to at most this many characters ("r" is 31).
DATE_FORMAT_EXPANSION = 32
# What one list item or dict entry costs, in characters: its slot and its own
# object weigh more than a character (a list of a million one-character
# strings is some 60 MB), and filters like `unordered_list` work per item.
ITEM_COST = 8


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


class Budget:
    def __init__(self, max_chars: int, max_seconds: float):
        self.max_chars = max_chars
        self.max_built = max_chars * BUILT_FACTOR
        self.deadline = time.monotonic() + max_seconds
        self.max_seconds = max_seconds
        self.chars = 0  # written to the output
        self.built = 0  # built by filters

    def tick(self) -> None:
        if time.monotonic() > self.deadline:
            raise RenderLimitExceeded(f"Rendering took longer than {self.max_seconds:g} s and was stopped.")

    def add(self, n: int) -> None:
        """Count `n` characters of output."""
        self.chars += n
        if self.chars > self.max_chars:
            raise RenderLimitExceeded(f"Rendered output exceeds {self.max_chars} characters and was stopped.")

    def reserve(self, n: int, *, what: str) -> None:
        """Refuse, before building it, a value of `n` characters (or list items) the budget cannot hold."""
        if n > self.max_chars:
            raise RenderLimitExceeded(
                f"The {what} would build {n:,} characters; a render may build at most {self.max_chars:,} "
                "characters in one value. It was stopped."
            )
        if self.built + n > self.max_built:
            raise RenderLimitExceeded(
                f"The {what} would take what filters build in this render over {self.max_built:,} characters. "
                "It was stopped."
            )

    def charge(self, n: int, *, what: str) -> None:
        """Count a value of `n` characters (or list items) that a filter built."""
        self.tick()
        self.reserve(n, what=what)
        self.built += n


_current: contextvars.ContextVar[Budget | None] = contextvars.ContextVar("template_budget", default=None)


def current() -> Budget | None:
    return _current.get()


def activate(budget: Budget) -> contextvars.Token:
    return _current.set(budget)


def deactivate(token: contextvars.Token) -> None:
    _current.reset(token)


def size_of(value) -> int:
    """What a value costs the budget: characters of a string, `ITEM_COST` per item plus characters of a list.

    Shallow on purpose: a list of dicts costs its length, since filters that
    return one (dictsort, slice) share the dicts rather than copy them.
    """
    if isinstance(value, str):
        return len(value)
    if isinstance(value, (list, tuple)):
        return ITEM_COST * len(value) + sum(len(v) for v in value if isinstance(v, str))
    if isinstance(value, dict):
        return ITEM_COST * len(value)
    return 1


def reserve(n: int, *, what: str) -> None:
    """Refuse a value of `n` characters before it is built (no-op outside a render)."""
    budget = _current.get()
    if budget is not None:
        budget.tick()
        budget.reserve(n, what=what)
