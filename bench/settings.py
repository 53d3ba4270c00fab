"""Settings of the benchmark processes (web-less: a Celery worker and beat).

Providers are out of the picture (locmem backends): the benchmarks measure
scheduling and the pipeline, not a network.
"""

import os

from config.settings.base import *  # noqa: F403
from config.settings.base import NOTIFICATION_BACKENDS

NOTIFICATION_BACKENDS = {
    channel: {"BACKEND": "notifications.backends.locmem.LocmemBackend", "OPTIONS": {}}
    for channel in NOTIFICATION_BACKENDS
}
CELERY_IMPORTS = ["bench.tasks"]
CELERY_TASK_ALWAYS_EAGER = False
# "clocked": the django-celery-beat alternative runs alone, without our sweep.
if os.environ.get("BENCH_MODE") == "clocked":
    CELERY_BEAT_SCHEDULE = {}
