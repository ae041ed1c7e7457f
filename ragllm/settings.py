"""Settings for ragllm, read from the environment only (django-environ).

Every variable is documented in `.env.example`. Defaults are the embedded development set-up:
SQLite under `var/`, a filesystem Celery broker, no Redis. Production needs `DEBUG=False`,
`SECRET_KEY` and `CREDENTIALS_ENCRYPTION_KEY` (start-up refuses otherwise).
"""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# A local `.env` is a convenience for development; real deployments set the environment.
if (BASE_DIR / ".env").is_file():
    env.read_env(str(BASE_DIR / ".env"), overwrite=False)


def _secret(name: str) -> str:
    """A secret from NAME or from the file named by NAME_FILE (Docker/K8s secrets)."""
    value = env.str(name, default="")
    path = env.str(f"{name}_FILE", default="")
    if value and path:
        raise ImproperlyConfigured(f"Set {name} or {name}_FILE, not both.")
    if path:
        try:
            value = Path(path).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={path} cannot be read: {exc}") from exc
    return value


VAR_DIR = Path(env.str("VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env.bool("DEBUG", default=False)


def _dev_secret(filename: str) -> str:
    """DEBUG without a secret: the one in var/ that `make run` uses, created once if absent.

    Every process started from this checkout (`make run`, `manage.py ...`, the worker) reads
    the same file, so keys saved by the web server decrypt in a management command too.
    """
    path = VAR_DIR / filename
    if not path.exists():
        # Written aside then linked into place: two processes starting at once agree on one.
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48) + "\n")
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_text().strip()


SECRET_KEY = _secret("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Refusing to start with DEBUG=False and no SECRET_KEY: "
            "set SECRET_KEY (or SECRET_KEY_FILE), or DEBUG=True for local development."
        )
    SECRET_KEY = _dev_secret("secret_key")

# Provider keys are encrypted with their own key so that rotating SECRET_KEY (sessions,
# password reset tokens) never makes stored credentials unreadable.
CREDENTIALS_ENCRYPTION_KEY = _secret("CREDENTIALS_ENCRYPTION_KEY")
if not CREDENTIALS_ENCRYPTION_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "CREDENTIALS_ENCRYPTION_KEY is not set. Refusing to start with DEBUG=False: provider "
            "keys would be encrypted with a development key. Set CREDENTIALS_ENCRYPTION_KEY (or "
            "CREDENTIALS_ENCRYPTION_KEY_FILE) to a long random string and keep it safe."
        )
    CREDENTIALS_ENCRYPTION_KEY = _dev_secret("credentials_key")
CRYPTOGRAPHY_KEY = CREDENTIALS_ENCRYPTION_KEY
CRYPTOGRAPHY_SALT = "ragllm-credentials"

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "axes",
    "ragllm",  # project-wide commands (serve)
    "providers",
    "tenants",
    "usage",
    "gateway",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # Who makes a change, for the audit log (tenants.actors).
    "tenants.actors.AuditActorMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: turns a locked-out admin login into its lockout response.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "ragllm.urls"
WSGI_APPLICATION = "ragllm.wsgi.application"
ASGI_APPLICATION = "ragllm.asgi.application"

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

# --- Database -------------------------------------------------------------------------------
# PostgreSQL goes through Django's psycopg pool: each process opens at most DB_POOL_MAX_SIZE
# connections whatever the traffic, and a request waits up to DB_POOL_TIMEOUT seconds for one.
# 0 turns pooling off (then DB_CONN_MAX_AGE applies: a pool and persistent connections do not
# mix, so with the pool every connection goes back to it at the end of each request).
DB_POOL_MAX_SIZE = env.int("DB_POOL_MAX_SIZE", default=8)
DB_POOL_MIN_SIZE = env.int("DB_POOL_MIN_SIZE", default=1)
DB_POOL_TIMEOUT = env.float("DB_POOL_TIMEOUT", default=10.0)
DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'ragllm.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web server, the Celery worker and beat share one SQLite file: WAL lets readers run
    # beside the writer and IMMEDIATE transactions avoid "database is locked" upgrade deadlocks.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
    # A file (threads share it, unlike a private in-memory database), one per test run so
    # that concurrent runs do not destroy each other's database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-ragllm-{os.getpid()}.sqlite3")}
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    if DB_POOL_MAX_SIZE > 0:
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": min(DB_POOL_MIN_SIZE, DB_POOL_MAX_SIZE),
            "max_size": DB_POOL_MAX_SIZE,
            "timeout": DB_POOL_TIMEOUT,
            # Idle connections above min_size are closed after this many seconds.
            "max_idle": 300,
        }
        DATABASES["default"]["CONN_MAX_AGE"] = 0
    else:
        DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=60)
        DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DB_CONN_MAX_AGE", default=60))
    DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Serving (`manage.py serve`: granian, ASGI) ---------------------------------------------
