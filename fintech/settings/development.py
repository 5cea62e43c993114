"""Development: the run command and a developer's shell. Embedded services allowed."""

from .base import *  # noqa: F403
from .base import (
    BLIND_INDEX_KEY,
    FIELD_ENCRYPTION_KEYS,
    SANDBOX_PORT,
    SECRET_KEY,
    STORAGES,
    STRIPE_API_KEY,
    VAR_DIR,
    development_gateway_credentials,
    development_keys,
    development_secret_key,
    env,
)

DEBUG = env.bool("DJANGO_DEBUG", default=True)
SECRET_KEY = SECRET_KEY or development_secret_key(VAR_DIR)
if not (FIELD_ENCRYPTION_KEYS and BLIND_INDEX_KEY):
    _keys, _index_key = development_keys(VAR_DIR)
    FIELD_ENCRYPTION_KEYS = FIELD_ENCRYPTION_KEYS or _keys
    BLIND_INDEX_KEY = BLIND_INDEX_KEY or _index_key

# Gateways: the sandbox stand-in, with credentials kept in var/, unless real ones are configured.
if not STRIPE_API_KEY:
    _gateway = development_gateway_credentials(VAR_DIR)
    STRIPE_API_KEY = _gateway["STRIPE_API_KEY"]
    STRIPE_WEBHOOK_SECRETS = [_gateway["STRIPE_WEBHOOK_SECRET"]]
    STRIPE_API_BASE = f"http://127.0.0.1:{SANDBOX_PORT}"
    BRAINTREE_MERCHANT_ID = _gateway["BRAINTREE_MERCHANT_ID"]
    BRAINTREE_PUBLIC_KEY = _gateway["BRAINTREE_PUBLIC_KEY"]
    BRAINTREE_PRIVATE_KEY = _gateway["BRAINTREE_PRIVATE_KEY"]
    BRAINTREE_ENVIRONMENT = f"http://127.0.0.1:{SANDBOX_PORT}"

# Serve static files straight from the source folders, no collectstatic step.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
# Static files come from the source folders (finders); collectstatic is a production step.
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
