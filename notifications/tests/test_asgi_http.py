"""The web process's HTTP handler (config/asgi_http.py) under a real uvicorn."""

from __future__ import annotations

import gc
import time
import urllib.request

import pytest
from django.core.handlers.asgi import ASGIRequest

pytestmark = pytest.mark.django_db(transaction=True)


def _requests_alive() -> int:
    # type(), not isinstance(): the objects include weak proxies whose referent is gone.
    return sum(1 for o in gc.get_objects() if type(o) is ASGIRequest)


def test_a_requests_objects_are_collected_once_its_response_is_out(live_url):
    gc.collect()
    enabled = gc.isenabled()
    # With the collector's own passes off, only the handler's collection can
    # free the request: its objects are one reference cycle.
    gc.disable()
    try:
        before = _requests_alive()
        with urllib.request.urlopen(f"{live_url}/healthz") as response:
            assert response.status == 200
        deadline = time.monotonic() + 5
        while _requests_alive() > before and time.monotonic() < deadline:
            time.sleep(0.02)  # the handler collects just after the response is sent
        assert _requests_alive() == before
    finally:
        if enabled:
            gc.enable()
