"""Screening points: customers screened on create and on screened-field updates, counterparties
through the payments hook, and rescreening by a new list version's delta."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone

from compliance import services
from compliance.lists.signals import list_version_activated
from compliance.models import Hit, HitStatus, ListEntry, ListVersion, RescreenRun, ScreeningSubject
from fintech.core.audit import SystemActor
from fintech.core.customers import customer_create, customer_update
from fintech.core.hooks import hook_call
from fintech.core.models import AuditEvent, Customer
from tests.compliance import test_review_support as support
from tests.compliance.test_review_support import company, load_version, person

pytestmark = pytest.mark.django_db

# Fixtures shared with the other review tests.
eager_celery = support.eager_celery
fresh_screener = support.fresh_screener
reviewers = support.reviewers
ACTOR = SystemActor("tests")


def _screenings(customer: Customer) -> int:
    return AuditEvent.objects.filter(action="compliance.customer_screened", target_id=str(customer.pk)).count()


def test_a_new_customer_is_screened_once_committed(eager_celery, django_capture_on_commit_callbacks):
    load_version(
        [
            person("100", "Ivan Petrovich Sidorov", dob="1961-03-02", countries=["RU"]),
            company("200", "Acme Trading LLC"),
        ]
    )
    with django_capture_on_commit_callbacks(execute=True):
        customer = customer_create(
            actor=ACTOR,
            kind="person",
            legal_name="Ivan Petrovich Sidorov",
            date_of_birth=datetime.date(1961, 3, 2),
            nationality="RU",
        )
    hit = Hit.objects.get()
    assert (hit.subject.customer, hit.entry.key, hit.status) == (customer, "100", HitStatus.OPEN)
    assert hit.score >= 0.9 and hit.matched_name == "Ivan Petrovich Sidorov"
    assert hit.entry_hash == hit.entry.content_hash
    assert hit.explanation["alignment"]  # stored as the matcher explained it
    event = AuditEvent.objects.get(action="compliance.customer_screened")
    assert event.details == {
        "subject_id": hit.subject_id,
        "matches": 1,
        "hits_created": 1,
        "hits_refreshed": 0,
        "suppressed": 0,
    }
    assert AuditEvent.objects.get(action="compliance.hit_created").target_id == str(hit.pk)


def test_only_changes_of_screened_fields_screen_again(eager_celery, django_capture_on_commit_callbacks):
    load_version([person("100", "Ivan Petrovich Sidorov")])
    with django_capture_on_commit_callbacks(execute=True):
        customer = customer_create(actor=ACTOR, kind="person", legal_name="Ada Lovelace")
    assert _screenings(customer) == 1 and not Hit.objects.exists()

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        customer_update(customer=customer, actor=ACTOR, email="ada@example.test", phone="+44 20 0000 0000")
    assert callbacks == [] and _screenings(customer) == 1

    with django_capture_on_commit_callbacks(execute=True):
        customer_update(customer=customer, actor=ACTOR, legal_name="Ivan Petrovich Sidorov")
    assert _screenings(customer) == 2
    assert Hit.objects.get().subject.customer_id == customer.pk

    # Screening again refreshes the open hit; it never duplicates it.
    with django_capture_on_commit_callbacks(execute=True):
        customer_update(customer=customer, actor=ACTOR, nationality="RU")
    assert _screenings(customer) == 3
    assert Hit.objects.count() == 1
    assert AuditEvent.objects.filter(action="compliance.customer_screened").latest("seq").details["hits_refreshed"] == 1


def test_no_hook_configured_means_no_screening(settings, django_capture_on_commit_callbacks):
    settings.CUSTOMER_SCREENING_HOOK = ""
    with django_capture_on_commit_callbacks(execute=True):
        customer = customer_create(actor=ACTOR, kind="person", legal_name="Ada Lovelace")
    assert _screenings(customer) == 0


def test_a_payment_counterparty_is_screened_through_the_hook(eager_celery, django_capture_on_commit_callbacks):
    load_version([company("200", "Acme Trading LLC", countries=["IR"])])
    with django_capture_on_commit_callbacks(execute=True):
        hook_call(
            "COUNTERPARTY_SCREENING_HOOK",
            name="ACME Trading LLC",
            country="IR",
            source_type="payments.payment",
            source_id=42,
        )
    subject = ScreeningSubject.objects.get()
    assert (subject.kind, subject.name, subject.country, subject.source_type, subject.source_id) == (
        "counterparty",
        "ACME Trading LLC",
        "IR",
        "payments.payment",
        "42",
    )
    assert Hit.objects.get().subject == subject
    assert AuditEvent.objects.get(action="compliance.counterparty_screened").details["hits_created"] == 1

    # The same payment again: one subject, one hit.
    services.counterparty_screen(
        name="ACME Trading LLC", country="IR", source_type="payments.payment", source_id=42, actor=ACTOR
    )
    assert (ScreeningSubject.objects.count(), Hit.objects.count()) == (1, 1)


def test_a_counterparty_without_a_name_is_refused():
    from fintech.core.exceptions import ValidationFailed

    with pytest.raises(ValidationFailed):
        services.counterparty_screen(name="  ", country="", source_type="payments.payment", source_id=1, actor=ACTOR)
    assert not ScreeningSubject.objects.exists()


def test_a_name_without_letters_screens_to_nothing():
    load_version([person("100", "Ivan Petrovich Sidorov")])
    customer = Customer.objects.create(kind="person", legal_name="---")
    outcome = services.customer_screen(customer=customer, actor=ACTOR)
    assert outcome.matches == 0 and not Hit.objects.exists()


def test_a_new_version_rescreens_every_customer_against_its_delta_only(
    eager_celery, django_capture_on_commit_callbacks
):
    kept = person("100", "Ivan Petrovich Sidorov")
    dropped = person("101", "Olga Nikolaevna Smirnova")
    unrelated = company("102", "Blue Harbour Shipping Company")
    load_version([kept, dropped, unrelated])
    ivan = Customer.objects.create(kind="person", legal_name="Ivan Petrovich Sidorov")
    olga = Customer.objects.create(kind="person", legal_name="Olga Nikolaevna Smirnova")
    ada = Customer.objects.create(kind="person", legal_name="Augusta Ada Lovelace")
    for customer in (ivan, olga, ada):
        services.customer_screen(customer=customer, actor=ACTOR)
    ivan_hit = Hit.objects.get(subject__customer=ivan)
    olga_hit = Hit.objects.get(subject__customer=olga)
    ivan_screened_at = ivan_hit.last_screened_at

    version = load_version([kept, unrelated, person("103", "Augusta Ada Lovelace")])
    with django_capture_on_commit_callbacks(execute=True):
        list_version_activated.send(sender=ListVersion, version_id=version.pk)

    run = RescreenRun.objects.get()
    assert (run.trigger, run.list_version, run.status) == ("list_version", version, "succeeded")
    # Only the added entity was screened against; the two unchanged ones were not rescored.
    assert run.screener_entities == 1
    assert (run.total, run.done, run.hits_created, run.hits_closed) == (3, 3, 1, 1)
    ada_hit = Hit.objects.get(subject__customer=ada)
    assert (ada_hit.entry.key, ada_hit.status, ada_hit.list_version) == ("103", "open", version)
    olga_hit.refresh_from_db()
    assert olga_hit.status == HitStatus.CLOSED_ENTRY_REMOVED
    ivan_hit.refresh_from_db()
    assert (ivan_hit.status, ivan_hit.last_screened_at) == ("open", ivan_screened_at)
    closed = AuditEvent.objects.get(action="compliance.hit_closed_entry_removed")
    assert (closed.target_id, closed.details["entry"]) == (str(olga_hit.pk), "ofac_sdn:101")
    assert AuditEvent.objects.filter(action="compliance.rescreen_finished").count() == 1

    # The activation announced twice: the delta is rescreened once.
    with django_capture_on_commit_callbacks(execute=True):
        list_version_activated.send(sender=ListVersion, version_id=version.pk)
    assert RescreenRun.objects.count() == 1 and Hit.objects.count() == 3


def test_a_changed_entry_keeps_its_hits_and_the_review_sees_the_change(settings):
    settings.SCREENING_RESCREEN_CHUNK = 1  # three chunks of one customer
    load_version([person("100", "Ivan Petrovich Sidorov")])
    ivan = Customer.objects.create(kind="person", legal_name="Ivan Petrovich Sidorov")
    Customer.objects.create(kind="person", legal_name="Grace Hopper")
    Customer.objects.create(kind="business", legal_name="Northwind Traders")
    services.customer_screen(customer=ivan, actor=ACTOR)
    hit = Hit.objects.get()

    version = load_version([person("100", "Ivan Petrovich Sidorov", dob="1961-03-02", aliases=["Ivan Sidorov"])])
    run = services.rescreen_for_version(version_id=version.pk, actor=ACTOR)
    assert (run.screener_entities, run.total, run.done, run.hits_created) == (1, 3, 3, 0)
    hit.refresh_from_db()
    entry = ListEntry.objects.get(key="100")
    assert hit.status == HitStatus.OPEN and Hit.objects.count() == 1
    assert hit.entry_hash != entry.content_hash  # shown as "changed since the hit was raised"
    assert hit.entry_changed


def test_a_late_rescreen_of_a_removal_leaves_the_hits_of_an_entry_listed_again():
    """Version 2 removed the entry and version 3 listed it again before version 2's rescreen ran
    (a queued or retried task): the entry is listed, its open hit stays open."""
    ivan = person("100", "Ivan Petrovich Sidorov")
    acme = company("200", "Acme Trading LLC")
    load_version([ivan, acme])
    customer = Customer.objects.create(kind="person", legal_name="Ivan Petrovich Sidorov")
    services.customer_screen(customer=customer, actor=ACTOR)
    hit = Hit.objects.get()
    removal = load_version([acme])
    listed_again = load_version([ivan, acme])

    services.rescreen_for_version(version_id=listed_again.pk, actor=ACTOR)
    run = services.rescreen_for_version(version_id=removal.pk, actor=ACTOR)
    hit.refresh_from_db()
    assert hit.status == HitStatus.OPEN and run.hits_closed == 0
    assert not AuditEvent.objects.filter(action="compliance.hit_closed_entry_removed").exists()


def test_a_full_rescreen_is_requested_once_and_screens_everyone(
    reviewers, eager_celery, django_capture_on_commit_callbacks
):
    officer, _, ops = reviewers
    load_version([person("100", "Ivan Petrovich Sidorov")])
    Customer.objects.create(kind="person", legal_name="Ivan Petrovich Sidorov")
    Customer.objects.create(kind="person", legal_name="Grace Hopper")
    with django_capture_on_commit_callbacks(execute=True):
        run = services.rescreen_all_request(actor=officer)
    run.refresh_from_db()
    assert (run.trigger, run.status, run.total, run.done, run.hits_created) == ("manual", "succeeded", 2, 2, 1)
    assert run.requested_by == officer
    assert AuditEvent.objects.filter(action="compliance.rescreen_requested", actor_label="officer-a").count() == 1

    from fintech.core.exceptions import InvalidTransition, NotAllowed

    with pytest.raises(NotAllowed):
        services.rescreen_all_request(actor=ops)
    RescreenRun.objects.filter(pk=run.pk).update(status="running")
    with pytest.raises(InvalidTransition):
        services.rescreen_all_request(actor=officer)
    assert RescreenRun.objects.count() == 1


def test_customers_never_screened_are_found_by_the_sweep():
    load_version([person("100", "Ivan Petrovich Sidorov")])
    screened = Customer.objects.create(kind="person", legal_name="Grace Hopper")
    services.customer_screen(customer=screened, actor=ACTOR)
    missed = Customer.objects.create(kind="person", legal_name="Ivan Petrovich Sidorov")
    assert services.customers_due_for_screening(limit=10) == [missed.pk]


def test_a_delta_rescreen_does_not_count_as_a_customers_screening(eager_celery, django_capture_on_commit_callbacks):
    load_version([person("100", "Ivan Petrovich Sidorov")])
    changed = Customer.objects.create(kind="person", legal_name="Grace Hopper")
    services.customer_screen(customer=changed, actor=ACTOR)
    # Details changed and the hook call was lost: the sweep must still find the customer...
    Customer.objects.filter(pk=changed.pk).update(legal_name="Olga Nikolaevna Smirnova", updated_at=timezone.now())
    never = Customer.objects.create(kind="person", legal_name="Augusta Ada Lovelace")
    version = load_version([person("100", "Ivan Petrovich Sidorov"), person("103", "Augusta Ada Lovelace")])
    with django_capture_on_commit_callbacks(execute=True):
        list_version_activated.send(sender=ListVersion, version_id=version.pk)
    assert RescreenRun.objects.get().status == "succeeded"
    # ...after a delta run, which checked them against one new entry only.
    assert services.customers_due_for_screening(limit=10) == [never.pk, changed.pk]


def test_a_broken_hook_is_reported_and_the_customer_is_still_saved(
    settings, django_capture_on_commit_callbacks, caplog
):
    from django.core.exceptions import ImproperlyConfigured

    settings.CUSTOMER_SCREENING_HOOK = "compliance.hooks.no_such_function"
    with pytest.raises(ImproperlyConfigured):
        hook_call("CUSTOMER_SCREENING_HOOK", customer_id=1, fields=[])
    with django_capture_on_commit_callbacks(execute=True):
        customer = customer_create(actor=ACTOR, kind="person", legal_name="Grace Hopper")
    assert Customer.objects.filter(pk=customer.pk).exists()
    assert "hook CUSTOMER_SCREENING_HOOK" in caplog.text
    # The sweep finds the customer the hook could not send to screening.
    assert services.customers_due_for_screening(limit=10) == [customer.pk]


# --------------------------------------------------------------- time slices, leases, sweeps


def _three_customers_and_a_new_version():
    """Version A lists Ivan (screened, with a hit); version B adds an entity matching the second
    of three customers. Returns version B and the matching customer."""
    ivan = person("100", "Ivan Petrovich Sidorov")
    load_version([ivan])
    first = Customer.objects.create(kind="person", legal_name="Ivan Petrovich Sidorov")
    services.customer_screen(customer=first, actor=ACTOR)
    matching = Customer.objects.create(kind="person", legal_name="Olga Nikolaevna Smirnova")
    Customer.objects.create(kind="business", legal_name="Northwind Traders")
    version = load_version([ivan, person("101", "Olga Nikolaevna Smirnova")])
    return version, matching


def _fail_on_call(monkeypatch, number: int, action=None):
    """Make the matcher's ``search_many`` run ``action`` (default: raise) on its ``number``-th call."""
    from compliance.screening import Screener

    original = Screener.search_many
    calls: list[int] = []

    def search_many(self, queries, **kwargs):
        calls.append(1)
        if len(calls) == number:
            if action is None:
                raise RuntimeError("the worker lost its database")
            action()
        return original(self, queries, **kwargs)

    monkeypatch.setattr(Screener, "search_many", search_many)
    return calls


