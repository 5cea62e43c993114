"""Reads for the overview and section pages (the composition root may read every app)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db.models import Count, Q, QuerySet
from django.utils import timezone
from django_celery_beat.models import PeriodicTask
from django_celery_results.models import TaskResult

from fintech.core.models import AuditEvent, AuditVerification, Customer
from fintech.core.selectors import WorkerHealth, worker_health


@dataclass(frozen=True)
class TaskRunCounts:
    succeeded: int
    failed: int
    retried: int
    total: int


@dataclass(frozen=True)
class Overview:
    staff_users: int
    active_users: int
    schedules_enabled: int
    schedules_total: int
    runs_24h: TaskRunCounts
    worker: WorkerHealth
    schedules: list[PeriodicTask]
    recent_failures: list[TaskResult]
    customers: int
    kyc_pending: int
    audit_verification: AuditVerification | None


def task_run_counts(*, since, task_prefix: str = "") -> TaskRunCounts:
    results = TaskResult.objects.filter(date_done__gte=since, task_name__startswith=task_prefix)
    counts = results.aggregate(
        succeeded=Count("id", filter=Q(status="SUCCESS")),
        failed=Count("id", filter=Q(status="FAILURE")),
        retried=Count("id", filter=Q(status="RETRY")),
        total=Count("id"),
    )
    return TaskRunCounts(**counts)


def schedules_for(task_prefix: str = "") -> QuerySet[PeriodicTask]:
    return (
        PeriodicTask.objects.filter(task__startswith=task_prefix)
        .select_related("interval", "crontab", "solar", "clocked")
        .order_by("name")
    )


def task_results_for(task_prefix: str = "", *, failed_only: bool = False, limit: int = 20) -> list[TaskResult]:
    results = TaskResult.objects.filter(task_name__startswith=task_prefix)
    if failed_only:
        results = results.filter(status="FAILURE")
    return list(results.order_by("-date_done")[:limit])


def overview() -> Overview:
    user_model = get_user_model()
    users = user_model.objects.aggregate(
        staff=Count("pk", filter=Q(is_staff=True, is_active=True)),
        active=Count("pk", filter=Q(is_active=True)),
    )
    schedules = schedules_for()
    schedule_counts = PeriodicTask.objects.aggregate(enabled=Count("id", filter=Q(enabled=True)), total=Count("id"))
    customer_counts = Customer.objects.aggregate(
        total=Count("pk"), pending=Count("pk", filter=Q(kyc_status=Customer.KycStatus.PENDING))
    )
    return Overview(
        staff_users=users["staff"],
        active_users=users["active"],
        schedules_enabled=schedule_counts["enabled"],
        schedules_total=schedule_counts["total"],
        runs_24h=task_run_counts(since=timezone.now() - timedelta(hours=24)),
        worker=worker_health(),
        schedules=list(schedules),
        recent_failures=task_results_for(failed_only=True, limit=10),
        customers=customer_counts["total"],
        kyc_pending=customer_counts["pending"],
        audit_verification=audit_last_verification(),
    )


@dataclass(frozen=True)
class AuditFilters:
    action: str = ""
    actor: str = ""
    target_type: str = ""
    target_id: str = ""


def audit_events(filters: AuditFilters) -> QuerySet[AuditEvent]:
    """Audit trail entries, newest first; ``action`` matches a prefix ("auth." finds every auth.*)."""
    events = AuditEvent.objects.order_by("-seq")
    if filters.action:
        events = events.filter(action__startswith=filters.action)
    if filters.actor:
        events = events.filter(actor_label=filters.actor)
    if filters.target_type:
        events = events.filter(target_type=filters.target_type)
    if filters.target_id:
        events = events.filter(target_id=filters.target_id)
    return events


def audit_last_verification() -> AuditVerification | None:
    return AuditVerification.objects.select_related("checkpoint").order_by("-finished_at").first()
