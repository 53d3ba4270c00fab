"""OpenAPI additions: the one token scheme every surface accepts, and the `X-Platform` header."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class TokenAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "notifications.authentication.TokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Token <token>` or `Bearer <token>`; both keywords work on every surface.",
        }


X_PLATFORM_SURFACES = ("/alerts", "/api/v1/")
X_PLATFORM = {
    "name": "X-Platform",
    "in": "header",
    "required": False,
    "schema": {"type": "string"},
    "description": (
        "Key of the platform the call acts on. Required when the caller belongs to several platforms "
        "(without it: 400 `Platform is ambiguous`); a platform the caller does not belong to is a 404. "
        "Optional for a caller of one platform."
    ),
}


def x_platform_header(result, generator, request, public):
    """drf-spectacular postprocessing hook: document `X-Platform` on every `/alerts` and `/api/v1` operation."""
    for path, operations in result.get("paths", {}).items():
        if not path.startswith(X_PLATFORM_SURFACES):
            continue
        for method, operation in operations.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            parameters = operation.setdefault("parameters", [])
            if not any(p.get("name") == "X-Platform" and p.get("in") == "header" for p in parameters):
                parameters.append(dict(X_PLATFORM))
    return result