def test_a_long_rescreen_works_in_time_slices_each_queuing_the_next(
    settings, eager_celery, django_capture_on_commit_callbacks
):
    settings.SCREENING_RESCREEN_CHUNK = 1
    settings.SCREENING_RESCREEN_SLICE_SECONDS = 0  # every chunk spends the slice
    version, matching = _three_customers_and_a_new_version()
    ivan_hit = Hit.objects.get()

    with django_capture_on_commit_callbacks() as callbacks:
        run = services.rescreen_for_version(version_id=version.pk, actor=ACTOR)
    # One chunk done, progress recorded, the lease given up and the continuation queued.
    assert (run.status, run.total, run.done, run.claim_token) == ("running", 3, 1, "")
    assert run.last_customer_id == Customer.objects.earliest("pk").pk
    assert len(callbacks) == 1 and run.awaiting_worker

    with django_capture_on_commit_callbacks(execute=True):
        callbacks[0]()  # the queued task: each slice queues the next until the last customer
    run.refresh_from_db()
    assert (run.status, run.done, run.hits_created, run.screener_entities) == ("succeeded", 3, 1, 1)
    assert Hit.objects.get(subject__customer=matching).entry.key == "101"
    # The continuations screened against the same delta: Ivan's entity was not rescored.
    assert Hit.objects.get(pk=ivan_hit.pk).last_screened_at == ivan_hit.last_screened_at
    assert AuditEvent.objects.filter(action="compliance.rescreen_started").count() == 1
    assert AuditEvent.objects.filter(action="compliance.rescreen_finished").count() == 1


