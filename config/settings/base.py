"""Settings read from the environment.

Every variable is listed in the README's configuration table. Without any of
them the project runs on an SQLite file and the embedded Redis server.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

import dj_database_url
from kombu import Exchange, Queue

from config import redis_topology

BASE_DIR = Path(__file__).resolve().parent.parent.parent


def env(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env(name, default).split(",") if item.strip()]


def _secret_key() -> str:
    """SECRET_KEY from the environment, or one generated once per checkout.

    The generated key lives in an untracked file so that tokens, sessions and
    encrypted SMTP passwords survive restarts of a local run.
    """
    key = env("SECRET_KEY")
    if key:
        return key
    path = BASE_DIR / ".secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "corsheaders",
    "channels",
    "fcm_django",
    "notifications",
    "alerts",
    "templates_app",
    "builder",
    "webhooks",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "notifications.api.middleware.reject_nul_middleware",
    # Static files (admin, Swagger UI) straight from STATIC_ROOT, before any
    # session or database work; `run.py` runs collectstatic first.
    "config.files.StaticFilesMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "notifications.inbox_tokens.InboxCorsMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
# The IBL document's `mark-all-as-read` has no trailing slash; never redirect it.
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

# --- Database -----------------------------------------------------------------
DATABASE_URL = env("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}")
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 0))}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, worker and beat share the file: WAL lets readers run beside the
    # writer, IMMEDIATE transactions serialise writers instead of failing.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
if env_bool("DB_POOL", False) and DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # A connection pool per process (psycopg_pool), which `config/asgi.py`
    # turns on for the web process: a request's connection is closed at its
    # end (request_finished), so without one each request would open a
    # PostgreSQL connection (a couple of milliseconds) and close it again.
    # Connections go back to the pool at the end of each request.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": env_int("DB_POOL_MIN_SIZE", 2),
        "max_size": env_int("DB_POOL_MAX_SIZE", 20),
        # A request waits this long for a free connection before failing.
        "timeout": env_int("DB_POOL_TIMEOUT", 10),
    }
# Threads of the web process that run requests' sync work (config/asgi_http.py):
# as many as the pool has connections, so no request thread waits for one.
WEB_THREADS = env_int("WEB_THREADS", env_int("DB_POOL_MAX_SIZE", 20))
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: Celery broker, channel layer, cache -------------------------------
# With REDIS_SENTINELS every Redis client below asks the Sentinels for the
# master of REDIS_SENTINEL_MASTER; REDIS_URL then gives only the master's
# credentials, database and TLS (config/redis_topology.py).
REDIS_SENTINELS = redis_topology.sentinels_parse(
    hosts=env("REDIS_SENTINELS"),
    master=env("REDIS_SENTINEL_MASTER", "mymaster"),
    password=env("REDIS_SENTINEL_PASSWORD"),
)
REDIS_URL = env("REDIS_URL")
if not REDIS_URL and REDIS_SENTINELS is not None:
    REDIS_URL = "redis:///0"
elif not REDIS_URL:
    from config import embedded_redis

    REDIS_URL = embedded_redis.ensure()

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": env("CACHE_KEY_PREFIX", "notify"),
        "OPTIONS": redis_topology.cache_options(REDIS_SENTINELS),
    }
}
CHANNELS_GROUP_EXPIRY = env_int("CHANNELS_GROUP_EXPIRY", 900)
CHANNEL_LAYERS = {
    "default": {
        # channels-redis with a connection pool that waits for a free
        # connection instead of raising (notifications/channel_layer.py).
        "BACKEND": "notifications.channel_layer.RedisChannelLayer",
        "CONFIG": {
            # redis-py 8 reads with a 5 s socket timeout by default, exactly as
            # long as channels-redis blocks in BZPOPMIN waiting for a message:
            # every socket idle for 5 s died with "Timeout reading". The read
            # timeout must outlast the blocking pop.
            "hosts": [redis_topology.channel_layer_host(REDIS_URL, REDIS_SENTINELS, socket_timeout=15)],
            "prefix": env("CHANNELS_PREFIX", "asgi"),
            "capacity": 1000,
            # All sockets of one ASGI process share one Redis queue
            # ("specific.<process>!"): a bulk in-app send to 100k users puts one
            # message per connected user there at once, far more than the
            # per-channel default, and channels-redis drops what is over.
            "channel_capacity": {"specific.*": env_int("CHANNELS_PROCESS_CAPACITY", 100_000)},
            # Redis connections per ASGI process; calls beyond it wait up to
            # pool_timeout seconds for one.
            "max_connections": env_int("CHANNELS_MAX_CONNECTIONS", 100),
            "pool_timeout": 30,
            # A group membership older than this is dropped (at the group's
            # next send; the whole group key expires after it too). Open
            # sockets renew theirs every third of it, so only the memberships
            # of a process that died without closing its sockets age out.
            "group_expiry": CHANNELS_GROUP_EXPIRY,
        },
    }
}
# Open WebSockets re-check their tokens, users and memberships this often (one
# check per ASGI process for all its sockets, two indexed queries); revokes and
# membership changes close them at once anyway.
WEBSOCKET_RECHECK_SECONDS = float(env("WEBSOCKET_RECHECK_SECONDS", "2"))
# A token's credentials (its user, platforms and keys on each) are cached this
# long for the HTTP request path; every ORM write that changes them drops them
# at once (notifications/auth_cache.py). 0 turns the cache off.
AUTH_CACHE_SECONDS = env_int("AUTH_CACHE_SECONDS", 60)
# Frames that may wait for one socket whose client does not keep up; one more
# closes it with 1013 (the client reconnects and refetches). See
# notifications/socket_hub.py.
WEBSOCKET_SEND_QUEUE = env_int("WEBSOCKET_SEND_QUEUE", 500)

# --- Celery -------------------------------------------------------------------
CELERY_BROKER_URL = env("CELERY_BROKER_URL") or redis_topology.celery_broker_url(REDIS_URL, REDIS_SENTINELS)
if CELERY_BROKER_URL.startswith("sentinel://"):
    CELERY_BROKER_TRANSPORT_OPTIONS = redis_topology.celery_transport_options(REDIS_SENTINELS)
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = "UTC"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# What tasks print (the console backends' deliveries) is logged at INFO, not
# Celery's default WARNING: a printed delivery is not a problem.
CELERY_WORKER_REDIRECT_STDOUTS_LEVEL = "INFO"
# The due-work sweep has a queue of its own: in the default queue it would wait
# behind the very jobs it queued, and the next due batch would be claimed late.
# Both queues are declared, so a worker started without -Q consumes both (a
# worker started with `-Q celery` alone would never run a sweep); `-Q sweep`
# makes a worker that only sweeps.
CELERY_TASK_DEFAULT_QUEUE = "celery"
CELERY_TASK_QUEUES = (
    Queue("celery", Exchange("celery"), routing_key="celery"),
    Queue("sweep", Exchange("sweep"), routing_key="sweep"),
)
CELERY_TASK_ROUTES = {"notifications.tasks.sweep_due_work": {"queue": "sweep"}}

# --- Auth ---------------------------------------------------------------------
AUTH_USER_MODEL = "notifications.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# How long a token from POST /api/auth/token/ or `issue_token` lives.
TOKEN_TTL_DAYS = env_int("TOKEN_TTL_DAYS", 30)
# Inbox tokens (POST /api/v1/inbox-tokens, the /inbox/ page): scoped to one
# user's inbox on one platform, short-lived because they sit in web pages.
INBOX_TOKEN_TTL_SECONDS = env_int("INBOX_TOKEN_TTL_SECONDS", 900)
# CORS only on the inbox endpoints, and only for origins a platform lists
# (Platform.allowed_origins, checked by notifications.inbox_tokens.cors_allowed);
# nothing is allowed through django-cors-headers' own lists.
CORS_ALLOWED_ORIGINS: list[str] = []
CORS_PREFLIGHT_MAX_AGE = 600
# Where the session login of the /inbox/ page sends people.
LOGIN_URL = "/inbox/login/"
LOGIN_REDIRECT_URL = "/inbox/"
# Phone numbers without a country code are read in this region.
PHONE_DEFAULT_REGION = env("PHONE_DEFAULT_REGION", "ET")

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static files and media ---------------------------------------------------
# Static files are collected into STATIC_ROOT (`manage.py collectstatic`, which
# `run.py` runs before serving) and served by WhiteNoise: hashed names, gzip and
# Brotli copies, cached for a year. Nothing else is needed in front of it.
STATIC_URL = "/static/"
STATIC_ROOT = Path(env("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
MEDIA_URL = env("MEDIA_URL", "/media/")
MEDIA_ROOT = Path(env("MEDIA_ROOT", str(BASE_DIR / "media")))


def _storage_options(name: str) -> dict:
    """A storage's OPTIONS as a JSON object in the environment (credentials stay in their own variables)."""
    raw = env(name)
    if not raw:
        return {}
    options = json.loads(raw)
    if not isinstance(options, dict):
        raise ValueError(f"{name} must be a JSON object")
    return options


