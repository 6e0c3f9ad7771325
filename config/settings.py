"""Leadbase settings, read from the environment.

Two run modes share this file:
- embedded (the default): SQLite, eager Celery, local-memory cache, no services needed;
- production (LEADBASE_ENV=production): PostgreSQL, Redis, a Celery broker, secure cookies and
  headers, and every secret required from the environment.
"""

from pathlib import Path

import dj_database_url

from accounts.scopes import ALL_SCOPES  # plain constants, no Django imports

from .env import env_bool, env_int, env_list, env_required, env_str

BASE_DIR = Path(__file__).resolve().parent.parent

LEADBASE_ENV = env_str("LEADBASE_ENV", "embedded")
if LEADBASE_ENV not in {"embedded", "production"}:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("LEADBASE_ENV must be 'embedded' or 'production'")
PRODUCTION = LEADBASE_ENV == "production"

DEBUG = env_bool("DJANGO_DEBUG", False)

if PRODUCTION:
    SECRET_KEY = env_required("DJANGO_SECRET_KEY")
    ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS")
else:
    # Embedded mode only: a fixed development key so that a fresh clone runs with no setup.
    SECRET_KEY = env_str("DJANGO_SECRET_KEY", "embedded-insecure-development-key-never-use-in-production")
    ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "testserver", "[::1]"])

CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "config.admin.LeadbaseAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "oauth2_provider",
    "core",
    "accounts",
    "leads",
    "scoring",
    "jobs",
    "webhooks",
    "mcp_server",
    "django_htmx",
    "ui",
]

MIDDLEWARE = [
    "core.middleware.RequestIDMiddleware",
    "core.middleware.RateLimitHeadersMiddleware",
    "core.middleware.APISecurityHeadersMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "django_ratelimit.middleware.RatelimitMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
APPEND_SLASH = False

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
                "ui.context_processors.ui",
            ],
        },
    },
]

WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

# --- Database -------------------------------------------------------------------------------
DATABASE_URL = env_required("DATABASE_URL") if PRODUCTION else env_str("DATABASE_URL")
if DATABASE_URL:
    DATABASES = {
        "default": dj_database_url.parse(
            DATABASE_URL,
            conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
            conn_health_checks=True,
        )
    }
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        # Django's backend, health-checking only connections idle longer than the delay below.
        DATABASES["default"]["ENGINE"] = "core.backends.postgresql"
        # A pool of connections per process instead of one persistent connection per thread. Under ASGI
        # (config/asgi.py turns it on) Django runs each request's sync code in a thread of its own, so a
        # per-thread connection is a new PostgreSQL session per request (measured: 354 sessions for 389
        # requests); pooled, the sessions (and their prepared statements) outlive the threads.
        if env_bool("DATABASE_POOL", False):
            DATABASES["default"]["CONN_MAX_AGE"] = 0  # Django refuses persistent connections with a pool
            DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
                "min_size": env_int("DATABASE_POOL_MIN_SIZE", 2),
                "max_size": env_int("DATABASE_POOL_MAX_SIZE", 8),
                "timeout": env_int("DATABASE_POOL_TIMEOUT_SECONDS", 10),
                # A session is replaced after this long (psycopg's default is an hour): what a migration
                # leaves stale in a session (the hot statements' plans, core/backends/postgresql) lasts no longer.
                "max_lifetime": env_int("DATABASE_POOL_MAX_LIFETIME_SECONDS", 600),
            }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": env_str("SQLITE_PATH", str(BASE_DIR / "db.sqlite3")),
            "OPTIONS": {"timeout": 20},
        }
    }
DATABASES["default"].setdefault("TEST", {})
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# A reused connection idle for longer than this is health-checked (SELECT 1) before its first query of
# a request; one used more recently is trusted (core/backends/postgresql). 0 checks every request.
LEADBASE_DB_CHECK_DELAY_SECONDS = env_int("LEADBASE_DB_CHECK_DELAY_SECONDS", 10)
# The hottest hand-written queries (API-key lookup, one lead by id) run as prepared statements.
LEADBASE_DB_PREPARED_STATEMENTS = env_bool("LEADBASE_DB_PREPARED_STATEMENTS", True)