def test_a_failed_rescreen_is_resumed_from_its_last_customer_by_the_sweep(
    settings, monkeypatch, eager_celery, django_capture_on_commit_callbacks
):
    from compliance import tasks

    settings.SCREENING_RESCREEN_CHUNK = 1
    version, matching = _three_customers_and_a_new_version()
    calls = _fail_on_call(monkeypatch, 3)
    with pytest.raises(RuntimeError):
        services.rescreen_for_version(version_id=version.pk, actor=ACTOR)
    run = RescreenRun.objects.get()
    assert (run.status, run.done, run.hits_created, run.claim_token) == ("failed", 2, 1, "")
    assert "RuntimeError: the worker lost its database" in run.error

    # The sweep leaves a run alone for a minute after its lease ended, then queues it again.
    assert tasks.resume_stalled_rescreens() == []
    RescreenRun.objects.filter(pk=run.pk).update(claimed_until=timezone.now() - datetime.timedelta(minutes=2))
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.resume_stalled_rescreens() == [run.pk]
    run.refresh_from_db()
    assert (run.status, run.done, run.hits_created, run.error) == ("succeeded", 3, 1, "")
    assert len(calls) == 4  # resumed at the third customer, not from the start
    assert Hit.objects.filter(subject__customer=matching).count() == 1
    assert tasks.resume_stalled_rescreens() == []


