"""Settings for the observers service.

Every knob comes from the environment. Development defaults are safe for a
laptop (SQLite, console e-mail, DEBUG off unless asked for); production
(``OBSERVERS_ENV=production``) refuses to start without a real secret key and
an explicit host list.
"""

import os
import warnings
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return default if value is None or value == "" else value


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (true/false), got {value!r}")


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer, got {value!r}") from exc


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


ENVIRONMENT = env_str("OBSERVERS_ENV", "development")
if ENVIRONMENT not in {"development", "production"}:
    raise ImproperlyConfigured("OBSERVERS_ENV must be 'development' or 'production'")
PRODUCTION = ENVIRONMENT == "production"

DEBUG = env_bool("DEBUG", False)

_DEV_SECRET = "dev-only-insecure-secret-key-do-not-use-in-production"
SECRET_KEY = env_str("SECRET_KEY", None if PRODUCTION else _DEV_SECRET)
if PRODUCTION and (not SECRET_KEY or SECRET_KEY == _DEV_SECRET or len(SECRET_KEY) < 32):
    raise ImproperlyConfigured(
        "SECRET_KEY must be set to a random string of at least 32 characters in production"
    )

# Keyed hash for pairing codes and access tokens. Separate from SECRET_KEY so
# rotating session signing does not invalidate every stored token and code.
HASH_KEY = env_str("HASH_KEY", SECRET_KEY)

# Single sign-on (linking.services.sso): the schools' OpenID Connect client
# secrets are stored encrypted under a key derived from SSO_ENCRYPTION_KEY
# (HASH_KEY unless set). Previous keys still decrypt while
# `manage.py rotate_sso_secrets` re-encrypts under the new one.
SSO_ENCRYPTION_KEY = env_str("SSO_ENCRYPTION_KEY", HASH_KEY)
SSO_ENCRYPTION_PREVIOUS_KEYS = env_list("SSO_ENCRYPTION_PREVIOUS_KEYS", [])
# Seconds to wait for a provider's discovery, keys and token endpoints.
SSO_HTTP_TIMEOUT_SECONDS = env_int("SSO_HTTP_TIMEOUT_SECONDS", 10)

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", [] if PRODUCTION else ["*"])
if PRODUCTION and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS must list the served host names in production")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "linking.admin_site.ObserversAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_tasks",
    "django_tasks_db",
    "django_prometheus",
    "django_guid",
    "linking",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django_guid.middleware.guid_middleware",
    "django.middleware.security.SecurityMiddleware",
    "linking.middleware.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "linking.middleware.RootAccountMiddleware",
    "linking.locale.PersonLocaleMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "observers_project.urls"
WSGI_APPLICATION = "observers_project.wsgi.application"

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
                "linking.context_processors.root_account",
                "linking.context_processors.families",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60 if PRODUCTION else 0),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL and a busy timeout let the dev server and a management command share
    # the file without "database is locked" errors.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
elif env_bool("DATABASE_PREPARED_STATEMENTS", True):
    # PostgreSQL: bind parameters on the server and prepare each statement a
    # connection runs more than once, so PostgreSQL parses and plans the
    # service's fixed set of statements once per connection instead of on
    # every request. Turn off behind a pooler in transaction mode (PgBouncer
    # before 1.21), which cannot keep prepared statements.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"server_side_binding": True, "prepare_threshold": 2}
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Rate limits must hold across worker processes, so the default cache is the
# database; point CACHE_URL at Redis (redis://host:6379/0) in production.
CACHE_URL = env_str("CACHE_URL", "db://observers_cache")
if CACHE_URL.startswith(("redis://", "rediss://")):
    # Short timeouts: an unreachable Redis must become a quick 503, not a hung worker.
    _cache = {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": CACHE_URL,
        "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
    }
elif CACHE_URL.startswith("db://"):
    _cache = {
        "BACKEND": "django.core.cache.backends.db.DatabaseCache",
        "LOCATION": CACHE_URL.removeprefix("db://") or "observers_cache",
    }
elif CACHE_URL.startswith("locmem://"):
    _cache = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
