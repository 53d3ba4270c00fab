"""The builder's refusals: domain errors the surfaces' one exception handler formats.

`BuildError` is bad input (400); its subclasses keep their own kind, so
`except BuildError` still catches every refusal of the builder.
"""

from __future__ import annotations

from notifications.errors import Conflict, DomainError, PermissionDenied


class BuildError(DomainError):
    """Raised by services, sources and templating on input that cannot be built or sent."""


class BuildForbidden(BuildError, PermissionDenied):
    """A department admin reaching beyond their departments."""


class BuildConflict(BuildError, Conflict):
    """The build's state refuses the change: already sent, queued, cancelled."""
