"""The builder's one error: a message and the HTTP status it answers with."""

from __future__ import annotations

from notifications.api.errors import ApiError


class BuildError(ApiError):
    """Raised by services and sources; the surface's exception handler formats it."""

    def __init__(self, message: str, *, status: int = 400):
        super().__init__(message, status=status)
