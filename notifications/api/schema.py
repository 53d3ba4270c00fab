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
# Callbacks from providers act on no caller's platform.
X_PLATFORM_EXEMPT = ("/api/v1/providers/",)
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
        if not path.startswith(X_PLATFORM_SURFACES) or path.startswith(X_PLATFORM_EXEMPT):
            continue
        for method, operation in operations.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            parameters = operation.setdefault("parameters", [])
            if not any(p.get("name") == "X-Platform" and p.get("in") == "header" for p in parameters):
                parameters.append(dict(X_PLATFORM))
    return result


# Error responses any operation can give, whatever its view documents: the
# exception handler answers them in the surface's format (notifications.api.errors).
_GENERIC_ERRORS = {
    "400": "Malformed request: a query parameter, header or body the operation cannot read",
    "401": "No valid token",
    "403": "The token's user may not do this on this platform",
    "404": "The platform, user or object in the path does not exist here",
    "413": "Request body over DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB, files not counted)",
    "415": "Unsupported request content type",
    "429": "Rate limit reached; see Retry-After",
}
_ERROR_SCHEMAS = {
    "alerts": "AlertError",
    "v1": "V1Error",
    "ibl": "IBLGenericError",
}


def error_responses_hook(result, generator, request, public):
    """Document on every operation the 4xx answers the shared machinery gives.

    Authentication, permissions, the tenant lookup, the body parser and the
    throttles answer for every view, in the surface's own error format; the
    views document only their own errors. On the IBL surface a view's own
    error body (`{"message", "success"}`, `{"error"}`, ...) is one answer of a
    documented code; the shared machinery's `{"detail"}` and DRF's field
    errors are the others, so such a code documents all three.
    """
    from notifications.api.errors import surface_for_path

    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault(
        "IBLDetailError",
        {"type": "object", "properties": {"detail": {"type": "string"}}, "required": ["detail"]},
    )
    schemas.setdefault(
        "IBLFieldErrors",
        {
            "type": "object",
            "description": "DRF's validation errors: messages per field (nested serializers nest them).",
            "additionalProperties": {"anyOf": [{"type": "array"}, {"type": "object"}]},
        },
    )
    schemas.setdefault(
        "IBLGenericError",
        {
            "type": "object",
            "description": 'DRF\'s error body: `{"detail": "..."}`, or a list of messages per field.',
            "additionalProperties": True,
        },
    )
    for path, operations in result.get("paths", {}).items():
        ref = {"$ref": f"#/components/schemas/{_ERROR_SCHEMAS[surface_for_path(path)]}"}
        for method, operation in operations.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            anonymous = {} in (operation.get("security") or [{}])
            codes = {"400", "429"}
            if not anonymous:
                codes |= {"401", "403"}
            if "{" in path or not anonymous:
                codes.add("404")  # the path's objects, or the X-Platform header's platform
            if "requestBody" in operation:
                codes |= {"413", "415"}
            responses = operation.setdefault("responses", {})
            if surface_for_path(path) == "ibl":
                _also_detail(responses)
            for code in sorted(codes - set(responses)):
                responses[code] = {
                    "description": _GENERIC_ERRORS[code],
                    "content": {"application/json": {"schema": ref}},
                }
    return result


def _also_detail(responses: dict) -> None:
    detail = {"$ref": "#/components/schemas/IBLDetailError"}
    fields = {"$ref": "#/components/schemas/IBLFieldErrors"}
    for code, response in responses.items():
        if not (code.startswith("4") and isinstance(response, dict)):
            continue
        media = (response.get("content") or {}).get("application/json")
        schema = (media or {}).get("schema")
        if not schema or schema == detail or "additionalProperties" in schema:
            continue
        if schema.get("$ref", "").endswith(("/IBLGenericError", "/IblError")):
            continue
        media["schema"] = {"anyOf": [schema, detail, fields]}


def paginated(name: str, item) -> object:
    """OpenAPI shape of DRF's PageNumberPagination around `item` (an APIView paginating by hand)."""
    from drf_spectacular.utils import inline_serializer
    from rest_framework import serializers

    return inline_serializer(
        name,
        {
            "count": serializers.IntegerField(),
            "next": serializers.URLField(allow_null=True),
            "previous": serializers.URLField(allow_null=True),
            "results": item,
        },
    )
