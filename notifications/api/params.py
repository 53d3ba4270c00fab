"""Query-string parsing shared by the /api/v1 views: bad values are 400s naming the parameter."""

from __future__ import annotations

from notifications.api.errors import ApiError


def int_query_param(request, name: str, default: int, *, minimum: int, maximum: int | None = None) -> int:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(f"Invalid {name}", error=f"{name} must be an integer") from None
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise ApiError(f"Invalid {name}", error=f"{name} must be {bound}")
    return value
