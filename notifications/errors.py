"""What the core and the apps raise when a request cannot be done as asked.

Services, selectors, tenancy and the builder raise these and know nothing of
HTTP. The one exception handler (`notifications.api.errors.exception_handler`)
answers each in the format of the surface that was called, with the status its
class stands for:

| class | status |
|---|---|
| `InvalidInput` (and a bare `DomainError`) | 400 |
| `PermissionDenied` | 403 |
| `NotFound` | 404 |
| `Conflict` | 409 |

An app's own family of errors subclasses `DomainError`, and one of the kinds
above where it is not bad input (`builder.errors.BuildConflict`), so the app can
catch all of its refusals at once while each keeps its status.
"""

from __future__ import annotations


class DomainError(Exception):
    """A refusal with the message a person reads.

    `message` is the short text (the documents fix many of them), `detail` says
    more when there is more to say, `fields` maps invalid fields to their
    messages, and `code` overrides the kind's stable code on `/alerts`.
    """

    def __init__(self, message: str, *, detail: str = "", fields: dict | None = None, code: str = ""):
        super().__init__(message)
        self.message = message
        self.detail = detail
        self.fields = fields
        self.code = code


class InvalidInput(DomainError):
    """The input is wrong; nothing was written."""


class PermissionDenied(DomainError):
    """The caller is known but may not do this here."""


class NotFound(DomainError):
    """No such object for this caller: another tenant's object is not found either."""


class Conflict(DomainError):
    """The object's current state refuses the change (already sent, no longer cancellable)."""
