"""Sanctions screening of customers and counterparties, rescreening, and the review of hits.

Screening writes hits: ``customer_screen`` and ``counterparty_screen`` search the process-wide
screener (``compliance.screening_cache``); ``rescreen_for_version`` screens every customer, then
every payment counterparty, against only what a new list version added or changed, and closes the
hits on entries it removed; ``rescreen_run_full`` screens them all against the whole lists (a
compliance officer's "rescreen all"). A hit is raised unless the pair is allow-listed, already a true match, or was
judged a false positive for the same entry content and the same screened details.

Review: each decision is a transition with a conditional UPDATE on the hit's status, so two
reviewers cannot both decide; with ``SCREENING_FOUR_EYES`` a true match needs a second reviewer,
who must not be the first, and only then is the customer frozen. Everything is audited, with ids
and counts only (no names, no dates of birth).
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce, Now
from django.http import HttpRequest
from django.utils import timezone

from fintech.core.audit import audit_record
from fintech.core.crypto import blind_index
from fintech.core.customers import customer_freeze
from fintech.core.exceptions import InvalidTransition, NotAllowed, ValidationFailed
from fintech.core.models import Customer
from fintech.core.queue import enqueue_on_commit

from .lists.entities import ListedEntity
from .lists.selectors import active_versions, version_delta
from .models import (
    AllowListEntry,
    Hit,
    HitStatus,
    ListChangeKind,
    ListEntry,
    ListVersion,
    RescreenPhase,
    RescreenRun,
    RescreenRunStatus,
    RescreenTrigger,
    ScreeningSubject,
    SubjectKind,
)
from .review_models import UNDECIDED_STATUSES, UNFINISHED_RUN_STATUSES
from .screening_cache import current_state

if TYPE_CHECKING:
    # The matcher is imported where it is used: it loads its tables, which pages that never
    # screen (and management commands) need not pay for.
    from .screening import Screener, ScreeningMatch, ScreeningQuery

logger = logging.getLogger("fintech.compliance")

REVIEW_PERMISSION = "compliance.review_hit"
CONFIRM_PERMISSION = "compliance.confirm_true_match"
MAX_REASON = 2000
CUSTOMER_ENTITY_TYPE: dict[str, str] = {Customer.Kind.PERSON: "individual", Customer.Kind.BUSINESS: "entity"}


# ------------------------------------------------------------------------------------ queries


def customer_query(customer: Customer) -> ScreeningQuery:
    """What a customer is screened under: name, type, date of birth, nationality and residence."""
    from .screening import ScreeningQuery

    countries = tuple(dict.fromkeys(code for code in (customer.nationality, customer.country_of_residence) if code))
    return ScreeningQuery(
        name=customer.legal_name,
        entity_type=CUSTOMER_ENTITY_TYPE.get(customer.kind),
        date_of_birth=customer.date_of_birth if customer.kind == Customer.Kind.PERSON else None,
        countries=countries,
    )


def counterparty_query(*, name: str, country: str) -> ScreeningQuery:
    from .screening import ScreeningQuery

    return ScreeningQuery(name=name, countries=(country,) if country else ())


def query_digest(query: ScreeningQuery) -> str:
    """A keyed digest of the screened details: equal exactly when they are (no PII stored in clear)."""
    canonical = json.dumps(
        {
            "name": query.name,
            "type": query.entity_type,
            "dob": query.date_of_birth.isoformat() if query.date_of_birth else None,
            "yob": query.year_of_birth,
            "countries": sorted(query.countries),
            "ids": sorted(query.identifiers),
        },
        sort_keys=True,
        ensure_ascii=False,
    )
    return blind_index(canonical, purpose="compliance.screening_query", normalizer=lambda value: value)


def _search(screener: Screener, query: ScreeningQuery) -> list[ScreeningMatch]:
    """Matches above the configured thresholds; none for a name with no letters or digits."""
    from .screening import EmptyNameError

    try:
        return screener.search(query)
    except EmptyNameError:
        return []


def _score_percent(score: float) -> int:
    # Audit details hold no floats (their jsonb form would not hash the same).
    return round(score * 100)


# ------------------------------------------------------------------------------ recording hits


@dataclass
class ScreeningOutcome:
    matches: int = 0
    hits_created: int = 0
    hits_refreshed: int = 0
    suppressed: int = 0

    def add(self, other: ScreeningOutcome) -> None:
        self.matches += other.matches
        self.hits_created += other.hits_created
        self.hits_refreshed += other.hits_refreshed
        self.suppressed += other.suppressed

    def as_details(self) -> dict[str, int]:
        return {
            "matches": self.matches,
            "hits_created": self.hits_created,
            "hits_refreshed": self.hits_refreshed,
            "suppressed": self.suppressed,
        }


def _entries_for(matches: Iterable[ScreeningMatch]) -> dict[tuple[str, str], ListEntry]:
    pairs = {(match.source, match.key) for match in matches}
    if not pairs:
        return {}
    condition = Q()
    for source, key in pairs:
        condition |= Q(source=source, key=key)
    return {(entry.source, entry.key): entry for entry in ListEntry.objects.filter(condition)}


def _version_id_for(entry: ListEntry, version_ids: dict[str, int]) -> int:
    return version_ids.get(entry.source) or entry.changed_version_id


def _record_matches(
    *,
    subject: ScreeningSubject,
    digest: str,
    matches: Sequence[ScreeningMatch],
    entries: dict[tuple[str, str], ListEntry],
    version_ids: dict[str, int],
    actor: Any,
    now: datetime,
) -> ScreeningOutcome:
    """Raise or refresh the subject's hits for ``matches``. Call inside a transaction that locked the subject."""
    outcome = ScreeningOutcome(matches=len(matches))
    matched: dict[int, tuple[ScreeningMatch, ListEntry]] = {}
    for match in matches:
        entry = entries.get((match.source, match.key))
        if entry is None or entry.removed_in_id is not None:
            continue
        if entry.pk not in matched or match.score > matched[entry.pk][0].score:
            matched[entry.pk] = (match, entry)
    if not matched:
        return outcome
    entry_ids = list(matched)
    # Locked (in primary-key order): a decision committing between this read and the refresh
    # below would otherwise have its hit rewritten with details its reviewer never saw. Read
    # before the allow-list, so an allow-listing that committed meanwhile is seen by both reads.
    hits = list(
        Hit.objects.select_for_update(no_key=True)
        .filter(subject=subject, entry_id__in=entry_ids)
        .order_by("pk")
        .values_list("pk", "entry_id", "status", "entry_hash", "query_digest")
    )
    allowed = set(
        AllowListEntry.objects.filter(subject=subject, entry_id__in=entry_ids, expires_at__gt=now)
        .filter(entry_hash=F("entry__content_hash"))
        .values_list("entry_id", flat=True)
    )
    undecided: dict[int, int] = {}
    settled: set[int] = set()
    for pk, entry_id, status, entry_hash, hit_digest in hits:
        current_hash = matched[entry_id][1].content_hash
        if status in UNDECIDED_STATUSES:
            undecided[entry_id] = pk
        elif status == HitStatus.TRUE_MATCH or (
            # A false positive stands for the same entry content and the same screened details.
            status == HitStatus.FALSE_POSITIVE and entry_hash == current_hash and hit_digest == digest
        ):
            settled.add(entry_id)
    for entry_id, (match, entry) in matched.items():
        if entry_id in allowed or entry_id in settled:
            outcome.suppressed += 1
            continue
        values = {
            "score": min(max(float(match.score), 0.0), 1.0),
            "matched_name": match.matched_name[:500],
            "matched_name_kind": str(match.matched_name_kind)[:32],
            "explanation": match.explanation,
            "query_digest": digest,
            "last_screened_at": now,
        }
        if entry_id in undecided:
            Hit.objects.filter(pk=undecided[entry_id]).update(**values, updated_at=now)
            outcome.hits_refreshed += 1
            continue
        hit = Hit.objects.create(
            subject=subject,
            entry=entry,
            entry_hash=entry.content_hash,
            list_version_id=_version_id_for(entry, version_ids),
            **values,
        )
        outcome.hits_created += 1
        audit_record(
            actor=actor,
            action="compliance.hit_created",
            target=hit,
            details={
                "subject_id": subject.pk,
                "customer_id": subject.customer_id,
                "entry": f"{entry.source}:{entry.key}",
                "score_percent": _score_percent(hit.score),
                "list_version_id": hit.list_version_id,
            },
        )
    return outcome


