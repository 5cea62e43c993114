"""Production: passes ``manage.py check --deploy --fail-level WARNING`` with no warnings.

DATABASE_URL, REDIS_URL (checked in base), DJANGO_SECRET_KEY, DJANGO_ALLOWED_HOSTS, FIELD_ENCRYPTION_KEYS,
BLIND_INDEX_KEY and AUDIT_ANCHOR_KEYS are required.
"""

from django.core.exceptions import ImproperlyConfigured

from fintech.core.anchor import AnchorKeyring
from fintech.core.crypto import Keyring, KeyringError

from .base import *  # noqa: F403
from .base import (
    BLIND_INDEX_KEY,
    DEBUG,
    FIELD_ENCRYPTION_KEYS,
    MFA_WEBAUTHN_ALLOW_INSECURE_ORIGIN,
    SECRET_KEY,
    env,
)

MIN_SECRET_KEY_LENGTH = 50
MIN_SECRET_KEY_UNIQUE_CHARACTERS = 5

if DEBUG:
    raise ImproperlyConfigured("DJANGO_DEBUG must be false in production.")
if (
    len(SECRET_KEY) < MIN_SECRET_KEY_LENGTH
    or len(set(SECRET_KEY)) < MIN_SECRET_KEY_UNIQUE_CHARACTERS
    or SECRET_KEY.startswith("django-insecure-")
):
    raise ImproperlyConfigured(
        f"DJANGO_SECRET_KEY must be a random string of at least {MIN_SECRET_KEY_LENGTH} characters. "
        "Generate one with: python -c 'import secrets; print(secrets.token_urlsafe(64))'"
    )

ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS")  # required: no default in production

try:
    Keyring.parse(FIELD_ENCRYPTION_KEYS)
except KeyringError as error:
    raise ImproperlyConfigured(str(error)) from None
if len(BLIND_INDEX_KEY) < 32:
    raise ImproperlyConfigured("BLIND_INDEX_KEY must be a random string of at least 32 characters.")
try:
    AnchorKeyring.parse(AUDIT_ANCHOR_KEYS)
except KeyringError as error:
    raise ImproperlyConfigured(str(error)) from None
if MFA_WEBAUTHN_ALLOW_INSECURE_ORIGIN:
    raise ImproperlyConfigured("MFA_WEBAUTHN_ALLOW_INSECURE_ORIGIN would accept security-key answers from any origin.")

SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
# Behind a TLS-terminating proxy that sets X-Forwarded-Proto (and strips it from clients).
if env.bool("DJANGO_TRUST_X_FORWARDED_PROTO", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=365 * 24 * 3600)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
