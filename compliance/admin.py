"""Compliance in the admin: read-only views of the sanctions list versions, entries and deltas.

Versions are written only by the loader (``manage.py load_sanctions_list`` and the scheduled
refresh), so nothing here can be added, changed or deleted.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from fintech.core.admin import ReadOnlyAdmin

from .models import ListChangeKind, ListEntry, ListEntryChange, ListVersion


def _changes_link(version: ListVersion, kind: str, count: int) -> str:
    query = urlencode({"version__id__exact": version.pk, "kind__exact": kind})
    return format_html('<a href="{}?{}">{}</a>', reverse("admin:compliance_listentrychange_changelist"), query, count)


def _pretty(data: Any) -> str:
    if data is None:
        return "—"
    return format_html("<pre>{}</pre>", json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True))


@admin.register(ListVersion)
class ListVersionAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "source",
        "published_at",
        "status",
        "entity_count",
        "added",
        "changed",
        "removed",
        "started_at",
        "finished_at",
    )
    list_filter = ("source", "status")
    ordering = ("-started_at", "-id")
    readonly_fields = (
        "source",
        "origin",
        "published_at",
        "file_sha256",
        "status",
        "error",
        "entity_count",
        "name_count",
        "added",
        "changed",
        "removed",
        "stats",
        "started_at",
        "finished_at",
    )
    exclude = ("added_count", "changed_count", "removed_count")

    @admin.display(description="added", ordering="added_count")
    def added(self, version: ListVersion) -> str:
        return _changes_link(version, ListChangeKind.ADDED, version.added_count)

    @admin.display(description="changed", ordering="changed_count")
    def changed(self, version: ListVersion) -> str:
        return _changes_link(version, ListChangeKind.CHANGED, version.changed_count)

    @admin.display(description="removed", ordering="removed_count")
    def removed(self, version: ListVersion) -> str:
        return _changes_link(version, ListChangeKind.REMOVED, version.removed_count)


@admin.register(ListEntry)
class ListEntryAdmin(ReadOnlyAdmin):
    list_display = ("primary_name", "source", "key", "entity_type", "listed", "changed_version", "removed_in")
    list_filter = ("source", "entity_type", ("removed_in", admin.EmptyFieldListFilter))
    search_fields = ("primary_name", "=key")
    list_select_related = ("changed_version", "removed_in")
    show_full_result_count = False
    readonly_fields = (
        "source",
        "key",
        "entity_type",
        "primary_name",
        "names",
        "content",
        "content_hash",
        "first_version",
        "changed_version",
        "removed_in",
    )
    exclude = ("data",)

    @admin.display(boolean=True, description="listed")
    def listed(self, entry: ListEntry) -> bool:
        return entry.removed_in_id is None

    @admin.display(description="names")
    def names(self, entry: ListEntry) -> str:
        names = ((n["name"], n["kind"]) for n in entry.data["names"])
        return format_html("<ul>{}</ul>", format_html_join("", "<li>{} <small>({})</small></li>", names))

    @admin.display(description="content")
    def content(self, entry: ListEntry) -> str:
        return _pretty(entry.data)


@admin.register(ListEntryChange)
class ListEntryChangeAdmin(ReadOnlyAdmin):
    list_display = ("entry_name", "entry_key", "kind", "version", "previous_hash_short", "new_hash_short")
    list_filter = ("kind", "version__source", "version")
    search_fields = ("entry__primary_name", "=entry__key")
    list_select_related = ("entry", "version")
    show_full_result_count = False
    readonly_fields = ("version", "entry", "kind", "previous_hash", "new_hash", "previous", "new")
    exclude = ("previous_data",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[ListEntryChange]:
        return super().get_queryset(request).select_related("entry", "version")

    @admin.display(description="entity", ordering="entry__primary_name")
    def entry_name(self, change: ListEntryChange) -> str:
        return change.entry.primary_name

    @admin.display(description="key", ordering="entry__key")
    def entry_key(self, change: ListEntryChange) -> str:
        return change.entry.key

    @admin.display(description="previous hash")
    def previous_hash_short(self, change: ListEntryChange) -> str:
        return change.previous_hash[:12]

    @admin.display(description="new hash")
    def new_hash_short(self, change: ListEntryChange) -> str:
        return change.new_hash[:12]

    @admin.display(description="previous content")
    def previous(self, change: ListEntryChange) -> str:
        return _pretty(change.previous_data)

    @admin.display(description="new content")
    def new(self, change: ListEntryChange) -> str:
        # The entry holds the latest content: it is this change's only while no later version changed it.
        if change.kind == ListChangeKind.REMOVED:
            return "—"
        if change.entry.content_hash != change.new_hash:
            return "(changed again by a later version; see the entry)"
        return _pretty(change.entry.data)
