"""Writes of customers: creation, updates, risk-rating and KYC transitions, and reveals.

Every function validates, writes, and records its audit event in the same transaction. Audit
details name the fields that changed, never the values of sensitive ones.
"""

from __future__ import annotations

import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from .audit import audit_record
from .exceptions import InvalidTransition, NotAllowed, ValidationFailed
from .hooks import hook_on_commit
from .models import Customer

SENSITIVE_FIELDS = ("tax_id", "date_of_birth", "address")
# Fields whose new values the audit trail keeps: not personal data. The trail is append-only, so
# names, emails and phone numbers are recorded as "changed" without their values.
AUDITED_VALUE_FIELDS = ("kind", "nationality", "country_of_residence")
SENSITIVE_LABELS = {"tax_id": "Tax id", "date_of_birth": "Date of birth", "address": "Address"}
EDITABLE_FIELDS = (
    "kind",
    "legal_name",
    "date_of_birth",
    "nationality",
    "country_of_residence",
    "address",
    "tax_id",
    "email",
    "phone",
)
# KYC review flow: a submission is reviewed; a rejected customer may resubmit; a verified one
# may be sent back to review (e.g. documents expired).
KYC_TRANSITIONS: dict[str, set[str]] = {
    Customer.KycStatus.NOT_STARTED: {Customer.KycStatus.PENDING},
    Customer.KycStatus.PENDING: {Customer.KycStatus.VERIFIED, Customer.KycStatus.REJECTED},
    Customer.KycStatus.REJECTED: {Customer.KycStatus.PENDING},
    Customer.KycStatus.VERIFIED: {Customer.KycStatus.PENDING},
}
ADDRESS_KEYS = {"lines", "city", "postal_code", "region", "country"}
# Fields the sanctions screening reads: changing one asks for the customer to be screened again
# (the CUSTOMER_SCREENING_HOOK setting; compliance screens, the core never imports it).
SCREENED_FIELDS = ("legal_name", "kind", "date_of_birth", "nationality", "country_of_residence")


def _clean(customer: Customer) -> None:
    if customer.date_of_birth is not None:
        if not isinstance(customer.date_of_birth, datetime.date):
            raise ValidationFailed("Date of birth must be a date.", field="date_of_birth")
        if customer.date_of_birth > datetime.date.today():  # noqa: DTZ011 - a calendar date, no time zone
            raise ValidationFailed("Date of birth cannot be in the future.", field="date_of_birth")
    if customer.address is not None and (
        not isinstance(customer.address, dict) or not set(customer.address) <= ADDRESS_KEYS
    ):
        raise ValidationFailed(f"Address must be an object with keys among {sorted(ADDRESS_KEYS)}.", field="address")
    for code_field in ("nationality", "country_of_residence"):
        value = getattr(customer, code_field)
        if value and not (len(value) == 2 and value.isascii() and value.isalpha() and value.isupper()):
            raise ValidationFailed("Use an ISO 3166-1 alpha-2 country code such as GB.", field=code_field)
    try:
        customer.full_clean(exclude=["user", *SENSITIVE_FIELDS, "tax_id_index"])
    except ValidationError as error:
        field, messages = next(iter(error.message_dict.items()))
        raise ValidationFailed(f"{field}: {' '.join(messages)}", field=field) from None


@transaction.atomic
def customer_create(*, actor, request: HttpRequest | None = None, **values: Any) -> Customer:
    unknown = set(values) - set(EDITABLE_FIELDS) - {"user"}
    if unknown:
        raise ValidationFailed(f"Unknown customer fields: {sorted(unknown)}.")
    customer = Customer(**values)
    _clean(customer)
    customer.save()
    audit_record(
        actor=actor,
        action="customer.created",
        target=customer,
        details={"fields": sorted(name for name, value in values.items() if value not in (None, ""))},
        request=request,
    )
    hook_on_commit("CUSTOMER_SCREENING_HOOK", customer_id=customer.pk, fields=list(SCREENED_FIELDS))
    return customer


@transaction.atomic
def customer_update(*, customer: Customer, actor, request: HttpRequest | None = None, **changes: Any) -> Customer:
    unknown = set(changes) - set(EDITABLE_FIELDS)
    if unknown:
        raise ValidationFailed(f"Unknown customer fields: {sorted(unknown)}.")
    locked = Customer.objects.select_for_update().get(pk=customer.pk)
    changed = [name for name, value in changes.items() if getattr(locked, name) != value]
    if not changed:
        return locked
    for name in changed:
        setattr(locked, name, changes[name])
    _clean(locked)
    # Only what changed (and what derives from it): an update never writes statuses, which only
    # the transition services change.
    derived = ["tax_id_index"] if "tax_id" in changed else []
    locked.save(update_fields=[*changed, *derived, "updated_at"])
    audit_record(
        actor=actor,
        action="customer.updated",
        target=locked,
        details={
            "fields": sorted(changed),
            "values": {name: changes[name] for name in changed if name in AUDITED_VALUE_FIELDS},
        },
        request=request,
    )
    screened = sorted(set(changed) & set(SCREENED_FIELDS))
    if screened:
        hook_on_commit("CUSTOMER_SCREENING_HOOK", customer_id=locked.pk, fields=screened)
    return locked


