"""Reads of the screening review pages and the screening API: hit queue, hit detail, rescreen runs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Prefetch, QuerySet
from django.utils import timezone

from payments.selectors import KeysetPage, keyset_page

from .models import AllowListEntry, Hit, HitStatus, ListEntry, RescreenRun, RescreenRunStatus
from .review_models import UNDECIDED_STATUSES

PAGE_SIZE = 50
HIT_KEYS = ("created_at", "id")
# Score bands of the queue's filter: name -> (lowest score included, highest score excluded).
SCORE_BANDS: dict[str, tuple[float, float | None]] = {
    "high": (0.9, None),
    "medium": (0.8, 0.9),
    "low": (0.0, 0.8),
}
SCORE_BAND_CHOICES = [("high", "≥ 90"), ("medium", "80 to 89"), ("low", "< 80")]
# Age filter: name -> (youngest, oldest) age in days of the hit; None is open-ended.
AGE_BANDS: dict[str, tuple[int | None, int | None]] = {
    "day": (None, 1),
    "week": (None, 7),
    "month": (None, 30),
    "older": (30, None),
}
AGE_CHOICES = [
    ("day", "last 24 hours"),
    ("week", "last 7 days"),
    ("month", "last 30 days"),
    ("older", "older than 30 days"),
]
# Status filter: "undecided" (the default: what needs a reviewer) or one status.
STATUS_UNDECIDED = "undecided"
STATUS_ANY = "any"


@dataclass(frozen=True)
class HitFilters:
    source: str = ""
    status: str = STATUS_UNDECIDED
    score_band: str = ""
    age: str = ""


def hits_filtered(filters: HitFilters, *, now: datetime | None = None) -> QuerySet[Hit]:
    now = now or timezone.now()
    hits = Hit.objects.select_related("subject__customer", "entry").defer(
        "explanation", "entry__data", "subject__customer__address", "subject__customer__tax_id"
    )
    if filters.status == STATUS_UNDECIDED:
        hits = hits.filter(status__in=UNDECIDED_STATUSES)
    elif filters.status and filters.status != STATUS_ANY:
        hits = hits.filter(status=filters.status)
    if filters.source:
        hits = hits.filter(entry__source=filters.source)
    if filters.score_band in SCORE_BANDS:
        low, high = SCORE_BANDS[filters.score_band]
        hits = hits.filter(score__gte=low)
        if high is not None:
            hits = hits.filter(score__lt=high)
    if filters.age in AGE_BANDS:
        youngest, oldest = AGE_BANDS[filters.age]
        if oldest is not None:
            hits = hits.filter(created_at__gte=now - timedelta(days=oldest))
        if youngest is not None:
            hits = hits.filter(created_at__lt=now - timedelta(days=youngest))
    return hits


def hit_queue(filters: HitFilters, *, cursor: str = "", size: int = PAGE_SIZE) -> KeysetPage[Hit]:
    """Hits newest first, by keyset on (created_at, id): two queries whatever the page's rows."""
    return keyset_page([hits_filtered(filters)], keys=HIT_KEYS, cursor=cursor, size=size)


def hit_counts() -> dict[str, int]:
    counts = dict(Hit.objects.values_list("status").annotate(n=Count("id")).order_by())
    return {status: counts.get(status, 0) for status in HitStatus.values}


def list_sources() -> list[str]:
    return list(ListEntry.objects.order_by().values_list("source", flat=True).distinct())


def hit_detail(pk: int) -> Hit | None:
    """A hit with its subject (customer), list entry and version, reviewers and the subject's
    allow-list and other hits, each fetched once."""
    other_hits = Hit.objects.select_related("entry").defer("explanation", "entry__data").order_by("-created_at")
    return (
        Hit.objects.select_related("subject__customer", "entry", "list_version", "decided_by", "confirmed_by")
        .prefetch_related(
            Prefetch("subject__hits", other_hits, to_attr="all_hits"),
            Prefetch(
                "subject__allow_list",
                AllowListEntry.objects.select_related("reviewer", "entry").order_by("-created_at"),
                to_attr="allow_entries",
            ),
        )
        .filter(pk=pk)
        .first()
    )


def rescreen_runs(limit: int = 50) -> list[RescreenRun]:
    return list(
        RescreenRun.objects.select_related("list_version", "requested_by").order_by("-created_at", "-id")[:limit]
    )


def rescreen_in_progress() -> bool:
    return RescreenRun.objects.filter(status__in=[RescreenRunStatus.QUEUED, RescreenRunStatus.RUNNING]).exists()