def _customer_subject(customer: Customer) -> ScreeningSubject:
    subject = ScreeningSubject.objects.filter(customer=customer).first()
    if subject is not None:
        return subject
    try:
        with transaction.atomic():
            return ScreeningSubject.objects.create(kind=SubjectKind.CUSTOMER, customer=customer)
    except IntegrityError:
        return ScreeningSubject.objects.get(customer=customer)


def _locked(subject: ScreeningSubject) -> ScreeningSubject:
    # FOR NO KEY UPDATE: screenings of one subject exclude each other, while a decision that
    # inserts a row referencing the subject (an allow-list entry) does not wait for the screening
    # that waits for the decision's hit (a deadlock with FOR UPDATE).
    return ScreeningSubject.objects.select_for_update(no_key=True).get(pk=subject.pk)


# ------------------------------------------------------------------------------------ screening


def _screen_subject(*, subject: ScreeningSubject, query: ScreeningQuery, actor: Any) -> ScreeningOutcome:
    """Search the current lists for ``query`` and raise or refresh the locked subject's hits."""
    state = current_state()
    matches = _search(state.screener, query)
    now = timezone.now()
    outcome = _record_matches(
        subject=subject,
        digest=query_digest(query),
        matches=matches,
        entries=_entries_for(matches),
        version_ids=state.version_ids,
        actor=actor,
        now=now,
    )
    ScreeningSubject.objects.filter(pk=subject.pk).update(screened_at=now)
    return outcome


@transaction.atomic
def customer_screen(*, customer: Customer, actor: Any) -> ScreeningOutcome:
    """Screen one customer against every live list entity; raise or refresh hits; audited."""
    subject = _locked(_customer_subject(customer))
    outcome = _screen_subject(subject=subject, query=customer_query(customer), actor=actor)
    audit_record(
        actor=actor,
        action="compliance.customer_screened",
        target=customer,
        details={"subject_id": subject.pk, **outcome.as_details()},
    )
    return outcome


