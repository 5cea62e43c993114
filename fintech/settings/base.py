"""Settings shared by every environment. Every value comes from the environment.

Each variable is documented, with its default, in ``.env.example`` and the README.
"""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path
from urllib.parse import unquote

import environ
from csp.constants import NONCE
from django.core.exceptions import ImproperlyConfigured

from fintech import PROJECT_DIR, embedded, load_dotenv

BASE_DIR = PROJECT_DIR
env = environ.Env()
load_dotenv()

# The settings module decides the environment when it is named directly
# (DJANGO_SETTINGS_MODULE=fintech.settings.production), else DJANGO_ENV does.
_module_environment = os.environ.get("DJANGO_SETTINGS_MODULE", "").rpartition(".")[2]
if _module_environment in {"development", "production", "test"}:
    DJANGO_ENV = _module_environment
else:
    DJANGO_ENV = env.str("DJANGO_ENV", default="") or "development"
# Production never falls back to the embedded servers: a missing URL is an error there.
EMBEDDED_SERVICES_ALLOWED = DJANGO_ENV != "production"
VAR_DIR = embedded.var_dir()

SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_celery_beat",
    "django_celery_results",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "axes",
    "csp",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    # Domain apps, in dependency order: each may import only those above it.
    "fintech.core",
    "payments",
    "banking",
    "compliance",
    "sandbox",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "fintech.core.middleware.RejectNulCharactersMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "fintech.core.accounts.StaffMFARequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "fintech.core.middleware.ApplicationErrorMiddleware",
    "csp.middleware.CSPMiddleware",
    "axes.middleware.AxesMiddleware",  # last, as django-axes requires
]

ROOT_URLCONF = "fintech.urls"
WSGI_APPLICATION = "fintech.wsgi.application"
ASGI_APPLICATION = "fintech.asgi.application"

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
                "fintech.context_processors.navigation",
            ],
        },
    },
]

# --------------------------------------------------------------------------- database
# PostgreSQL only. DATABASE_URL set: use it. Unset: the embedded server under var/postgres.
DATABASE_URL = env.str("DATABASE_URL", default="")
if DATABASE_URL:
    _database = env.db_url_config(DATABASE_URL)
    # A Unix-socket directory may be given percent-encoded as the host.
    _database["HOST"] = unquote(str(_database.get("HOST", "")))
elif EMBEDDED_SERVICES_ALLOWED:
    _database = embedded.postgres_start(VAR_DIR).django_database()
else:
    raise ImproperlyConfigured("DATABASE_URL is required in production (postgres://user:password@host:5432/name).")
if _database.get("ENGINE") != "django.db.backends.postgresql":
    raise ImproperlyConfigured(
        f"DATABASE_URL must point to PostgreSQL (postgres://...); got engine {_database.get('ENGINE')!r}."
    )
_database["ATOMIC_REQUESTS"] = False  # services own their transactions
_database["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
_database["CONN_HEALTH_CHECKS"] = True
_database.setdefault("OPTIONS", {})["connect_timeout"] = env.int("DATABASE_CONNECT_TIMEOUT", default=5)
DATABASES = {"default": _database}
# Statements of webhook processing's hot path are prepared once per connection (fintech.core.
# prepared). Turn off behind a pooler in transaction mode that does not keep prepared statements.
DATABASE_PREPARED_STATEMENTS = env.bool("DATABASE_PREPARED_STATEMENTS", default=True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --------------------------------------------------------------------------- redis
# Broker, cache and (later) streams. REDIS_URL set: use it. Unset: embedded server under var/redis.
REDIS_URL = env.str("REDIS_URL", default="")
if not REDIS_URL:
    if not EMBEDDED_SERVICES_ALLOWED:
        raise ImproperlyConfigured("REDIS_URL is required in production (redis://host:6379/0).")
    REDIS_URL = embedded.redis_start(VAR_DIR).url

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", default="fintech"),
        "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
    }
}