# Worker processes, each with its own event loop and database pool: the web server opens at
# most WEB_WORKERS x DB_POOL_MAX_SIZE database connections.
WEB_WORKERS = env.int("WEB_WORKERS", default=2)
# Requests a worker handles at once (ragllm.asgi); more wait their turn, none is refused. Each
# sync view (admin, management API) holds a pooled connection while it runs: above
# DB_POOL_MAX_SIZE, such requests wait for the pool (at most DB_POOL_TIMEOUT) instead.
WEB_MAX_CONCURRENCY = env.int("WEB_MAX_CONCURRENCY", default=32)
# Open client connections a worker keeps (granian's backpressure); more wait in the backlog.
WEB_MAX_CONNECTIONS = env.int("WEB_MAX_CONNECTIONS", default=512)
# One line per request on the console.
WEB_ACCESS_LOG = env.bool("WEB_ACCESS_LOG", default=False)
for _name in ("WEB_WORKERS", "WEB_MAX_CONCURRENCY", "WEB_MAX_CONNECTIONS"):
    if globals()[_name] < 1:
        raise ImproperlyConfigured(f"{_name} must be at least 1 (it is {globals()[_name]}).")
if DB_POOL_MAX_SIZE < 0 or DB_POOL_TIMEOUT <= 0:
    raise ImproperlyConfigured("DB_POOL_MAX_SIZE must be 0 (no pool) or more; DB_POOL_TIMEOUT > 0.")

# --- Redis, cache and Celery ----------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
BROKER_DIR = VAR_DIR / "broker"

if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
        }
    }
    _default_broker = REDIS_URL
else:
    # Files under var/ rather than memory: every process on the machine (the web workers, the
    # Celery worker, commands) shares them, so a revoked token or a changed config reaches them
    # all, as it does through Redis.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": env.str("CACHE_DIR", default=str(VAR_DIR / "cache")),
        }
    }
    # kombu's filesystem transport: a real worker and beat run with no broker server at all.
    _default_broker = "filesystem://"

CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=_default_broker)
if CELERY_BROKER_URL.startswith("filesystem://"):
    for _sub in ("queue", "processed", "control"):
        (BROKER_DIR / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        # kombu's default is ./control in the current directory: every broker file in var/.
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
    }
# Task outcomes are written to our own tables (e.g. key validation state), not a result backend.
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = env.str("TIME_ZONE", default="UTC")

# The usage buffer: a Redis stream when Redis is configured (USAGE_REDIS_URL overrides).
USAGE_REDIS_URL = env.str("USAGE_REDIS_URL", default=REDIS_URL)
# Without Redis, a background thread in each process writes buffered usage (RAGFlow's design).
USAGE_WRITER_THREAD = env.bool("USAGE_WRITER_THREAD", default=True)
# Raw usage events older than this are pruned daily; hourly and daily rollups stay.
USAGE_RETENTION_DAYS = env.int("USAGE_RETENTION_DAYS", default=90)
# Tokens reserved for a completion whose max_tokens the caller did not set (quota checks).
QUOTA_COMPLETION_RESERVE = env.int("QUOTA_COMPLETION_RESERVE", default=1024)
# Quota and budget counters (usage.services.quota_redis): in Redis when set, one script per
# call; empty: the database. Either way seeded from the ledger and reconciled every minute.
QUOTA_REDIS_URL = env.str("QUOTA_REDIS_URL", default=REDIS_URL)
# A Redis counter unchanged this long, with no usage waiting to be written, is set to the
# ledger exactly by the reconciliation (dropping reservations of calls that died).
QUOTA_RECONCILE_IDLE_SECONDS = env.int("QUOTA_RECONCILE_IDLE_SECONDS", default=600)
# Rate limit counters (RPM, TPM): Redis, shared by every process; empty: in each process.
RATELIMIT_REDIS_URL = env.str("RATELIMIT_REDIS_URL", default=REDIS_URL)
# Quota windows (daily, monthly) follow the calendar of this time zone.
QUOTA_TIME_ZONE = env.str("QUOTA_TIME_ZONE", default=env.str("TIME_ZONE", default="UTC"))

# How long a process may use a cached model resolution before re-reading it (seconds). Changes
# made through the app invalidate caches at once; this bounds anything else (e.g. raw SQL).
CONFIG_CACHE_SECONDS = env.int("CONFIG_CACHE_SECONDS", default=60)