else:
    raise ImproperlyConfigured("CACHE_URL must start with redis://, rediss://, db:// or locmem://")
CACHES = {"default": _cache}

AUTH_USER_MODEL = "linking.User"
AUTHENTICATION_BACKENDS = [
    "linking.auth_backends.LoginBackend",
    "linking.auth_backends.SchoolIdentityProviderBackend",
]
PASSWORD_HASHERS = env_list(
    "PASSWORD_HASHERS",
    [
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
        "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    ],
)
AUTH_PASSWORD_VALIDATORS = [
    # Compared with the person's name, e-mail and login id (services.passwords).
    {
        "NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator",
        "OPTIONS": {"user_attributes": ["name", "short_name", "email", "login_id"]},
    },
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "linking:login"
LOGIN_REDIRECT_URL = "linking:home"
LOGOUT_REDIRECT_URL = "linking:login"

LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("es", "Español")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
# WhiteNoise serves the CSS and the API docs' assets from the app's own
# finders, so neither `make run` nor gunicorn needs a separate static server.
WHITENOISE_USE_FINDERS = True
# Without `collectstatic` STATIC_ROOT does not exist; the finders cover it.
warnings.filterwarnings("ignore", message="No directory at", category=UserWarning)

EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend"
    if PRODUCTION
    else "django.core.mail.backends.console.EmailBackend",
)
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 30)
# Where django.core.mail.backends.filebased.EmailBackend writes each message.
EMAIL_FILE_PATH = env_str("EMAIL_FILE_PATH", str(BASE_DIR / "sent_emails"))
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "observers@localhost")

# Absolute links in e-mails ("this wasn't me", unsubscribe, preferences) take
# their scheme and port from BASE_URL and their host from the root account's
# domain (BASE_URL's own host for a root account without one).
OBSERVERS_BASE_URL = env_str(
    "BASE_URL", "https://localhost" if PRODUCTION else "http://127.0.0.1:8000"
).rstrip("/")

# Background work (linking/tasks.py) runs on Django's task framework
# (django-tasks, the backport of django.tasks). TASK_BACKEND=database keeps the
# queue in this database (no extra service; `manage.py run_worker`);
# TASK_BACKEND=rq puts it on Redis at TASK_REDIS_URL (RQ workers: `manage.py
# run_worker` too); TASK_BACKEND=immediate runs each task inside enqueue.
TASK_BACKEND = env_str("TASK_BACKEND", "database")
TASK_REDIS_URL = env_str("TASK_REDIS_URL", "redis://127.0.0.1:6379/0")
if TASK_BACKEND == "database":
    TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
elif TASK_BACKEND == "rq":
    INSTALLED_APPS.insert(INSTALLED_APPS.index("linking"), "django_rq")
    TASKS = {"default": {"BACKEND": "django_tasks_rq.RQBackend"}}
    RQ_QUEUES = {
        "default": {
            "URL": TASK_REDIS_URL,
            "DEFAULT_TIMEOUT": 600,
            "CONNECTION_KWARGS": {"socket_connect_timeout": 5},
        }
    }
elif TASK_BACKEND == "immediate":
    TASKS = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}
else:
    raise ImproperlyConfigured("TASK_BACKEND must be 'database', 'rq' or 'immediate'")

