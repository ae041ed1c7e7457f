"""Settings for ragllm, read from the environment only (django-environ).

Every variable is documented in `.env.example`. Defaults are the embedded development set-up:
SQLite under `var/`, a filesystem Celery broker, no Redis. Production needs `DEBUG=False`,
`SECRET_KEY` and `CREDENTIALS_ENCRYPTION_KEY` (start-up refuses otherwise).
"""

from __future__ import annotations

import os
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

# Development-only fallbacks: used when DEBUG is on and nothing is configured, never otherwise.
_DEV_SECRET_KEY = "dev-insecure-secret-key-do-not-use-in-production"
_DEV_CREDENTIALS_KEY = "dev-insecure-credentials-key-do-not-use-in-production"

SECRET_KEY = _secret("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Refusing to start with DEBUG=False and no SECRET_KEY: "
            "set SECRET_KEY (or SECRET_KEY_FILE), or DEBUG=True for local development."
        )
    SECRET_KEY = _DEV_SECRET_KEY

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
    CREDENTIALS_ENCRYPTION_KEY = _DEV_CREDENTIALS_KEY
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
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
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
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DB_CONN_MAX_AGE", default=60))
    DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

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
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    # kombu's filesystem transport: a real worker and beat run with no broker server at all.
    _default_broker = "filesystem://"

CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=_default_broker)
if CELERY_BROKER_URL.startswith("filesystem://"):
    for _sub in ("queue", "processed"):
        (BROKER_DIR / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
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
# Quota windows (daily, monthly) follow the calendar of this time zone.
QUOTA_TIME_ZONE = env.str("QUOTA_TIME_ZONE", default=env.str("TIME_ZONE", default="UTC"))

# How long a process may use a cached model resolution before re-reading it (seconds). Changes
# made through the app invalidate caches at once; this bounds anything else (e.g. raw SQL).
CONFIG_CACHE_SECONDS = env.int("CONFIG_CACHE_SECONDS", default=60)

# --- LLM calls ------------------------------------------------------------------------------
LLM_TIMEOUT_SECONDS = env.float("LLM_TIMEOUT_SECONDS", default=60.0)
LLM_MAX_RETRIES = env.int("LLM_MAX_RETRIES", default=3)
LLM_BASE_DELAY = env.float("LLM_BASE_DELAY", default=1.0)

# System default models for new tenants (RAGFlow's `user_default_llm`), as JSON in the
# environment or in a file it names. Parsed and checked by `tenants.defaults`.
USER_DEFAULT_LLM = env.str("USER_DEFAULT_LLM", default="")
USER_DEFAULT_LLM_FILE = env.str("USER_DEFAULT_LLM_FILE", default="")

# Networks that provider base URLs may point to besides public addresses (CIDRs), e.g. an
# internal gateway. Self-hosted factories may always use private and loopback addresses;
# link-local and cloud metadata addresses are refused whatever this says.
LLM_ALLOWED_NETWORKS = env.list("LLM_ALLOWED_NETWORKS", default=[])

# The catalog loaded on a fresh install (post-migrate) and by `load_llm_factories`.
LLM_FACTORIES_FILE = env.str(
    "LLM_FACTORIES_FILE", default=str(BASE_DIR / "fixtures" / "llm_factories.json")
)

# --- Auth, i18n, static ---------------------------------------------------------------------
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

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"] if (BASE_DIR / "static").is_dir() else []

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "tenants.auth.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "EXCEPTION_HANDLER": "ragllm.api.exception_handler",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "ragllm API",
    "DESCRIPTION": "Tenant LLM configuration and usage tracking (RAGFlow-compatible).",
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
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"httpx": {"level": "WARNING"}, "httpcore": {"level": "WARNING"}},
}
