"""mlapi settings: read from the environment only, grouped by concern.

Every variable is documented in `.env.example`. Production (DJANGO_DEBUG off) refuses to
start without the settings it cannot guess, instead of running insecurely.
"""

import ipaddress
import os
import secrets
import sys
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from mlapi.envfile import load_env_file
from mlapi.objectstore import ObjectStorageMisconfigured, objects_storage

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value) if value.strip() else default
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer, got {value!r}") from exc


def env_list(name: str) -> list[str]:
    """A comma-separated variable as a list (empty entries dropped)."""
    return [item.strip() for item in os.environ.get(name, "").split(",") if item.strip()]


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name, "")
    try:
        return float(value) if value.strip() else default
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be a number, got {value!r}") from exc


# --- Core -------------------------------------------------------------------------------
# Under pytest the suite runs with test-friendly defaults (fast hashes, its own data dir).
TESTING = env_bool("MLAPI_TESTING", False) or "pytest" in sys.modules
if not TESTING:  # `make setup`'s .env (mlapi/envfile.py); the process environment wins
    load_env_file()
DEBUG = env_bool("DJANGO_DEBUG", False)
DATA_DIR = Path(
    os.environ.get("MLAPI_DATA_DIR") or BASE_DIR / ("var/test" if TESTING else "var")
).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)


def _secret_key() -> str:
    key = os.environ.get("DJANGO_SECRET_KEY", "")
    if key:
        return key
    if not (DEBUG or TESTING):
        raise ImproperlyConfigured("DJANGO_SECRET_KEY is required when DJANGO_DEBUG is off")
    # Debug only: generate once and keep it, so sessions survive restarts.
    path = DATA_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = [h.strip() for h in os.environ.get("ALLOWED_HOSTS", "").split(",") if h.strip()]
if DEBUG or TESTING:
    ALLOWED_HOSTS += ["127.0.0.1", "localhost", "[::1]", "testserver"]
elif not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS is required when DJANGO_DEBUG is off")

INSTALLED_APPS = [
    "portal.apps.AdminConfig",  # django.contrib.admin, login limited like the portal's
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "drf_spectacular",
    "django_ratelimit",
    "corsheaders",
    "audit",
    "events",
    "keys",
    "usage",
    "predictions",
    "portal",
    "webhooks",
]

MIDDLEWARE = [
    "mlapi.request_id.RequestIdMiddleware",  # X-Request-ID in, out, in problems, logs, usage
    # Before the rest, so preflights are answered at once and every data-plane reply (413s and
    # reshaped errors too) has CORS.
    "corsheaders.middleware.CorsMiddleware",
    "mlapi.middleware.ErrorShapeMiddleware",  # Django's own HTML errors -> contract shapes
    "mlapi.middleware.BodySizeLimitMiddleware",
    "usage.middleware.UsageRecordingMiddleware",
    # Data-plane paths leave here for a lean chain (security + common only): mlapi/middleware.py
    "mlapi.middleware.LeanDataPlaneMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "mlapi.middleware.StoreOutageMiddleware",  # last: sees the view's exceptions first
]

ROOT_URLCONF = "mlapi.urls"
WSGI_APPLICATION = "mlapi.wsgi.application"
AUTH_USER_MODEL = "portal.User"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

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

# --- Database ---------------------------------------------------------------------------
# SQLite in the data dir by default (WAL mode, see mlapi/db.py); PostgreSQL via DATABASE_URL.
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{DATA_DIR / 'mlapi.sqlite3'}",
        conn_max_age=env_int("MLAPI_DB_CONN_MAX_AGE", 600),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        # IMMEDIATE: writers take the lock at BEGIN, so concurrent writers queue on the
        # busy timeout instead of failing with "database is locked" on lock upgrade.
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": (
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=30000;"
        ),
    }
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test-mlapi.sqlite3")}

