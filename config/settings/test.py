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
# Browser tests load /static/notify/notify-inbox.js from the live server,
# whatever the environment says.
SERVE_STATIC_FROM_FINDERS = True