# --- Cache ----------------------------------------------------------------------------------
REDIS_URL = env_required("REDIS_URL") if PRODUCTION else env_str("REDIS_URL")
if REDIS_URL:
    # Falls back to a per-process memory cache while Redis is unreachable (core/cache.py).
    CACHES = {"default": {"BACKEND": "core.cache.ResilientRedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Auth -----------------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# The people's login page (email + password); the OAuth consent screen sends people here.
LOGIN_URL = "/login/"
# After a plain login people land on the web UI's home (the lead list).
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/login/"

# --- I18N / time ----------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static files ---------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if PRODUCTION
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(BASE_DIR / "media")))
WHITENOISE_USE_FINDERS = not PRODUCTION  # the embedded mode serves static files without collectstatic
if not PRODUCTION:
    import warnings

    warnings.filterwarnings("ignore", message="No directory at")

# --- Request size ---------------------------------------------------------------------------
# Largest request body Django reads (API JSON and UI forms; file uploads have their own caps). A
# bigger body is refused before it is parsed: 413 `payload_too_large` under /api/. 5 MiB holds a
# batch of 500 leads at ~10 KB each, far more than real leads carry (docs/security.md).
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("LEADBASE_MAX_BODY_BYTES", 5 * 1024 * 1024)

# --- Security (production) ------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True
# Lax: the session rides top-level navigations (links from mail) but no cross-site POST or fetch.
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if PRODUCTION:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    # The deployer may terminate TLS at a proxy and turn the redirect off there.
    SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    # On by default so `check --deploy` is clean (security.W021); a domain not yet ready for the
    # browser preload list sets DJANGO_SECURE_HSTS_PRELOAD=false.
    SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", True)
    if env_bool("DJANGO_SECURE_PROXY_SSL_HEADER", False):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- REST framework -------------------------------------------------------------------------