# --- Cache ------------------------------------------------------------------------------
# Redis when configured (shared by every web node). Otherwise diskcache: a SQLite-backed cache
# whose incr/add are atomic across processes, which the login/signup limits need (locmem is
# per process and would multiply the limits by the number of workers).
REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "mlapi",
            # An unreachable Redis fails fast (-> 503), never holds a request for long.
            "OPTIONS": {"socket_connect_timeout": 1.0, "socket_timeout": 2.0},
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "diskcache.DjangoCache",
            "LOCATION": str(DATA_DIR / "cache"),
            "TIMEOUT": 300,
            "OPTIONS": {"size_limit": 2**28},
        }
    }
# django-ratelimit's W001 is an allow-list of backends that predates Django's own RedisCache.
# Both backends here have the atomic add/incr the limiter needs: Redis SET NX / INCRBY, and
# diskcache's incr/add inside a SQLite transaction (atomic across processes).
SILENCED_SYSTEM_CHECKS = ["django_ratelimit.W001"]

# --- Limits store (keys.limits) ---------------------------------------------------------
# "auto": the Redis lease store when REDIS_URL is set, else the database store. Leases grow
# to at most FRACTION of a period's quota and MAX units (the bound on under-admission after a
# crash, see docs/performance.md).
MLAPI_LIMITS_STORE = os.environ.get("MLAPI_LIMITS_STORE", "auto")
if MLAPI_LIMITS_STORE not in {"auto", "database", "redis"}:
    raise ImproperlyConfigured("MLAPI_LIMITS_STORE must be auto, database or redis")
if MLAPI_LIMITS_STORE == "redis" and not REDIS_URL:
    raise ImproperlyConfigured("MLAPI_LIMITS_STORE=redis needs REDIS_URL")
MLAPI_LIMITS_LEASE_FRACTION = env_float("MLAPI_LIMITS_LEASE_FRACTION", 0.001)
MLAPI_LIMITS_LEASE_MAX = env_int("MLAPI_LIMITS_LEASE_MAX", 1_000_000)
# Requests' worth of tokens and units a busy process may hold for ~50 ms (keys.limits
# .reservations); 0 sends every admit to Redis.
MLAPI_LIMITS_RESERVE_MAX = env_int("MLAPI_LIMITS_RESERVE_MAX", 16)

# --- Auth -------------------------------------------------------------------------------
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
if TESTING:
    # Argon2 is deliberately slow; tests create hundreds of users.
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher", *PASSWORD_HASHERS]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "portal:login"
LOGIN_REDIRECT_URL = "portal:dashboard"
LOGOUT_REDIRECT_URL = "portal:landing"

# --- REST framework ---------------------------------------------------------------------
REST_FRAMEWORK = {
    # Management plane by default: JWT (token_expired vs invalid_credentials), session + CSRF,
    # and API keys last, so a valid key is recognised and refused (403) by ManagementPlane.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "keys.authentication.SubscriberJWTAuthentication",
        "rest_framework.authentication.SessionAuthentication",
        "keys.authentication.ApiKeyAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_PAGINATION_CLASS": "mlapi.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "mlapi.exceptions.problem_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}
SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=15),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=1),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": False,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "mlapi",
    "DESCRIPTION": "scikit-learn models behind a managed API.",
    "VERSION": "1.0.0",
    "OAS_VERSION": "3.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "mlapi.openapi.add_error_responses",  # every operation documents its errors
    ],
}

# --- Static files -----------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
# "objects": model artifacts and batch-job files (MLAPI_OBJECT_STORAGE; see mlapi/objectstore.py).
MLAPI_OBJECT_STORAGE = os.environ.get("MLAPI_OBJECT_STORAGE", "").strip()
try:
    _OBJECTS_STORAGE = objects_storage(MLAPI_OBJECT_STORAGE, DATA_DIR)
except ObjectStorageMisconfigured as _exc:
    raise ImproperlyConfigured(str(_exc)) from _exc
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "objects": _OBJECTS_STORAGE,
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG or TESTING
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
MEDIA_ROOT = DATA_DIR / "media"

