"""Content negotiation that answers the common case without parsing.

Every API response is JSON. DRF parses the Accept header and matches it
against each renderer on every request, about a tenth of what an inbox read
costs the server; a request asking for nothing in particular, anything
(`*/*`) or JSON gets the first renderer (JSON) straight away, exactly as DRF
would choose it. Anything else goes through DRF's negotiation unchanged.
"""

from __future__ import annotations

from rest_framework.negotiation import DefaultContentNegotiation

_PLAIN = {"", "*/*", "application/json"}


class ContentNegotiation(DefaultContentNegotiation):
    def select_renderer(self, request, renderers, format_suffix=None):
        first = renderers[0] if renderers else None
        if (
            first is not None
            and first.media_type == "application/json"
            and not format_suffix
            and self.settings.URL_FORMAT_OVERRIDE not in request.query_params
            and request.META.get("HTTP_ACCEPT", "").strip() in _PLAIN
        ):
            return first, first.media_type
        return super().select_renderer(request, renderers, format_suffix)