# --- LLM calls ------------------------------------------------------------------------------
# The largest request body the /v1 gateway reads (JSON with images, audio uploads), in MB;
# larger ones get 413 before they are read.
GATEWAY_MAX_REQUEST_MB = env.int("GATEWAY_MAX_REQUEST_MB", default=16)
LLM_TIMEOUT_SECONDS = env.float("LLM_TIMEOUT_SECONDS", default=60.0)
LLM_MAX_RETRIES = env.int("LLM_MAX_RETRIES", default=3)
LLM_BASE_DELAY = env.float("LLM_BASE_DELAY", default=1.0)

# --- Key validation and task limits -------------------------------------------------------
# A key validation runs on a worker: at most three live test calls. Its task is killed after
# KEY_VALIDATION_TIME_LIMIT seconds; a worker starts it only while it can still finish within
# KEY_VALIDATION_QUEUE_SECONDS + KEY_VALIDATION_TIME_LIMIT of the request. Past that deadline a
# validation still pending or running ends "expired" and its candidate key is wiped.
KEY_VALIDATION_TIME_LIMIT = env.float("KEY_VALIDATION_TIME_LIMIT", default=6 * LLM_TIMEOUT_SECONDS)
KEY_VALIDATION_QUEUE_SECONDS = env.float("KEY_VALIDATION_QUEUE_SECONDS", default=300.0)
# A request that waits for its validation (set_api_key / add_llm without "async") first asks
# the workers, for at most this many seconds, whether one consumes the validation queue; with
# none it answers 503 at once instead of waiting in vain. 0 turns the check off.
KEY_VALIDATION_WORKER_CHECK_SECONDS = env.float("KEY_VALIDATION_WORKER_CHECK_SECONDS", default=1.0)
if KEY_VALIDATION_TIME_LIMIT <= 0 or KEY_VALIDATION_QUEUE_SECONDS <= 0:
    raise ImproperlyConfigured("KEY_VALIDATION_TIME_LIMIT and KEY_VALIDATION_QUEUE_SECONDS > 0.")
# Tasks without limits of their own are killed after this long (soft limit: a little earlier,
# so they can end cleanly).
CELERY_TASK_TIME_LIMIT = 300
CELERY_TASK_SOFT_TIME_LIMIT = 270
# Tasks are acknowledged when they end (acks_late), so one whose worker died before finishing
# is delivered again. Redis does that after visibility_timeout seconds: longer than a
# validation or an ordinary task may run (else a running task would be delivered twice), and
# not Redis' default hour. Tasks with longer limits of their own (the daily usage prune) are
# idempotent: a second delivery of a very long run finds nothing left to do.
BROKER_VISIBILITY_TIMEOUT = int(max(KEY_VALIDATION_TIME_LIMIT, CELERY_TASK_TIME_LIMIT) + 60)
if CELERY_BROKER_URL.startswith(("redis://", "rediss://", "sentinel://")):
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": BROKER_VISIBILITY_TIMEOUT}
# A worker that loses the broker cancels its running tasks, whose messages go back to the
# queue, rather than finish them while another worker is given them again.
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True

# System default models for new tenants (RAGFlow's `user_default_llm`), as JSON in the
# environment or in a file it names. Parsed and checked by `tenants.defaults`.
USER_DEFAULT_LLM = env.str("USER_DEFAULT_LLM", default="")
USER_DEFAULT_LLM_FILE = env.str("USER_DEFAULT_LLM_FILE", default="")

# Where provider calls may connect besides public addresses (providers.netguard): CIDRs, or
# the words `loopback` (127.0.0.0/8, ::1) and `private` (10/8, 172.16/12, 192.168/16,
# fc00::/7). Hosted factories (OpenAI...): none by default, e.g. an internal gateway.
# Self-hosted factories (Ollama, VLLM, OpenAI-API-Compatible...): loopback and private
# ranges under DEBUG, none in production unless listed (set it empty for none under DEBUG).
# Link-local and cloud metadata addresses are refused whatever these say.
LLM_HOSTED_ALLOWED_NETWORKS = env.list("LLM_HOSTED_ALLOWED_NETWORKS", default=[])
LLM_SELF_HOSTED_ALLOWED_NETWORKS = env.list(
    "LLM_SELF_HOSTED_ALLOWED_NETWORKS", default=["loopback", "private"] if DEBUG else []
)
# Where tenants' alert webhooks may be sent besides public addresses (same words and CIDRs).
ALERT_WEBHOOK_ALLOWED_NETWORKS = env.list(
    "ALERT_WEBHOOK_ALLOWED_NETWORKS", default=["loopback", "private"] if DEBUG else []
)
# Provider calls ignore HTTP_PROXY / HTTPS_PROXY / ALL_PROXY / NO_PROXY unless this is True.
LLM_PROXY_FROM_ENV = env.bool("LLM_PROXY_FROM_ENV", default=False)