# Uploaded files (push images, email attachments) go through Django's storage
# API. The default keeps them under MEDIA_ROOT and the service serves them at
# MEDIA_URL itself; an S3-compatible bucket is a setting, e.g.
# MEDIA_STORAGE_BACKEND=storages.backends.s3.S3Storage with
# MEDIA_STORAGE_OPTIONS='{"bucket_name": "notify-media", "querystring_auth": false}'
# (django-storages; see the README).
MEDIA_STORAGE_BACKEND = env("MEDIA_STORAGE_BACKEND", "django.core.files.storage.FileSystemStorage")
STORAGES = {
    "default": {"BACKEND": MEDIA_STORAGE_BACKEND, "OPTIONS": _storage_options("MEDIA_STORAGE_OPTIONS")},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
# The service answers MEDIA_URL itself only while files live on its own disk;
# a bucket serves its own URLs.
SERVE_MEDIA = env_bool("SERVE_MEDIA", MEDIA_STORAGE_BACKEND == "django.core.files.storage.FileSystemStorage")
# Absolute base for URLs handed to clients (push image URLs); empty means the
# host of the request that uploaded the file.
PUBLIC_BASE_URL = env("PUBLIC_BASE_URL")

# --- REST framework -----------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["notifications.authentication.TokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "notifications.api.negotiation.ContentNegotiation",
    "DEFAULT_PARSER_CLASSES": [
        "notifications.api.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "notifications.api.errors.exception_handler",
    "UNAUTHENTICATED_USER": None,
}
if DEBUG:
    REST_FRAMEWORK["DEFAULT_RENDERER_CLASSES"].append("rest_framework.renderers.BrowsableAPIRenderer")

SPECTACULAR_SETTINGS = {
    "TITLE": "Notification service API",
    "DESCRIPTION": (
        "Three surfaces over one domain: `/alerts` (per-user alerts and calendar events), "
        "`/api/v1/` (bulk and scheduled sends, inbox, WebSocket) and `/api/notification/v1/` "
        "(org inbox, templates, devices, SMTP, builder). Every surface accepts both "
        "`Authorization: Token <t>` and `Authorization: Bearer <t>`.\n\n"
        "**Errors** come in the format of the surface called: `/alerts` answers "
        '`{"error": {"code", "message", "fields"?}}`, `/api/v1/` answers `{"message", "error"}`, '
        '`/api/notification/v1/` answers DRF style (`{"detail"}` or `{"<field>": [...]}`). '
        "Another platform's object is a 404, never a 403.\n\n"
        "**Rate limits**: per user (default 1200/minute), per platform (12000/minute), per client "
        "address without a token (60/minute), template test-sends (20/minute) and SMTP tests "
        "(20/hour per platform); over a limit the answer is 429 with `Retry-After`. Send endpoints "
        "honour `Idempotency-Key` for 24 hours.\n\n"
        "The full error reference and rate limits (IBL sections 13 and 14) are in the repository's "
        "`docs/errors-and-rate-limits.md`."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # notifications.converters.IdConverter: ids in paths fit a bigint.
    "PATH_CONVERTER_OVERRIDES": {"id": {"type": "integer", "minimum": 0, "maximum": 999_999_999_999_999_999}},
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "notifications.api.schema.error_responses_hook",
        # Every /alerts and /api/v1 operation takes X-Platform.
        "notifications.api.schema.x_platform_header",
    ],
}

# --- Request input bounds -------------------------------------------------------
# What a request may ask the API to store or look up; beyond these it is a 4xx
# in the surface's format. Django's own DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB,
# JSON bodies and form fields) and DATA_UPLOAD_MAX_NUMBER_FIELDS (1000) apply too.
# How far ahead a send, an alert's notifyAt/scheduledAt or a build's process_on may lie.
INPUT_DATE_HORIZON_DAYS = env_int("INPUT_DATE_HORIZON_DAYS", 5 * 365 + 1)
# How deeply a JSON body may nest objects and arrays.
API_JSON_MAX_DEPTH = env_int("API_JSON_MAX_DEPTH", 32)
# Largest page number and row offset a list accepts.
API_MAX_PAGE = env_int("API_MAX_PAGE", 1_000_000)
API_MAX_OFFSET = env_int("API_MAX_OFFSET", 100_000_000)

# --- Channel backends ---------------------------------------------------------
# Each channel names its backend by dotted path; OPTIONS go to its constructor.
AFROMESSAGE = {
    "BASE_URL": env("AFROMESSAGE_BASE_URL", "https://api.afromessage.com/api"),
    "TOKEN": env("AFROMESSAGE_TOKEN"),
    "SENDER_ID": env("AFROMESSAGE_SENDER_ID"),
    "SENDER_NAME": env("AFROMESSAGE_SENDER_NAME"),
    "TIMEOUT": env_int("AFROMESSAGE_TIMEOUT", 10),
    # This service's public origin (https://notify.example.org): when set, single sends pass AfroMessage a
    # signed status-report URL of ours as `callback`, and its reports become delivery receipts.
    "CALLBACK_BASE_URL": env("AFROMESSAGE_CALLBACK_BASE_URL"),
}
# Africa's Talking: a second SMS provider (sandbox: https://api.sandbox.africastalking.com/version1).
AFRICASTALKING = {
    "BASE_URL": env("AFRICASTALKING_BASE_URL", "https://api.africastalking.com/version1"),
    "USERNAME": env("AFRICASTALKING_USERNAME"),
    "API_KEY": env("AFRICASTALKING_API_KEY"),
    "SENDER_ID": env("AFRICASTALKING_SENDER_ID"),
    "TIMEOUT": env_int("AFRICASTALKING_TIMEOUT", 10),
    # When set, the delivery-report callback URL must carry ?token=<this>.
    "CALLBACK_TOKEN": env("AFRICASTALKING_CALLBACK_TOKEN"),
}
FCM = {
    # Path to a service-account JSON file, or the JSON itself.
    "SERVICE_ACCOUNT_KEY": env("FCM_SERVICE_ACCOUNT_KEY"),
    # Override for the FCM v1 endpoint (a local test server, an emulator).
    "ENDPOINT": env("FCM_ENDPOINT", "https://fcm.googleapis.com"),
    "TIMEOUT": env_int("FCM_TIMEOUT", 10),
}
NOTIFICATION_BACKENDS = {
    "email": {
        "BACKEND": env("NOTIFY_EMAIL_BACKEND", "notifications.backends.email.EmailBackend"),
        "OPTIONS": {},
    },
    "sms": {
        "BACKEND": env(
            "NOTIFY_SMS_BACKEND",
            "notifications.backends.sms.AfroMessageBackend"
            if AFROMESSAGE["TOKEN"]
            else "notifications.backends.africastalking.AfricasTalkingBackend"
            if AFRICASTALKING["API_KEY"]
            else "notifications.backends.console.ConsoleBackend",
        ),
        "OPTIONS": {},
    },
    "push": {
        "BACKEND": env(
            "NOTIFY_PUSH_BACKEND",
            "notifications.backends.push.FCMBackend"
            if FCM["SERVICE_ACCOUNT_KEY"]
            else "notifications.backends.console.ConsoleBackend",
        ),
        "OPTIONS": {},
    },
    "in_app": {
        "BACKEND": env("NOTIFY_IN_APP_BACKEND", "notifications.backends.in_app.InAppBackend"),
        "OPTIONS": {},
    },
}

# Several providers for one channel, in order: the first is the primary, the
# next take over deliveries it clearly refused and all new ones while its
# circuit is open. NOTIFY_SMS_BACKENDS (dotted paths, comma-separated) sets the
# list; without it, SMS with both AfroMessage and Africa's Talking configured
# (and no NOTIFY_SMS_BACKEND) fails over from the first to the second.
_SMS_BACKENDS = env_list("NOTIFY_SMS_BACKENDS")
if not _SMS_BACKENDS and not env("NOTIFY_SMS_BACKEND") and AFROMESSAGE["TOKEN"] and AFRICASTALKING["API_KEY"]:
    _SMS_BACKENDS = [
        "notifications.backends.sms.AfroMessageBackend",
        "notifications.backends.africastalking.AfricasTalkingBackend",
    ]
if len(_SMS_BACKENDS) > 1:
    NOTIFICATION_BACKENDS["sms"] = [{"BACKEND": path, "OPTIONS": {}} for path in _SMS_BACKENDS]
elif _SMS_BACKENDS:
    NOTIFICATION_BACKENDS["sms"] = {"BACKEND": _SMS_BACKENDS[0], "OPTIONS": {}}
# Provider circuit breakers (notifications/circuits.py): retryable failures in
# a row that open a provider's circuit, and how long it stays open before one
# probe delivery is let through.
NOTIFY_CIRCUIT_FAILURES = env_int("NOTIFY_CIRCUIT_FAILURES", 5)
NOTIFY_CIRCUIT_COOLDOWN_SECONDS = env_int("NOTIFY_CIRCUIT_COOLDOWN_SECONDS", 60)

# Django's own mail settings: the project-wide SMTP server. A platform's own
# SMTP settings take precedence for that platform's mail.
EMAIL_BACKEND = env(
    "EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend"
    if env("EMAIL_HOST")
    else "django.core.mail.backends.console.EmailBackend",
)
EMAIL_HOST = env("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS")
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL")
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", "notifications@localhost")
# Email through an API provider instead: EMAIL_BACKEND=anymail.backends.<provider>.EmailBackend
# (postmark, resend, amazon_ses, mailgun, brevo, sendgrid, ...) and that provider's
# django-anymail settings as ANYMAIL_<SETTING> environment variables, e.g.
# ANYMAIL_POSTMARK_SERVER_TOKEN; ANYMAIL_WEBHOOK_SECRET ("user:password") turns
# on its delivery receipts at /webhooks/email/<provider>/tracking/ (README).
ANYMAIL = {
    name.removeprefix("ANYMAIL_"): value
    for name, value in os.environ.items()
    if name.startswith("ANYMAIL_") and name != "ANYMAIL_"
}

# Platform SMTP servers (IBL §7.4, §11): where platform admins may point us.
# Only public addresses on SMTP ports, so the SMTP test cannot become a port
# scanner of our own network. Self-hosted installs whose mail server is
# internal list it here: host names, IP addresses or networks (CIDR).
SMTP_TEST_ALLOWED_HOSTS = env_list("SMTP_TEST_ALLOWED_HOSTS")
SMTP_TEST_EXTRA_PORTS = [int(p) for p in env_list("SMTP_TEST_EXTRA_PORTS")]
SMTP_TEST_CONNECT_TIMEOUT = float(env("SMTP_TEST_CONNECT_TIMEOUT", "5"))
SMTP_TEST_TOTAL_TIMEOUT = float(env("SMTP_TEST_TOTAL_TIMEOUT", "15"))
# Per platform: each test opens a connection to a host of the caller's choice.
SMTP_TEST_RATE = env("SMTP_TEST_RATE", "20/hour")

# --- Logging ------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact_tokens": {"()": "notifications.logging.RedactTokensFilter"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "filters": ["redact_tokens"]},
    },
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
    "loggers": {
        # uvicorn's access log prints query strings: the WebSocket token
        # travels in one, so it goes through the same redaction. Their level
        # stays uvicorn's `--log-level` (info unless told): `warning` drops
        # the two lines per WebSocket opened and closed, which cost a
        # process holding thousands of sockets more than the socket itself.
        "uvicorn.access": {"handlers": ["console"], "propagate": False},
        "uvicorn.error": {"handlers": ["console"], "propagate": False},
        # The due-work sweep runs every second: its task lines would drown the log.
        "celery.app.trace": {"level": env("CELERY_TASK_LOG_LEVEL", "WARNING")},
        "celery.beat": {"level": env("CELERY_TASK_LOG_LEVEL", "WARNING")},
        "celery.worker.strategy": {"level": env("CELERY_TASK_LOG_LEVEL", "WARNING")},
    },
}