def test_a_run_held_by_a_live_worker_is_left_alone_until_its_lease_lapses():
    version, _ = _three_customers_and_a_new_version()
    run = RescreenRun.objects.create(
        trigger="list_version",
        list_version=version,
        status="running",
        claim_token="another-worker",
        claimed_until=timezone.now() + datetime.timedelta(minutes=10),
    )
    # A redelivered task while the first worker is still on the run: nothing is screened twice.
    run = services.rescreen_for_version(version_id=version.pk, actor=ACTOR)
    assert (run.status, run.done, run.claim_token) == ("running", 0, "another-worker")
    assert not AuditEvent.objects.filter(action="compliance.rescreen_started").exists()
    assert services.rescreen_resume_stalled() == []

    RescreenRun.objects.filter(pk=run.pk).update(claimed_until=timezone.now() - datetime.timedelta(seconds=1))
    run = services.rescreen_for_version(version_id=version.pk, actor=ACTOR)
    assert (run.status, run.done, run.hits_created, run.claim_token) == ("succeeded", 3, 1, "")


def test_a_worker_that_lost_its_lease_stops_without_counting(settings, monkeypatch):
    settings.SCREENING_RESCREEN_CHUNK = 1
    version, matching = _three_customers_and_a_new_version()

    def taken_over() -> None:
        # The lease lapsed and another worker claimed the run while this one searched chunk 2.
        RescreenRun.objects.update(claim_token="another-worker")

    _fail_on_call(monkeypatch, 2, taken_over)
    run = services.rescreen_for_version(version_id=version.pk, actor=ACTOR)
    assert (run.status, run.done, run.hits_created, run.claim_token) == ("running", 1, 0, "another-worker")
    # The second customer matched, but this worker wrote nothing for them: the other one will.
    assert not Hit.objects.filter(subject__customer=matching).exists()
    assert not AuditEvent.objects.filter(action="compliance.rescreen_finished").exists()