# Notifications (linking.services.notifications / webhooks): a failed e-mail or
# webhook post is retried after about base, 2x base, 4x base ... seconds (each
# delay capped at 6 hours, +-20 % jitter) until RETRY_HOURS have passed since
# it was queued, then given up. Webhook URLs whose host
# resolves to a loopback, private, link-local, multicast or reserved address
# are refused, at registration and again right before each post, unless
# WEBHOOK_ALLOW_PRIVATE_ADDRESSES is on (the default in development, so local
# receivers work with `make run`).
OBSERVERS_NOTIFICATION_RETRY_HOURS = env_int("NOTIFICATION_RETRY_HOURS", 72)
OBSERVERS_NOTIFICATION_RETRY_BASE_SECONDS = env_int("NOTIFICATION_RETRY_BASE_SECONDS", 60)
OBSERVERS_NOTIFICATION_RETRY_JITTER = 0.2
# The whole of one post (connect, send, every byte of the answer) must fit in this.
OBSERVERS_WEBHOOK_TIMEOUT_SECONDS = env_int("WEBHOOK_TIMEOUT_SECONDS", 5)
# Posts in flight at once in one delivery task (one keep-alive connection each).
OBSERVERS_WEBHOOK_CONCURRENCY = env_int("WEBHOOK_CONCURRENCY", 32)
# How long a delivery task owns the rows it claimed; no post starts later than
# this minus the post timeout, so a claim never runs out under a post.
OBSERVERS_WEBHOOK_CLAIM_SECONDS = env_int("WEBHOOK_CLAIM_SECONDS", 300)
# Delivery tasks started per endpoint when its backlog is larger than one batch.
OBSERVERS_WEBHOOK_PARALLEL_TASKS = env_int("WEBHOOK_PARALLEL_TASKS", 2)
# A rotated webhook secret keeps signing (beside the new one) for this long.
OBSERVERS_WEBHOOK_ROTATION_OVERLAP_HOURS = env_int("WEBHOOK_ROTATION_OVERLAP_HOURS", 24)
OBSERVERS_WEBHOOK_ALLOW_PRIVATE_ADDRESSES = env_bool(
    "WEBHOOK_ALLOW_PRIVATE_ADDRESSES", not PRODUCTION
)

# Tenancy: the root account comes from the request host. In development an
# unknown host falls back to the default root account; production refuses it.
OBSERVERS_DEFAULT_DOMAIN = env_str("DEFAULT_DOMAIN", None if PRODUCTION else "localhost")
OBSERVERS_ALLOW_UNKNOWN_HOSTS = env_bool("ALLOW_UNKNOWN_HOSTS", not PRODUCTION)
# Seconds a worker keeps a host's root account in memory (0: look it up on
# every request). Settings changed in the admin reach the API within this time.
OBSERVERS_TENANT_CACHE_SECONDS = env_int("TENANT_CACHE_SECONDS", 30 if PRODUCTION else 0)

# Failed guesses (sign-ins, credential checks, pairing codes, sign-up e-mails)
# allowed per window, per account (the user acting, the login id tried) and
# per client address (IPv4 address, IPv6 /64), counted in the shared cache. A
# window whose budget was used up makes the next one twice as long, up to
# RATE_LIMIT_MAX_WINDOW_SECONDS. docs/security.md holds the reasoning.
OBSERVERS_RATE_LIMIT_FAILURES = env_int("RATE_LIMIT_FAILURES", 10)
OBSERVERS_RATE_LIMIT_ADDRESS_FAILURES = env_int("RATE_LIMIT_ADDRESS_FAILURES", 100)
OBSERVERS_RATE_LIMIT_WINDOW = env_int("RATE_LIMIT_WINDOW_SECONDS", 900)
OBSERVERS_RATE_LIMIT_MAX_WINDOW = env_int("RATE_LIMIT_MAX_WINDOW_SECONDS", 86400)
# Password-reset and address-confirmation e-mails one address (or one person)
# may be sent per window; per client address the ADDRESS_FAILURES number
# holds, in a budget of its own (asking never uses up sign-in tries).
OBSERVERS_RESET_REQUESTS = env_int("RESET_REQUESTS_PER_WINDOW", 5)
# How long a password-reset or confirmation link works (Django's setting).
PASSWORD_RESET_TIMEOUT = env_int("PASSWORD_RESET_TIMEOUT_SECONDS", 3 * 24 * 3600)
# SIS uploads: what a zip may expand to (linking.services.sis.archive), and
# how long an upload previewed in the admin but never confirmed is kept.
SIS_ARCHIVE_MAX_BYTES = env_int("SIS_ARCHIVE_MAX_BYTES", 1024 * 1024 * 1024)
SIS_ARCHIVE_MAX_RATIO = env_int("SIS_ARCHIVE_MAX_RATIO", 100)
SIS_ARCHIVE_MAX_ENTRIES = env_int("SIS_ARCHIVE_MAX_ENTRIES", 100)
SIS_UPLOAD_EXPIRY_SECONDS = env_int("SIS_UPLOAD_EXPIRY_SECONDS", 6 * 3600)