@transaction.atomic
def counterparty_screen(*, name: str, country: str, source_type: str, source_id: Any, actor: Any) -> ScreeningOutcome:
    """Screen a payment's counterparty (by name and country); one subject per source object."""
    name = " ".join(str(name or "").split())[:300]
    country = str(country or "").strip().upper()[:2]
    source_type, source_id = str(source_type)[:100], str(source_id)[:64]
    if not name:
        raise ValidationFailed("A counterparty needs a name to be screened.", field="name")
    if not source_type or not source_id:
        raise ValidationFailed("A counterparty needs the object that named it.", field="source_type")
    subject, _ = ScreeningSubject.objects.select_for_update(no_key=True).get_or_create(
        kind=SubjectKind.COUNTERPARTY,
        source_type=source_type,
        source_id=source_id,
        defaults={"name": name, "country": country},
    )
    if (subject.name, subject.country) != (name, country):
        ScreeningSubject.objects.filter(pk=subject.pk).update(name=name, country=country)
    outcome = _screen_subject(subject=subject, query=counterparty_query(name=name, country=country), actor=actor)
    audit_record(
        actor=actor,
        action="compliance.counterparty_screened",
        target=subject,
        details={"source_type": source_type, "source_id": source_id, **outcome.as_details()},
    )
    return outcome


# ---------------------------------------------------------------------------------- rescreening
#
# A rescreen runs in time slices, one Celery task each: the task claims the run (a lease), screens
# chunks of customers after ``last_customer_id`` (phase ``customers``), then chunks of counterparty
# subjects after ``last_subject_id`` (phase ``counterparties``), until
# SCREENING_RESCREEN_SLICE_SECONDS are spent, then releases the run and queues its own
# continuation on commit; a slice that finishes the customers after its time ends there too.
# Every progress update renews the lease and is guarded by the claim token, so a task delivered
# twice never doubles the counts, and a worker that lost its lease stops. A failed run keeps its
# progress and is resumed (the task's retry, or the beat sweep ``rescreen_resume_stalled``).
#
# Lock order, the same in every transaction: the run, then a subject, then its hits, and the audit
# trail's lock (``audit_record``) last. A reviewer's decision locks a hit, then the audit lock; a
# transaction that held the audit lock while locking another subject's hits would deadlock with
# it. So each subject with matches is recorded in its own short transaction, and the subjects
# without matches (only their ``screened_at`` changes, nothing is audited) in one per chunk.

# An unfinished run whose lease lapsed (or that was queued) this long ago is queued again by the
# sweep; younger ones are left to the task message already on its way.
RESCREEN_STALL_GRACE = timedelta(seconds=60)


class RescreenClaimLost(Exception):
    """Another worker took the run over (this worker's lease lapsed): stop without writing more."""


def _lease_end() -> Any:
    # The database's clock for every lease, so the workers' clocks need not agree. A lease lasts
    # the hard task time limit: a live task is killed before a lease it renewed can lapse.
    return Now() + timedelta(seconds=max(60, settings.CELERY_TASK_TIME_LIMIT))


def _run_claim(run: RescreenRun) -> str | None:
    """Take the run if it is unfinished and no live worker holds it: the new claim token, or None."""
    token = secrets.token_hex(16)
    claimed = (
        RescreenRun.objects.filter(pk=run.pk, status__in=UNFINISHED_RUN_STATUSES)
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lte=Now()))
        .update(claim_token=token, claimed_until=_lease_end(), status=RescreenRunStatus.RUNNING, finished_at=None)
    )
    return token if claimed else None


def _run_renew(run_id: int, token: str, **fields: Any) -> None:
    """Renew the lease and write ``fields`` (progress), only while this worker holds the run."""
    if not RescreenRun.objects.filter(pk=run_id, claim_token=token).update(claimed_until=_lease_end(), **fields):
        raise RescreenClaimLost(f"rescreen run #{run_id} was taken over by another worker")


def _run_release(run_id: int, token: str, **fields: Any) -> None:
    """Give the run up (its lease ends now), writing ``fields``, if this worker still holds it."""
    released = RescreenRun.objects.filter(pk=run_id, claim_token=token).update(
        claim_token="", claimed_until=Now(), **fields
    )
    if not released:
        raise RescreenClaimLost(f"rescreen run #{run_id} was taken over by another worker")


def _run_enqueue(run: RescreenRun) -> None:
    """Queue the run's task on commit: it rebuilds the same screener (the version's delta, or the
    full lists) and continues where the run stopped (its phase and that phase's last id)."""
    from . import tasks

    if run.trigger == RescreenTrigger.LIST_VERSION:
        enqueue_on_commit(tasks.rescreen_for_version, run.list_version_id)
    else:
        enqueue_on_commit(tasks.rescreen_all, run.pk)


@dataclass(frozen=True)
class _RescreenPlan:
    """What one slice screens against; rebuilt identically by every slice of a run."""

    screener: Screener | None  # None: nothing to screen against
    entity_count: int
    # (source, key) -> entry for the delta's entities; None: look the matched entries up.
    entries: dict[tuple[str, str], ListEntry] | None
    version_ids: dict[str, int]
    removed: Sequence[ListEntry] = ()
    version: ListVersion | None = None


def _subject_ids(customers: Sequence[Customer]) -> dict[int, int]:
    """Customer id -> screening subject id, creating the subjects of customers never screened."""
    subject_ids = dict(ScreeningSubject.objects.filter(customer__in=customers).values_list("customer_id", "pk"))
    missing = [customer for customer in customers if customer.pk not in subject_ids]
    if missing:
        ScreeningSubject.objects.bulk_create(
            [ScreeningSubject(kind=SubjectKind.CUSTOMER, customer=customer) for customer in missing],
            ignore_conflicts=True,
        )
        subject_ids = dict(ScreeningSubject.objects.filter(customer__in=customers).values_list("customer_id", "pk"))
    return subject_ids