def test_the_database_allows_one_unfinished_full_rescreen():
    from django.db import IntegrityError, transaction

    first = RescreenRun.objects.create(trigger="manual")
    for status in ("queued", "running", "failed"):
        RescreenRun.objects.filter(pk=first.pk).update(status=status)
        with pytest.raises(IntegrityError), transaction.atomic():
            RescreenRun.objects.create(trigger="manual")
    RescreenRun.objects.filter(pk=first.pk).update(status="succeeded")
    RescreenRun.objects.create(trigger="manual")
    assert RescreenRun.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_two_rescreen_requests_at_the_same_moment_start_one_run(reviewers, eager_celery):
    import threading
    import time

    from django.db import connection, transaction

    from fintech.core.exceptions import InvalidTransition

    first, second, _ = reviewers
    requested = threading.Event()
    errors: list[BaseException] = []

    def request_first() -> None:
        try:
            with transaction.atomic():
                services.rescreen_all_request(actor=first)
                requested.set()
                time.sleep(1)  # the second request arrives before this one commits
        except BaseException as error:  # reported below
            errors.append(error)
            requested.set()
        finally:
            connection.close()

    thread = threading.Thread(target=request_first)
    thread.start()
    try:
        assert requested.wait(10)
        with pytest.raises(InvalidTransition, match="already queued"):
            services.rescreen_all_request(actor=second)
    finally:
        thread.join()
    assert not errors
    run = RescreenRun.objects.get()
    assert run.requested_by == first
    assert AuditEvent.objects.filter(action="compliance.rescreen_requested").count() == 1


