"""Requests refused before any view: NUL characters in the URL or the X-Platform header.

PostgreSQL text cannot hold NUL, and every path segment and most query
parameters end up in a query (`/orgs/a%00b/...` failed with a DataError, a 500).
No name, key or filter of ours contains one, so such a request is a 400 in the
surface's error format wherever it is headed.
"""

from __future__ import annotations

from asgiref.sync import iscoroutinefunction
from django.utils.decorators import sync_and_async_middleware

from notifications.api.errors import error_response
from notifications.tenancy import PLATFORM_HEADER


def _refusal(request):
    query = request.META.get("QUERY_STRING", "")
    if "\x00" in request.path or "%00" in query or "\x00" in query or "\x00" in request.META.get(PLATFORM_HEADER, ""):
        return error_response(request, 400, "NUL (\\u0000) characters are not allowed in the URL or X-Platform.")
    return None


@sync_and_async_middleware
def reject_nul_middleware(get_response):
    if iscoroutinefunction(get_response):

        async def middleware(request):
            return _refusal(request) or await get_response(request)

    else:

        def middleware(request):
            return _refusal(request) or get_response(request)

    return middleware