# --- Delivery pipeline ----------------------------------------------------------
# See notifications/pipeline/tuning.py and retry.py; all optional.
NOTIFY_CLAIM_LEASE_SECONDS = env_int("NOTIFY_CLAIM_LEASE_SECONDS", 300)
NOTIFY_MAX_ATTEMPTS = env_int("NOTIFY_MAX_ATTEMPTS", 5)
NOTIFY_RETRY_BASE_SECONDS = env_int("NOTIFY_RETRY_BASE_SECONDS", 30)
NOTIFY_RETRY_CAP_SECONDS = env_int("NOTIFY_RETRY_CAP_SECONDS", 3600)
NOTIFY_SYNC_LIMIT = env_int("NOTIFY_SYNC_LIMIT", 200)
NOTIFY_DISPATCH_CHUNK = env_int("NOTIFY_DISPATCH_CHUNK", 500)
# Claimed due items of one source that one Celery task runs (sources with `run_many`).
DUE_WORK_BATCH_SIZE = env_int("DUE_WORK_BATCH_SIZE", 100)
# How long the sweep's claim of an item lasts: a task lost with its worker
# (killed, or its queue lost with Redis) leaves items due again after this.
DUE_WORK_LEASE_SECONDS = env_int("DUE_WORK_LEASE_SECONDS", 300)

