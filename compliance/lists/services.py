"""Loading a sanctions list publication as a new version, with its delta against the live entries.

``list_load`` fetches and parses the complete publication before it writes anything. A failure
(unreachable origin, foreign or truncated file) is recorded as a FAILED version in a transaction
of its own, and the active version stays active. Files identical to the active version's are a
no-op. Otherwise one transaction, serialised per source by an advisory lock, creates the version,
upserts the entries, records each entry added, changed or removed, supersedes the previous
version, activates the new one and writes the audit event; ``list_version_activated`` is sent
after the commit.
"""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from fintech.core.audit import audit_record
from fintech.core.exceptions import ApplicationError, ValidationFailed

from ..models import ListChangeKind, ListEntry, ListEntryChange, ListVersion, ListVersionStatus
from . import ofac, un
from .entities import ListedEntity
from .fetch import FetchError, ListFile, display_origin, fetch_files
from .parsing import ListFormatError, ParsedList, files_sha256
from .signals import list_version_activated

logger = logging.getLogger("compliance.lists")

BATCH_SIZE = 2000
# Namespace of the per-source advisory lock (the second key is the source's hash).
LOCK_NAMESPACE = 0x4C495354  # "LIST"


@dataclass(frozen=True)
class ListSource:
    id: str
    label: str
    files: tuple[ListFile, ...]
    parse: Callable[[dict[str, bytes | None]], ParsedList]


def _named(name: str, data: bytes | None) -> io.BytesIO:
    buffer = io.BytesIO(data or b"")
    buffer.name = name
    return buffer


def _optional(name: str, files: dict[str, bytes | None]) -> io.BytesIO | None:
    data = files.get(name)
    return None if data is None else _named(name, data)


def _parse_ofac(files: dict[str, bytes | None]) -> ParsedList:
    # sdn.csv is required (fetch_files fails without it); alt.csv and add.csv may be absent.
    sdn = _named("sdn.csv", files["sdn.csv"])
    return ofac.parse_ofac_sdn(sdn, _optional("alt.csv", files), _optional("add.csv", files))


def _parse_un(files: dict[str, bytes | None]) -> ParsedList:
    return un.parse_un_consolidated(_named("consolidated.xml", files["consolidated.xml"]))


SOURCES: dict[str, ListSource] = {
    source.id: source
    for source in (
        ListSource(
            id=ofac.SOURCE,
            label="OFAC SDN list",
            files=(ListFile("sdn.csv", True), ListFile("alt.csv", False), ListFile("add.csv", False)),
            parse=_parse_ofac,
        ),
        ListSource(
            id=un.SOURCE,
            label="UN Security Council consolidated list",
            files=(ListFile("consolidated.xml", True),),
            parse=_parse_un,
        ),
    )
}


class ListLoadError(ApplicationError):
    """A list could not be loaded; ``version_id`` is the FAILED version recorded for it."""

    def __init__(self, message: str, *, version_id: int | None = None):
        super().__init__(message)
        self.version_id = version_id


@dataclass(frozen=True)
class ListLoadResult:
    version: ListVersion
    unchanged: bool  # the files equal the active version's: nothing was written
    seconds: float


def list_source(source: str) -> ListSource:
    if source not in SOURCES:
        raise ValidationFailed(f"unknown list source {source!r}; known: {', '.join(SOURCES)}", field="source")
    return SOURCES[source]


def _files_digest(spec: ListSource, files: dict[str, bytes | None]) -> str:
    return files_sha256([(f.name, files.get(f.name)) for f in spec.files])


def _active(source: str) -> ListVersion | None:
    return ListVersion.objects.filter(source=source, status=ListVersionStatus.ACTIVE).first()


def _record_failure(*, source: str, origin: str, error: str, sha256: str, actor) -> ListVersion:
    with transaction.atomic():
        version = ListVersion.objects.create(
            source=source,
            origin=origin,
            file_sha256=sha256,
            status=ListVersionStatus.FAILED,
            error=error,
            finished_at=timezone.now(),
        )
        audit_record(
            actor=actor,
            action="compliance.list_load_failed",
            target=version,
            details={"source": source, "origin": origin, "error": error[:1000]},
        )
    logger.warning("sanctions list %s from %s not loaded: %s", source, origin, error)
    return version