# ----------------------------------------------------------------- counterparties in rescreens


def _counterparty(source_id: int, name: str, country: str = "") -> ScreeningSubject:
    """A payment's counterparty, screened when the payment recorded it (as the hook does)."""
    services.counterparty_screen(
        name=name, country=country, source_type="payments.payment", source_id=source_id, actor=ACTOR
    )
    return ScreeningSubject.objects.get(kind="counterparty", source_id=str(source_id))


def test_a_new_version_rescreens_counterparties_by_its_delta_after_the_customers(
    eager_celery, django_capture_on_commit_callbacks
):
    acme = company("200", "Acme Trading LLC", countries=["IR"])
    dropped = company("201", "Northern Star Logistics")
    load_version([acme, dropped])
    customer = Customer.objects.create(kind="person", legal_name="Grace Hopper")
    services.customer_screen(customer=customer, actor=ACTOR)
    known = _counterparty(1, "ACME Trading LLC", "IR")
    removed = _counterparty(2, "Northern Star Logistics")
    newly_listed = _counterparty(3, "Blue Harbour Shipping Company")
    acme_hit = Hit.objects.get(subject=known)
    removed_hit = Hit.objects.get(subject=removed)
    assert not Hit.objects.filter(subject=newly_listed).exists()
    screened_at = {subject.pk: subject.screened_at for subject in ScreeningSubject.objects.all()}

    version = load_version([acme, company("202", "Blue Harbour Shipping Company")])
    with django_capture_on_commit_callbacks(execute=True):
        list_version_activated.send(sender=ListVersion, version_id=version.pk)

    run = RescreenRun.objects.get()
    assert (run.status, run.phase, run.screener_entities) == ("succeeded", "counterparties", 1)
    assert (run.total, run.done, run.customers_total, run.customers_done) == (4, 4, 1, 1)
    assert (run.counterparties_total, run.counterparties_done, run.last_subject_id) == (3, 3, newly_listed.pk)
    assert (run.hits_created, run.hits_closed) == (1, 1)
    # The counterparty the new entry names has a hit raised by this version.
    new_hit = Hit.objects.get(subject=newly_listed)
    assert (new_hit.entry.key, new_hit.status, new_hit.list_version) == ("202", "open", version)
    created = AuditEvent.objects.get(action="compliance.hit_created", target_id=str(new_hit.pk))
    assert (created.details["subject_id"], created.details["customer_id"]) == (newly_listed.pk, None)
    # The unchanged entry was not rescored for its counterparty.
    refreshed = Hit.objects.get(pk=acme_hit.pk)
    assert (refreshed.status, refreshed.last_screened_at, refreshed.updated_at) == (
        "open",
        acme_hit.last_screened_at,
        acme_hit.updated_at,
    )
    # The removed entry closed the counterparty's hit.
    removed_hit.refresh_from_db()
    assert removed_hit.status == HitStatus.CLOSED_ENTRY_REMOVED
    assert AuditEvent.objects.get(action="compliance.hit_closed_entry_removed").target_id == str(removed_hit.pk)
    # A delta is not a full screening: nobody's screened_at moved.
    assert {subject.pk: subject.screened_at for subject in ScreeningSubject.objects.all()} == screened_at
    finished = AuditEvent.objects.get(action="compliance.rescreen_finished")
    assert (finished.details["customers"], finished.details["counterparties"]) == (1, 3)