# --- Scheduling ---------------------------------------------------------------
# Beat wakes the due-work sweep about every second (DatabaseScheduler copies
# this entry into django-celery-beat's tables at start-up). A sweep that sees
# work falling due before the next tick queues one more sweep for that moment.
DUE_WORK_SWEEP_INTERVAL_SECONDS = env_int("SWEEP_INTERVAL_MS", 1000) / 1000
CELERY_BEAT_SCHEDULE = {
    "sweep-due-work": {
        "task": "notifications.tasks.sweep_due_work",
        "schedule": DUE_WORK_SWEEP_INTERVAL_SECONDS,
    },
    # Idempotency-Key records live 24 h; expired ones are dropped hourly.
    "purge-idempotency-keys": {"task": "notifications.tasks.purge_idempotency_keys", "schedule": 3600},
    # Inbox tokens live minutes; ended ones are dropped hourly.
    "purge-inbox-tokens": {"task": "notifications.tasks.purge_inbox_tokens", "schedule": 3600},
    # The fallback/escalation plans of sends older than DELIVERY_PLAN_RETENTION_DAYS, hourly.
    "purge-delivery-plans": {"task": "notifications.tasks.purge_delivery_plans", "schedule": 3600},
}
# A send's fallback and escalation plan (notifications.models.DeliveryPlan) is
# kept this long after the send began, and while an escalation is still due:
# longer than any delivery's retries, which may still fall back.
DELIVERY_PLAN_RETENTION_DAYS = env_int("DELIVERY_PLAN_RETENTION_DAYS", 7)