def celery_broker_url(redis_url: str) -> str:
    """Kombu spells a Redis Unix socket ``redis+socket:///path``; TCP URLs pass through."""
    if redis_url.startswith("unix://"):
        path, _, query = redis_url[len("unix://") :].partition("?")
        db = dict(part.split("=", 1) for part in query.split("&") if "=" in part).get("db", "0")
        return f"redis+socket://{path}?virtual_host={db}"
    return redis_url


# --------------------------------------------------------------------------- celery
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="") or celery_broker_url(REDIS_URL)
# The longest countdown/ETA any task may be scheduled with (enforced by fintech.core.queue).
CELERY_MAX_COUNTDOWN_SECONDS = env.int("CELERY_MAX_COUNTDOWN_SECONDS", default=3600)
# Redis re-delivers an unacknowledged task after this many seconds. With acks_late it must
# exceed every countdown/ETA and task run time, or a task would run twice (system check core.E001).
CELERY_VISIBILITY_TIMEOUT_SECONDS = env.int("CELERY_VISIBILITY_TIMEOUT_SECONDS", default=2 * 3600)
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_VISIBILITY_TIMEOUT_SECONDS}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT_SECONDS", default=15 * 60)
# The soft limit raises SoftTimeLimitExceeded inside the task, leaving it time to clean up.
CELERY_TASK_SOFT_TIME_LIMIT = CELERY_TASK_TIME_LIMIT - min(60, CELERY_TASK_TIME_LIMIT // 10)
CELERY_TASK_TRACK_STARTED = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_BACKEND = "django-db"  # task outcomes (failures too) in the admin
CELERY_RESULT_EXTENDED = True
CELERY_RESULT_EXPIRES = env.int("CELERY_RESULT_EXPIRES_SECONDS", default=7 * 24 * 3600)
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = "UTC"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Retry policy of fintech.core.celery_base.FintechTask: exponential backoff with jitter.
CELERY_RETRY_BACKOFF_SECONDS = env.int("CELERY_RETRY_BACKOFF_SECONDS", default=5)
CELERY_RETRY_BACKOFF_MAX_SECONDS = env.int("CELERY_RETRY_BACKOFF_MAX_SECONDS", default=600)
CELERY_MAX_RETRIES = env.int("CELERY_MAX_RETRIES", default=5)

# --------------------------------------------------------------------------- field encryption
# "<key id>:<base64 32-byte key>,..." — the first key encrypts, all decrypt (docs/security.md).
# Generate an entry with `manage.py generate_encryption_key`. Required in production.
FIELD_ENCRYPTION_KEYS = env.str("FIELD_ENCRYPTION_KEYS", default="")
# Secret for blind indexes (HMAC-SHA256), separate from the encryption keys. Required in production.
BLIND_INDEX_KEY = env.str("BLIND_INDEX_KEY", default="")
# Keys that sign audit checkpoints, "<key id>:<base64 32-byte key>,..."; the first signs, all verify
# (docs/security.md "Audit trail"). Generate an entry with `manage.py generate_audit_anchor_key`.
# Required in production; keep it apart from database credentials.
AUDIT_ANCHOR_KEYS = env.str("AUDIT_ANCHOR_KEYS", default="")


def development_keys(var_dir: Path) -> tuple[str, str]:
    """Field-encryption keyring and blind-index key kept under var/ for development and the demo."""
    import secrets

    from fintech.core.crypto import generate_key_entry

    keys_path, index_path = var_dir / "field-encryption-keys", var_dir / "blind-index-key"
    if not keys_path.is_file():
        embedded.write_private_file(keys_path, generate_key_entry("dev1"), replace=False)
    if not index_path.is_file():
        embedded.write_private_file(index_path, secrets.token_urlsafe(48), replace=False)
    return keys_path.read_text().strip(), index_path.read_text().strip()


def development_audit_anchor_keys(var_dir: Path) -> str:
    """The audit checkpoint signing key kept under var/ for development and the demo."""
    from fintech.core.crypto import generate_key_entry

    path = var_dir / "audit-anchor-keys"
    if not path.is_file():
        embedded.write_private_file(path, generate_key_entry("dev1"), replace=False)
    return path.read_text().strip()


# --------------------------------------------------------------------------- payment gateways
# Stripe: secret API key, webhook endpoint secrets (comma-separated; every one is accepted, so a
# new secret can be added before the old one is removed) and the API base URL (the sandbox
# stand-in in development and tests). Unset keys make the gateway "not configured".
STRIPE_API_KEY = env.str("STRIPE_API_KEY", default="")
STRIPE_WEBHOOK_SECRETS = env.list("STRIPE_WEBHOOK_SECRETS", default=[])
STRIPE_API_BASE = env.str("STRIPE_API_BASE", default="https://api.stripe.com")
# Seconds a signed Stripe timestamp may be old, and may lie in the future.
STRIPE_WEBHOOK_TOLERANCE_SECONDS = env.int("STRIPE_WEBHOOK_TOLERANCE_SECONDS", default=300)
# Braintree: merchant id, API key pair and environment: "sandbox", "production" or the base URL of
# a local stand-in such as http://127.0.0.1:8765.
BRAINTREE_MERCHANT_ID = env.str("BRAINTREE_MERCHANT_ID", default="")
BRAINTREE_PUBLIC_KEY = env.str("BRAINTREE_PUBLIC_KEY", default="")
BRAINTREE_PRIVATE_KEY = env.str("BRAINTREE_PRIVATE_KEY", default="")
BRAINTREE_ENVIRONMENT = env.str("BRAINTREE_ENVIRONMENT", default="sandbox")
# Currency of the Braintree merchant account, for notifications that do not state one.
BRAINTREE_CURRENCY = env.str("BRAINTREE_CURRENCY", default="USD")
# Largest webhook body accepted (bytes); larger deliveries get 413 and are not stored.
WEBHOOK_MAX_BODY_BYTES = env.int("WEBHOOK_MAX_BODY_BYTES", default=1024 * 1024)
# Webhook processing: failed events are retried after BASE, doubling up to MAX seconds, at most
# MAX_ATTEMPTS times; a received event with no outcome after STALE seconds is enqueued again.
WEBHOOK_RETRY_BASE_SECONDS = env.int("WEBHOOK_RETRY_BASE_SECONDS", default=30)
WEBHOOK_RETRY_MAX_SECONDS = env.int("WEBHOOK_RETRY_MAX_SECONDS", default=6 * 3600)
WEBHOOK_MAX_ATTEMPTS = env.int("WEBHOOK_MAX_ATTEMPTS", default=10)
WEBHOOK_STALE_SECONDS = env.int("WEBHOOK_STALE_SECONDS", default=120)
# Drains that work through a webhook backlog side by side (one per worker process is the most
# that helps; the run command's worker has WORKER_CONCURRENCY=2 processes).
WEBHOOK_DRAIN_PARALLEL = env.int("WEBHOOK_DRAIN_PARALLEL", default=2)
# A web process that set the drain flag skips setting it again for this long (one Redis round
# trip per window instead of per delivery); a drain looks once more this long after its last
# clear of the flag. 0: every delivery sets it and a drain ends at its first empty look.
WEBHOOK_DRAIN_SIGNAL_WINDOW_MS = env.int("WEBHOOK_DRAIN_SIGNAL_WINDOW_MS", default=25)
# Dunning: hours after the failure (then after each retry) at which a failed payment is retried.
PAYMENTS_DUNNING_RETRY_HOURS = env.list("PAYMENTS_DUNNING_RETRY_HOURS", cast=int, default=[24, 72, 168])
# Where the sandbox stand-in listens and where it delivers webhooks (development and demo only).
SANDBOX_PORT = env.int("SANDBOX_PORT", default=8765)
SANDBOX_WEBHOOK_TARGET = env.str("SANDBOX_WEBHOOK_TARGET", default="http://127.0.0.1:8000")


def development_gateway_credentials(var_dir: Path) -> dict[str, str]:
    """Random sandbox credentials kept under var/, shared by the app and the sandbox stand-in."""
    import json
    import secrets

    path = var_dir / "sandbox-credentials.json"
    if not path.is_file():
        values = {
            "STRIPE_API_KEY": "sk_test_" + secrets.token_hex(16),
            "STRIPE_WEBHOOK_SECRET": "whsec_" + secrets.token_hex(24),
            "BRAINTREE_MERCHANT_ID": "sandbox" + secrets.token_hex(4),
            "BRAINTREE_PUBLIC_KEY": secrets.token_hex(8),
            "BRAINTREE_PRIVATE_KEY": secrets.token_hex(16),
        }
        embedded.write_private_file(path, json.dumps(values, indent=2), replace=False)
    return json.loads(path.read_text())


# --------------------------------------------------------------------------- health
# /healthz fails when no worker has run the beat-scheduled health task for this long.
HEALTH_WORKER_MAX_AGE_SECONDS = env.int("HEALTH_WORKER_MAX_AGE_SECONDS", default=120)
HEALTH_PING_INTERVAL_SECONDS = env.int("HEALTH_PING_INTERVAL_SECONDS", default=30)

# --------------------------------------------------------------------------- auth
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses locked usernames before any password check
    "allauth.account.auth_backends.AuthenticationBackend",
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "overview"
LOGOUT_REDIRECT_URL = "account_login"
# django-allauth: username sign-in; staff accounts are made by administrators (no sign-up yet).
ACCOUNT_ADAPTER = "fintech.core.accounts.AccountAdapter"
ACCOUNT_LOGIN_METHODS = {"username"}
ACCOUNT_SIGNUP_FIELDS = ["username*", "email*", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = "none"
ACCOUNT_SESSION_REMEMBER = False
ACCOUNT_LOGOUT_REDIRECT_URL = "account_login"
# allauth's "login_failed" limit caps second-factor guesses (keyed per user): 11 per 5 minutes.
# It also counts passwords per username; one more than axes' limit (below) lets the attempt after a
# lockout reach axes, which answers with its 30-minute lock.
ACCOUNT_RATE_LIMITS = {"login_failed": "11/300s/key"}
# Second factors: TOTP with recovery codes, secrets encrypted by the keyring (MFAAdapter), and
# WebAuthn security keys (public keys only; the browser and fido2 check the origin offline).
MFA_ADAPTER = "fintech.core.accounts.MFAAdapter"
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes", "webauthn"]
MFA_TOTP_TOLERANCE = 0  # a code is valid only in its own 30-second period, and only once
# Security-key challenges whose failures are audited like wrong codes (allauth audits only codes).
MFA_FORMS = {
    "authenticate_webauthn": "fintech.core.accounts.AuthenticateWebAuthnForm",
    "reauthenticate_webauthn": "fintech.core.accounts.ReauthenticateWebAuthnForm",
}
# A security key is a second factor after the password, never a password replacement (0011).
MFA_PASSKEY_LOGIN_ENABLED = False
MFA_PASSKEY_SIGNUP_ENABLED = False
# True would accept a WebAuthn response from any origin (phishing); https and http://localhost
# already pass fido2's own origin check, so no environment needs it.
MFA_WEBAUTHN_ALLOW_INSECURE_ORIGIN = False
# The WebAuthn relying party id: the domain every security key is bound to (a key registered on
# ops.example.com works on that host and its subdomains only). Empty: the request's host name.
WEBAUTHN_RP_ID = env.str("WEBAUTHN_RP_ID", default="")
# Lockout (django-axes): a username is locked after AXES_FAILURE_LIMIT failures for at least
# 30 minutes (PCI DSS 8.3.4), whatever address the attempts come from; and an address is locked
# after as many failures across usernames (password spraying).
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=10)
AXES_COOLOFF_TIME = timedelta(minutes=max(env.int("AXES_COOLOFF_MINUTES", default=30), 30))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_USERNAME_FORM_FIELD = "login"  # allauth's sign-in field
AXES_USERNAME_CALLABLE = "fintech.core.accounts.axes_username"
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "account/locked_out.html"
AXES_CLIENT_IP_CALLABLE = "fintech.core.network.client_ip"
# Reverse proxies in front of the app that append X-Forwarded-For; 0 ignores the header.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)

EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="ops@localhost")
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE_SECONDS", default=8 * 3600)
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = True