# Number of trusted reverse proxies in front of the app; decides which entry
# of X-Forwarded-For is the client's address.
OBSERVERS_TRUSTED_PROXIES = env_int("TRUSTED_PROXIES", 0)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "linking.api.authentication.BearerTokenAuthentication",
        "linking.api.authentication.CanvasSessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [
        "linking.api.permissions.IsAuthenticatedCanvas",
        "linking.api.permissions.TokenScopes",
    ],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PARSER_CLASSES": [
        "linking.api.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "EXCEPTION_HANDLER": "linking.api.errors.canvas_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "observers API",
    "DESCRIPTION": (
        "Canvas LMS compatible User Observees, Enrollments and Courses APIs, with "
        "developer keys, scopes and Canvas's OAuth2 flow."
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # 3.1 for its `webhooks` section: the webhook event catalogue with a JSON
    # Schema per event (linking.services.webhook_events).
    "OAS_VERSION": "3.1.0",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "linking.services.webhook_events.add_webhooks_to_schema",
        "linking.api.oauth_schema.add_oauth_paths",
    ],
}

# Every request gets an id (django-guid): the X-Request-ID header a proxy
# sent, when it is a UUID, or a new one. It is returned in the response's
# X-Request-ID, written on every log line and on the audit events the
# request causes (AuditEvent.request_id).
DJANGO_GUID = {
    "GUID_HEADER_NAME": "X-Request-ID",
    "VALIDATE_GUID": True,
    "RETURN_HEADER": True,
    "EXPOSE_HEADER": False,
}

# Logs: one JSON object a line in production (LOG_FORMAT=json), for the log
# shipper; plain text for people in development.
LOG_FORMAT = env_str("LOG_FORMAT", "json" if PRODUCTION else "text")
if LOG_FORMAT not in {"json", "text"}:
    raise ImproperlyConfigured("LOG_FORMAT must be 'json' or 'text'")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "django_guid.log_filters.CorrelationId"}},
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s %(correlation_id)s",
            "datefmt": "%Y-%m-%dT%H:%M:%S%z",
            "rename_fields": {
                "asctime": "time",
                "levelname": "level",
                "name": "logger",
                "correlation_id": "request_id",
            },
        },
        "text": {"format": "%(asctime)s %(levelname)s [%(correlation_id)s] %(name)s: %(message)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["request_id"],
        }
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # django-guid logs every request without an X-Request-ID at INFO: noise.
        "django_guid": {"level": "WARNING"},
    },
}

# Prometheus (linking.metrics): /metrics answers these addresses (CIDR
# allowed) and any request with "Authorization: Bearer <METRICS_TOKEN>".
METRICS_ALLOWED = env_list("METRICS_ALLOWED_ADDRESSES", ["127.0.0.1", "::1"])
METRICS_TOKEN = env_str("METRICS_TOKEN", "")
PROMETHEUS_EXPORT_MIGRATIONS = False

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# Inline styles stay allowed (the admin uses style attributes); scripts do not.
CONTENT_SECURITY_POLICY = env_str(
    "CONTENT_SECURITY_POLICY",
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self'; connect-src 'self'; frame-ancestors 'none'; "
    "form-action 'self'; base-uri 'self'; object-src 'none'"
    if PRODUCTION
    else "",
)
if PRODUCTION:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    # Probes (load balancer, Prometheus) talk plain HTTP to gunicorn itself.
    SECURE_REDIRECT_EXEMPT = [r"^health$", r"^ready$", r"^metrics$"]
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
    if not SECURE_HSTS_PRELOAD:
        # Joining the browsers' preload list binds every subdomain of the
        # school's domain to HTTPS for months; it is the domain owner's call
        # (SECURE_HSTS_PRELOAD=true), not a default, so `check --deploy`
        # does not warn about it.
        SILENCED_SYSTEM_CHECKS = ["security.W021"]
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