# --- Operations: /healthz and /metrics -----------------------------------------
# /healthz answers 503 when no sweep completed for this long (beat or the
# `sweep` queue's worker is down) ...
HEALTH_SWEEP_STALE_SECONDS = env_int("HEALTH_SWEEP_STALE_SECONDS", 60)
# ... or when a due item (job, alert, build, retry) has waited unclaimed this long.
HEALTH_DUE_WORK_LATE_SECONDS = env_int("HEALTH_DUE_WORK_LATE_SECONDS", 120)
# /metrics (Prometheus): open to the bearer of METRICS_TOKEN, or to direct
# connections from these networks (a proxied request is judged by token only).
METRICS_TOKEN = env("METRICS_TOKEN")
METRICS_ALLOWED_NETWORKS = env_list("METRICS_ALLOWED_NETWORKS", "127.0.0.0/8,::1/128")
# Every process adds its counts to Redis this often (see notifications/metrics.py).
METRICS_FLUSH_SECONDS = float(env("METRICS_FLUSH_SECONDS", "1"))
METRICS_KEY_PREFIX = env("CACHE_KEY_PREFIX", "notify") + ":metrics"
# First, so the time covers every other middleware too.
MIDDLEWARE.insert(0, "notifications.metrics.HttpMetricsMiddleware")

