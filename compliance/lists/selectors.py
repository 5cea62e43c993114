"""Reads of the sanctions lists: the live entities screening runs against, versions and deltas."""

from __future__ import annotations

from collections.abc import Iterator

from django.db.models import QuerySet

from ..models import ListEntry, ListEntryChange, ListVersion, ListVersionStatus
from .entities import ListedEntity

CHUNK_SIZE = 2000


def active_versions() -> dict[str, ListVersion]:
    """The active version of each source that has one."""
    return {v.source: v for v in ListVersion.objects.filter(status=ListVersionStatus.ACTIVE).order_by("source")}


def live_entities(sources: list[str] | None = None) -> Iterator[ListedEntity]:
    """Every entity currently listed by an active source (all active sources, or those named),
    streamed from the database in chunks."""
    active = set(active_versions())
    wanted = active if sources is None else active & set(sources)
    rows = (
        ListEntry.objects.filter(source__in=sorted(wanted), removed_in__isnull=True)
        .order_by("id")
        .values_list("data", flat=True)
        .iterator(chunk_size=CHUNK_SIZE)
    )
    for data in rows:
        yield ListedEntity.from_json(data)


def version_delta(version: ListVersion) -> QuerySet[ListEntryChange]:
    """The entries ``version`` added, changed or removed, with their entry."""
    return ListEntryChange.objects.filter(version=version).select_related("entry").order_by("kind", "id")
