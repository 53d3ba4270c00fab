"""Settings of `bench/inbox_http.py`'s servers that leave a part of the request path out."""

import os

from config.settings import *  # noqa: F403
from config.settings import REST_FRAMEWORK

if os.environ.get("BENCH_RATE_LIMITS") == "off":
    REST_FRAMEWORK["DEFAULT_THROTTLE_CLASSES"] = []