# --- Alerts (/alerts) ---------------------------------------------------------
# Channels an alert's notification uses, by alert type (names as in
# NOTIFICATION_BACKENDS: in_app, push, email, sms). In-app is always used; push
# is skipped for users without an active device, email and sms for users
# without an address.
ALERTS_CHANNELS_BY_TYPE = {
    "info": env_list("ALERTS_CHANNELS_INFO", "in_app"),
    "warning": env_list("ALERTS_CHANNELS_WARNING", "in_app,push"),
    "critical": env_list("ALERTS_CHANNELS_CRITICAL", "in_app,push,email"),
}
# Read alerts older than this are archived: kept, but listed only with ?archived=true.
ALERTS_ARCHIVE_AFTER_DAYS = env_int("ALERTS_ARCHIVE_AFTER_DAYS", 30)
CELERY_BEAT_SCHEDULE["archive-read-alerts"] = {
    "task": "alerts.tasks.archive_read_alerts",
    "schedule": 3600.0,  # hourly; a run with nothing to archive is one index probe
}
# --- end of alerts ------------------------------------------------------------

# --- Templates, events, preferences (templates_app) ------------------------------
# Render limits of notification templates: output size and wall time per field.
NOTIFY_TEMPLATE_MAX_OUTPUT_CHARS = env_int("NOTIFY_TEMPLATE_MAX_OUTPUT_CHARS", 200_000)
NOTIFY_TEMPLATE_MAX_RENDER_SECONDS = float(env("NOTIFY_TEMPLATE_MAX_RENDER_SECONDS", "2"))
# Characters (and list items) of the values one render is given; a larger context is refused.
NOTIFY_TEMPLATE_MAX_CONTEXT_CHARS = env_int("NOTIFY_TEMPLATE_MAX_CONTEXT_CHARS", 1_000_000)
# Recipients one POST .../events/ may name.
NOTIFY_EVENT_MAX_RECIPIENTS = env_int("NOTIFY_EVENT_MAX_RECIPIENTS", 1000)
# Where PROACTIVE_LEARNER_NOTIFICATION's `ai_recommendation` comes from.
NOTIFY_AI_RECOMMENDATION = {
    "BACKEND": env("NOTIFY_AI_PROVIDER", "templates_app.automation.recommendations.ActivitySummaryProvider"),
    "OPTIONS": {
        "URL": env("NOTIFY_AI_URL"),
        "API_KEY": env("NOTIFY_AI_API_KEY"),
        "MODEL": env("NOTIFY_AI_MODEL", "gpt-4o-mini"),
        "TIMEOUT": env_int("NOTIFY_AI_TIMEOUT", 20),
    },
}