REST_FRAMEWORK = {
    # API keys (`lb_…` in X-API-Key or Bearer) first; any other Bearer value is an OAuth access token.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.ApiKeyAuthentication",
        "accounts.oauth.OAuthTokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["core.permissions.HasAccount"],
    "DEFAULT_RENDERER_CLASSES": ["core.renderers.JSONRenderer"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "core.negotiation.APIContentNegotiation",
    # DRF's strict JSON parser, refusing integers past 64 bits (they could be stored but never rendered).
    "DEFAULT_PARSER_CLASSES": ["core.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "core.exceptions.problem_exception_handler",
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_THROTTLE_CLASSES": [],
    "DEFAULT_PAGINATION_CLASS": None,
    "DATETIME_FORMAT": "iso-8601",
    "COERCE_DECIMAL_TO_STRING": False,
    # `format` is a query parameter of our own (GET /leads/export?format=csv), never a renderer choice.
    "URL_FORMAT_OVERRIDE": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Leadbase API",
    "DESCRIPTION": (
        "API-first lead database. Authenticate with an API key in `X-API-Key` or "
        "`Authorization: Bearer`, or with an OAuth 2.0 access token (authorization code + PKCE, see "
        "docs/oauth.md) in `Authorization: Bearer`. Every error is RFC 9457 problem details with a "
        f"stable `code`. Request bodies are limited to {DATA_UPLOAD_MAX_MEMORY_SIZE} bytes "
        "(413 `payload_too_large`), JSON integers to "
        "64 bits; field limits are in each schema (maxLength, maxItems, maxProperties) and in docs/security.md."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "PREPROCESSING_HOOKS": ["core.schema.strip_trailing_slash"],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "core.schema.document_idempotency_errors",
    ],
    "ENUM_NAME_OVERRIDES": {"LeadStatusEnum": "leads.models.LeadStatus", "RoleEnum": "accounts.models.Role"},
}

# --- OAuth 2.0 (django-oauth-toolkit; docs/oauth.md) -------------------------------------------
# DOT's own model, named so that migrations referring to it (accounts.OAuthAppRegistration) resolve.
OAUTH2_PROVIDER_APPLICATION_MODEL = "oauth2_provider.Application"
OAUTH2_PROVIDER = {
    "SCOPES": dict(ALL_SCOPES),
    "DEFAULT_SCOPES": ["leads:read"],
    # Authorization code + refresh token only; S256 PKCE, verifier length and the account a token
    # acts in are enforced there (accounts/oauth_server.py).
    "OAUTH2_SERVER_CLASS": "accounts.oauth_server.LeadbaseOAuth2Server",
    "OAUTH2_VALIDATOR_CLASS": "accounts.oauth_server.LeadbaseOAuth2Validator",
    "APPLICATION_ADMIN_CLASS": "accounts.oauth_admin.LeadbaseApplicationAdmin",
    "PKCE_REQUIRED": True,
    "AUTHORIZATION_CODE_EXPIRE_SECONDS": 60,
    "ACCESS_TOKEN_EXPIRE_SECONDS": env_int("LEADBASE_OAUTH_ACCESS_TOKEN_SECONDS", 3600),
    # Idle expiry: a refresh token dies this long after its access token expired.
    "REFRESH_TOKEN_EXPIRE_SECONDS": env_int("LEADBASE_OAUTH_REFRESH_TOKEN_SECONDS", 30 * 24 * 3600),
    "ROTATE_REFRESH_TOKEN": True,
    # A rotated refresh token presented again revokes its whole token family (RFC 9700 §4.14.2).
    "REFRESH_TOKEN_REUSE_PROTECTION": True,
    "REFRESH_TOKEN_GRACE_PERIOD_SECONDS": 0,
    # Always show the consent screen: the user picks the account the token acts in there.
    "REQUEST_APPROVAL_PROMPT": "force",
    "ALLOWED_REDIRECT_URI_SCHEMES": ["https"] if PRODUCTION else ["http", "https"],
    "ALLOW_URI_WILDCARDS": False,
    # RFC 9700 (OAuth 2.0 Security BCP) gates, all on.
    "COMPLIANT_BCP_RFC9700_IMPLICIT_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PASSWORD_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PKCE_METHOD": True,
    "COMPLIANT_BCP_RFC9700_ACCESS_TOKEN_TRANSPORT": True,
    "COMPLIANT_BCP_RFC9700_AUTHZ_RESPONSE_ISS": True,
    "COMPLIANT_BCP_RFC9700_TOKEN_STORAGE": True,  # tokens stored as SHA-256 checksums only
    "COMPLIANT_BCP_RFC9700_REFRESH_TOKEN": True,
    # `check --deploy` errors on an http redirect scheme (only the embedded mode allows one).
    "COMPLIANT_BCP_RFC9700_REDIRECT_URI_SCHEME": True,
    "COMPLIANT_BCP_RFC9700_REDIRECT_URI_MATCHING": True,
    "COMPLIANT_BCP_RFC9700_PKCE_REQUIRED": True,
    # RFC 8414 metadata (/.well-known/oauth-authorization-server) advertises what is really accepted.
    "OAUTH2_RESPONSE_TYPES_SUPPORTED": ["code"],
    "OAUTH2_GRANT_TYPES_SUPPORTED": ["authorization_code", "refresh_token"],
    "OAUTH2_TOKEN_ENDPOINT_AUTH_METHODS_SUPPORTED": ["client_secret_basic", "client_secret_post", "none"],
}

# --- Celery ---------------------------------------------------------------------------------
CELERY_TASK_ALWAYS_EAGER = not env_str("CELERY_BROKER_URL")
# Eager (embedded) mode never talks to a broker; "memory://" keeps kombu from looking for one.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL") or "memory://"
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
# Keep retrying the broker at worker start (Celery 6 reads this instead of broker_connection_retry).
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 30 * 60)
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 25 * 60)
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TIMEZONE = TIME_ZONE
# API-key usage audit (accounts/usage.py): with Redis, requests gather uses there and beat writes each
# key's row once per this many seconds; 0 (or no Redis) writes the row on every request instead.
LEADBASE_API_KEY_USAGE_FLUSH_SECONDS = env_int("LEADBASE_API_KEY_USAGE_FLUSH_SECONDS", 30)
# With Redis, a process keeps API keys it looked up this long, each use confirmed current by Redis in
# the request's rate-limit round trip (accounts/credentials.py); 0 looks every key up in the database.
LEADBASE_CREDENTIAL_CACHE_SECONDS = env_int("LEADBASE_CREDENTIAL_CACHE_SECONDS", 60)
CELERY_BEAT_SCHEDULE: dict = {
    "purge-idempotency-keys": {"task": "core.purge_idempotency_keys", "schedule": 3600.0},
    "webhooks-sweep": {"task": "webhooks.sweep", "schedule": 30.0},
    "purge-events": {"task": "webhooks.purge_events", "schedule": 24 * 3600.0},
    "purge-imports": {"task": "leads.purge_imports", "schedule": 24 * 3600.0},
    "flush-api-key-usage": {
        "task": "accounts.flush_api_key_usage",
        "schedule": float(max(1, LEADBASE_API_KEY_USAGE_FLUSH_SECONDS)),
    },
}