# --- Security ---------------------------------------------------------------------------
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # the portal's fetch() calls read it for the X-CSRFToken header
SECURE_SSL_REDIRECT = env_bool("MLAPI_SSL_REDIRECT", not (DEBUG or TESTING))
SESSION_COOKIE_SECURE = not (DEBUG or TESTING)
CSRF_COOKIE_SECURE = not (DEBUG or TESTING)
SECURE_HSTS_SECONDS = 0 if (DEBUG or TESTING) else env_int("MLAPI_HSTS_SECONDS", 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not (DEBUG or TESTING)
SECURE_HSTS_PRELOAD = not (DEBUG or TESTING)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$", r"^v2/health/"]
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "script-src": ["'self'"],
        "connect-src": ["'self'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    }
}
RATELIMIT_USE_CACHE = "default"
RATELIMIT_VIEW = "mlapi.exceptions.ratelimited_view"

# --- Email ------------------------------------------------------------------------------
# Invitations (and password resets) go through Django's email backend: SMTP when EMAIL_HOST
# is set, else the console. EMAIL_BACKEND overrides (e.g. the file backend + EMAIL_FILE_PATH).
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND") or (
    "django.core.mail.backends.smtp.EmailBackend"
    if os.environ.get("EMAIL_HOST")
    else "django.core.mail.backends.console.EmailBackend"
)
EMAIL_FILE_PATH = os.environ.get("EMAIL_FILE_PATH", str(BASE_DIR / "var" / "email"))
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "mlapi <noreply@localhost>")

# --- Celery -----------------------------------------------------------------------------
# Embedded broker by default: kombu's SQLAlchemy transport on a SQLite file, no server needed
# ("embedded" is that transport polling every 0.1 s, see mlapi/celery.py).
CELERY_BROKER_URL = (
    os.environ.get("CELERY_BROKER_URL") or f"embedded+sqlite:///{DATA_DIR / 'broker.sqlite3'}"
)
# Messages are JSON (Celery's default serializer and accept_content; tasks take ids only).
# Not restated here: Celery reads CELERY_TASK_SERIALIZER & co. as ambiguous pre-4.0 names.
# A task is acknowledged only after it ran, and requeued if its worker process dies; jobs are
# resumable and exactly-once (predictions/jobs/runner.py), so a second delivery is harmless.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_TIMEOUT = 2
# Transport options differ per broker (kombu's SQLAlchemy transport hands every option to
# create_engine, so it gets none). Redis: a message unacknowledged for an hour is redelivered.
CELERY_BROKER_TRANSPORT_OPTIONS = (
    {"visibility_timeout": 3600} if CELERY_BROKER_URL.startswith(("redis", "rediss")) else {}
)
if CELERY_BROKER_URL.startswith("filesystem:"):  # the other embedded transport (measured)
    for _folder in ("queue", "processed"):
        (DATA_DIR / "broker" / _folder).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(DATA_DIR / "broker" / "queue"),
        "data_folder_out": str(DATA_DIR / "broker" / "queue"),
        "processed_folder": str(DATA_DIR / "broker" / "processed"),
        "polling_interval": 0.1,
    }
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BEAT_SCHEDULE = {
    "prune-usage-records": {"task": "usage.tasks.prune_usage_records", "schedule": 3600.0},
    "expire-batch-jobs": {"task": "predictions.expire_batch_jobs", "schedule": 3600.0},
    "recover-orphaned-jobs": {"task": "predictions.recover_orphaned_jobs", "schedule": 60.0},
    # mlapi_worker_heartbeat_timestamp_seconds, for the MlapiWorkerDown alert.
    "worker-heartbeat": {"task": "mlapi.worker_heartbeat", "schedule": 15.0},
    "webhooks-sweep": {"task": "webhooks.sweep", "schedule": 15.0},
    "webhooks-scan": {"task": "webhooks.scan_periodic_events", "schedule": 300.0},
}

