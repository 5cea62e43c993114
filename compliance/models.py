"""Compliance: sanctions lists and their versions.

A list (``source``: "ofac_sdn", "un") is loaded as a ``ListVersion``; ``ListEntry`` holds the
current content of every entity the list has ever published (``removed_in`` set once a version
drops it), and ``ListEntryChange`` records, per version, which entities were added, changed or
removed: the delta that drives rescreening. Only one version per source is active at a time; a
version becomes active only after it loaded completely.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q


class ListVersionStatus(models.TextChoices):
    LOADING = "loading", "Loading"
    ACTIVE = "active", "Active"
    SUPERSEDED = "superseded", "Superseded"
    FAILED = "failed", "Failed"


class ListChangeKind(models.TextChoices):
    ADDED = "added", "Added"
    CHANGED = "changed", "Changed"
    REMOVED = "removed", "Removed"


class ListVersion(models.Model):
    Status = ListVersionStatus

    source = models.CharField(max_length=32)
    # Where the files came from: a path or URL given by the operator.
    origin = models.CharField(max_length=1000)
    # The publication date the list states (OFAC: the publish date; UN: dateGenerated).
    published_at = models.DateTimeField(null=True, blank=True)
    # SHA-256 over the loaded files (in a fixed order).
    file_sha256 = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=ListVersionStatus.choices, default=ListVersionStatus.LOADING)
    error = models.TextField(blank=True)
    entity_count = models.PositiveIntegerField(default=0)
    name_count = models.PositiveIntegerField(default=0)
    added_count = models.PositiveIntegerField(default=0)
    changed_count = models.PositiveIntegerField(default=0)
    removed_count = models.PositiveIntegerField(default=0)
    # Counts per entity type and anything else the loader reports.
    stats = models.JSONField(default=dict, blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=ListVersionStatus.values), name="compliance_listversion_status"
            ),
            models.UniqueConstraint(
                fields=["source"], condition=Q(status="active"), name="compliance_listversion_one_active"
            ),
        ]
        indexes = [models.Index(fields=["source", "-started_at"], name="compliance_listversion_recent")]

    def __str__(self) -> str:
        return f"{self.source} {self.published_at or self.started_at:%Y-%m-%d} ({self.status})"


class ListEntry(models.Model):
    """The current content of one listed entity (``data``: ``ListedEntity.to_json()``)."""

    source = models.CharField(max_length=32)
    key = models.CharField(max_length=64)
    entity_type = models.CharField(max_length=16)
    primary_name = models.CharField(max_length=500)
    data = models.JSONField()
    content_hash = models.CharField(max_length=64)
    first_version = models.ForeignKey(ListVersion, on_delete=models.PROTECT, related_name="+")
    changed_version = models.ForeignKey(ListVersion, on_delete=models.PROTECT, related_name="+")
    # Set when a version no longer lists the entity; cleared if a later version lists it again.
    removed_in = models.ForeignKey(ListVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["source", "primary_name", "id"]
        constraints = [
            models.UniqueConstraint(fields=["source", "key"], name="compliance_listentry_source_key"),
        ]
        indexes = [
            models.Index(fields=["source"], condition=Q(removed_in__isnull=True), name="compliance_listentry_live")
        ]
        verbose_name_plural = "list entries"

    def __str__(self) -> str:
        return f"{self.source}:{self.key} {self.primary_name}"


class ListEntryChange(models.Model):
    """One entity added, changed or removed by one version: the version's delta."""

    Kind = ListChangeKind

    version = models.ForeignKey(ListVersion, on_delete=models.CASCADE, related_name="changes")
    entry = models.ForeignKey(ListEntry, on_delete=models.CASCADE, related_name="changes")
    kind = models.CharField(max_length=16, choices=ListChangeKind.choices)
    previous_hash = models.CharField(max_length=64, blank=True)
    new_hash = models.CharField(max_length=64, blank=True)
    # The previous content, for "changed" and "removed", so the admin can show what changed.
    previous_data = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["version", "kind", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(kind__in=ListChangeKind.values), name="compliance_listentrychange_kind"),
            models.UniqueConstraint(fields=["version", "entry"], name="compliance_listentrychange_once"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.entry}"


# The screening review models (subjects, hits, allow-list, rescreen runs) live in their own
# module; imported here so Django registers them with this app.
from .review_models import *  # noqa: E402, F403
