"""One error format per surface.

| surface | prefix | error body |
|---|---|---|
| alerts | `/alerts` | `{"error": {"code", "message", "fields"?}}` |
| v1 | `/api/v1/` | `{"message", "error"}` (the bulk document's `domain.ErrorResponse`) |
| ibl | `/api/notification/v1/` and the rest | DRF's own: `{"detail": ...}` or `{field: [...]}` |

Views raise `ApiError` (or any DRF exception), the layers below them the domain
errors of `notifications.errors` (given their status here: `_DOMAIN_STATUS`);
`exception_handler` picks the surface from the request path, so 400, 401, 403,
404, 405, 429 and unexpected 500s all come out in the caller's format. Django's
refusals of a body (more than DATA_UPLOAD_MAX_MEMORY_SIZE: 413; more than
DATA_UPLOAD_MAX_NUMBER_FIELDS fields: 400) too. Django-level 400/404/500 (no
view matched, middleware failures) go through `handler400`/`handler404`/
`handler500` with the same rules.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from notifications.errors import Conflict, DomainError, NotFound, PermissionDenied

logger = logging.getLogger(__name__)

ALERTS, V1, IBL = "alerts", "v1", "ibl"


class ApiError(exceptions.APIException):
    """An error with the message a document prescribes.

    `message` is the short, documented text; `error` an optional detail;
    `body` replaces the whole body on the IBL surface where the document shows
    a specific shape (`{"error": "Notification does not exist"}`).
    """

    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        error: str = "",
        code: str = "",
        body: dict | None = None,
        fields: dict | None = None,
    ):
        self.status_code = status
        self.message = message
        self.error = error
        self.code = code or _default_code(status)
        self.body = body
        self.fields = fields
        super().__init__(detail=message, code=self.code)


# A domain error's status by its kind; any other DomainError (InvalidInput included) is a 400.
_DOMAIN_STATUS = ((NotFound, 404), (PermissionDenied, 403), (Conflict, 409))


def _from_domain(exc: DomainError) -> ApiError:
    """A domain error as the ApiError a view would have raised, so every surface formats it alike."""
    status_code = next((code for kind, code in _DOMAIN_STATUS if isinstance(exc, kind)), 400)
    return ApiError(exc.message, status=status_code, error=exc.detail, code=exc.code, fields=exc.fields)


def _default_code(status_code: int) -> str:
    return {
        400: "invalid",
        401: "not_authenticated",
        403: "permission_denied",
        404: "not_found",
        405: "method_not_allowed",
        409: "conflict",
        413: "too_large",
        422: "unprocessable",
        429: "throttled",
    }.get(status_code, "error")


_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Request body too large",
    415: "Unsupported media type",
    422: "Unprocessable entity",
    429: "Too many requests",
    500: "Internal server error",
}


def surface_for_path(path: str) -> str:
    if path == "/alerts" or path.startswith("/alerts/"):
        return ALERTS
    if path.startswith("/api/v1/"):
        return V1
    return IBL


def _flatten(detail) -> list[str]:
    """Validation details as 'field: message' strings, in order."""
    if isinstance(detail, dict):
        out = []
        for field, value in detail.items():
            for msg in _flatten(value):
                out.append(msg if field in ("non_field_errors", "detail") else f"{field}: {msg}")
        return out
    if isinstance(detail, (list, tuple)):
        return [m for item in detail for m in _flatten(item)]
    return [str(detail)]


def _body(surface: str, status_code: int, exc: Exception | None, detail) -> dict:
    if isinstance(exc, ApiError):
        message, error, code, fields = exc.message, exc.error, exc.code, exc.fields
        if surface == IBL and exc.body is not None:
            return exc.body
    else:
        code = getattr(exc, "default_code", None) or _default_code(status_code)
        if isinstance(exc, exceptions.APIException) and hasattr(exc, "get_codes"):
            codes = exc.get_codes()
            if isinstance(codes, str):
                code = codes
        fields = detail if isinstance(detail, dict) else None
        messages = _flatten(detail) if detail is not None else []
        if isinstance(exc, exceptions.ValidationError):
            message = messages[0] if messages else "Invalid input"
            error = "; ".join(messages)
        else:
            message = _TITLES.get(status_code, "Error")
            error = "; ".join(messages)
    if surface == V1:
        return {"message": message, "error": error or message}
    if surface == ALERTS:
        payload = {"code": code, "message": message}
        if isinstance(exc, ApiError):
            if error and error != message:
                payload["detail"] = error
        elif error and not isinstance(exc, exceptions.ValidationError):
            payload["message"] = error  # DRF's sentence says more than the bare status title
        if fields:
            payload["fields"] = fields
        return {"error": payload}
    # IBL / DRF style
    if isinstance(exc, ApiError):
        body = {"detail": message if not error else f"{message} {error}".strip()}
        if fields:
            body.update(fields)
        return body
    if isinstance(detail, (dict, list)):
        return detail
    return {"detail": str(detail) if detail is not None else _TITLES.get(status_code, "Error")}


def exception_handler(exc, context):
    request = context.get("request")
    path = request.path if request is not None else ""
    surface = surface_for_path(path)
    if isinstance(exc, DomainError):
        exc = _from_domain(exc)
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, SuspiciousOperation):
        exc = _suspicious_as_api_exception(exc)
    response = drf_exception_handler(exc, context)
    if response is None:
        logger.exception("Unhandled error on %s %s", getattr(request, "method", ""), path, exc_info=exc)
        return Response(_body(surface, 500, None, "Internal server error"), status=500)
    detail = getattr(exc, "detail", None)
    if isinstance(exc, ApiError):
        detail = exc.message
    response.data = _body(surface, response.status_code, exc, detail)
    return response


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "Request body too large."
    default_code = "too_large"


def _suspicious_as_api_exception(exc: SuspiciousOperation) -> exceptions.APIException:
    """Django's refusals of a request body (size, field count, file count) as the 4xx they are."""
    if isinstance(exc, RequestDataTooBig):
        return PayloadTooLarge(
            f"Request body too large: at most {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes, not counting files."
        )
    # TooManyFieldsSent, TooManyFilesSent and the rest: the request itself is at fault.
    return exceptions.ParseError(f"Request rejected: {exc}")


def error_response(request, status_code: int, detail: str) -> JsonResponse:
    surface = surface_for_path(request.path)
    exc = exceptions.APIException(detail, code=_default_code(status_code))
    exc.status_code = status_code
    return JsonResponse(_body(surface, status_code, exc, detail), status=status_code)


def handler400(request, exception=None):
    """Django-level refusals (body too large, too many form fields) outside a DRF view."""
    exc = _suspicious_as_api_exception(exception) if isinstance(exception, SuspiciousOperation) else None
    if exc is None:
        return error_response(request, status.HTTP_400_BAD_REQUEST, "Bad request.")
    return error_response(request, exc.status_code, str(exc.detail))


def handler404(request, exception=None):
    return error_response(request, status.HTTP_404_NOT_FOUND, "Not found.")


def handler500(request):
    return error_response(request, status.HTTP_500_INTERNAL_SERVER_ERROR, "Internal server error")