def _transition(*, customer: Customer, field: str, target: str, allowed: set[str] | None, actor, reason: str, request):
    reason = reason.strip()
    if not reason:
        raise ValidationFailed("Give a reason for the change; it is kept in the audit trail.", field="reason")
    current = getattr(customer, field)
    if target == current:
        raise InvalidTransition(f"The customer is already {target.replace('_', ' ')}.")
    if allowed is not None and target not in allowed:
        raise InvalidTransition(f"{field.replace('_', ' ').capitalize()} cannot go from {current} to {target}.")
    # Conditional update: it applies only if nobody changed the status since it was read.
    now = timezone.now()
    updated = Customer.objects.filter(pk=customer.pk, **{field: current}).update(**{field: target, "updated_at": now})
    if updated != 1:
        raise InvalidTransition("The customer was changed by someone else meanwhile; reload and try again.")
    setattr(customer, field, target)
    customer.updated_at = now
    audit_record(
        actor=actor,
        action=f"customer.{field}_changed",
        target=customer,
        details={"from": current, "to": target, "reason": reason[:1000]},
        request=request,
    )
    return customer


@transaction.atomic
def customer_set_risk_rating(
    *, customer: Customer, rating: str, actor, reason: str, request: HttpRequest | None = None
) -> Customer:
    if rating not in Customer.RiskRating.values:
        raise ValidationFailed(f"Unknown risk rating {rating!r}.", field="rating")
    return _transition(
        customer=customer, field="risk_rating", target=rating, allowed=None, actor=actor, reason=reason, request=request
    )


@transaction.atomic
def customer_set_kyc_status(
    *, customer: Customer, status: str, actor, reason: str, request: HttpRequest | None = None
) -> Customer:
    if status not in Customer.KycStatus.values:
        raise ValidationFailed(f"Unknown KYC status {status!r}.", field="status")
    allowed = KYC_TRANSITIONS[customer.kyc_status]
    return _transition(
        customer=customer,
        field="kyc_status",
        target=status,
        allowed=allowed,
        actor=actor,
        reason=reason,
        request=request,
    )


@transaction.atomic
def customer_freeze(*, customer: Customer, actor, reason: str, request: HttpRequest | None = None) -> Customer:
    """Suspend the relationship (a confirmed sanctions match, or a compliance officer's decision)."""
    return _transition(
        customer=customer,
        field="status",
        target=Customer.Status.FROZEN,
        allowed=None,
        actor=actor,
        reason=reason,
        request=request,
    )


@transaction.atomic
def customer_unfreeze(*, customer: Customer, actor, reason: str, request: HttpRequest | None = None) -> Customer:
    return _transition(
        customer=customer,
        field="status",
        target=Customer.Status.ACTIVE,
        allowed=None,
        actor=actor,
        reason=reason,
        request=request,
    )


@transaction.atomic
def customer_reveal(*, customer: Customer, field: str, actor, request: HttpRequest | None = None) -> Any:
    """The plaintext of one sensitive field, for a staff member allowed to see it; audited."""
    if field not in SENSITIVE_FIELDS:
        raise ValidationFailed(f"{field!r} is not a sensitive field.", field="field")
    if not actor.has_perm("core.reveal_sensitive"):
        raise NotAllowed("Your role may not reveal sensitive customer data.")
    audit_record(
        actor=actor, action="customer.sensitive_revealed", target=customer, details={"field": field}, request=request
    )
    return getattr(customer, field)


# --------------------------------------------------------------------------- masking


def mask(field: str, value: Any) -> str:
    """What pages show instead of a sensitive value."""
    if value in (None, ""):
        return "—"
    if field == "tax_id":
        digits = "".join(character for character in str(value) if character.isalnum())
        return f"•••••{digits[-4:]}" if len(digits) > 6 else "•••••"
    if field == "date_of_birth":
        return "••••-••-••"
    if field == "address":
        return f"•••, {value.get('country', '')}".rstrip(", ") if isinstance(value, dict) else "•••"
    return "•••"
