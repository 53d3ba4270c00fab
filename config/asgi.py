"""ASGI entry point: HTTP goes to Django, WebSocket to Channels consumers."""

import gc
import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# Each request's sync code runs in a thread of its own here, so a connection
# kept with DB_CONN_MAX_AGE is never reused: the web process keeps a pool
# (settings.DB_POOL) unless told otherwise. Processes it starts do not inherit it.
_pool_unset = "DB_POOL" not in os.environ
os.environ.setdefault("DB_POOL", "1")
# Django must be set up before the routing imports models.
django.setup(set_prefix=False)
if _pool_unset:
    del os.environ["DB_POOL"]

from config.asgi_http import SyncChainASGIHandler  # noqa: E402

django_asgi_app = SyncChainASGIHandler()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from notifications.consumers import allowed_hosts_origin_validator  # noqa: E402
from notifications.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": allowed_hosts_origin_validator(URLRouter(websocket_urlpatterns)),
    }
)

# Everything loaded so far (Django, the apps, their modules) lives as long as
# the process: keep it out of the garbage collector's passes. And collect the
# youngest generation every 10,000 allocations net rather than 700: one process
# holding thousands of WebSockets allocates a few hundred objects on every
# connect, and the collector's passes over them and over these modules were a
# fifth to a quarter of the CPU of a wave of connects.
gc.freeze()
gc.set_threshold(10_000, 10, 10)
