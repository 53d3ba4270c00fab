"""The web process's HTTP handler (config/asgi_http.py) under a real uvicorn."""

from __future__ import annotations

import gc
import urllib.request

import pytest
from django.core.handlers.asgi import ASGIRequest

pytestmark = pytest.mark.django_db(transaction=True)


def _requests_alive() -> int:
    # type(), not isinstance(): the objects include weak proxies whose referent is gone.
    return sum(1 for o in gc.get_objects() if type(o) is ASGIRequest)


def test_each_request_frees_the_objects_of_the_requests_before_it(live_url):
    gc.collect()
    enabled = gc.isenabled()
    # With the collector's own passes off, only the handler's collection can
    # free a request: its objects are one reference cycle.
    gc.disable()
    try:
        before = _requests_alive()
        for _ in range(3):
            with urllib.request.urlopen(f"{live_url}/healthz") as response:
                assert response.status == 200
        # The last request's objects wait for the next request; the others are gone.
        assert _requests_alive() <= before + 1
    finally:
        if enabled:
            gc.enable()
