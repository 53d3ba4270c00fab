"""Django's HTTP handler under ASGI: each request's sync work in one hop to a kept thread.

Django's own ASGI handler costs a request far more than the inbox's queries
take:

- Every middleware that is sync only, or async through `MiddlewareMixin`
  (most of Django's), and every sync view cost a hop from the event loop to a
  worker thread and back: about a dozen per request with our middleware.
- Each request gets a `ThreadSensitiveContext`, a thread pool of its own: a
  thread started and joined per request.
- The `request_started` signal and `response.close()` (which sends
  `request_finished`) are a hop each, and a second task per request listens
  for the client going away, which a sync view cannot act on anyway.

Every view and middleware of this project is sync (the async work,
WebSockets, is Channels'), so the chain is loaded as under WSGI and a request
runs it, with both signals and the request's parsing, in ONE hop to a thread
of a pool kept for the process (`WEB_THREADS`), as a threaded WSGI server
would. The body is read and the response sent on the event loop. A streamed
response is closed after it is sent, in a second hop, since closing ends its
iterator.

`sync_to_async` with an executor still records the event loop for the
thread, so `async_to_sync` in a view (the channel layer's group sends) runs
on the server's loop, as before.
"""

from __future__ import annotations

import asyncio
import gc
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.http import FileResponse
from django.urls import set_script_prefix


def young_garbage_collect() -> None:
    """Collect the youngest generation now, and the middle one when it is due.

    A request's objects are one reference cycle (Django's request, DRF's
    request, view and response, the messages storage, ...; about a hundred
    containers), so refcounting frees none of them and they wait for the
    collector. Left to its thresholds it ran on whichever request crossed
    them: 1.5 ms and more in the middle generation, 50 ms in a full pass, and
    the unread count's p99 was 5.9-9.6 ms for a p50 of 2 ms (3.5 ms with the
    collector off). Each request now starts by collecting the young
    generation, which holds about the previous request's objects (0.04 ms),
    and the middle one when its count is due, as the collector would (0.07 ms
    every tenth request: hardly anything survives to it). Collecting right
    after the response instead found the request's objects still referenced
    (they were promoted and the middle generation cost 0.4 ms). Full passes
    stay the collector's own.
    """
    threshold_middle = gc.get_threshold()[1]
    gc.collect(1 if gc.get_count()[1] >= threshold_middle else 0)


class SyncChainASGIHandler(ASGIHandler):
    def __init__(self):
        super().__init__()
        # Threads are started as requests need them, up to WEB_THREADS, and kept.
        self.executor = ThreadPoolExecutor(max_workers=settings.WEB_THREADS, thread_name_prefix="http")

    def load_middleware(self, is_async=False):
        super().load_middleware(is_async=False)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        # The requests before this one are over: their objects are garbage now.
        young_garbage_collect()
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        try:
            response = await self._in_thread(self._respond)(scope, body_file)
            try:
                await self.send_response(response, send)
            except asyncio.CancelledError:
                pass  # the client went away while the response was sent
            if response.streaming:
                await self._in_thread(response.close)()
        finally:
            body_file.close()

    def _in_thread(self, function):
        return sync_to_async(function, thread_sensitive=False, executor=self.executor)

    def _respond(self, scope, body_file):
        """Django's request cycle as WSGI runs it: started, response, finished (unless streamed)."""
        set_script_prefix(get_script_prefix(scope))
        signals.request_started.send(sender=self.__class__, scope=scope)
        request, error_response = self.create_request(scope, body_file)
        response = error_response if request is None else self.get_response(request)
        response._handler_class = self.__class__
        if isinstance(response, FileResponse):
            response.block_size = self.chunk_size  # as Django's: the server chunks
        if not response.streaming:
            # The content is bytes already: finishing now (request_finished:
            # the database connection back to the pool) saves a hop.
            response.close()
        return response