# --- mlapi ------------------------------------------------------------------------------
MLAPI_MAX_REQUEST_BYTES = env_int("MLAPI_MAX_REQUEST_BYTES", 12 * 1024 * 1024)
MLAPI_MAX_UPLOAD_BYTES = env_int("MLAPI_MAX_UPLOAD_BYTES", 100 * 1024 * 1024)
MLAPI_PREDICT_TIMEOUT_S = env_float("MLAPI_PREDICT_TIMEOUT_S", 40.0)
# Shadow scoring (predictions.shadow): queued requests per process before new ones are dropped,
# and the relative tolerance under which two regression answers agree.
MLAPI_SHADOW_QUEUE = env_int("MLAPI_SHADOW_QUEUE", 256)
MLAPI_SHADOW_RTOL = env_float("MLAPI_SHADOW_RTOL", 1e-3)
MLAPI_KEY_ROTATION_GRACE_HOURS = env_float("MLAPI_KEY_ROTATION_GRACE_HOURS", 24.0)
# Reverse proxies in front of us that append to X-Forwarded-For (0: ignore the header).
MLAPI_TRUSTED_PROXY_HOPS = env_int("MLAPI_TRUSTED_PROXY_HOPS", 0)
# Proxies (CIDRs) whose X-Forwarded-For entry is believed (keys/clientip.py); empty: none.
MLAPI_TRUSTED_PROXIES = env_list("MLAPI_TRUSTED_PROXIES")
try:
    [ipaddress.ip_network(item, strict=False) for item in MLAPI_TRUSTED_PROXIES]
except ValueError as exc:
    raise ImproperlyConfigured(f"MLAPI_TRUSTED_PROXIES: {exc}") from None
MLAPI_USAGE_RETENTION_DAYS = env_int("MLAPI_USAGE_RETENTION_DAYS", 90)
# Usage writes: "buffered" (background writer, flushed at exit) or "sync" (in the request).
# Tests default to sync so a request's usage lands in that test's transaction.
MLAPI_USAGE_MODE = os.environ.get("MLAPI_USAGE_MODE") or ("sync" if TESTING else "buffered")
if MLAPI_USAGE_MODE not in {"buffered", "sync"}:
    raise ImproperlyConfigured("MLAPI_USAGE_MODE must be 'buffered' or 'sync'")
MLAPI_USAGE_RECORDING = env_bool("MLAPI_USAGE_RECORDING", True)  # off only for the bench
MLAPI_USAGE_FLUSH_INTERVAL_S = env_float("MLAPI_USAGE_FLUSH_INTERVAL_S", 0.5)
MLAPI_USAGE_FLUSH_SIZE = env_int("MLAPI_USAGE_FLUSH_SIZE", 200)
MLAPI_JOB_RETENTION_DAYS = env_int("MLAPI_JOB_RETENTION_DAYS", 7)
# Rows per batch-job chunk: the unit a worker leases, scores and commits; progress, cancel,
# fan-out over workers and crash recovery happen at chunk boundaries.
MLAPI_JOB_CHUNK_ROWS = env_int("MLAPI_JOB_CHUNK_ROWS", 20000)
# A chunk lease lasts this long: a worker that dies holding one loses it after this (another
# worker then takes the chunk over). Generous: a live holder's late commit still counts.
MLAPI_JOB_LEASE_S = env_float("MLAPI_JOB_LEASE_S", 30.0)
# Queue the job tasks go to; empty = Celery's default queue, which `make run`'s worker consumes.
MLAPI_JOB_QUEUE = os.environ.get("MLAPI_JOB_QUEUE", "")
MLAPI_REQUIRE_SERVICES = env_bool("MLAPI_REQUIRE_SERVICES", False)
# gRPC data plane (predictions.grpc, the `grpc` role of `python -m mlapi.serve`).
MLAPI_GRPC_PORT = env_int("MLAPI_GRPC_PORT", 8001)
# Handler threads per gRPC process. Python runs one thread at a time, so more threads than the
# process can use only contend (for the interpreter lock and the limits store's write queue):
# on 2 cores with 2 processes, 2 threads each answered 2.1x the single-row calls of 8 and 1.5x
# the 1,000-row calls (bench, docs/performance.md, session 7). A slow call holds one thread, as
# a slow request holds a gunicorn sync worker; raise this for models that wait on I/O.
MLAPI_GRPC_THREADS = env_int("MLAPI_GRPC_THREADS", 2)
MLAPI_GRPC_REUSEPORT = env_bool("MLAPI_GRPC_REUSEPORT")  # set by mlapi.serve
MLAPI_GRPC_GRACE_S = env_float("MLAPI_GRPC_GRACE_S", 10.0)
MLAPI_GRPC_TLS_CERT = os.environ.get("MLAPI_GRPC_TLS_CERT", "")  # PEM files; both or neither
MLAPI_GRPC_TLS_KEY = os.environ.get("MLAPI_GRPC_TLS_KEY", "")
# Where clients reach us, for absolute links in webhook payloads (e.g. a job's results_url).
MLAPI_PUBLIC_URL = os.environ.get("MLAPI_PUBLIC_URL", "")

