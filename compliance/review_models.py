"""Compliance: screening subjects, hits and their review, allow-list, rescreen runs.

Imported at the end of ``compliance.models`` (``from .review_models import *``), so these models
belong to the compliance app and its migrations. Every write goes through ``compliance.services``.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from fintech.core.models import Customer

from .models import ListEntry, ListVersion

__all__ = [
    "AllowListEntry",
    "Hit",
    "HitStatus",
    "RescreenPhase",
    "RescreenRun",
    "RescreenRunStatus",
    "RescreenTrigger",
    "ScreeningSubject",
    "SubjectKind",
]


class SubjectKind(models.TextChoices):
    CUSTOMER = "customer", "Customer"
    COUNTERPARTY = "counterparty", "Payment counterparty"


class ScreeningSubject(models.Model):
    """Someone screened: one of our customers, or a counterparty named by a payment.

    A customer has one subject (its name and details are read from the customer at each
    screening); a counterparty has one per source object (``source_type`` "payments.payment" and
    the payment's id) and keeps the name and country it was screened under.
    """

    Kind = SubjectKind

    kind = models.CharField(max_length=16, choices=SubjectKind.choices)
    customer = models.OneToOneField(
        Customer, null=True, blank=True, on_delete=models.PROTECT, related_name="screening_subject"
    )
    # Counterparties: the name and ISO 3166-1 alpha-2 country as the payment gave them.
    name = models.CharField(max_length=300, blank=True)
    country = models.CharField(max_length=2, blank=True)
    # Counterparties: the object that named them ("payments.payment") and its primary key.
    source_type = models.CharField(max_length=100, blank=True)
    source_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # The last screening, full or by delta; empty until the first one.
    screened_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(condition=Q(kind__in=SubjectKind.values), name="compliance_subject_kind"),
            models.CheckConstraint(
                condition=(Q(kind="customer", customer__isnull=False, source_type="", source_id=""))
                | (Q(kind="counterparty", customer__isnull=True) & ~Q(name="") & ~Q(source_type="") & ~Q(source_id="")),
                name="compliance_subject_shape",
            ),
            models.UniqueConstraint(
                fields=["source_type", "source_id"],
                condition=Q(kind="counterparty"),
                name="compliance_subject_counterparty_once",
            ),
        ]

    def __str__(self) -> str:
        if self.kind == SubjectKind.CUSTOMER:
            return f"customer #{self.customer_id}"
        return f"counterparty of {self.source_type} #{self.source_id}"

    @property
    def display_name(self) -> str:
        return self.customer.legal_name if self.customer is not None else self.name


class HitStatus(models.TextChoices):
    OPEN = "open", "Open"
    TRUE_MATCH_PENDING = "true_match_pending", "True match, awaiting confirmation"
    TRUE_MATCH = "true_match", "True match"
    FALSE_POSITIVE = "false_positive", "False positive"
    ALLOW_LISTED = "allow_listed", "Allow-listed"
    CLOSED_ENTRY_REMOVED = "closed_entry_removed", "Closed: entry removed from the list"


# A hit in one of these needs a reviewer; at most one such hit per subject and entry.
UNDECIDED_STATUSES = (HitStatus.OPEN, HitStatus.TRUE_MATCH_PENDING)


class Hit(models.Model):
    """A subject's name matched a list entry above the threshold: a case for a reviewer.

    ``entry_hash`` is the entry's content hash when the hit was raised: the review page shows
    when the list has changed the entry since. At most one undecided hit (open or awaiting
    confirmation) exists per subject and entry; screening again refreshes it. Status changes go
    through the transition services in ``compliance.services``; a true match needs a second
    reviewer (``SCREENING_FOUR_EYES``), who must not be the first.
    """

    Status = HitStatus

    subject = models.ForeignKey(ScreeningSubject, on_delete=models.PROTECT, related_name="hits")
    entry = models.ForeignKey(ListEntry, on_delete=models.PROTECT, related_name="hits")
    entry_hash = models.CharField(max_length=64)
    # The list version that was active when the hit was raised.
    list_version = models.ForeignKey(ListVersion, on_delete=models.PROTECT, related_name="+")
    # The matcher's score, 0..1.
    score = models.FloatField()
    matched_name = models.CharField(max_length=500)
    matched_name_kind = models.CharField(max_length=32)
    # The matcher's explanation (alignment of name tokens, factors and their contributions).
    explanation = models.JSONField(default=dict)
    # Keyed digest of the screening query (name, type, dates, countries) that raised or refreshed
    # the hit: a false positive stands while neither this nor the entry changes.
    query_digest = models.CharField(max_length=64, blank=True)
    status = models.CharField(max_length=32, choices=HitStatus.choices, default=HitStatus.OPEN)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    last_screened_at = models.DateTimeField()
    # The (first) decision.
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_reason = models.TextField(blank=True)
    # Four-eyes: the second reviewer, who confirmed (or sent back) a true match.
    confirmed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    confirmed_at = models.DateTimeField(null=True, blank=True)
    confirmation_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [
            ("review_hit", "Can review sanctions hits and decide them"),
            ("confirm_true_match", "Can confirm a true sanctions match (second reviewer)"),
            ("use_screening_api", "Can search the sanctions lists through the REST API"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=HitStatus.values), name="compliance_hit_status"),
            models.CheckConstraint(condition=Q(score__gte=0) & Q(score__lte=1), name="compliance_hit_score_range"),
            models.UniqueConstraint(
                fields=["subject", "entry"],
                condition=Q(status__in=[status.value for status in UNDECIDED_STATUSES]),
                name="compliance_hit_one_undecided",
            ),
            models.CheckConstraint(
                condition=Q(status="open") | Q(decided_at__isnull=False), name="compliance_hit_decided_has_time"
            ),
        ]
        indexes = [
            models.Index(fields=["status", "-created_at"], name="compliance_hit_queue"),
        ]

    def __str__(self) -> str:
        return f"hit #{self.pk} {self.subject} ~ {self.entry_id} ({self.status})"

    @property
    def entry_changed(self) -> bool:
        """The list changed the entry since the hit was raised."""
        return self.entry.content_hash != self.entry_hash


class AllowListEntry(models.Model):
    """A reviewed pair of subject and list entry that must not raise hits for a while.

    Suppresses hits only while the entry's content hash equals ``entry_hash`` (a changed entry is
    screened afresh) and until ``expires_at``; it lapses on its own, nothing deletes it.
    """

    subject = models.ForeignKey(ScreeningSubject, on_delete=models.PROTECT, related_name="allow_list")
    entry = models.ForeignKey(ListEntry, on_delete=models.PROTECT, related_name="+")
    entry_hash = models.CharField(max_length=64)
    # The hit whose review allow-listed the pair.
    hit = models.ForeignKey(Hit, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    reason = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "allow-list entries"
        constraints = [
            models.CheckConstraint(condition=~Q(reason=""), name="compliance_allowlist_reason_present"),
            models.CheckConstraint(
                condition=Q(expires_at__gt=models.F("created_at")), name="compliance_allowlist_expires_later"
            ),
        ]
        indexes = [models.Index(fields=["subject", "entry"], name="compliance_allowlist_pair")]

    def __str__(self) -> str:
        return f"allow {self.subject} ~ {self.entry_id} until {self.expires_at:%Y-%m-%d}"


class RescreenTrigger(models.TextChoices):
    LIST_VERSION = "list_version", "New list version (delta)"
    MANUAL = "manual", "Manual (everyone, full lists)"


class RescreenPhase(models.TextChoices):
    """What a run is screening: its customers first, then the payment counterparties."""

    CUSTOMERS = "customers", "Customers"
    COUNTERPARTIES = "counterparties", "Payment counterparties"


class RescreenRunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


# A run in one of these is not finished: a worker is on it, or one will be (a retry, the
# continuation of a time slice, or the beat sweep of stalled runs).
UNFINISHED_RUN_STATUSES = (RescreenRunStatus.QUEUED, RescreenRunStatus.RUNNING, RescreenRunStatus.FAILED)


class RescreenRun(models.Model):
    """One screening of everyone screened: against a new list version's delta, or in full.

    A run screens every customer (phase ``customers``, in customer id order, ``last_customer_id``
    the last one done), then every payment counterparty subject (phase ``counterparties``, in
    subject id order, ``last_subject_id`` the last one done); the next time slice, a retry or a
    resumed run continues from there. ``done`` of ``total`` counts both; ``counterparties_done``
    of ``counterparties_total`` is the counterparties' share. ``screener_entities`` is the number
    of list entities screened against (the delta's added and changed entities, or the whole lists).

    A run is worked on in time slices, each by the worker holding its lease: ``claim_token``
    names the holder and ``claimed_until`` ends the lease. A worker takes the run with one
    conditional UPDATE (lease free or lapsed), renews it with every progress update (guarded by
    its token) and stops when it lost it, so a redelivered task never doubles the counts. A
    failed run is not final: it is resumed where it stopped. At most one manual run is
    unfinished at a time.
    """

    Trigger = RescreenTrigger
    Status = RescreenRunStatus

    trigger = models.CharField(max_length=16, choices=RescreenTrigger.choices)
    list_version = models.ForeignKey(ListVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    status = models.CharField(max_length=16, choices=RescreenRunStatus.choices, default=RescreenRunStatus.QUEUED)
    screener_entities = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    phase = models.CharField(max_length=16, choices=RescreenPhase.choices, default=RescreenPhase.CUSTOMERS)
    last_customer_id = models.BigIntegerField(default=0)
    # The counterparties' share of ``total`` and ``done``, and the last counterparty subject done.
    counterparties_total = models.PositiveIntegerField(default=0)
    counterparties_done = models.PositiveIntegerField(default=0)
    last_subject_id = models.BigIntegerField(default=0)
    hits_created = models.PositiveIntegerField(default=0)
    hits_closed = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # The last failure (kept while the run is resumed; cleared when it succeeds).
    error = models.TextField(blank=True)
    # The lease of the worker on the run: a random token, empty when no worker holds it.
    claim_token = models.CharField(max_length=32, blank=True)
    # When the lease lapses unless renewed; another worker (or the sweep) may take the run after.
    claimed_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(trigger__in=RescreenTrigger.values), name="compliance_rescreen_trigger"),
            models.CheckConstraint(condition=Q(status__in=RescreenRunStatus.values), name="compliance_rescreen_status"),
            models.CheckConstraint(condition=Q(phase__in=RescreenPhase.values), name="compliance_rescreen_phase"),
            models.CheckConstraint(
                condition=Q(trigger="manual") | Q(list_version__isnull=False), name="compliance_rescreen_version"
            ),
            # A version's delta is rescreened once, however often its activation is announced.
            models.UniqueConstraint(
                fields=["list_version"], condition=Q(trigger="list_version"), name="compliance_rescreen_once"
            ),
            # One full rescreen at a time: two officers asking at the same moment get one run.
            models.UniqueConstraint(
                fields=["trigger"],
                condition=Q(trigger="manual", status__in=[status.value for status in UNFINISHED_RUN_STATUSES]),
                name="compliance_rescreen_one_manual_unfinished",
            ),
        ]

    def __str__(self) -> str:
        return f"rescreen #{self.pk} {self.trigger} ({self.status})"

    @property
    def awaiting_worker(self) -> bool:
        """Unfinished and held by no worker: its next slice, retry or resumption is queued."""
        return self.status in UNFINISHED_RUN_STATUSES and not self.claim_token

    @property
    def percent(self) -> int:
        return 100 if not self.total else min(100, self.done * 100 // self.total)

    @property
    def customers_total(self) -> int:
        return max(0, self.total - self.counterparties_total)

    @property
    def customers_done(self) -> int:
        return max(0, self.done - self.counterparties_done)