def _rescreen_subject(
    *,
    run_id: int,
    token: str,
    subject_id: int,
    query: ScreeningQuery,
    matches: Sequence[ScreeningMatch],
    plan: _RescreenPlan,
    actor: Any,
    now: datetime,
) -> None:
    """Record one subject's matches in its own transaction: the run, the subject, its hits, then the audit."""
    entries = plan.entries if plan.entries is not None else _entries_for(matches)
    with transaction.atomic():
        _run_renew(run_id, token)
        subject = _locked(ScreeningSubject(pk=subject_id))
        outcome = _record_matches(
            subject=subject,
            digest=query_digest(query),
            matches=matches,
            entries=entries,
            version_ids=plan.version_ids,
            actor=actor,
            now=now,
        )
        if plan.entries is None:
            # Only a screening against the full lists counts as the subject's screening: a delta
            # run leaves a customer whose details changed (and whose hook call was lost) to the sweep.
            ScreeningSubject.objects.filter(pk=subject.pk).update(screened_at=now)
        if outcome.hits_created:
            _run_renew(run_id, token, hits_created=F("hits_created") + outcome.hits_created)


@dataclass(frozen=True)
class _ChunkItem:
    cursor: int  # the customer's id (phase customers) or the subject's id (phase counterparties)
    subject_id: int
    query: ScreeningQuery


def _customer_chunk(after: int, size: int) -> list[_ChunkItem]:
    customers = list(
        Customer.objects.filter(pk__gt=after)
        .order_by("pk")
        .only("pk", "kind", "legal_name", "date_of_birth", "nationality", "country_of_residence")[:size]
    )
    subject_ids = _subject_ids(customers)
    return [_ChunkItem(customer.pk, subject_ids[customer.pk], customer_query(customer)) for customer in customers]


def _counterparty_chunk(after: int, size: int) -> list[_ChunkItem]:
    rows = (
        ScreeningSubject.objects.filter(kind=SubjectKind.COUNTERPARTY, pk__gt=after)
        .order_by("pk")
        .values_list("pk", "name", "country")[:size]
    )
    return [_ChunkItem(pk, pk, counterparty_query(name=name, country=country)) for pk, name, country in rows]


def _search_chunk(screener: Screener, queries: Sequence[ScreeningQuery]) -> list[list[ScreeningMatch]]:
    """``search_many`` over the distinct queries of a chunk (many payments name one counterparty)."""
    distinct = list(dict.fromkeys(queries))
    found = dict(zip(distinct, screener.search_many(distinct), strict=True))
    return [found[query] for query in queries]


def _screen_chunks(
    *, run: RescreenRun, token: str, plan: _RescreenPlan, actor: Any, deadline: float, phase: str
) -> bool:
    """Screen the run's customers (after ``last_customer_id``) or counterparty subjects (after
    ``last_subject_id``) chunk by chunk: True when every one is done, False when the slice's
    ``deadline`` (``time.monotonic()``) passed after a chunk."""
    assert plan.screener is not None  # noqa: S101
    chunk_size = max(1, settings.SCREENING_RESCREEN_CHUNK)
    counterparties = phase == RescreenPhase.COUNTERPARTIES
    fetch = _counterparty_chunk if counterparties else _customer_chunk
    last_id = run.last_subject_id if counterparties else run.last_customer_id
    while True:
        items = fetch(last_id, chunk_size)
        if not items:
            return True
        results = _search_chunk(plan.screener, [item.query for item in items])
        now = timezone.now()
        for item, matches in zip(items, results, strict=True):
            if matches:
                _rescreen_subject(
                    run_id=run.pk,
                    token=token,
                    subject_id=item.subject_id,
                    query=item.query,
                    matches=matches,
                    plan=plan,
                    actor=actor,
                    now=now,
                )
        unmatched = sorted(item.subject_id for item, matches in zip(items, results, strict=True) if not matches)
        last_id = items[-1].cursor
        progress: dict[str, Any] = {"done": F("done") + len(items)}
        if counterparties:
            progress.update(counterparties_done=F("counterparties_done") + len(items), last_subject_id=last_id)
        else:
            progress["last_customer_id"] = last_id
        with transaction.atomic():
            _run_renew(run.pk, token, **progress)
            if unmatched and plan.entries is None:
                # Locked in primary-key order first: two runs updating overlapping subjects wait
                # for each other instead of deadlocking.
                locked = list(
                    ScreeningSubject.objects.select_for_update(no_key=True)
                    .filter(pk__in=unmatched)
                    .order_by("pk")
                    .values_list("pk", flat=True)
                )
                ScreeningSubject.objects.filter(pk__in=locked).update(screened_at=now)
        if len(items) < chunk_size:
            return True
        if time.monotonic() >= deadline:
            return False


def _run_begin(run: RescreenRun, *, token: str, plan: _RescreenPlan, actor: Any) -> None:
    with transaction.atomic():
        if run.started_at is not None:  # a later slice, or a resumed run
            _run_renew(run.pk, token, screener_entities=plan.entity_count)
            return
        customers = counterparties = 0
        if plan.screener is not None:
            customers = Customer.objects.count()
            counterparties = ScreeningSubject.objects.filter(kind=SubjectKind.COUNTERPARTY).count()
        _run_renew(
            run.pk,
            token,
            started_at=timezone.now(),
            total=customers + counterparties,
            counterparties_total=counterparties,
            screener_entities=plan.entity_count,
        )
        details: dict[str, Any] = {"trigger": run.trigger, "screener_entities": plan.entity_count}
        if run.list_version_id is not None:
            details["list_version_id"] = run.list_version_id
        audit_record(actor=actor, action="compliance.rescreen_started", target=run, details=details)