# --- Webhooks (webhooks/): SSRF guard, timeouts, retries --------------------------------
MLAPI_WEBHOOK_ALLOW_HTTP = env_bool("MLAPI_WEBHOOK_ALLOW_HTTP", False)
MLAPI_WEBHOOK_ALLOW_PRIVATE = env_bool("MLAPI_WEBHOOK_ALLOW_PRIVATE", False)
MLAPI_WEBHOOK_TIMEOUT_S = env_float("MLAPI_WEBHOOK_TIMEOUT_S", 10.0)
# Retry n waits base * 2**(n-1) s, until the window (24 h) after the event has passed.
MLAPI_WEBHOOK_RETRY_BASE_S = env_float("MLAPI_WEBHOOK_RETRY_BASE_S", 30.0)
MLAPI_WEBHOOK_RETRY_WINDOW_S = env_float("MLAPI_WEBHOOK_RETRY_WINDOW_S", 86400.0)
# A claimed attempt is another worker's to retry after this (must exceed the timeout).
MLAPI_WEBHOOK_LEASE_S = env_float("MLAPI_WEBHOOK_LEASE_S", 60.0)
# Retries due within this are scheduled as Celery countdowns; later ones by the sweep.
MLAPI_WEBHOOK_MAX_COUNTDOWN_S = env_float("MLAPI_WEBHOOK_MAX_COUNTDOWN_S", 300.0)
# Queue of the webhook tasks; empty = Celery's default queue, which `make run`'s worker consumes.
MLAPI_WEBHOOK_QUEUE = os.environ.get("MLAPI_WEBHOOK_QUEUE", "")
if MLAPI_WEBHOOK_LEASE_S <= MLAPI_WEBHOOK_TIMEOUT_S:
    raise ImproperlyConfigured("MLAPI_WEBHOOK_LEASE_S must exceed MLAPI_WEBHOOK_TIMEOUT_S")
DATA_UPLOAD_MAX_MEMORY_SIZE = MLAPI_MAX_REQUEST_BYTES
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024  # larger uploads stream to a temp file

# --- CORS (django-cors-headers): browser callers of the data plane only -----------------
MLAPI_CORS_ALLOWED_ORIGINS = env_list("MLAPI_CORS_ALLOWED_ORIGINS")
CORS_ALLOWED_ORIGINS = MLAPI_CORS_ALLOWED_ORIGINS
CORS_URLS_REGEX = r"^/(api/v1/models|api/v1/jobs|v2(/|$)|v1/models/)"
CORS_ALLOW_HEADERS = ["x-api-key", "authorization", "content-type"]
CORS_EXPOSE_HEADERS = [
    "RateLimit-Policy",
    "RateLimit",
    "RateLimit-Limit",
    "RateLimit-Remaining",
    "RateLimit-Reset",
    "Retry-After",
    "Location",
    "X-Request-ID",
]
CORS_PREFLIGHT_MAX_AGE = 600

# JSON lines in production (mlapi/logformat.py), readable text in debug; MLAPI_LOG_FORMAT wins.
MLAPI_LOG_FORMAT = os.environ.get("MLAPI_LOG_FORMAT") or ("plain" if DEBUG else "json")
if MLAPI_LOG_FORMAT not in {"json", "plain"}:
    raise ImproperlyConfigured("MLAPI_LOG_FORMAT must be 'json' or 'plain'")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "mlapi.request_id.RequestIdLogFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
        "json": {"()": "mlapi.logformat.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": MLAPI_LOG_FORMAT,
            "filters": ["request_id"],
        }
    },
    "root": {"handlers": ["console"], "level": os.environ.get("MLAPI_LOG_LEVEL", "INFO")},
    "loggers": {"django.request": {"level": "ERROR"}},
}
