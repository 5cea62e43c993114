"""Development: the run command and a developer's shell. Embedded services allowed."""

import os

from .base import *  # noqa: F403
from .base import (
    AUDIT_ANCHOR_KEYS,
    BASE_DIR,
    BLIND_INDEX_KEY,
    FIELD_ENCRYPTION_KEYS,
    SANCTIONS_SOURCES,
    SANDBOX_PORT,
    SECRET_KEY,
    STORAGES,
    STRIPE_API_KEY,
    VAR_DIR,
    development_audit_anchor_keys,
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
AUDIT_ANCHOR_KEYS = AUDIT_ANCHOR_KEYS or development_audit_anchor_keys(VAR_DIR)

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

# Sanctions lists: the public copies in ../shared/data, when present, so the offline demo has lists;
# an explicit SANCTIONS_OFAC_SDN_URL / SANCTIONS_UN_URL (even empty) wins.
_shared_sanctions = BASE_DIR.parent / "shared" / "data" / "sanctions"
_shared_lists = {
    "ofac_sdn": ("SANCTIONS_OFAC_SDN_URL", _shared_sanctions / "ofac" / "2023-12-28"),
    "un": ("SANCTIONS_UN_URL", _shared_sanctions / "un" / "consolidated.xml"),
}
SANCTIONS_SOURCES = dict(SANCTIONS_SOURCES)
for _source, (_variable, _path) in _shared_lists.items():
    if _variable not in os.environ and _path.exists():
        SANCTIONS_SOURCES[_source] = str(_path)
