"""Payments: the webhook inbox, payments, refunds, disputes, payouts, dunning and the ledger.

Amounts are integers in minor units beside an ISO 4217 code (``fintech.core.money``). Statuses
are stored as ``TextChoices`` backed by check constraints; they change only through the services
in ``payments.services`` and ``payments.handlers``, which compare the gateway's own timestamps so
the final state never depends on the order webhooks arrive in.
"""

from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from fintech.core.models import Customer


def _public_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(12)}"


def payment_public_id() -> str:
    return _public_id("pay")


def refund_public_id() -> str:
    return _public_id("ref")


class Gateway(models.TextChoices):
    STRIPE = "stripe", "Stripe"
    BRAINTREE = "braintree", "Braintree"


def _in_choices(field: str, choices: type[models.TextChoices]) -> Q:
    return Q(**{f"{field}__in": choices.values})


class WebhookEventStatus(models.TextChoices):
    RECEIVED = "received", "Received"
    PROCESSED = "processed", "Processed"
    IGNORED = "ignored", "Ignored"
    FAILED = "failed", "Failed"


class WebhookEvent(models.Model):
    """One verified delivery from a gateway, stored once: (provider, event_id) is unique.

    Stripe's event id is ``evt_…``; Braintree sends none, so its id is a SHA-256 over the kind,
    the notification timestamp and the subject id. The row is written by the endpoint before any
    processing; a Celery task applies it and records the outcome here.
    """

    Status = WebhookEventStatus

    provider = models.CharField(max_length=16, choices=Gateway.choices)
    event_id = models.CharField(max_length=255)
    event_type = models.CharField(max_length=100)
    # Gateway id of the event's subject (payment intent, charge, transaction, dispute, payout).
    object_id = models.CharField(max_length=255, blank=True, default="")
    # The gateway's own time of the event, used to order status changes.
    occurred_at = models.DateTimeField()
    received_at = models.DateTimeField(default=timezone.now)
    # Parsed body: Stripe's event JSON; for Braintree, the verified notification XML as a dict.
    payload = models.JSONField()
    # The body as received (Stripe); for Braintree the decoded notification XML, card data redacted.
    raw_body = models.TextField()
    # Request headers as received, minus cookies and authorisation.
    headers = models.JSONField(default=dict)
    source_ip = models.GenericIPAddressField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RECEIVED)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    next_retry_at = models.DateTimeField(null=True, blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    payment = models.ForeignKey(
        "Payment", null=True, blank=True, on_delete=models.PROTECT, related_name="webhook_events"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["provider", "event_id"], name="payments_webhook_once"),
            models.CheckConstraint(
                condition=_in_choices("status", WebhookEventStatus), name="payments_webhook_status_valid"
            ),
            models.CheckConstraint(condition=_in_choices("provider", Gateway), name="payments_webhook_provider_valid"),
        ]
        indexes = [
            models.Index(fields=["status", "next_retry_at"], name="payments_webhook_due"),
            models.Index(fields=["-received_at"], name="payments_webhook_received"),
            models.Index(fields=["event_type"], name="payments_webhook_type"),
        ]

    def __str__(self) -> str:
        return f"{self.provider} {self.event_type} {self.event_id}"


class PaymentStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    REQUIRES_ACTION = "requires_action", "Requires action"
    PROCESSING = "processing", "Processing"
    REQUIRES_CAPTURE = "requires_capture", "Requires capture"
    FAILED = "failed", "Failed"
    SUCCEEDED = "succeeded", "Succeeded"
    CANCELED = "canceled", "Canceled"


