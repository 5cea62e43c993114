"""Who may call the merchant REST API, and how often.

- ``ApiKeyAuthentication``: ``Authorization: Bearer <API key>``; the key's prefix finds the row,
  the SHA-256 of the whole key is compared in constant time; unknown, malformed and revoked keys
  get 401 with a JSON error naming what is wrong.
- ``IsMerchant``: the key's user must be active and hold ``payments.use_merchant_api``.
- ``ApiKeyRateThrottle``: a request budget per API key (``API_THROTTLE_RATE``); a throttled key
  is recorded in the audit trail at most once per five minutes.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import timedelta
from typing import Any

from django.core.cache import cache
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from .api_models import ApiKey

MERCHANT_PERMISSION = "payments.use_merchant_api"
# "fk_live_" or "fk_test_", 12 lower-case letters/digits (the prefix), "_", 43 URL-safe characters (256 bits).
API_KEY_PATTERN = re.compile(r"^(fk_(?:live|test)_[a-z0-9]{12})_([A-Za-z0-9_-]{43})$")
LAST_USED_PRECISION = timedelta(minutes=1)
# One audit entry per key in this window: a client hammering the API must not flood the trail.
THROTTLE_AUDIT_WINDOW_SECONDS = 300


def api_key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class ApiKeyAuthentication(BaseAuthentication):
    """``Authorization: Bearer <key>``. ``request.user`` is the key's user, ``request.auth`` the ApiKey."""

    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[Any, ApiKey] | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None  # DRF answers 401 "not_authenticated" through the permission check
        scheme, _, key = header.partition(" ")
        if scheme.lower() != self.keyword.lower() or not key.strip():
            raise exceptions.AuthenticationFailed(
                "Send the API key as 'Authorization: Bearer <key>'.", code="invalid_authorization_header"
            )
        return self._authenticate_key(key.strip())

    def _authenticate_key(self, key: str) -> tuple[Any, ApiKey]:
        match = API_KEY_PATTERN.match(key)
        api_key = (
            ApiKey.objects.select_related("user").filter(prefix=match.group(1)).first() if match is not None else None
        )
        # Compare even when no row was found, so the answer takes as long either way.
        expected = api_key.secret_hash if api_key is not None else "0" * 64
        matches = hmac.compare_digest(api_key_hash(key), expected)
        if api_key is None or not matches:
            raise exceptions.AuthenticationFailed("The API key is not valid.", code="invalid_api_key")
        if api_key.revoked_at is not None:
            raise exceptions.AuthenticationFailed(
                f"The API key {api_key.prefix} was revoked; use another key.", code="api_key_revoked"
            )
        if not api_key.user.is_active:
            raise exceptions.AuthenticationFailed("The API key's user account is disabled.", code="user_inactive")
        now = timezone.now()
        if api_key.last_used_at is None or api_key.last_used_at < now - LAST_USED_PRECISION:
            ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
            api_key.last_used_at = now
        return api_key.user, api_key

    def authenticate_header(self, request: Request) -> str:
        # Present on 401 answers; without it DRF would answer 403.
        return f'{self.keyword} realm="api"'


class IsMerchant(BasePermission):
    """An authenticated API key whose user holds ``payments.use_merchant_api``."""

    message = f"This API key's user may not use the merchant API (it needs the {MERCHANT_PERMISSION} permission)."
    code = "not_a_merchant"

    def has_permission(self, request: Request, view: Any) -> bool:
        if not isinstance(request.auth, ApiKey):
            return False
        return bool(request.user.is_active and request.user.has_perm(MERCHANT_PERMISSION))


class ApiKeyRateThrottle(SimpleRateThrottle):
    """A budget of requests per API key (``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["api_key"]``)."""

    scope = "api_key"

    def get_rate(self) -> str | None:
        # Read on each request (not once at import), so a changed setting applies at once.
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        if not isinstance(request.auth, ApiKey):
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.auth.pk}

    def allow_request(self, request: Request, view: Any) -> bool:
        allowed = super().allow_request(request, view)
        if not allowed and isinstance(request.auth, ApiKey):
            self._audit(request, request.auth)
        return allowed

    def _audit(self, request: Request, api_key: ApiKey) -> None:
        from fintech.core.audit import audit_record

        if cache.add(f"audit:api-throttled:{api_key.pk}", 1, timeout=THROTTLE_AUDIT_WINDOW_SECONDS):
            audit_record(
                actor=api_key.user,
                action="api.throttled",
                target=api_key,
                details={"prefix": api_key.prefix, "rate": self.rate or "", "path": request.path[:200]},
                request=request._request,
            )