def test_a_delta_does_not_rescore_a_counterparty_against_unchanged_entries(monkeypatch):
    acme = company("200", "Acme Trading LLC", countries=["IR"])
    load_version([acme])
    subject = _counterparty(1, "ACME Trading LLC", "IR")
    hit = Hit.objects.get(subject=subject)
    version = load_version([acme, person("100", "Ivan Petrovich Sidorov")])

    from compliance.screening import Screener

    built: list[int] = []
    searched: list[str] = []
    original_build, original_search_many = Screener.build, Screener.search_many

    def build(entities):
        entities = list(entities)
        built.append(len(entities))
        return original_build(entities)

    def search_many(self, queries, **kwargs):
        searched.extend(query.name for query in queries)
        return original_search_many(self, queries, **kwargs)

    monkeypatch.setattr(Screener, "build", staticmethod(build))
    monkeypatch.setattr(Screener, "search_many", search_many)
    run = services.rescreen_for_version(version_id=version.pk, actor=ACTOR)
    # The counterparty was searched, against a screener of the one new entity only.
    assert built == [1] and searched == ["ACME Trading LLC"]
    assert (run.status, run.counterparties_done, run.hits_created) == ("succeeded", 1, 0)
    refreshed = Hit.objects.get(pk=hit.pk)
    assert (refreshed.last_screened_at, refreshed.updated_at) == (hit.last_screened_at, hit.updated_at)
    assert Hit.objects.count() == 1


def test_time_slices_continue_into_and_within_the_counterparty_phase(settings, monkeypatch):
    settings.SCREENING_RESCREEN_CHUNK = 1
    settings.SCREENING_RESCREEN_SLICE_SECONDS = 0  # every chunk spends the slice
    load_version([company("200", "Acme Trading LLC")])
    Customer.objects.create(kind="person", legal_name="Grace Hopper")
    first = _counterparty(1, "Northwind Traders")
    second = _counterparty(2, "Blue Harbour Shipping Company")
    version = load_version([company("200", "Acme Trading LLC"), company("202", "Blue Harbour Shipping Company")])

    steps = []
    for _ in range(6):
        run = services.rescreen_for_version(version_id=version.pk, actor=ACTOR)
        steps.append((run.status, run.phase, run.done, run.counterparties_done, run.last_subject_id))
        if run.status == "succeeded":
            break
        assert run.awaiting_worker  # released, its continuation queued
    assert steps == [
        ("running", "customers", 1, 0, 0),  # the customer's chunk spent the slice
        ("running", "counterparties", 1, 0, 0),  # no customer left: the next slice starts the counterparties
        ("running", "counterparties", 2, 1, first.pk),
        ("running", "counterparties", 3, 2, second.pk),
        ("succeeded", "counterparties", 3, 2, second.pk),
    ]
    assert Hit.objects.get(subject=second).entry.key == "202"

    # A failure in the counterparty phase is resumed there, not from the customers.
    third = _counterparty(3, "Blue Harbour Shipping Company")
    Hit.objects.filter(subject=third).delete()
    settings.SCREENING_RESCREEN_SLICE_SECONDS = 240
    resumed = load_version([company("200", "Acme Trading LLC"), company("203", "Northwind Traders")])
    RescreenRun.objects.create(
        trigger="list_version",
        list_version=resumed,
        status="failed",
        phase="counterparties",
        started_at=timezone.now(),
        total=4,
        done=2,
        counterparties_total=3,
        counterparties_done=1,
        last_customer_id=Customer.objects.get().pk,
        last_subject_id=first.pk,
    )
    calls = _fail_on_call(monkeypatch, 99)
    run = services.rescreen_for_version(version_id=resumed.pk, actor=ACTOR)
    assert (run.status, run.done, run.counterparties_done, run.last_subject_id) == ("succeeded", 4, 3, third.pk)
    assert len(calls) == 2  # the two counterparties after the first, one chunk each; no customer
    # The first counterparty (done before the failure) was not screened again by this run.
    assert not Hit.objects.filter(subject=first, entry__key="203").exists()