class Payment(models.Model):
    """A payment at a gateway. (gateway, gateway_payment_id) is unique.

    ``status_event_at`` is the gateway time of the event that set ``status``: an older event
    never overwrites a newer one, and a final status (succeeded, canceled) is never left.
    Refunded and disputed amounts are sums of the Refund and Dispute rows, cached here.
    """

    Status = PaymentStatus

    FINAL_STATUSES = (Status.SUCCEEDED, Status.CANCELED)

    public_id = models.CharField(max_length=32, unique=True, default=payment_public_id, editable=False)
    gateway = models.CharField(max_length=16, choices=Gateway.choices)
    # Stripe PaymentIntent id (or charge id for a charge without one); Braintree transaction id.
    gateway_payment_id = models.CharField(max_length=255)
    # Stripe charge id once a charge exists; empty for Braintree.
    gateway_charge_id = models.CharField(max_length=255, blank=True, default="")
    # The merchant user who created it through the API; empty when it arrived by webhook only.
    merchant = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="payments"
    )
    customer = models.ForeignKey(Customer, null=True, blank=True, on_delete=models.PROTECT, related_name="payments")
    amount_minor = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    amount_captured_minor = models.BigIntegerField(default=0)
    amount_refunded_minor = models.BigIntegerField(default=0)
    # Gateway fees as the gateway reported them (Stripe balance transaction, Braintree service fee).
    fee_minor = models.BigIntegerField(default=0)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    status_event_at = models.DateTimeField(null=True, blank=True)
    # Decline code (e.g. Stripe "insufficient_funds", Braintree processor code "2001") and message.
    failure_code = models.CharField(max_length=100, blank=True, default="")
    failure_message = models.CharField(max_length=500, blank=True, default="")
    # Gateway time of the latest failure: its code and message are kept whatever came after.
    failed_at = models.DateTimeField(null=True, blank=True)
    card_brand = models.CharField(max_length=32, blank=True, default="")
    card_last4 = models.CharField(max_length=4, blank=True, default="")
    # Lower-cased payer email as the gateway reports it, for staff search.
    email = models.CharField(max_length=254, blank=True, default="")
    # The payer as the gateway reports them (billing name, ISO 3166 country): the payment's
    # counterparty, screened against the sanctions lists when first recorded.
    payer_name = models.CharField(max_length=200, blank=True, default="")
    payer_country = models.CharField(max_length=2, blank=True, default="")
    description = models.CharField(max_length=500, blank=True, default="")
    # Braintree subscription this charge belongs to, if any.
    subscription_id = models.CharField(max_length=255, blank=True, default="")
    # Gateway metadata as sent (order ids, our references); never card data.
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    succeeded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["gateway", "gateway_payment_id"], name="payments_payment_gateway_id"),
            models.CheckConstraint(
                condition=_in_choices("status", PaymentStatus), name="payments_payment_status_valid"
            ),
            models.CheckConstraint(condition=_in_choices("gateway", Gateway), name="payments_payment_gateway_valid"),
            models.CheckConstraint(
                condition=Q(
                    amount_minor__gte=0, amount_captured_minor__gte=0, amount_refunded_minor__gte=0, fee_minor__gte=0
                ),
                name="payments_payment_amounts_not_negative",
            ),
        ]
        indexes = [
            # Keyset pagination of the staff list: newest first, ties broken by id.
            models.Index(F("created_at").desc(), F("id").desc(), name="payments_payment_recent"),
            models.Index(fields=["status", "-created_at"], name="payments_payment_status"),
            models.Index(fields=["gateway_charge_id"], name="payments_payment_charge"),
            models.Index(fields=["email"], name="payments_payment_email"),
            # The staff list's amount filter (currency, then a range of minor units).
            models.Index(fields=["currency", "amount_minor"], name="payments_payment_amount"),
            models.Index(fields=["card_last4"], name="payments_payment_last4"),
            models.Index(fields=["customer", "-created_at"], name="payments_payment_customer"),
            models.Index(fields=["merchant", "-created_at"], name="payments_payment_merchant"),
        ]

    def __str__(self) -> str:
        return self.public_id


class RefundStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELED = "canceled", "Canceled"


class RefundMethod(models.TextChoices):
    # Money sent back after settlement (a Stripe refund, a Braintree credit transaction).
    REFUND = "refund", "Refund"
    # Braintree before settlement: the whole transaction is voided, so no money ever moves.
    VOID = "void", "Void"


class Refund(models.Model):
    """A refund of (part of) a payment. Pending and succeeded refunds count against the captured amount.

    A ``void`` is always of the whole captured amount and leaves the payment canceled; its ledger
    effect is the reversal of the payment's capture, not a refund posting.
    """

    Status = RefundStatus
    Method = RefundMethod

    FINAL_STATUSES = (Status.FAILED, Status.CANCELED)

    public_id = models.CharField(max_length=32, unique=True, default=refund_public_id, editable=False)
    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="refunds")
    # Empty until the gateway has answered for a refund requested through the API. For a void,
    # the voided transaction (the payment's own gateway id): a void has no object of its own.
    gateway_refund_id = models.CharField(max_length=255, blank=True, default="")
    method = models.CharField(max_length=8, choices=Method.choices, default=Method.REFUND)
    amount_minor = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    status_event_at = models.DateTimeField(null=True, blank=True)
    reason = models.CharField(max_length=100, blank=True, default="")
    failure_reason = models.CharField(max_length=500, blank=True, default="")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["payment", "gateway_refund_id"],
                condition=~Q(gateway_refund_id=""),
                name="payments_refund_gateway_id",
            ),
            models.CheckConstraint(condition=_in_choices("status", RefundStatus), name="payments_refund_status_valid"),
            models.CheckConstraint(condition=_in_choices("method", RefundMethod), name="payments_refund_method_valid"),
            models.CheckConstraint(condition=Q(amount_minor__gt=0), name="payments_refund_amount_positive"),
        ]

    def __str__(self) -> str:
        return self.public_id


