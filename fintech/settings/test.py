"""Tests: real PostgreSQL and Redis (DATABASE_URL/REDIS_URL, else embedded), isolated queue and cache keys."""

import secrets

from fintech.core.crypto import generate_key_entry

from .base import *  # noqa: F403
from .base import CACHES, STORAGES

DEBUG = False
SECRET_KEY = secrets.token_urlsafe(64)
# Fresh keys per run; tests that rotate keys override FIELD_ENCRYPTION_KEYS.
FIELD_ENCRYPTION_KEYS = generate_key_entry("test1")
BLIND_INDEX_KEY = secrets.token_urlsafe(48)
# Checkpoint signing key of this run; rotation tests override AUDIT_ANCHOR_KEYS.
AUDIT_ANCHOR_KEYS = generate_key_entry("anchor1")
# Gateway credentials of this run only; tests reach the sandbox stand-in, never the real services.
STRIPE_API_KEY = "sk_test_" + secrets.token_hex(16)
STRIPE_WEBHOOK_SECRETS = ["whsec_" + secrets.token_hex(24)]
BRAINTREE_MERCHANT_ID = "test" + secrets.token_hex(4)
BRAINTREE_PUBLIC_KEY = secrets.token_hex(8)
BRAINTREE_PRIVATE_KEY = secrets.token_hex(16)
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # speed; never outside tests

# A queue and key prefix of this run's own, so a worker of a running `make run` sharing the
# same Redis never takes a test's task, and test cache keys never collide with real ones.
_RUN_ID = secrets.token_hex(4)
CELERY_TASK_DEFAULT_QUEUE = f"test-{_RUN_ID}"
CACHES = {"default": {**CACHES["default"], "KEY_PREFIX": f"test-{_RUN_ID}"}}
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
# Short backoff so retry tests finish in seconds; production default is 5 s doubling to 600 s.
CELERY_RETRY_BACKOFF_SECONDS = 1
CELERY_RETRY_BACKOFF_MAX_SECONDS = 2
WHITENOISE_USE_FINDERS = True
# Every delivery signals the drain (tests that look at the flag after each delivery); the
# window's own tests turn it on.
WEBHOOK_DRAIN_SIGNAL_WINDOW_MS = 0
# Close connections after each request/task, so a worker or live-server thread never holds
# one open when the test database is dropped.
DATABASES["default"]["CONN_MAX_AGE"] = 0
# Static files come from the source folders (finders); collectstatic is a production step.
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
# Same PostgreSQL backend, whose flush between transactional tests may truncate the audit trail.
DATABASES["default"]["ENGINE"] = "tests.postgresql_backend"
