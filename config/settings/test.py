"""Settings for the test suite: the same services, faster hashing, test backends."""

from .base import *  # noqa: F403
from .base import NOTIFICATION_BACKENDS

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True
# Tests talk to real backends (SMTP, HTTP fakes) by overriding these per test.
NOTIFICATION_BACKENDS = {
    channel: {"BACKEND": "notifications.backends.locmem.LocmemBackend", "OPTIONS": {}}
    for channel in NOTIFICATION_BACKENDS
}
NOTIFICATION_BACKENDS["in_app"] = {"BACKEND": "notifications.backends.in_app.InAppBackend", "OPTIONS": {}}
MEDIA_ROOT = BASE_DIR / ".run" / "test-media"  # noqa: F405
# No beat sweeps under pytest: tests of the stalled-sweep 503 set their own threshold.
HEALTH_SWEEP_STALE_SECONDS = 24 * 3600
# `{% static %}` without a collected manifest, and WhiteNoise finding files in
# the apps' static directories on each request: no collectstatic before a test
# run. test_static.py collects with the production storage to check that path.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
SERVE_MEDIA = True