class DisputeStatus(models.TextChoices):
    WARNING_NEEDS_RESPONSE = "warning_needs_response", "Inquiry: needs response"
    WARNING_UNDER_REVIEW = "warning_under_review", "Inquiry: under review"
    WARNING_CLOSED = "warning_closed", "Inquiry: closed"
    NEEDS_RESPONSE = "needs_response", "Needs response"
    UNDER_REVIEW = "under_review", "Under review"
    WON = "won", "Won"
    LOST = "lost", "Lost"
    ACCEPTED = "accepted", "Accepted"
    EXPIRED = "expired", "Expired"


class Dispute(models.Model):
    """A chargeback on a payment; funds withdrawn and reinstated are posted to the ledger once each."""

    Status = DisputeStatus

    FINAL_STATUSES = (Status.WARNING_CLOSED, Status.WON, Status.LOST, Status.ACCEPTED, Status.EXPIRED)

    gateway = models.CharField(max_length=16, choices=Gateway.choices)
    gateway_dispute_id = models.CharField(max_length=255)
    payment = models.ForeignKey(Payment, null=True, blank=True, on_delete=models.PROTECT, related_name="disputes")
    amount_minor = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    reason = models.CharField(max_length=100, blank=True, default="")
    status = models.CharField(max_length=32, choices=Status.choices)
    status_event_at = models.DateTimeField(null=True, blank=True)
    evidence_due_by = models.DateTimeField(null=True, blank=True)
    funds_withdrawn_minor = models.BigIntegerField(default=0)
    funds_reinstated_minor = models.BigIntegerField(default=0)
    opened_at = models.DateTimeField(default=timezone.now)
    closed_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["gateway", "gateway_dispute_id"], name="payments_dispute_gateway_id"),
            models.CheckConstraint(
                condition=_in_choices("status", DisputeStatus), name="payments_dispute_status_valid"
            ),
        ]
        indexes = [models.Index(fields=["status", "evidence_due_by"], name="payments_dispute_due")]

    def __str__(self) -> str:
        return f"{self.gateway} dispute {self.gateway_dispute_id}"


class PayoutStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    IN_TRANSIT = "in_transit", "In transit"
    PAID = "paid", "Paid"
    FAILED = "failed", "Failed"
    CANCELED = "canceled", "Canceled"


class Payout(models.Model):
    """Money the gateway sends to the bank account: a Stripe payout or a Braintree disbursement."""

    Status = PayoutStatus

    FINAL_STATUSES = (Status.PAID, Status.FAILED, Status.CANCELED)

    gateway = models.CharField(max_length=16, choices=Gateway.choices)
    gateway_payout_id = models.CharField(max_length=255)
    amount_minor = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    fee_minor = models.BigIntegerField(default=0)
    status = models.CharField(max_length=16, choices=Status.choices)
    status_event_at = models.DateTimeField(null=True, blank=True)
    arrival_date = models.DateField(null=True, blank=True)
    failure_code = models.CharField(max_length=100, blank=True, default="")
    failure_message = models.CharField(max_length=500, blank=True, default="")
    # Braintree lists the transactions a disbursement settles.
    transaction_ids = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["gateway", "gateway_payout_id"], name="payments_payout_gateway_id"),
            models.CheckConstraint(condition=_in_choices("status", PayoutStatus), name="payments_payout_status_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.gateway} payout {self.gateway_payout_id}"


class DunningPlanStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    RECOVERED = "recovered", "Recovered"
    EXHAUSTED = "exhausted", "Exhausted"
    CANCELED = "canceled", "Canceled"


class DunningPlan(models.Model):
    """Retries of a failed payment on a schedule (PAYMENTS_DUNNING_RETRY_HOURS), then a final state.

    One plan per payment. ``attempts`` counts retries made; ``next_attempt_at`` is empty once
    the plan is recovered (the payment succeeded) or exhausted (the last retry failed).
    """

    Status = DunningPlanStatus

    payment = models.OneToOneField(Payment, on_delete=models.PROTECT, related_name="dunning")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_failure_code = models.CharField(max_length=100, blank=True, default="")
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=_in_choices("status", DunningPlanStatus), name="payments_dunning_status_valid"
            ),
        ]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="payments_dunning_due")]

    def __str__(self) -> str:
        return f"dunning of payment {self.payment_id}: {self.status}"