# Rate limits of every surface (429 with Retry-After in the surface's format).
# Rates are "<n>/<second|minute|hour|day>"; see notifications/api/throttling.py.
# One class applies all of them in one Redis round trip.
REST_FRAMEWORK["DEFAULT_THROTTLE_CLASSES"] = ["notifications.api.throttling.RateLimits"]
REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] = {
    "anon": env("THROTTLE_ANON_RATE", "60/minute"),
    "user": env("THROTTLE_USER_RATE", "1200/minute"),
    "platform": env("THROTTLE_PLATFORM_RATE", "12000/minute"),
    # Template test-sends email the admin: a handful a minute is plenty.
    "template_test": env("THROTTLE_TEMPLATE_TEST_RATE", "20/minute"),
    # Delivery reports a provider posts (one per message), per client address.
    "provider_callback": env("THROTTLE_PROVIDER_CALLBACK_RATE", "6000/minute"),
}
# One name in the schema for the channel choices the templates surface uses in several places.
SPECTACULAR_SETTINGS.setdefault("ENUM_NAME_OVERRIDES", {}).update(
    {
        "ChannelEnum": "notifications.models.Channel",
        # The bulk document's channel names (`push`): a job's channel, a delivery's, a fallback_channel.
        "ScheduledChannelEnum": "notifications.models.ScheduledChannel",
        "InboxStatusEnum": "notifications.models.InboxStatus",
        "AlertTypeEnum": "alerts.models.AlertType",
    }
)
# --- end templates_app -------------------------------------------------------------

