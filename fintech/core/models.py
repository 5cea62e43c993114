from django.conf import settings
from django.db import models

from .fields import BlindIndexField, EncryptedDateField, EncryptedJSONField, EncryptedTextField


class WorkerHeartbeat(models.Model):
    """The last time a Celery worker ran the beat-scheduled health task.

    One row per worker host; ``/healthz`` and the overview read the newest. A stale newest
    row means no worker is consuming, or beat is not scheduling.
    """

    hostname = models.CharField(max_length=255, unique=True)
    last_seen_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-last_seen_at"]

    def __str__(self) -> str:
        return f"{self.hostname} @ {self.last_seen_at:%Y-%m-%d %H:%M:%S}"


class Customer(models.Model):
    """A person or business the company serves.

    Sensitive fields (date of birth, address, tax id) are encrypted with the keyring; the tax id
    has a blind index for exact lookups. Risk rating, KYC status and the relationship status
    (active or frozen) change only through the transition services in ``fintech.core.customers``,
    each audited.
    """

    class Kind(models.TextChoices):
        PERSON = "person", "Person"
        BUSINESS = "business", "Business"

    class RiskRating(models.TextChoices):
        UNASSESSED = "unassessed", "Unassessed"
        LOW = "low", "Low"
        MEDIUM = "medium", "Medium"
        HIGH = "high", "High"

    class KycStatus(models.TextChoices):
        NOT_STARTED = "not_started", "Not started"
        PENDING = "pending", "Pending review"
        VERIFIED = "verified", "Verified"
        REJECTED = "rejected", "Rejected"

    class Status(models.TextChoices):
        """The relationship: frozen after a confirmed sanctions match, until compliance unfreezes it."""

        ACTIVE = "active", "Active"
        FROZEN = "frozen", "Frozen"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    legal_name = models.CharField(max_length=255)
    # Encrypted: a date (persons only).
    date_of_birth = EncryptedDateField(null=True, blank=True)
    # ISO 3166-1 alpha-2 country codes.
    nationality = models.CharField(max_length=2, blank=True)
    country_of_residence = models.CharField(max_length=2, blank=True)
    # Encrypted JSON: {"lines": [...], "city": ..., "postal_code": ..., "region": ..., "country": ...}
    address = EncryptedJSONField(null=True, blank=True)
    # Encrypted national tax identifier (SSN, EIN, VAT number...); looked up through tax_id_index.
    tax_id = EncryptedTextField(null=True, blank=True)
    tax_id_index = BlindIndexField(source="tax_id", purpose="customer.tax_id")
    email = models.EmailField(blank=True)
    phone = models.CharField(max_length=32, blank=True)
    risk_rating = models.CharField(max_length=16, choices=RiskRating.choices, default=RiskRating.UNASSESSED)
    kyc_status = models.CharField(max_length=16, choices=KycStatus.choices, default=KycStatus.NOT_STARTED)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    # The customer's own login, when they have one (bank-linking pages).
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="customer"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["legal_name", "pk"]
        constraints = [
            models.CheckConstraint(condition=models.Q(kind__in=["person", "business"]), name="core_customer_kind"),
            models.CheckConstraint(
                condition=models.Q(risk_rating__in=["unassessed", "low", "medium", "high"]),
                name="core_customer_risk_rating",
            ),
            models.CheckConstraint(
                condition=models.Q(kyc_status__in=["not_started", "pending", "verified", "rejected"]),
                name="core_customer_kyc_status",
            ),
            models.CheckConstraint(condition=models.Q(status__in=["active", "frozen"]), name="core_customer_status"),
            models.CheckConstraint(condition=~models.Q(legal_name=""), name="core_customer_legal_name_present"),
        ]

    def __str__(self) -> str:
        return self.legal_name