# --- Leadbase -------------------------------------------------------------------------------
# Plan limits (§2); an account may override both.
LEADBASE_PLANS = {
    "free": {"requests_per_window": 100, "max_leads": 100},
    "pro": {"requests_per_window": 1000, "max_leads": None},
}
LEADBASE_RATE_WINDOW_SECONDS = 600
LEADBASE_RATE_LIMIT_ENABLED = env_bool("LEADBASE_RATE_LIMIT_ENABLED", True)
# Unauthenticated API requests (and failed authentication), per client IP and window.
LEADBASE_ANON_RATE_LIMIT = env_int("LEADBASE_ANON_RATE_LIMIT", 300)
LEADBASE_RATE_LIMIT_PREFIX = env_str("LEADBASE_RATE_LIMIT_PREFIX", "lb:rl")
LEADBASE_API_KEY_USAGE_PREFIX = env_str("LEADBASE_API_KEY_USAGE_PREFIX", "lb:usage")
# Login forms (django-ratelimit, fixed windows): POSTs per client IP and per username.
LEADBASE_LOGIN_RATE_PER_IP = env_str("LEADBASE_LOGIN_RATE_PER_IP", "20/m")
LEADBASE_LOGIN_RATE_PER_USERNAME = env_str("LEADBASE_LOGIN_RATE_PER_USERNAME", "5/m")
RATELIMIT_VIEW = "core.views.ratelimited"
# An Idempotency-Key still "in progress" after this long belongs to a request whose process died
# (it never released the key): a retry takes it over. Longer than any request may run.
LEADBASE_IDEMPOTENCY_LEASE_SECONDS = env_int("LEADBASE_IDEMPOTENCY_LEASE_SECONDS", 300)
LEADBASE_LIST_DEFAULT_LIMIT = 50
LEADBASE_LIST_MAX_LIMIT = 500
# CSV downloads on PostgreSQL are written by COPY ... TO STDOUT (~10x the Python writer); false
# uses the Python writer everywhere (e.g. behind a pooler that does not pass COPY through).
LEADBASE_EXPORT_CSV_COPY = env_bool("LEADBASE_EXPORT_CSV_COPY", True)
# CSV import in the web UI: the largest upload (bytes) and the most data rows one file may hold.
LEADBASE_IMPORT_MAX_BYTES = env_int("LEADBASE_IMPORT_MAX_BYTES", 5 * 1024 * 1024)
LEADBASE_IMPORT_MAX_ROWS = env_int("LEADBASE_IMPORT_MAX_ROWS", 10_000)
# Stored uploads and reports of CSV imports are deleted this long after the upload (daily task).
LEADBASE_IMPORT_RETENTION_HOURS = env_int("LEADBASE_IMPORT_RETENTION_HOURS", 24)
# Database connections a score recalculation runs its chunks on at once (PostgreSQL; 1 = one by one).
LEADBASE_RESCORE_WORKERS = max(1, env_int("LEADBASE_RESCORE_WORKERS", 2))
# Key of the suppression list's email hashes (§4.12, docs/privacy.md); empty: derived from SECRET_KEY.
# Set it in production so rotating DJANGO_SECRET_KEY never touches the suppression list.
LEADBASE_SUPPRESSION_KEY = env_str("LEADBASE_SUPPRESSION_KEY", "")
# Events and webhooks (§4.10).
LEADBASE_EVENT_RETENTION_DAYS = max(30, env_int("LEADBASE_EVENT_RETENTION_DAYS", 30))
LEADBASE_WEBHOOKS_ALLOW_PRIVATE = env_bool("LEADBASE_WEBHOOKS_ALLOW_PRIVATE", False)
LEADBASE_WEBHOOKS_ALLOW_HTTP = env_bool("LEADBASE_WEBHOOKS_ALLOW_HTTP", False)  # production: https only
LEADBASE_WEBHOOK_TIMEOUT = env_int("LEADBASE_WEBHOOK_TIMEOUT", 10)
LEADBASE_WEBHOOK_BACKOFF_BASE = env_int("LEADBASE_WEBHOOK_BACKOFF_BASE", 10)
LEADBASE_WEBHOOK_RETRY_HOURS = max(24, env_int("LEADBASE_WEBHOOK_RETRY_HOURS", 72))
LEADBASE_WEBHOOK_DISABLE_AFTER_DAYS = env_int("LEADBASE_WEBHOOK_DISABLE_AFTER_DAYS", 3)
LEADBASE_PUBLIC_URL = env_str("LEADBASE_PUBLIC_URL", "http://127.0.0.1:8000")

# --- Logging --------------------------------------------------------------------------------
LOG_LEVEL = env_str("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "core.logging.RequestIDFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["request_id"]},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.request": {"handlers": ["console"], "level": "ERROR", "propagate": False},
        # The MCP SDK logs every stateless request at INFO ("Terminating session: None").
        "mcp": {"level": "WARNING"},
    },
}
