"""Django settings for the PHM platform.

Everything that differs between a laptop and a plant server comes from environment variables
with safe defaults (all documented in README.md):

- ``DATABASE_URL``: default SQLite in WAL mode under ``var/``; ``postgres://...`` for PostgreSQL.
- ``PHM_BROKER_URL``: default kombu's filesystem transport (no server); ``redis://...`` for Redis.
- ``PHM_SECRET_KEY``, ``PHM_DEBUG``, ``PHM_ALLOWED_HOSTS``, ``PHM_DATA_ROOT``, ``PHM_MEDIA_ROOT``,
  ``PHM_API_MAX_BATCH``, ``PHM_CSRF_TRUSTED_ORIGINS``, ``PHM_LOG_LEVEL``.
- ``PHM_READINGS_STORE`` (sql|clickhouse), ``PHM_CLICKHOUSE_URL``, ``PHM_RETENTION_RAW_DAYS``,
  ``PHM_RETENTION_ROLLUP_DAYS``, ``PHM_PARTITION_AHEAD_DAYS``: the readings store.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import dj_database_url
from csp.constants import NONCE as CSP_NONCE

from phm.env import env_bool, env_list
from phm.files import private_folder

BASE_DIR = Path(__file__).resolve().parent.parent
# Owner-only (0700): secret key, database, uploads, queue. phm/files.py
DATA_ROOT = private_folder(Path(os.environ.get("PHM_DATA_ROOT", BASE_DIR / "var")))


def _secret_key() -> str:
    """Use PHM_SECRET_KEY; otherwise a random key kept in var/ so sessions survive restarts."""
    if key := os.environ.get("PHM_SECRET_KEY"):
        return key
    key_file = DATA_ROOT / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(50))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = env_bool("PHM_DEBUG", False)
ALLOWED_HOSTS = env_list("PHM_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("PHM_CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI files from the installed package, not a CDN
    "axes",  # login throttling: phm/login_lockout.py
    "phm.assets",
    "phm.telemetry",
    "phm.sources",
    "phm.analytics",
    "phm.backtests",
    "phm.condition",
    "phm.alarms",
    "phm.assistant",
    "phm.dashboard",
    "phm.api",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # 413 before a too-large body is read (phm/uploads.py)
    "phm.uploads.RequestSizeMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Engineer-only pages outside the dashboard app (e.g. knowledge-base uploads): phm/dashboard/roles.py
    "phm.dashboard.middleware.PageRoleMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    # Last, as django-axes asks: refuses a locked-out login before the view runs.
    "axes.middleware.AxesMiddleware",
]

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

ROOT_URLCONF = "phm.urls"
WSGI_APPLICATION = "phm.wsgi.application"
ASGI_APPLICATION = "phm.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
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

# --- database ---------------------------------------------------------------------------------
SQLITE_DEFAULT_URL = f"sqlite:///{DATA_ROOT / 'phm.sqlite3'}"
DATABASES = {"default": dj_database_url.parse(os.environ.get("DATABASE_URL", SQLITE_DEFAULT_URL), conn_max_age=60)}


def _tune_sqlite(config: dict) -> None:
    """WAL lets the web server read while the worker and the simulator write; IMMEDIATE
    transactions take the write lock up front so concurrent writers queue instead of failing."""
    if config["ENGINE"] == "django.db.backends.sqlite3":
        config["CONN_MAX_AGE"] = 0
        config.setdefault("OPTIONS", {}).update(
            {
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=30000;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 30,
            }
        )


_tune_sqlite(DATABASES["default"])

# A second alias for PostgreSQL lets one test run exercise both engines (tests/conftest.py).
if test_pg_url := os.environ.get("PHM_TEST_POSTGRES_URL"):
    DATABASES["postgres"] = dj_database_url.parse(test_pg_url)
    DATABASES["postgres"]["TEST"] = {"NAME": os.environ.get("PHM_TEST_POSTGRES_DB", "test_phm")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("PHM_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("PHM_STATIC_ROOT", DATA_ROOT / "static"))
STATICFILES_DIRS = [BASE_DIR / "phm" / "static"]
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
MEDIA_URL = "media/"
MEDIA_ROOT = Path(os.environ.get("PHM_MEDIA_ROOT", DATA_ROOT / "media"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Uploads of historian files and images go through the API; keep big files on disk, not in memory.
DATA_UPLOAD_MAX_MEMORY_SIZE = int(os.environ.get("PHM_UPLOAD_MAX_MEMORY", 64 * 1024 * 1024))
FILE_UPLOAD_MAX_MEMORY_SIZE = 8 * 1024 * 1024

# Upload limits per kind (phm/uploads.py; README "Security and limits").
MIB = 1024 * 1024
PHM_UPLOAD_MAX_HISTORIAN_BYTES = int(os.environ.get("PHM_UPLOAD_MAX_HISTORIAN_BYTES", 256 * MIB))
# The worker holds one decoded array at a time in memory: 256 MiB is 32 million float64 samples.
PHM_UPLOAD_MAX_DECODED_BYTES = int(os.environ.get("PHM_UPLOAD_MAX_DECODED_BYTES", 256 * MIB))
PHM_KB_MAX_UPLOAD_BYTES = int(os.environ.get("PHM_KB_MAX_UPLOAD_BYTES", 20 * MIB))
PHM_KB_MAX_PAGES = int(os.environ.get("PHM_KB_MAX_PAGES", 2000))
PHM_KB_MAX_TEXT_CHARS = int(os.environ.get("PHM_KB_MAX_TEXT_CHARS", 4_000_000))
PHM_KB_MAX_CHUNKS = int(os.environ.get("PHM_KB_MAX_CHUNKS", 10_000))
PHM_MAX_REQUEST_BYTES = int(
    os.environ.get("PHM_MAX_REQUEST_BYTES", max(PHM_UPLOAD_MAX_HISTORIAN_BYTES, PHM_KB_MAX_UPLOAD_BYTES, DATA_UPLOAD_MAX_MEMORY_SIZE) + MIB)
)

# --- security -----------------------------------------------------------------------------------
# README "Security and limits". PHM_HTTPS=1 when the site is served over HTTPS (directly or
# behind a proxy that sets X-Forwarded-Proto): cookies only over HTTPS, HSTS.
HTTPS = env_bool("PHM_HTTPS", False)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = int(os.environ.get("PHM_HSTS_SECONDS", 365 * 24 * 3600)) if HTTPS else 0
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if HTTPS else None
SECURE_SSL_REDIRECT = HTTPS and env_bool("PHM_HTTPS_REDIRECT", False)
SESSION_COOKIE_AGE = int(os.environ.get("PHM_SESSION_AGE", 12 * 3600))  # a shift, not Django's two weeks
SESSION_COOKIE_SAMESITE = CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"

# Login lockout (django-axes): per username and per address, back-off doubling past the limit.
AXES_ENABLED = env_bool("PHM_LOGIN_LOCKOUT", True)
AXES_FAILURE_LIMIT = int(os.environ.get("PHM_LOGIN_FAILURE_LIMIT", 5))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_COOLOFF_TIME = "phm.login_lockout.cooloff_for_request"
AXES_RESET_ON_SUCCESS = True
PHM_PROXY_COUNT = int(os.environ.get("PHM_PROXY_COUNT", 0))  # reverse proxies in front that append X-Forwarded-For
AXES_CLIENT_IP_CALLABLE = "phm.login_lockout.client_address"
AXES_LOCKOUT_PARAMETERS_HTTP_STATUS = 429
PHM_LOGIN_LOCKOUT_BASE_S = int(os.environ.get("PHM_LOGIN_LOCKOUT_BASE_S", 60))
PHM_LOGIN_LOCKOUT_MAX_S = int(os.environ.get("PHM_LOGIN_LOCKOUT_MAX_S", 3600))

# Content-Security-Policy (django-csp): scripts only from this site or carrying the per-response
# nonce (Plotly's inline chart scripts and the chat page get it); inline styles are allowed.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'", CSP_NONCE],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:", "blob:"],
        "font-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}

# Cache for throttle counters: per process by default; PHM_CACHE_URL=redis://... shares it.
if (cache_url := os.environ.get("PHM_CACHE_URL", "")).startswith(("redis://", "rediss://")):
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": cache_url}}

LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

# --- REST API ---------------------------------------------------------------------------------
REST_FRAMEWORK = {
    # Token first: an API call without credentials gets 401 with WWW-Authenticate: Token.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # Signed in to read; engineer to write, except an operator's own actions (ack/shelve alarms,
    # ask the assistant). See phm/api/permissions.py.
    "DEFAULT_PERMISSION_CLASSES": ["phm.api.permissions.RolePermission"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # JSON depth and Unicode checks (phm/api/parsers.py); forms and uploads as DRF's defaults.
    "DEFAULT_PARSER_CLASSES": [
        "phm.api.parsers.SafeJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    # limit 1..PHM_API_MAX_PAGE, offset bounded: phm/api/pagination.py
    "DEFAULT_PAGINATION_CLASS": "phm.api.pagination.BoundedLimitOffsetPagination",
    "PAGE_SIZE": 100,
    "EXCEPTION_HANDLER": "phm.api.errors.exception_handler",
    # Rates from PHM_API_RATE / PHM_API_ANON_RATE (phm/api/throttling.py)
    "DEFAULT_THROTTLE_CLASSES": ["phm.api.throttling.TokenRateThrottle", "phm.api.throttling.AnonymousRateThrottle"],
    "NUM_PROXIES": int(os.environ.get("PHM_PROXY_COUNT", 0)) or None,  # the anonymous rate's address behind proxies
}
PHM_API_RATE = os.environ.get("PHM_API_RATE", "1200/min")
PHM_API_ANON_RATE = os.environ.get("PHM_API_ANON_RATE", "60/min")
SPECTACULAR_SETTINGS = {
    "TITLE": "PHM platform API",
    "DESCRIPTION": "Telemetry ingestion, asset hierarchy, analytics and alarms.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI from drf-spectacular-sidecar (an offline plant has no CDN); the split view serves
    # its script as a file, so the CSP needs no inline script for it.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}
PHM_API_MAX_BATCH = int(os.environ.get("PHM_API_MAX_BATCH", 50_000))
#: Longest log message stored (characters); longer ones are rejected by index, with the limit named.
PHM_LOG_MAX_MESSAGE_CHARS = int(os.environ.get("PHM_LOG_MAX_MESSAGE_CHARS", 16_384))
#: Deepest nesting accepted in a JSON body (no payload of this API needs more than a few levels).
PHM_API_MAX_JSON_DEPTH = int(os.environ.get("PHM_API_MAX_JSON_DEPTH", 32))
#: Longest alarm shelve (seconds).
PHM_ALARM_MAX_SHELVE_S = float(os.environ.get("PHM_ALARM_MAX_SHELVE_S", 24 * 3600))
# Fault classifiers of vibration captures: a fault class at or above this probability raises the
# classifier's alarm (the default of a new classifier; each has its own alarm_probability).
PHM_CLASSIFIER_ALARM_PROBABILITY = float(os.environ.get("PHM_CLASSIFIER_ALARM_PROBABILITY", 0.9))
if not 0 < PHM_CLASSIFIER_ALARM_PROBABILITY <= 1:
    raise ValueError(f"PHM_CLASSIFIER_ALARM_PROBABILITY must be in (0, 1], got {PHM_CLASSIFIER_ALARM_PROBABILITY}")
#: Most rows one page of a list endpoint returns (``?limit=`` above it is a 400).
PHM_API_MAX_PAGE = int(os.environ.get("PHM_API_MAX_PAGE", 1000))

# --- vibration captures (phm.condition; README "Condition monitoring: vibration") ----------------
#: A capture outside these is refused with the limit named (and quarantined).
PHM_CAPTURE_MIN_RATE_HZ = float(os.environ.get("PHM_CAPTURE_MIN_RATE_HZ", 256))
PHM_CAPTURE_MAX_RATE_HZ = float(os.environ.get("PHM_CAPTURE_MAX_RATE_HZ", 204_800))
PHM_CAPTURE_MIN_SAMPLES = int(os.environ.get("PHM_CAPTURE_MIN_SAMPLES", 1024))
#: 2**21 float32 samples = 8 MiB a capture (82 s at 25.6 kHz).
PHM_CAPTURE_MAX_SAMPLES = int(os.environ.get("PHM_CAPTURE_MAX_SAMPLES", 2**21))
PHM_CAPTURE_MIN_DURATION_S = float(os.environ.get("PHM_CAPTURE_MIN_DURATION_S", 0.1))
PHM_CAPTURE_MAX_DURATION_S = float(os.environ.get("PHM_CAPTURE_MAX_DURATION_S", 120))
#: A capture upload (npz/CSV file, or JSON body) larger than this is refused before it is parsed.
PHM_UPLOAD_MAX_CAPTURE_BYTES = int(os.environ.get("PHM_UPLOAD_MAX_CAPTURE_BYTES", 64 * MIB))

# --- readings store (phm.telemetry.store) -------------------------------------------------------
# sql: readings in DATABASES["default"] (partitioned by day on PostgreSQL after
# `phm_readings partition`); clickhouse: readings in PHM_CLICKHOUSE_URL, metadata stays here.
PHM_READINGS_STORE = os.environ.get("PHM_READINGS_STORE", "sql")
PHM_CLICKHOUSE_URL = os.environ.get("PHM_CLICKHOUSE_URL", "")
# Days of raw readings and of minute roll-ups to keep (0: forever); the hour tier is kept.
PHM_RETENTION_RAW_DAYS = int(os.environ.get("PHM_RETENTION_RAW_DAYS", 0))
PHM_RETENTION_ROLLUP_DAYS = int(os.environ.get("PHM_RETENTION_ROLLUP_DAYS", 0))
# Daily PostgreSQL partitions created ahead of today by `phm_readings maintain`.
PHM_PARTITION_AHEAD_DAYS = int(os.environ.get("PHM_PARTITION_AHEAD_DAYS", 7))

# --- Celery -----------------------------------------------------------------------------------
BROKER_DIR = DATA_ROOT / "broker"
CELERY_BROKER_URL = os.environ.get("PHM_BROKER_URL", "filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    for sub in ("queue", "processed", "control"):
        (BROKER_DIR / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
        "polling_interval": 0.2,
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
# Progress and results live in our own tables (jobs are rows), so no result backend is needed.
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Periodic work (incremental scoring, webhook delivery, shelve expiry); intervals from env, see
# phm/analytics/schedule.py. That module imports nothing from Django, so settings may load it.
from phm.analytics.schedule import BEAT_SCHEDULE  # noqa: E402

CELERY_BEAT_SCHEDULE: dict = dict(BEAT_SCHEDULE)

# --- logging ----------------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("PHM_LOG_LEVEL", "INFO")},
}

# --- least privilege (connector files, outbound webhooks) ------------------------------------
import ipaddress  # noqa: E402
# Folders connector definitions may read from (log files, image and historian inboxes); a path
# outside them, after resolving symlinks, is refused on save and again when the connector runs.
PHM_CONNECTOR_ROOTS = [Path(p) for p in env_list("PHM_CONNECTOR_ROOTS", str(DATA_ROOT / "connectors"))]
if "PHM_CONNECTOR_ROOTS" not in os.environ:
    (DATA_ROOT / "connectors").mkdir(exist_ok=True)  # the default root exists, ready for inboxes and logs
# Networks webhook endpoints may reach although they are loopback / private / link-local
# (comma-separated CIDRs, e.g. the SCADA subnet "10.20.0.0/16"); see phm/alarms/egress.py.
PHM_WEBHOOK_ALLOWED_NETWORKS = env_list("PHM_WEBHOOK_ALLOWED_NETWORKS", "")
for _network in PHM_WEBHOOK_ALLOWED_NETWORKS:  # a typo fails at start-up, not on the first alarm
    try:
        ipaddress.ip_network(_network, strict=False)
    except ValueError as _exc:
        raise ValueError(f"PHM_WEBHOOK_ALLOWED_NETWORKS: {_network!r} is not a network in CIDR form (e.g. 10.20.0.0/16): {_exc}") from None
# The schema and its docs page are for signed-in users with a role, like the rest of the API.
SPECTACULAR_SETTINGS["SERVE_PERMISSIONS"] = ["phm.api.permissions.RolePermission"]
