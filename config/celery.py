import gc
import os

from celery import Celery
from celery.signals import worker_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("config")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_process_init.connect
def _collector_tuned(**_) -> None:
    """A worker process keeps what it has loaded (Django, the apps) out of the collector's passes.

    A dispatch or builder task allocates hundreds of thousands of short-lived
    objects (claimed rows, outcomes, rendered messages); at Python's default
    thresholds the collector ran a young pass every 700 of them and a full
    pass over everything the worker had loaded every 70,000. The web process
    does the same (`config.asgi`).
    """
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)