def _run_finish(run: RescreenRun, *, token: str, actor: Any) -> RescreenRun:
    with transaction.atomic():
        _run_release(run.pk, token, status=RescreenRunStatus.SUCCEEDED, finished_at=timezone.now(), error="")
        run.refresh_from_db()
        audit_record(
            actor=actor,
            action="compliance.rescreen_finished",
            target=run,
            details={
                "trigger": run.trigger,
                "list_version_id": run.list_version_id,
                "screener_entities": run.screener_entities,
                "customers": run.customers_done,
                "counterparties": run.counterparties_done,
                "hits_created": run.hits_created,
                "hits_closed": run.hits_closed,
            },
        )
    return run


def rescreen_run_failed(*, run_id: int, error: BaseException, claim_token: str | None = None) -> None:
    """Record a run's failure and give it up; a retry or the sweep resumes it where it stopped.

    ``claim_token``: the failing worker's; nothing is written if another worker holds the run now.
    """
    message = f"{type(error).__name__}: {error}"[:2000]
    runs = RescreenRun.objects.filter(pk=run_id).exclude(status=RescreenRunStatus.SUCCEEDED)
    if claim_token is not None:
        runs = runs.filter(claim_token=claim_token)
    try:
        runs.update(
            status=RescreenRunStatus.FAILED,
            error=message,
            finished_at=timezone.now(),
            claim_token="",
            claimed_until=Now(),
        )
    except DatabaseError:
        # The database is what failed: the lease lapses on its own and the sweep resumes the run.
        logger.exception("could not record the failure of rescreen run #%s", run_id)


def _close_hits_on_removed(
    *, run_id: int, token: str, entries: Sequence[ListEntry], version: ListVersion, actor: Any
) -> None:
    if not entries:
        return
    now = timezone.now()
    closed = 0
    with transaction.atomic():
        _run_renew(run_id, token)
        hits = list(
            Hit.objects.select_for_update()
            # An entry listed again by a later version (this task ran late) keeps its hits.
            .filter(entry__in=entries, entry__removed_in__isnull=False, status__in=UNDECIDED_STATUSES)
            .select_related("entry")
            .order_by("pk")
        )
        # Every hit is locked above, before the first audit event takes the audit lock.
        for hit in hits:
            updated = Hit.objects.filter(pk=hit.pk, status=hit.status).update(
                status=HitStatus.CLOSED_ENTRY_REMOVED,
                decided_at=now,
                decision_reason=f"The entry was removed from the list by version {version.pk}.",
                updated_at=now,
            )
            if updated:
                closed += 1
                audit_record(
                    actor=actor,
                    action="compliance.hit_closed_entry_removed",
                    target=hit,
                    details={
                        "from": hit.status,
                        "entry": f"{hit.entry.source}:{hit.entry.key}",
                        "list_version_id": version.pk,
                    },
                )
        if closed:
            _run_renew(run_id, token, hits_closed=F("hits_closed") + closed)


def _screen_subjects(*, run: RescreenRun, token: str, plan: _RescreenPlan, actor: Any, deadline: float) -> bool:
    """The customers, then the counterparties: True when both are done, False when the slice ends first."""
    if run.phase == RescreenPhase.CUSTOMERS:
        if not _screen_chunks(
            run=run, token=token, plan=plan, actor=actor, deadline=deadline, phase=RescreenPhase.CUSTOMERS
        ):
            return False
        with transaction.atomic():
            _run_renew(run.pk, token, phase=RescreenPhase.COUNTERPARTIES)
        run.phase = RescreenPhase.COUNTERPARTIES
        if time.monotonic() >= deadline:
            return False
    return _screen_chunks(
        run=run, token=token, plan=plan, actor=actor, deadline=deadline, phase=RescreenPhase.COUNTERPARTIES
    )


def _rescreen_slice(run: RescreenRun, *, actor: Any, prepare: Callable[[], _RescreenPlan]) -> RescreenRun:
    """One time slice of a run, by the worker that claims it; queues the next slice if one is needed."""
    if run.status == RescreenRunStatus.SUCCEEDED:
        return run
    token = _run_claim(run)
    if token is None:
        # Finished, or held by a live worker (a redelivered or duplicated task): leave it be.
        logger.info("rescreen run #%s is finished or held by another worker; nothing to do", run.pk)
        run.refresh_from_db()
        return run
    run.refresh_from_db()
    deadline = time.monotonic() + max(0, settings.SCREENING_RESCREEN_SLICE_SECONDS)
    try:
        plan = prepare()
        _run_begin(run, token=token, plan=plan, actor=actor)
        if plan.removed and plan.version is not None:
            _close_hits_on_removed(run_id=run.pk, token=token, entries=plan.removed, version=plan.version, actor=actor)
        if plan.screener is not None and not _screen_subjects(
            run=run, token=token, plan=plan, actor=actor, deadline=deadline
        ):
            with transaction.atomic():
                _run_release(run.pk, token)
                _run_enqueue(run)
            run.refresh_from_db()
            return run
        return _run_finish(run, token=token, actor=actor)
    except RescreenClaimLost:
        logger.warning("rescreen run #%s was taken over by another worker; this one stops", run.pk)
        run.refresh_from_db()
        return run
    except Exception as error:
        rescreen_run_failed(run_id=run.pk, error=error, claim_token=token)
        raise


