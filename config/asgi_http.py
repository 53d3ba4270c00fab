"""Django's HTTP handler under ASGI, its middleware and views run in one thread hop per request.

Django's own ASGI handler runs the middleware chain in async mode. Every
middleware that is sync only, or async through `MiddlewareMixin` (most of
Django's), and every sync view then costs a hop from the event loop to a
worker thread and back: about a dozen per request with our middleware, more
than the inbox's own queries take. Every view and middleware of this project
is sync (the async work, WebSockets, is Channels'), so the chain is loaded as
under WSGI and each request runs it whole in one hop. What Django does around
it stays: the request body read on the event loop, the response sent from it,
the `request_started` signal and `response.close()` (a hop each).
"""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIHandler


class SyncChainASGIHandler(ASGIHandler):
    def load_middleware(self, is_async=False):
        super().load_middleware(is_async=False)

    async def get_response_async(self, request):
        # The per-request thread of `ThreadSensitiveContext`, as Django's sync views get.
        return await sync_to_async(self.get_response, thread_sensitive=True)(request)