def test_a_full_rescreen_covers_counterparties_and_counts_as_their_screening(
    reviewers, eager_celery, django_capture_on_commit_callbacks, client
):
    from tests.utils import login_with_mfa

    officer = reviewers[0]
    load_version([person("100", "Ivan Petrovich Sidorov")])
    Customer.objects.create(kind="person", legal_name="Ivan Petrovich Sidorov")
    # Two payments name the same counterparty, a third another one; none is listed yet.
    counterparties = [
        _counterparty(1, "ACME Trading LLC", "IR"),
        _counterparty(2, "ACME Trading LLC", "IR"),
        _counterparty(3, "Northwind Traders"),
    ]
    before = {subject.pk: subject.screened_at for subject in counterparties}
    assert not Hit.objects.exists()
    # The list now names the counterparty (its delta was never rescreened: the full run finds it).
    load_version([person("100", "Ivan Petrovich Sidorov"), company("200", "Acme Trading LLC", countries=["IR"])])

    with django_capture_on_commit_callbacks(execute=True):
        run = services.rescreen_all_request(actor=officer)
    run.refresh_from_db()
    assert (run.status, run.phase, run.total, run.done) == ("succeeded", "counterparties", 4, 4)
    assert (run.customers_done, run.counterparties_total, run.counterparties_done) == (1, 3, 3)
    assert run.hits_created == 3  # the customer, and both payments naming ACME
    assert sorted(Hit.objects.filter(subject__kind="counterparty").values_list("subject__source_id", flat=True)) == [
        "1",
        "2",
    ]
    for subject in ScreeningSubject.objects.filter(kind="counterparty"):
        earlier = before[subject.pk]
        assert subject.screened_at and earlier and subject.screened_at > earlier  # a full screening, matched or not

    login_with_mfa(client, officer)
    page = client.get("/compliance/rescreens/")
    assert page.status_code == 200
    assert b"1 / 1</td>" in page.content and b"3 / 3</td>" in page.content  # customers, counterparties


def test_payers_missed_by_the_hook_are_found_and_screened_by_the_sweep(eager_celery):
    from compliance.tasks import screen_unscreened_counterparties
    from payments.models import Payment

    load_version([company("200", "Banco Nacional de Cuba", countries=["CU"])])
    long_ago = timezone.now() - services.COUNTERPARTY_SWEEP_GRACE - datetime.timedelta(minutes=1)

    def payment(reference: str, payer: str, **times) -> Payment:
        fields = {"created_at": long_ago, "updated_at": long_ago, **times}
        return Payment.objects.create(
            gateway="stripe", gateway_payment_id=reference, currency="USD", amount_minor=100, payer_name=payer, **fields
        )

    missed = payment("pi_sweep1", "Banco Nacional de Cuba", payer_country="CU")
    screened = payment("pi_sweep2", "Grace Hopper")
    services.counterparty_screen(
        name="Grace Hopper", country="", source_type="payments.payment", source_id=screened.pk, actor=ACTOR
    )
    payment("pi_sweep3", "")  # no payer named
    payment("pi_sweep4", "Ada Lovelace", updated_at=timezone.now())  # the hook's task may still be on its way
    payment("pi_sweep5", "Alan Turing", created_at=timezone.now() - datetime.timedelta(days=8))  # before the window

    assert services.counterparties_due_for_screening(limit=10) == [
        {
            "name": "Banco Nacional de Cuba",
            "country": "CU",
            "source_type": "payments.payment",
            "source_id": str(missed.pk),
        }
    ]
    assert screen_unscreened_counterparties() == 1
    subject = ScreeningSubject.objects.get(kind="counterparty", source_id=str(missed.pk))
    assert subject.screened_at is not None
    assert Hit.objects.get(subject=subject).entry.key == "200"
    assert services.counterparties_due_for_screening(limit=10) == []
