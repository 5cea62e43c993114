"""Reads of the core app for pages and health checks."""

from dataclasses import dataclass

from django.conf import settings
from django.db.models import Q, QuerySet
from django.utils import timezone

from .models import AuditEvent, Customer, WorkerHeartbeat


@dataclass(frozen=True)
class WorkerHealth:
    heartbeat: WorkerHeartbeat | None
    age_seconds: float | None
    max_age_seconds: int

    @property
    def ok(self) -> bool:
        return self.age_seconds is not None and self.age_seconds <= self.max_age_seconds


def worker_health() -> WorkerHealth:
    heartbeat = WorkerHeartbeat.objects.order_by("-last_seen_at").first()
    age = (timezone.now() - heartbeat.last_seen_at).total_seconds() if heartbeat else None
    return WorkerHealth(heartbeat=heartbeat, age_seconds=age, max_age_seconds=settings.HEALTH_WORKER_MAX_AGE_SECONDS)


def customer_search(
    *, query: str = "", kyc_status: str = "", risk_rating: str = "", tax_id: str = ""
) -> QuerySet[Customer]:
    """Customers by name (contains) or email, or by exact tax id through its blind index, newest first.

    A tax-id search is an exact-match oracle on a sensitive value: callers allow it only to roles
    that may reveal, and audit it.
    """
    customers = Customer.objects.order_by("-created_at", "-pk")
    query = query.strip()
    if query:
        customers = customers.filter(Q(legal_name__icontains=query) | Q(email__iexact=query))
    if tax_id.strip():
        customers = customers.filter(tax_id_index=Customer._meta.get_field("tax_id_index").lookup_value(tax_id))
    if kyc_status in Customer.KycStatus.values:
        customers = customers.filter(kyc_status=kyc_status)
    if risk_rating in Customer.RiskRating.values:
        customers = customers.filter(risk_rating=risk_rating)
    return customers


def audit_for(target, *, limit: int) -> list[AuditEvent]:
    """The newest audit entries about one object."""
    return list(
        AuditEvent.objects.filter(target_type=target._meta.label_lower, target_id=str(target.pk)).order_by("-seq")[
            :limit
        ]
    )