# --------------------------------------------------------------------------- i18n, static
LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# --------------------------------------------------------------------------- security headers
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
# Paths that must answer over plain HTTP when SECURE_SSL_REDIRECT is on: a redirect would
# drop a gateway's POST body, and load balancers probe health over HTTP.
SECURE_REDIRECT_EXEMPT = [r"^webhooks/", r"^api/", r"^healthz$"]

# Content Security Policy (django-csp): no inline script or style; a nonce for the rare script
# that must be inline; images may be data: URLs (the TOTP QR code).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'", NONCE],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

# --------------------------------------------------------------------------- logging
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        "pgserver": {"level": "WARNING"},
        # The Stripe SDK logs every request line at INFO.
        "stripe": {"level": "WARNING"},
    },
}


def development_secret_key(var_dir: Path) -> str:
    """A random key kept under var/, so development sessions survive restarts without a key in the repo."""
    import secrets

    path = var_dir / "development-secret-key"
    if not path.is_file():
        embedded.write_private_file(path, secrets.token_urlsafe(64), replace=False)
    return path.read_text().strip()


# --------------------------------------------------------------------------- merchant REST API
# The API under /api/ (payments.apis, docs/api.md). Requests per API key: a DRF rate such as
# "300/minute"; larger bodies than API_MAX_BODY_BYTES get 413; amounts above API_MAX_AMOUNT_MINOR
# (minor units, in any currency) are refused; Idempotency-Key records are kept this many hours.
API_THROTTLE_RATE = env.str("API_THROTTLE_RATE", default="300/minute")
API_MAX_BODY_BYTES = env.int("API_MAX_BODY_BYTES", default=64 * 1024)
API_MAX_AMOUNT_MINOR = env.int("API_MAX_AMOUNT_MINOR", default=99_999_999)
API_IDEMPOTENCY_TTL_HOURS = env.int("API_IDEMPOTENCY_TTL_HOURS", default=24)
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["payments.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["payments.authentication.IsMerchant"],
    "DEFAULT_THROTTLE_CLASSES": ["payments.authentication.ApiKeyRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"api_key": API_THROTTLE_RATE},
    # The API's views use payments.apis.StrictJSONParser (named there: a default here would be
    # imported with DRF's APIView, before payments.apis can be).
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    # JSON only: no browsable API (it would need sessions and inline scripts).
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "EXCEPTION_HANDLER": "payments.apis.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Fintech merchant API",
    "DESCRIPTION": (
        "Payments through Stripe and Braintree, refunds and customers for merchants. Authenticate with "
        "`Authorization: Bearer <API key>`; send an `Idempotency-Key` header with every POST. Errors are "
        '`{"error": {"code": ..., "message": ...}}`. See docs/api.md.'
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema and its pages are public: they describe the API, not anyone's data.
    "SERVE_AUTHENTICATION": [],
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    # Swagger UI and Redoc from drf-spectacular-sidecar's local copies: no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "PaymentStatusEnum": "payments.models.PaymentStatus",
        "RefundStatusEnum": "payments.models.RefundStatus",
    },
}

# --------------------------------------------------------------------------- sanctions screening: review
# Hooks through which the core and payments ask compliance to screen (fintech.core.hooks): dotted
# paths of functions that enqueue the screening; empty disables one (tests, or a deployment
# without compliance).
CUSTOMER_SCREENING_HOOK = env.str("CUSTOMER_SCREENING_HOOK", default="compliance.hooks.customer_changed")
COUNTERPARTY_SCREENING_HOOK = env.str("COUNTERPARTY_SCREENING_HOOK", default="compliance.hooks.counterparty_recorded")
# Four-eyes: a true match is confirmed (and the customer frozen) by a second reviewer.
SCREENING_FOUR_EYES = env.bool("SCREENING_FOUR_EYES", default=True)
# Customers per batch of a rescreen; days an allow-list entry lasts unless the reviewer says otherwise.
SCREENING_RESCREEN_CHUNK = env.int("SCREENING_RESCREEN_CHUNK", default=2000)
# A rescreen works in time slices: after the chunk that spends this budget (seconds) it records its
# progress and queues its own continuation. Keep it well below CELERY_TASK_TIME_LIMIT_SECONDS.
SCREENING_RESCREEN_SLICE_SECONDS = env.int("SCREENING_RESCREEN_SLICE_SECONDS", default=240)
# Beat: how often customers missed by a hook are screened and stalled rescreens resumed (seconds).
SCREENING_SWEEP_SECONDS = env.int("SCREENING_SWEEP_SECONDS", default=600)
SCREENING_ALLOW_LIST_DAYS = env.int("SCREENING_ALLOW_LIST_DAYS", default=365)

# Match-score thresholds of the sanctions matcher (compliance.screening), JSON: {"default": x} plus
# optional {"<list>": {"<entity type>": y, "default": z}}; docs/screening.md says how to tune them.
try:
    SCREENING_THRESHOLDS = json.loads(env.str("SCREENING_THRESHOLDS", default="") or '{"default": 0.7}')
    assert isinstance(SCREENING_THRESHOLDS, dict)  # noqa: S101
except (ValueError, AssertionError):
    raise ImproperlyConfigured('SCREENING_THRESHOLDS must be a JSON object, e.g. {"default": 0.7}') from None

# --------------------------------------------------------------------------- sanctions lists
# Where each list is loaded from: a local path or an http(s) URL (docs/screening.md). OFAC: the
# directory or base URL holding sdn.csv, alt.csv and add.csv (legacy CSV); UN: the consolidated
# XML. An empty value leaves that list unconfigured (no scheduled refresh).
SANCTIONS_OFAC_SDN_URL = env.str("SANCTIONS_OFAC_SDN_URL", default="https://www.treasury.gov/ofac/downloads/")
SANCTIONS_UN_URL = env.str("SANCTIONS_UN_URL", default="https://scsanctions.un.org/resources/xml/en/consolidated.xml")
SANCTIONS_SOURCES = {
    source: origin for source, origin in (("ofac_sdn", SANCTIONS_OFAC_SDN_URL), ("un", SANCTIONS_UN_URL)) if origin
}
# Hours between scheduled refreshes of every configured list (task compliance.refresh_sanctions_lists).
SANCTIONS_REFRESH_HOURS = env.int("SANCTIONS_REFRESH_HOURS", default=24)
SANCTIONS_REFRESH_SECONDS = SANCTIONS_REFRESH_HOURS * 3600
# Downloads: seconds to wait for an answer, and the largest file accepted (bytes).
SANCTIONS_DOWNLOAD_TIMEOUT_SECONDS = env.int("SANCTIONS_DOWNLOAD_TIMEOUT_SECONDS", default=60)
SANCTIONS_MAX_DOWNLOAD_BYTES = env.int("SANCTIONS_MAX_DOWNLOAD_BYTES", default=200 * 1024 * 1024)