def _batches(items: list[Any], size: int = BATCH_SIZE) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _lock(source: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", [LOCK_NAMESPACE, source])


def _write(
    *,
    version: ListVersion,
    parsed: ParsedList,
    progress: Callable[[int, int], None] | None,
) -> dict[str, int]:
    """Upsert the entries of ``parsed`` and record the delta on ``version``. Returns the counts."""
    source = version.source
    existing = {
        key: (entry_id, content_hash, removed_in_id)
        for entry_id, key, content_hash, removed_in_id in ListEntry.objects.filter(source=source).values_list(
            "id", "key", "content_hash", "removed_in_id"
        )
    }
    new_entries: list[ListEntry] = []
    updates: list[tuple[ListedEntity, str, int, str, bool]] = []  # entity, hash, entry id, old hash, re-added
    seen: set[str] = set()
    for entity in parsed.entities:
        seen.add(entity.key)
        content_hash = entity.content_hash()
        current = existing.get(entity.key)
        if current is None:
            new_entries.append(
                ListEntry(
                    source=source,
                    key=entity.key,
                    entity_type=str(entity.entity_type),
                    primary_name=entity.primary_name[:500],
                    data=entity.to_json(),
                    content_hash=content_hash,
                    first_version=version,
                    changed_version=version,
                )
            )
        elif current[2] is not None or current[1] != content_hash:
            updates.append((entity, content_hash, current[0], current[1], current[2] is not None))
    removed = [
        (entry_id, old_hash) for key, (entry_id, old_hash, gone) in existing.items() if key not in seen and gone is None
    ]

    # The content before this version, for the admin's "previous vs new" (changed and removed only).
    previous_ids = [entry_id for _, _, entry_id, _, readded in updates if not readded] + [i for i, _ in removed]
    previous_data: dict[int, Any] = {}
    for ids in _batches(previous_ids):
        previous_data.update(ListEntry.objects.filter(id__in=ids).values_list("id", "data"))

    changes: list[ListEntryChange] = []
    total = len(parsed.entities)
    done = 0
    for batch in _batches(new_entries):
        ListEntry.objects.bulk_create(batch)
        changes.extend(
            ListEntryChange(version=version, entry_id=e.pk, kind=ListChangeKind.ADDED, new_hash=e.content_hash)
            for e in batch
        )
        done += len(batch)
        if progress:
            progress(len(batch), total)
    with connection.cursor() as cursor:
        for batch in _batches(updates):
            cursor.executemany(
                "UPDATE compliance_listentry SET entity_type = %s, primary_name = %s, data = %s::jsonb,"
                " content_hash = %s, changed_version_id = %s, removed_in_id = NULL WHERE id = %s",
                [
                    (
                        str(entity.entity_type),
                        entity.primary_name[:500],
                        json.dumps(entity.to_json(), ensure_ascii=False),
                        content_hash,
                        version.pk,
                        entry_id,
                    )
                    for entity, content_hash, entry_id, _, _ in batch
                ],
            )
            changes.extend(
                ListEntryChange(
                    version=version,
                    entry_id=entry_id,
                    # An entity a previous version removed and this one lists again is added back.
                    kind=ListChangeKind.ADDED if readded else ListChangeKind.CHANGED,
                    previous_hash=old_hash,
                    new_hash=content_hash,
                    previous_data=None if readded else previous_data.get(entry_id),
                )
                for _, content_hash, entry_id, old_hash, readded in batch
            )
            if progress:
                progress(len(batch), total)
    for batch in _batches(removed):
        ListEntry.objects.filter(id__in=[entry_id for entry_id, _ in batch]).update(removed_in=version)
        changes.extend(
            ListEntryChange(
                version=version,
                entry_id=entry_id,
                kind=ListChangeKind.REMOVED,
                previous_hash=old_hash,
                previous_data=previous_data.get(entry_id),
            )
            for entry_id, old_hash in batch
        )
    ListEntryChange.objects.bulk_create(changes, batch_size=BATCH_SIZE)
    if progress:
        progress(total - done - len(updates), total)
    readded = sum(1 for *_, again in updates if again)
    return {
        "added": len(new_entries) + readded,
        "changed": len(updates) - readded,
        "removed": len(removed),
    }


def list_load_with_result(
    *,
    source: str,
    origin: str,
    actor,
    progress: Callable[[int, int], None] | None = None,
) -> ListLoadResult:
    """Load ``source`` from ``origin`` (a path or http(s) URL). ``progress`` is called with the
    number of entities written by each step of the write phase and the total (a progress bar)."""
    spec = list_source(source)
    if not origin or not origin.strip():
        raise ValidationFailed(f"no origin configured for {source}: give a path or URL", field="origin")
    started = time.monotonic()
    shown = display_origin(origin.strip())
    sha256 = ""
    try:
        files = fetch_files(origin, spec.files)
        sha256 = _files_digest(spec, files)
        active = _active(source)
        if active is not None and active.file_sha256 == sha256:
            return ListLoadResult(active, unchanged=True, seconds=time.monotonic() - started)
        parsed = spec.parse(files)
    except (FetchError, ListFormatError) as exc:
        failed = _record_failure(source=source, origin=shown, error=str(exc), sha256=sha256, actor=actor)
        raise ListLoadError(str(exc), version_id=failed.pk) from exc

    try:
        version, created = _activate(source=source, origin=shown, parsed=parsed, actor=actor, progress=progress)
    except Exception as exc:
        failed = _record_failure(
            source=source, origin=shown, error=f"{type(exc).__name__}: {exc}", sha256=sha256, actor=actor
        )
        raise ListLoadError(f"{source} could not be stored: {exc}", version_id=failed.pk) from exc
    return ListLoadResult(version, unchanged=not created, seconds=time.monotonic() - started)


def _activate(
    *, source: str, origin: str, parsed: ParsedList, actor, progress: Callable[[int, int], None] | None
) -> tuple[ListVersion, bool]:
    """The new active version and True; or the active version and False when it has these files."""
    with transaction.atomic(durable=True):
        _lock(source)
        previous = _active(source)
        if previous is not None and previous.file_sha256 == parsed.files_sha256:
            # Another load of the same files committed while this one was parsing.
            return previous, False
        version = ListVersion.objects.create(
            source=source,
            origin=origin,
            published_at=parsed.published_at,
            file_sha256=parsed.files_sha256,
            status=ListVersionStatus.LOADING,
            entity_count=len(parsed.entities),
            name_count=sum(len(e.names) for e in parsed.entities),
            stats=parsed.stats,
        )
        counts = _write(version=version, parsed=parsed, progress=progress)
        if previous is not None:
            ListVersion.objects.filter(pk=previous.pk, status=ListVersionStatus.ACTIVE).update(
                status=ListVersionStatus.SUPERSEDED
            )
        version.added_count = counts["added"]
        version.changed_count = counts["changed"]
        version.removed_count = counts["removed"]
        version.status = ListVersionStatus.ACTIVE
        version.finished_at = timezone.now()
        version.save(
            update_fields=["added_count", "changed_count", "removed_count", "status", "finished_at"],
        )
        audit_record(
            actor=actor,
            action="compliance.list_loaded",
            target=version,
            details={
                "source": source,
                "origin": origin,
                "file_sha256": parsed.files_sha256,
                "published_at": parsed.published_at.isoformat() if parsed.published_at else None,
                "entities": version.entity_count,
                **counts,
                "previous_version_id": previous.pk if previous else None,
            },
        )
        version_id = version.pk
        transaction.on_commit(lambda: list_version_activated.send(sender=ListVersion, version_id=version_id))
    logger.info(
        "sanctions list %s version %s active: %s entities, +%s ~%s -%s",
        source,
        version.pk,
        version.entity_count,
        counts["added"],
        counts["changed"],
        counts["removed"],
    )
    return version, True


def list_load(*, source: str, origin: str, actor) -> ListVersion:
    """Load a list publication; returns the new active version (or the active one, unchanged)."""
    return list_load_with_result(source=source, origin=origin, actor=actor).version