class CustomerNotification(models.Model):
    """A message sent (or queued) to a payer about a payment, e.g. a failed charge and its next retry."""

    class Kind(models.TextChoices):
        PAYMENT_FAILED = "payment_failed", "Payment failed"
        RETRY_SCHEDULED = "retry_scheduled", "Retry scheduled"
        PAYMENT_RECOVERED = "payment_recovered", "Payment recovered"
        FINAL_NOTICE = "final_notice", "Final notice"

    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="notifications")
    kind = models.CharField(max_length=32, choices=Kind.choices)
    channel = models.CharField(max_length=16, default="email")
    recipient = models.CharField(max_length=254, blank=True, default="")
    # Unique per payment and step, so a retried task never notifies twice.
    dedupe_key = models.CharField(max_length=200, unique=True)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.kind} for payment {self.payment_id}"


# --------------------------------------------------------------------------------------- ledger


class LedgerAccountKind(models.TextChoices):
    GATEWAY_CLEARING = "gateway_clearing", "Gateway clearing"
    CUSTOMER_FUNDS = "customer_funds", "Customer funds"
    FEES = "fees", "Gateway fees"
    REFUNDS = "refunds", "Refunds"
    DISPUTES = "disputes", "Disputes"
    PAYOUTS = "payouts", "Payouts (bank)"


class LedgerAccount(models.Model):
    """A ledger account per kind, gateway and currency. Balances are derived from postings."""

    Kind = LedgerAccountKind

    # Accounts whose balance is normally a credit (shown positive when credits exceed debits).
    CREDIT_NORMAL = (Kind.CUSTOMER_FUNDS,)

    kind = models.CharField(max_length=32, choices=Kind.choices)
    gateway = models.CharField(max_length=16, choices=Gateway.choices)
    currency = models.CharField(max_length=3)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["kind", "gateway", "currency"], name="payments_ledger_account_unique"),
            models.CheckConstraint(
                condition=_in_choices("kind", LedgerAccountKind), name="payments_ledger_account_kind_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind}:{self.gateway}:{self.currency}"


class JournalEntry(models.Model):
    """A balanced set of postings, written once. Append-only (database triggers).

    ``idempotency_key`` names the effect (e.g. ``stripe:charge:ch_1:captured``): a second attempt
    to post the same effect, from a duplicate or redelivered event, inserts nothing. Corrections
    are new entries that ``reverses`` an earlier one.
    """

    idempotency_key = models.CharField(max_length=255, unique=True)
    description = models.CharField(max_length=255)
    occurred_at = models.DateTimeField()
    created_at = models.DateTimeField(default=timezone.now)
    payment = models.ForeignKey(
        Payment, null=True, blank=True, on_delete=models.PROTECT, related_name="journal_entries"
    )
    payout = models.ForeignKey(Payout, null=True, blank=True, on_delete=models.PROTECT, related_name="journal_entries")
    webhook_event = models.ForeignKey(WebhookEvent, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    reverses = models.OneToOneField("self", null=True, blank=True, on_delete=models.PROTECT, related_name="reversed_by")

    class Meta:
        verbose_name_plural = "journal entries"

    def __str__(self) -> str:
        return self.idempotency_key


class Posting(models.Model):
    """One line of a journal entry: a debit (positive) or credit (negative) in the account's currency.

    Per entry and currency, postings sum to zero (deferred constraint trigger, checked at commit).
    """

    entry = models.ForeignKey(JournalEntry, on_delete=models.PROTECT, related_name="postings")
    account = models.ForeignKey(LedgerAccount, on_delete=models.PROTECT, related_name="postings")
    currency = models.CharField(max_length=3)
    amount_minor = models.BigIntegerField()

    class Meta:
        constraints = [models.CheckConstraint(condition=~Q(amount_minor=0), name="payments_posting_not_zero")]
        indexes = [models.Index(fields=["account", "entry"], name="payments_posting_account")]

    def __str__(self) -> str:
        return f"{self.amount_minor} {self.currency} to account {self.account_id}"


# Merchant API models live in their own module; imported here so Django registers them.
from .api_models import *  # noqa: E402, F403