# Scheduled bulk jobs: a worker's lease (renewed every batch), and the retries
# of a job whose run failed or left deliveries pending (exponential backoff).
SCHEDULED_JOB_LEASE_SECONDS = env_int("SCHEDULED_JOB_LEASE_SECONDS", 300)
SCHEDULED_MAX_ATTEMPTS = env_int("SCHEDULED_MAX_ATTEMPTS", 5)
SCHEDULED_RETRY_BASE_SECONDS = env_int("SCHEDULED_RETRY_BASE_SECONDS", 30)
SCHEDULED_RETRY_MAX_SECONDS = env_int("SCHEDULED_RETRY_MAX_SECONDS", 900)

# --- Notification builder -----------------------------------------------------
# Recipients a sending worker claims and hands to the pipeline at a time, and
# how many Celery tasks share one build's chunks (SKIP LOCKED claims).
BUILDER_SEND_CHUNK = env_int("BUILDER_SEND_CHUNK", 5000)
BUILDER_SEND_WORKERS = env_int("BUILDER_SEND_WORKERS", 1)
SPECTACULAR_SETTINGS.setdefault("ENUM_NAME_OVERRIDES", {}).update({"BuildStatusEnum": "builder.models.BuildStatus"})

# --- Outbound webhooks (webhooks) -------------------------------------------------
# Endpoint URLs must resolve to public addresses; these hosts, addresses or
# networks are allowed anyway (a receiver on the private network; tests use loopback).
WEBHOOK_ALLOWED_HOSTS = env_list("WEBHOOK_ALLOWED_HOSTS")
# Connect and read timeout of one attempt.
WEBHOOK_TIMEOUT_SECONDS = float(env("WEBHOOK_TIMEOUT_SECONDS", "5"))
# Kept-alive connections (one thread each) a delivery task posts one endpoint's batch over.
WEBHOOK_DELIVERY_CONNECTIONS = env_int("WEBHOOK_DELIVERY_CONNECTIONS", 4)
# Backoff: 1 minute doubling up to 12 hours, 16 attempts in all (about three days).
WEBHOOK_MAX_ATTEMPTS = env_int("WEBHOOK_MAX_ATTEMPTS", 16)
WEBHOOK_RETRY_BASE_SECONDS = env_int("WEBHOOK_RETRY_BASE_SECONDS", 60)
WEBHOOK_RETRY_CAP_SECONDS = env_int("WEBHOOK_RETRY_CAP_SECONDS", 12 * 3600)
# An endpoint whose every attempt failed for this long is disabled and its platform's admins told.
WEBHOOK_DISABLE_AFTER_SECONDS = env_int("WEBHOOK_DISABLE_AFTER_SECONDS", 5 * 86400)
# How long a process trusts its cached list of subscribed endpoints (other processes see changes this late).
WEBHOOK_SUBSCRIPTION_CACHE_SECONDS = float(env("WEBHOOK_SUBSCRIPTION_CACHE_SECONDS", "5"))
WEBHOOK_MAX_ENDPOINTS = env_int("WEBHOOK_MAX_ENDPOINTS", 20)
SPECTACULAR_SETTINGS.setdefault("ENUM_NAME_OVERRIDES", {}).update(
    {"WebhookMessageStatusEnum": "webhooks.models.MessageStatus"}
)
# --- end of webhooks ----------------------------------------------------------------
