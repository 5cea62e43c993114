"""The client's address, as far as the configured proxies can be trusted.

With ``TRUSTED_PROXY_COUNT = 0`` (the default) X-Forwarded-For is ignored: anyone can send it.
Behind N trusted proxies, each appends the address it received from, so the client is the N-th
entry from the right; entries further left were written by the client and are never used.
Used by the audit trail and by django-axes, so both see the same address.
"""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest


def _valid(address: str) -> str | None:
    try:
        return ipaddress.ip_address(address.strip()).compressed
    except ValueError:
        return None


def client_ip(request: HttpRequest) -> str | None:
    remote = _valid(request.META.get("REMOTE_ADDR") or "")
    proxies = settings.TRUSTED_PROXY_COUNT
    if proxies <= 0:
        return remote
    forwarded = [entry for entry in (request.META.get("HTTP_X_FORWARDED_FOR") or "").split(",") if entry.strip()]
    if len(forwarded) < proxies:
        return remote  # fewer hops than configured: the header did not come through our proxies
    return _valid(forwarded[-proxies]) or remote