def rescreen_for_version(*, version_id: int, actor: Any) -> RescreenRun:
    """Screen every customer, then every payment counterparty, against a new version's added and
    changed entities only (its delta).

    Hits on entities the version removed are closed, whoever they are on. Run once per version: a
    repeated call returns the finished run, or continues an unfinished one where it stopped. One
    call is one time slice; it queues the next one itself. ``screened_at`` is left alone (a delta
    is not a full screening).
    """
    version = ListVersion.objects.get(pk=version_id)
    try:
        run, _ = RescreenRun.objects.get_or_create(trigger=RescreenTrigger.LIST_VERSION, list_version=version)
    except IntegrityError:
        run = RescreenRun.objects.get(trigger=RescreenTrigger.LIST_VERSION, list_version=version)

    def prepare() -> _RescreenPlan:
        from .screening import Screener

        changes = list(version_delta(version).select_related("entry"))
        fresh = [change.entry for change in changes if change.kind in (ListChangeKind.ADDED, ListChangeKind.CHANGED)]
        removed = [change.entry for change in changes if change.kind == ListChangeKind.REMOVED]
        version_ids = {source: listed.pk for source, listed in active_versions().items()}
        version_ids[version.source] = version.pk
        return _RescreenPlan(
            screener=Screener.build(ListedEntity.from_json(entry.data) for entry in fresh) if fresh else None,
            entity_count=len(fresh),
            entries={(entry.source, entry.key): entry for entry in fresh},
            version_ids=version_ids,
            removed=removed,
            version=version,
        )

    return _rescreen_slice(run, actor=actor, prepare=prepare)


UNFINISHED_MANUAL_CONSTRAINT = "compliance_rescreen_one_manual_unfinished"


@transaction.atomic
def rescreen_all_request(*, actor: Any, request: HttpRequest | None = None) -> RescreenRun:
    """A compliance officer asks for every customer and counterparty to be screened against the whole lists."""
    if not actor.has_perm(REVIEW_PERMISSION):
        raise NotAllowed("Your role may not start a rescreen.")
    busy = "A full rescreen is already queued, running or being resumed; wait for it to finish."
    if RescreenRun.objects.filter(trigger=RescreenTrigger.MANUAL, status__in=UNFINISHED_RUN_STATUSES).exists():
        raise InvalidTransition(busy)
    try:
        with transaction.atomic():
            run = RescreenRun.objects.create(trigger=RescreenTrigger.MANUAL, requested_by=actor)
    except IntegrityError as error:
        # A request at the same moment created its run first: the constraint lets one through.
        if UNFINISHED_MANUAL_CONSTRAINT in str(error):
            raise InvalidTransition(busy) from None
        raise
    audit_record(actor=actor, action="compliance.rescreen_requested", target=run, details={}, request=request)
    _run_enqueue(run)
    return run


def rescreen_run_full(*, run_id: int, actor: Any) -> RescreenRun:
    """Screen every customer, then every counterparty, against the full lists (the process-wide
    screener); one time slice."""
    run = RescreenRun.objects.get(pk=run_id)

    def prepare() -> _RescreenPlan:
        state = current_state()
        return _RescreenPlan(
            screener=state.screener if state.entity_count else None,
            entity_count=state.entity_count,
            entries=None,
            version_ids=state.version_ids,
        )

    return _rescreen_slice(run, actor=actor, prepare=prepare)


def rescreen_resume_stalled() -> list[int]:
    """Queue again every unfinished run no worker holds (beat): a lost task message, a worker that
    died, a run that failed after its task's retries. The ids of the runs queued."""
    runs = list(
        RescreenRun.objects.filter(status__in=UNFINISHED_RUN_STATUSES)
        .annotate(idle_since=Coalesce("claimed_until", "created_at"))
        .filter(idle_since__lt=Now() - RESCREEN_STALL_GRACE)
        .order_by("pk")
    )
    for run in runs:
        logger.warning("rescreen run #%s (%s) is stalled; queued again", run.pk, run.status)
        _run_enqueue(run)
    return [run.pk for run in runs]


def customers_due_for_screening(*, limit: int) -> list[int]:
    """Customers never screened, or changed since their last screening (a lost hook call)."""
    never = Customer.objects.filter(Q(screening_subject__isnull=True) | Q(screening_subject__screened_at__isnull=True))
    stale = Customer.objects.filter(screening_subject__screened_at__lt=F("updated_at"))
    ids = list(never.order_by("pk").values_list("pk", flat=True)[:limit])
    ids += list(stale.order_by("pk").values_list("pk", flat=True)[: max(0, limit - len(ids))])
    return ids


# A payment's payer is screened by the hook's task within seconds of the commit. The sweep looks
# at payments last changed at least GRACE ago (not racing that task), created within WINDOW (the
# payments index on created_at keeps the look cheap on a large table).
COUNTERPARTY_SWEEP_GRACE = timedelta(minutes=5)
COUNTERPARTY_SWEEP_WINDOW = timedelta(days=7)
# The source_type under which payments name their payer (payments.services, the hook's caller).
PAYMENT_SOURCE = "payments.payment"