class AuditEvent(models.Model):
    """One entry of the tamper-evident audit trail: who did what, to which object, when, from where.

    Append-only and hash-chained: ``seq`` numbers entries 1, 2, 3... without gaps; ``hash`` is the
    SHA-256 of the entry's canonical encoding, which includes ``prev_hash``, the hash of entry
    ``seq - 1``. Database triggers reject UPDATE, DELETE and TRUNCATE; ``verify_audit_chain``
    recomputes the chain and names the first entry that does not match. Write only through
    ``fintech.core.audit.audit_record``. ``details`` never holds secrets.
    """

    class ActorType(models.TextChoices):
        USER = "user", "User"
        SYSTEM = "system", "System"
        ANONYMOUS = "anonymous", "Anonymous"

    seq = models.BigIntegerField(unique=True)
    occurred_at = models.DateTimeField(db_index=True)
    actor_type = models.CharField(max_length=16, choices=ActorType.choices)
    # The user's primary key (text) or empty; a label that stays readable if the user is renamed.
    actor_id = models.CharField(max_length=64, blank=True, db_index=True)
    actor_label = models.CharField(max_length=150)
    action = models.CharField(max_length=100, db_index=True)
    # The object acted on: "app_label.model" and its primary key, both empty for no object.
    target_type = models.CharField(max_length=100, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)
    details = models.JSONField(default=dict, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["-seq"]
        indexes = [models.Index(fields=["target_type", "target_id"], name="core_audit_target")]
        constraints = [
            models.CheckConstraint(condition=models.Q(seq__gte=1), name="core_audit_seq_positive"),
            models.CheckConstraint(
                condition=models.Q(actor_type__in=["user", "system", "anonymous"]), name="core_audit_actor_type"
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.action} by {self.actor_label}"


class AuditVerification(models.Model):
    """The result of one run of the audit chain verification (nightly by beat, or by command)."""

    started_at = models.DateTimeField()
    finished_at = models.DateTimeField()
    ok = models.BooleanField()
    events_checked = models.BigIntegerField()
    # The first entry that does not match, when the chain is broken.
    first_broken_seq = models.BigIntegerField(null=True, blank=True)
    message = models.TextField()
    triggered_by = models.CharField(max_length=64)

    class Meta:
        ordering = ["-finished_at"]

    def __str__(self) -> str:
        return f"{'ok' if self.ok else 'BROKEN'} at {self.finished_at:%Y-%m-%d %H:%M}"


class AuditCheckpoint(models.Model):
    """A signed statement that audit entry ``seq`` had hash ``chain_hash`` when it was verified.

    Written by a successful verification for the head it verified. ``signature`` is the hex
    HMAC-SHA256, under the ``AUDIT_ANCHOR_KEYS`` key ``key_id``, of ``"seq|chain_hash|created_at"``
    (``fintech.core.anchor.checkpoint_message``). The key is not in the database, so someone who
    rewrites the trail and recomputes its hashes cannot re-sign the checkpoints: verification
    finds the entry at a checkpoint's ``seq`` missing or with another hash. Append-only like the
    trail (database triggers reject UPDATE, DELETE and TRUNCATE); each one is also logged.
    """

    seq = models.BigIntegerField(db_index=True)
    chain_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField()
    key_id = models.CharField(max_length=64)
    signature = models.CharField(max_length=64)
    # The verification run that wrote it (metadata only, not signed).
    verification = models.OneToOneField(
        AuditVerification, null=True, blank=True, on_delete=models.PROTECT, related_name="checkpoint"
    )

    class Meta:
        ordering = ["-seq", "-pk"]
        constraints = [models.CheckConstraint(condition=models.Q(seq__gte=1), name="core_audit_checkpoint_seq")]

    def __str__(self) -> str:
        return f"checkpoint #{self.seq} {self.chain_hash[:12]} ({self.key_id})"


class StaffPermission(models.Model):
    """Holder of the dashboard's own permissions (no table); roles are groups of these.

    Checked by every staff view through ``fintech.core.permissions.permission_required``.
    """

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [
            ("access_dashboard", "Can open the staff dashboard"),
            ("view_payments", "Can view payments, refunds, disputes, the ledger and reconciliation"),
            ("view_banking", "Can view linked bank accounts, transactions and transfers"),
            ("view_compliance", "Can view screening, alerts, cases and reports"),
            ("view_customers", "Can view customers (sensitive fields masked)"),
            ("reveal_sensitive", "Can reveal a customer's sensitive fields (each reveal is audited)"),
            ("change_customer_status", "Can change a customer's risk rating and KYC status"),
            ("view_audit", "Can view the audit trail"),
            ("manage_staff", "Can manage staff users, roles and settings"),
            ("operate_payments", "Can replay webhooks and act on payments"),
        ]

    def __str__(self) -> str:
        return "staff permissions"
