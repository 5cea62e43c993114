"""Shared helpers of the screening review tests: hand-made list versions, eager Celery, reviewers.

(Named test_review_* so it sits with the tests it serves; it holds no tests itself.)
"""

from __future__ import annotations

from collections.abc import Iterable

import pytest
from django.utils import timezone

from compliance.lists.entities import EntityType, ListedEntity, ListedName, NameKind
from compliance.models import ListChangeKind, ListEntry, ListEntryChange, ListVersion, ListVersionStatus
from compliance.screening_cache import screener_forget, screener_invalidate
from tests.factories import StaffUserFactory


def person(key: str, name: str, *, source: str = "ofac_sdn", dob: str = "", countries=(), aliases=()) -> ListedEntity:
    names = (ListedName(name, NameKind.PRIMARY), *(ListedName(alias, NameKind.STRONG_ALIAS) for alias in aliases))
    return ListedEntity(
        source=source,
        key=key,
        entity_type=EntityType.INDIVIDUAL,
        names=names,
        dates_of_birth=(dob,) if dob else (),
        countries=tuple(countries),
        nationalities=tuple(countries),
        programs=("SDGT",),
    )


def company(key: str, name: str, *, source: str = "ofac_sdn", countries=()) -> ListedEntity:
    return ListedEntity(
        source=source,
        key=key,
        entity_type=EntityType.ENTITY,
        names=(ListedName(name, NameKind.PRIMARY),),
        countries=tuple(countries),
        programs=("SDGT",),
    )


def load_version(entities: Iterable[ListedEntity], *, source: str = "ofac_sdn") -> ListVersion:
    """A new active version of ``source`` listing exactly ``entities``, with its delta, as the
    list loader would store it (the previous active version is superseded)."""
    entities = list(entities)
    previous = ListVersion.objects.filter(source=source, status=ListVersionStatus.ACTIVE).first()
    if previous is not None:
        ListVersion.objects.filter(pk=previous.pk).update(status=ListVersionStatus.SUPERSEDED)
    version = ListVersion.objects.create(
        source=source,
        origin="tests",
        file_sha256="0" * 64,
        status=ListVersionStatus.ACTIVE,
        entity_count=len(entities),
        finished_at=timezone.now(),
    )
    current = {entry.key: entry for entry in ListEntry.objects.filter(source=source)}
    listed = set()
    for entity in entities:
        listed.add(entity.key)
        data, content_hash = entity.to_json(), entity.content_hash()
        entry = current.get(entity.key)
        if entry is None:
            entry = ListEntry.objects.create(
                source=source,
                key=entity.key,
                entity_type=str(entity.entity_type),
                primary_name=entity.primary_name,
                data=data,
                content_hash=content_hash,
                first_version=version,
                changed_version=version,
            )
            ListEntryChange.objects.create(
                version=version, entry=entry, kind=ListChangeKind.ADDED, new_hash=content_hash
            )
        elif entry.content_hash != content_hash or entry.removed_in_id is not None:
            ListEntryChange.objects.create(
                version=version,
                entry=entry,
                kind=ListChangeKind.CHANGED if entry.removed_in_id is None else ListChangeKind.ADDED,
                previous_hash=entry.content_hash,
                new_hash=content_hash,
                previous_data=entry.data,
            )
            ListEntry.objects.filter(pk=entry.pk).update(
                data=data,
                content_hash=content_hash,
                primary_name=entity.primary_name,
                changed_version=version,
                removed_in=None,
            )
    for key, entry in current.items():
        if key not in listed and entry.removed_in_id is None:
            ListEntryChange.objects.create(
                version=version,
                entry=entry,
                kind=ListChangeKind.REMOVED,
                previous_hash=entry.content_hash,
                previous_data=entry.data,
            )
            ListEntry.objects.filter(pk=entry.pk).update(removed_in=version)
    screener_invalidate()  # as the activation signal's receiver does
    return version


@pytest.fixture
def eager_celery():
    """Tasks enqueued run at once, in the test's process and transaction."""
    from fintech.celery import app

    previous = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = True
    yield app
    app.conf.task_always_eager, app.conf.task_eager_propagates = previous


@pytest.fixture(autouse=True)
def fresh_screener():
    """Each test builds its screener from its own rows."""
    screener_forget()
    yield
    screener_forget()


@pytest.fixture
def reviewers(db):
    """Two compliance officers (four-eyes needs two) and an ops member."""
    return (
        StaffUserFactory(username="officer-a", roles=["compliance"]),
        StaffUserFactory(username="officer-b", roles=["compliance"]),
        StaffUserFactory(username="ops-member", roles=["ops"]),
    )