def counterparties_due_for_screening(*, limit: int) -> list[dict[str, str]]:
    """Payers of recent payments that no counterparty screening records (a lost hook call), as
    the arguments of ``counterparty_screen``."""
    from django.db.models import CharField, Exists, OuterRef
    from django.db.models.functions import Cast

    from payments.models import Payment

    now = timezone.now()
    screened = ScreeningSubject.objects.filter(
        kind=SubjectKind.COUNTERPARTY,
        source_type=PAYMENT_SOURCE,
        source_id=Cast(OuterRef("pk"), output_field=CharField()),
        screened_at__isnull=False,
    )
    rows = (
        Payment.objects.filter(
            created_at__gte=now - COUNTERPARTY_SWEEP_WINDOW, updated_at__lte=now - COUNTERPARTY_SWEEP_GRACE
        )
        .exclude(payer_name="")
        .filter(~Exists(screened))
        .order_by("pk")
        .values_list("pk", "payer_name", "payer_country")[:limit]
    )
    return [
        {"name": name, "country": country, "source_type": PAYMENT_SOURCE, "source_id": str(pk)}
        for pk, name, country in rows
    ]


# ------------------------------------------------------------------------------------- review


def _reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise ValidationFailed("Give a reason for the decision; it is kept in the audit trail.", field="reason")
    if len(reason) > MAX_REASON:
        raise ValidationFailed(f"The reason is longer than {MAX_REASON} characters.", field="reason")
    return reason


def _require(actor: Any, permission: str, message: str) -> None:
    if not (getattr(actor, "is_active", False) and actor.has_perm(permission)):
        raise NotAllowed(message)


# Stands for "the time of the transition" among the fields a transition sets.
_NOW = object()


def _transition(
    *,
    hit: Hit,
    expected: Sequence[str],
    target: str,
    actor: Any,
    action: str,
    details: dict[str, Any],
    request: HttpRequest | None,
    **fields: Any,
) -> Hit:
    """Conditional UPDATE: applies only if the hit is still in an ``expected`` status."""
    if hit.status not in expected:
        raise InvalidTransition(f"The hit is {hit.get_status_display().lower()}; this decision no longer applies.")
    now = timezone.now()
    values = {name: (now if value is _NOW else value) for name, value in fields.items()}
    # The proposer is part of the guard: a page showing another reviewer's proposal must not
    # confirm one its own user made meanwhile (four-eyes).
    updated = Hit.objects.filter(pk=hit.pk, status=hit.status, decided_by_id=hit.decided_by_id).update(
        status=target, updated_at=now, **values
    )
    if updated != 1:
        raise InvalidTransition("Another reviewer decided this hit meanwhile; reload the page to see their decision.")
    previous = hit.status
    hit.refresh_from_db()
    audit_record(
        actor=actor,
        action=action,
        target=hit,
        details={"from": previous, "to": target, "subject_id": hit.subject_id, **details},
        request=request,
    )
    return hit


def _lock_subject_customer(hit: Hit) -> None:
    """Lock the customer a decision may freeze, before the hit and the audit lock: no transaction
    may wait for a row lock while it holds the audit lock (see the lock order above)."""
    customer_id = ScreeningSubject.objects.filter(pk=hit.subject_id).values_list("customer_id", flat=True).first()
    if customer_id is not None:
        list(Customer.objects.select_for_update(no_key=True).filter(pk=customer_id).values_list("pk", flat=True))


def _freeze_subject_customer(*, hit: Hit, actor: Any, request: HttpRequest | None) -> bool:
    customer_id = hit.subject.customer_id
    if customer_id is None:
        return False
    # Already locked by _lock_subject_customer (FOR NO KEY UPDATE: a stronger lock would be a new wait).
    customer = Customer.objects.select_for_update(no_key=True).get(pk=customer_id)
    if customer.status == Customer.Status.FROZEN:
        return False
    customer_freeze(
        customer=customer, actor=actor, reason=f"Confirmed sanctions match (hit #{hit.pk}).", request=request
    )
    return True


@transaction.atomic
def hit_mark_false_positive(*, hit: Hit, actor: Any, reason: str, request: HttpRequest | None = None) -> Hit:
    _require(actor, REVIEW_PERMISSION, "Your role may not decide hits.")
    reason = _reason(reason)
    return _transition(
        hit=hit,
        expected=[HitStatus.OPEN],
        target=HitStatus.FALSE_POSITIVE,
        actor=actor,
        action="compliance.hit_false_positive",
        details={"reason": reason[:1000]},
        request=request,
        decided_by=actor,
        decided_at=_NOW,
        decision_reason=reason,
    )


@transaction.atomic
def hit_mark_true_match(*, hit: Hit, actor: Any, reason: str, request: HttpRequest | None = None) -> Hit:
    """A reviewer judges the hit a true match: awaiting a second reviewer (four-eyes), or final."""
    _require(actor, REVIEW_PERMISSION, "Your role may not decide hits.")
    reason = _reason(reason)
    four_eyes = settings.SCREENING_FOUR_EYES
    if not four_eyes:
        _lock_subject_customer(hit)
    hit = _transition(
        hit=hit,
        expected=[HitStatus.OPEN],
        target=HitStatus.TRUE_MATCH_PENDING if four_eyes else HitStatus.TRUE_MATCH,
        actor=actor,
        action="compliance.hit_true_match_proposed" if four_eyes else "compliance.hit_true_match",
        details={"reason": reason[:1000], "four_eyes": four_eyes},
        request=request,
        decided_by=actor,
        decided_at=_NOW,
        decision_reason=reason,
    )
    if not four_eyes:
        _freeze_subject_customer(hit=hit, actor=actor, request=request)
    return hit


def _second_review(*, hit: Hit, actor: Any, reason: str, answer: str) -> str:
    """The checks of a second reviewer's answer to a proposed true match; the cleaned reason."""
    _require(actor, CONFIRM_PERMISSION, f"Your role may not {answer} true matches.")
    reason = _reason(reason)
    if hit.decided_by_id == actor.pk:
        raise NotAllowed(f"Another reviewer than the one who proposed the true match must {answer} it.")
    return reason