# RAGFlow's web app and SDK: RAGFlow's LLM and tenant-model routes under this path prefix
# (tenants.ragflow), i.e. /v1/llm/... and /v1/user/tenant_info by default; empty: not served.
RAGFLOW_COMPAT_PREFIX = env.str("RAGFLOW_COMPAT_PREFIX", default="v1").strip("/")
# How long those routes wait for a key validation: RAGFlow's app reads the verdict from the
# answer and gives up after 300 s.
RAGFLOW_COMPAT_WAIT_SECONDS = env.float("RAGFLOW_COMPAT_WAIT_SECONDS", default=120.0)

# The catalog loaded on a fresh install (post-migrate) and by `load_llm_factories`.
LLM_FACTORIES_FILE = env.str(
    "LLM_FACTORIES_FILE", default=str(BASE_DIR / "fixtures" / "llm_factories.json")
)

# --- Auth, i18n, static ---------------------------------------------------------------------
# django-axes checks every admin login before Django's own backend.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Admin login lockout: after ADMIN_LOGIN_FAILURE_LIMIT wrong passwords for one username from one
# client address, that pair is refused for ADMIN_LOGIN_COOLOFF_MINUTES (a correct password too).
# Locking the pair, not the username alone, keeps an attacker from locking the real admin out.
# `manage.py axes_reset` (or `make admin-password`) lifts a lockout at once.
AXES_FAILURE_LIMIT = env.int("ADMIN_LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.float("ADMIN_LOGIN_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "tenants.auth.client_address"
AXES_LOCKOUT_TEMPLATE = "admin/locked_out.html"
# Behind N reverse proxies, the client address is the Nth-from-last X-Forwarded-For entry;
# 0 (default) uses the connection's address (X-Forwarded-For is trivially forged).
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
# Failed API token authentications: after API_AUTH_FAILURE_LIMIT failures from one client
# address within API_AUTH_COOLOFF_SECONDS, every token request from it gets 429 (Retry-After)
# until that window ends. Counted in the default cache (Redis when REDIS_URL is set).
API_AUTH_FAILURE_LIMIT = env.int("API_AUTH_FAILURE_LIMIT", default=20)
API_AUTH_COOLOFF_SECONDS = env.int("API_AUTH_COOLOFF_SECONDS", default=300)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True
# Pages (the admin) show 1,234,567; the API and CSV never localize numbers.
USE_THOUSAND_SEPARATOR = True

# The largest request body accepted (bytes); larger ones get 413. Django's default, 2.5 MiB.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=2_621_440)

STATIC_URL = "static/"
# `manage.py serve` collects static files here and granian serves them itself (no Python, no
# thread per file): the admin's CSS and JS, Swagger UI, Chart.js.
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(VAR_DIR / "static")))
STATICFILES_DIRS = [BASE_DIR / "static"] if (BASE_DIR / "static").is_dir() else []

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "tenants.auth.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # DRF's own parsers, but JSON nested absurdly deep is refused (400) rather than parsed.
    "DEFAULT_PARSER_CLASSES": [
        "ragllm.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "EXCEPTION_HANDLER": "ragllm.api.exception_handler",
    "UNAUTHENTICATED_USER": None,
    "NUM_PROXIES": TRUSTED_PROXY_COUNT,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "ragllm API",
    "DESCRIPTION": (
        "Your tenant's LLM providers, keys, default models and token usage, with RAGFlow's "
        "routes and answers.\n\n"
        "Authenticate with `Authorization: Bearer <token>` (a token from your administrator, "
        "or `manage.py create_tenant`). You act for the tenant you own; if you belong to "
        "several, name one with the `X-Tenant-ID` header. Every answer is "
        '`{"code", "message", "data"}`: `code` 0 on success, else the reason in `message`, '
        "with an HTTP status that matches (400, 401, 403, 404, 409, 413, 429, 502)."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Security -------------------------------------------------------------------------------
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
if not DEBUG:
    SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=True)
    CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "filters": {"quiet_periodic_tasks": {"()": "ragllm.logfilters.QuietPeriodicTasks"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # Django's own DEBUG console handler would print every django.* line twice.
        "django": {"handlers": [], "level": LOG_LEVEL, "propagate": True},
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
        # The 5-second usage drain: logged by usage.tasks only when it applied something.
        **{
            name: {"filters": ["quiet_periodic_tasks"]}
            for name in ("celery.beat", "celery.worker.strategy", "celery.app.trace")
        },
    },
}
