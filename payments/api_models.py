"""Models of the merchant REST API: API keys, idempotency records and merchant-customer links.

Imported at the end of ``payments.models`` (``from .api_models import *``), so they belong to the
payments app and its migrations. The services that write them are in ``payments.checkout``.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from fintech.core.models import Customer

__all__ = ["ApiKey", "IdempotencyRecord", "MerchantCustomer"]


class ApiKey(models.Model):
    """A secret a merchant's system sends as ``Authorization: Bearer <key>``.

    The key is ``<prefix>_<secret>``. Only the prefix (shown to humans, unique, used to find the
    row) and the SHA-256 of the whole key are stored: the key itself is shown once, when it is
    created, and cannot be recovered. A revoked key (``revoked_at`` set) never authenticates again.
    The user must hold ``payments.use_merchant_api`` for the key to be accepted.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="api_keys")
    # What the merchant calls it ("shop backend"); for humans only.
    name = models.CharField(max_length=100)
    # "fk_live_" or "fk_test_" and 12 random characters: names the key in logs, pages and the audit trail.
    prefix = models.CharField(max_length=32, unique=True)
    # Lower-case hex SHA-256 of the whole key. The secret part has 256 random bits, so a fast hash
    # is enough: there is nothing to brute-force that a slow hash would protect.
    secret_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)
    # Updated at most once a minute, so busy keys do not write a row per request.
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        permissions = [("use_merchant_api", "Can use the merchant REST API with an API key")]
        constraints = [
            models.CheckConstraint(
                condition=Q(secret_hash__regex=r"^[0-9a-f]{64}$"),  # noqa: S106 - a pattern, not a password
                name="payments_apikey_hash_hex",
            ),
            models.CheckConstraint(condition=~Q(name=""), name="payments_apikey_name_present"),
        ]

    def __str__(self) -> str:
        return f"{self.prefix} ({self.name})"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class IdempotencyRecord(models.Model):
    """The outcome of one POST of the API under an ``Idempotency-Key``, unique per (user, key).

    ``request_hash`` is the SHA-256 of the method, path and canonical JSON body: the same key with
    another request is refused. While ``status_code`` is empty the first request is still running
    (a second one gets 409); once set, the stored response is replayed byte for byte. A record
    older than ``API_IDEMPOTENCY_TTL_HOURS`` counts as absent and is purged.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64)
    # For people reading the table: which endpoint the key was used on.
    method = models.CharField(max_length=8)
    path = models.CharField(max_length=255)
    # Random per claim: tells the request that inserted (or re-claimed) the row from the others.
    claim_token = models.CharField(max_length=32)
    # Empty while the first request runs.
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    # The response body exactly as first sent (JSON text; jsonb would reorder its keys).
    response_body = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "key"], name="payments_idempotency_once"),
            models.CheckConstraint(condition=~Q(key=""), name="payments_idempotency_key_present"),
        ]
        indexes = [models.Index(fields=["created_at"], name="payments_idempotency_created")]

    def __str__(self) -> str:
        return f"{self.method} {self.path} [{self.key}]"


class MerchantCustomer(models.Model):
    """A customer a merchant may charge: one it created through the API, or one staff linked to it.

    A payment created through the API may name only a customer linked to the API key's user.
    """

    merchant = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="customer_links")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="merchant_links")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["merchant", "customer"], name="payments_merchant_customer_once"),
        ]

    def __str__(self) -> str:
        return f"merchant {self.merchant_id} → customer {self.customer_id}"