@transaction.atomic
def hit_confirm_true_match(*, hit: Hit, actor: Any, reason: str, request: HttpRequest | None = None) -> Hit:
    """The second reviewer confirms a proposed true match; the customer is frozen."""
    reason = _second_review(hit=hit, actor=actor, reason=reason, answer="confirm")
    _lock_subject_customer(hit)
    hit = _transition(
        hit=hit,
        expected=[HitStatus.TRUE_MATCH_PENDING],
        target=HitStatus.TRUE_MATCH,
        actor=actor,
        action="compliance.hit_true_match_confirmed",
        details={"reason": reason[:1000], "proposed_by": hit.decided_by_id},
        request=request,
        confirmed_by=actor,
        confirmed_at=_NOW,
        confirmation_reason=reason,
    )
    _freeze_subject_customer(hit=hit, actor=actor, request=request)
    return hit


@transaction.atomic
def hit_reject_true_match(*, hit: Hit, actor: Any, reason: str, request: HttpRequest | None = None) -> Hit:
    """The second reviewer disagrees: the hit is open again, for a new decision."""
    reason = _second_review(hit=hit, actor=actor, reason=reason, answer="reject")
    return _transition(
        hit=hit,
        expected=[HitStatus.TRUE_MATCH_PENDING],
        target=HitStatus.OPEN,
        actor=actor,
        action="compliance.hit_true_match_rejected",
        details={"reason": reason[:1000], "proposed_by": hit.decided_by_id},
        request=request,
        decided_by=None,
        decided_at=None,
        decision_reason="",
    )


@transaction.atomic
def hit_allow_list(
    *,
    hit: Hit,
    actor: Any,
    reason: str,
    expires_at: datetime | None = None,
    reviewed_entry_hash: str | None = None,
    request: HttpRequest | None = None,
) -> AllowListEntry:
    """Close the hit and suppress the pair while the entry is unchanged, until ``expires_at``.

    ``reviewed_entry_hash``: the entry's content hash the reviewer saw (the page sends it); the
    pair is refused if the list changed the entry since, as the reviewer never saw its content.
    """
    _require(actor, REVIEW_PERMISSION, "Your role may not decide hits.")
    reason = _reason(reason)
    now = timezone.now()
    expires_at = expires_at or now + timedelta(days=settings.SCREENING_ALLOW_LIST_DAYS)
    if expires_at <= now:
        raise ValidationFailed("The allow-list expiry must be in the future.", field="expires_at")
    if expires_at > now + timedelta(days=5 * 366):
        raise ValidationFailed("An allow-list entry lasts at most five years.", field="expires_at")
    entry = ListEntry.objects.get(pk=hit.entry_id)
    if reviewed_entry_hash is not None and reviewed_entry_hash != entry.content_hash:
        raise InvalidTransition("The list changed this entry since the page was loaded; reload it and review again.")
    hit = _transition(
        hit=hit,
        expected=[HitStatus.OPEN],
        target=HitStatus.ALLOW_LISTED,
        actor=actor,
        action="compliance.hit_allow_listed",
        details={"reason": reason[:1000], "expires_at": expires_at.isoformat()},
        request=request,
        decided_by=actor,
        decided_at=_NOW,
        decision_reason=reason,
    )
    allow = AllowListEntry.objects.create(
        subject_id=hit.subject_id,
        entry=entry,
        entry_hash=entry.content_hash,
        hit=hit,
        reviewer=actor,
        reason=reason,
        expires_at=expires_at,
    )
    audit_record(
        actor=actor,
        action="compliance.allow_list_added",
        target=allow,
        details={"hit_id": hit.pk, "subject_id": hit.subject_id, "expires_at": expires_at.isoformat()},
        request=request,
    )
    return allow


# ---------------------------------------------------------------------------------- search API


@dataclass(frozen=True)
class SearchResult:
    match: ScreeningMatch
    entity: ListedEntity


def screening_search(
    *,
    name: str,
    actor: Any,
    date_of_birth: date | None = None,
    country: str = "",
    entity_type: str | None = None,
    limit: int = 10,
    request: HttpRequest | None = None,
) -> list[SearchResult]:
    """Search the live lists for one name (the screening API); audited with a digest of the name."""
    from .screening import ScreeningQuery

    query = ScreeningQuery(
        name=name,
        entity_type=entity_type or None,
        date_of_birth=date_of_birth,
        countries=(country,) if country else (),
    )
    from .screening import EmptyNameError

    try:
        matches = current_state().screener.search(query, limit=limit)
    except EmptyNameError:
        raise ValidationFailed("The name has no letters or digits to screen.", field="name") from None
    entries = _entries_for(matches)
    results = [
        SearchResult(match=match, entity=ListedEntity.from_json(entries[(match.source, match.key)].data))
        for match in matches
        if (match.source, match.key) in entries
    ]
    with transaction.atomic():
        audit_record(
            actor=actor,
            action="compliance.screening_searched",
            details={
                # A name is personal data: the trail keeps a digest that proves which name was
                # searched when it is known, without holding the name.
                "name_sha256": hashlib.sha256(name.encode()).hexdigest(),
                "date_of_birth_given": date_of_birth is not None,
                "country": country,
                "type": entity_type or "",
                "limit": limit,
                "results": len(results),
            },
            request=request,
        )
    return results
