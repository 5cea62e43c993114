"""Hit review: decisions with four-eyes, allow-list suppression and its lapse, concurrent
decisions, and the review pages."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from compliance import services
from compliance.models import AllowListEntry, Hit, HitStatus
from fintech.core.audit import SystemActor
from fintech.core.exceptions import InvalidTransition, NotAllowed, ValidationFailed
from fintech.core.models import AuditEvent, Customer
from tests.compliance import test_review_support as support
from tests.compliance.test_review_support import company, load_version, person
from tests.utils import login_with_mfa

pytestmark = pytest.mark.django_db

# Fixtures shared with the other review tests.
fresh_screener = support.fresh_screener
reviewers = support.reviewers
ACTOR = SystemActor("tests")
IVAN = person("100", "Ivan Petrovich Sidorov", dob="1961-03-02", countries=["RU"])


@pytest.fixture
def hit() -> Hit:
    load_version([IVAN, company("200", "Acme Trading LLC")])
    customer = Customer.objects.create(kind="person", legal_name="Ivan Petrovich Sidorov", nationality="RU")
    services.customer_screen(customer=customer, actor=ACTOR)
    return Hit.objects.select_related("subject__customer", "entry").get()


def _screen_again(hit: Hit) -> services.ScreeningOutcome:
    return services.customer_screen(customer=Customer.objects.get(pk=hit.subject.customer_id), actor=ACTOR)


# ------------------------------------------------------------------------------- four-eyes


def test_a_true_match_needs_a_second_reviewer_who_freezes_the_customer(hit, reviewers):
    first, second, _ = reviewers
    services.hit_mark_true_match(hit=hit, actor=first, reason="Same name, date of birth and nationality.")
    hit.refresh_from_db()
    assert (hit.status, hit.decided_by) == (HitStatus.TRUE_MATCH_PENDING, first)
    assert Customer.objects.get(pk=hit.subject.customer_id).status == Customer.Status.ACTIVE

    with pytest.raises(NotAllowed):
        services.hit_confirm_true_match(hit=hit, actor=first, reason="I agree with myself.")
    hit.refresh_from_db()
    assert hit.status == HitStatus.TRUE_MATCH_PENDING

    services.hit_confirm_true_match(hit=hit, actor=second, reason="Checked the passport copy.")
    hit.refresh_from_db()
    assert (hit.status, hit.confirmed_by) == (HitStatus.TRUE_MATCH, second)
    assert Customer.objects.get(pk=hit.subject.customer_id).status == Customer.Status.FROZEN
    actions = list(AuditEvent.objects.order_by("seq").values_list("action", "actor_label"))
    assert ("compliance.hit_true_match_proposed", "officer-a") in actions
    assert ("compliance.hit_true_match_confirmed", "officer-b") in actions
    frozen = AuditEvent.objects.get(action="customer.status_changed")
    assert (frozen.actor_label, frozen.details["to"]) == ("officer-b", "frozen")

    # A true match stays settled: screening again raises nothing new.
    assert _screen_again(hit).suppressed == 1 and Hit.objects.count() == 1


def test_the_second_reviewer_may_send_a_proposed_true_match_back(hit, reviewers):
    first, second, _ = reviewers
    services.hit_mark_true_match(hit=hit, actor=first, reason="Looks like him.")
    services.hit_reject_true_match(hit=hit, actor=second, reason="Different date of birth on file.")
    hit.refresh_from_db()
    assert (hit.status, hit.decided_by, hit.decided_at) == (HitStatus.OPEN, None, None)
    assert Customer.objects.get(pk=hit.subject.customer_id).status == Customer.Status.ACTIVE
    assert AuditEvent.objects.filter(action="compliance.hit_true_match_rejected", actor_label="officer-b").exists()


def test_a_proposer_cannot_confirm_their_own_proposal_through_a_stale_page(hit, reviewers):
    """The page of officer-a showed officer-b's proposal; meanwhile it was sent back and officer-a
    proposed it again. Confirming from the stale page must not pass as the second pair of eyes."""
    from tests.factories import StaffUserFactory

    first, second, _ = reviewers
    third = StaffUserFactory(username="officer-c", roles=["compliance"])
    services.hit_mark_true_match(hit=hit, actor=second, reason="Proposed by officer-b.")
    stale = Hit.objects.get(pk=hit.pk)  # officer-a's page: proposed by officer-b
    services.hit_reject_true_match(hit=Hit.objects.get(pk=hit.pk), actor=third, reason="Not enough evidence.")
    services.hit_mark_true_match(hit=Hit.objects.get(pk=hit.pk), actor=first, reason="Proposed by officer-a.")

    with pytest.raises(InvalidTransition):
        services.hit_confirm_true_match(hit=stale, actor=first, reason="Confirmed by officer-a.")
    hit.refresh_from_db()
    assert (hit.status, hit.decided_by, hit.confirmed_by) == (HitStatus.TRUE_MATCH_PENDING, first, None)
    assert Customer.objects.get(pk=hit.subject.customer_id).status == Customer.Status.ACTIVE
    assert not AuditEvent.objects.filter(action="compliance.hit_true_match_confirmed").exists()


def test_without_four_eyes_one_reviewer_decides_and_freezes(hit, reviewers, settings):
    settings.SCREENING_FOUR_EYES = False
    services.hit_mark_true_match(hit=hit, actor=reviewers[0], reason="Confirmed by documents.")
    hit.refresh_from_db()
    assert hit.status == HitStatus.TRUE_MATCH
    assert Customer.objects.get(pk=hit.subject.customer_id).status == Customer.Status.FROZEN


def test_decisions_need_the_reviewer_permission_and_a_reason(hit, reviewers):
    first, _, ops = reviewers
    with pytest.raises(NotAllowed):
        services.hit_mark_false_positive(hit=hit, actor=ops, reason="Not him.")
    with pytest.raises(ValidationFailed):
        services.hit_mark_false_positive(hit=hit, actor=first, reason="   ")
    hit.refresh_from_db()
    assert hit.status == HitStatus.OPEN
    assert not AuditEvent.objects.filter(action__startswith="compliance.hit_false").exists()


def test_two_reviewers_cannot_both_decide(hit, reviewers):
    first, second, _ = reviewers
    stale = Hit.objects.get(pk=hit.pk)  # the second reviewer's page, loaded before the first decided
    services.hit_mark_false_positive(hit=hit, actor=first, reason="Different person: born 1990.")
    with pytest.raises(InvalidTransition):
        services.hit_mark_true_match(hit=stale, actor=second, reason="Same person.")
    hit.refresh_from_db()
    assert (hit.status, hit.decided_by) == (HitStatus.FALSE_POSITIVE, first)
    assert AuditEvent.objects.filter(action__startswith="compliance.hit_true_match").count() == 0


def test_a_false_positive_stands_until_the_entry_or_the_customer_changes(hit, reviewers):
    services.hit_mark_false_positive(hit=hit, actor=reviewers[0], reason="Different person.")
    assert _screen_again(hit).suppressed == 1 and Hit.objects.count() == 1

    Customer.objects.filter(pk=hit.subject.customer_id).update(country_of_residence="CY")
    assert _screen_again(hit).hits_created == 1  # other details screened: a reviewer looks again
    assert Hit.objects.filter(status=HitStatus.OPEN).count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_screening_racing_a_decision_leaves_the_decided_hit_as_decided(reviewers):
    """A false positive is decided while the customer, whose details changed, is screened again:
    the screening must not rewrite the decided hit with the new details (which would make the
    false positive stand for details no reviewer saw); it raises a new hit for them."""
    import threading
    import time

    from django.db import connection, transaction

    load_version([IVAN, company("200", "Acme Trading LLC")])
    customer = Customer.objects.create(kind="person", legal_name="Ivan Petrovich Sidorov", nationality="RU")
    services.customer_screen(customer=customer, actor=ACTOR)
    hit = Hit.objects.get()
    Customer.objects.filter(pk=customer.pk).update(country_of_residence="CY")
    decided = threading.Event()
    errors: list[BaseException] = []

    def decide() -> None:
        try:
            with transaction.atomic():
                services.hit_mark_false_positive(
                    hit=Hit.objects.get(pk=hit.pk), actor=reviewers[0], reason="Different person."
                )
                decided.set()
                time.sleep(1)  # the screening reads the hit meanwhile
        except BaseException as error:  # reported below
            errors.append(error)
            decided.set()
        finally:
            connection.close()

    thread = threading.Thread(target=decide)
    thread.start()
    assert decided.wait(10)
    outcome = services.customer_screen(customer=Customer.objects.get(pk=customer.pk), actor=ACTOR)
    thread.join()
    assert not errors
    decided_hit = Hit.objects.get(pk=hit.pk)
    assert (decided_hit.status, decided_hit.query_digest) == (HitStatus.FALSE_POSITIVE, hit.query_digest)
    assert outcome.hits_created == 1
    assert Hit.objects.filter(status=HitStatus.OPEN).count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_screening_racing_an_allow_listing_raises_no_hit_for_the_pair(reviewers):
    import threading
    import time

    from django.db import connection, transaction

    load_version([IVAN, company("200", "Acme Trading LLC")])
    customer = Customer.objects.create(kind="person", legal_name="Ivan Petrovich Sidorov", nationality="RU")
    services.customer_screen(customer=customer, actor=ACTOR)
    hit = Hit.objects.get()
    decided = threading.Event()
    errors: list[BaseException] = []

    def allow() -> None:
        try:
            with transaction.atomic():
                services.hit_allow_list(hit=Hit.objects.get(pk=hit.pk), actor=reviewers[0], reason="Namesake.")
                decided.set()
                time.sleep(1)  # the screening reads the allow-list and the hit meanwhile
        except BaseException as error:  # reported below
            errors.append(error)
            decided.set()
        finally:
            connection.close()

    thread = threading.Thread(target=allow)
    thread.start()
    assert decided.wait(10)
    outcome = services.customer_screen(customer=Customer.objects.get(pk=customer.pk), actor=ACTOR)
    thread.join()
    assert not errors
    assert outcome.hits_created == 0 and outcome.suppressed == 1
    assert list(Hit.objects.values_list("status", flat=True)) == [HitStatus.ALLOW_LISTED]


def _wait_until_another_transaction_waits_for_mine(timeout: float = 10) -> None:
    import time

    from django.db import connection

    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_locks WHERE NOT granted AND pg_backend_pid() = ANY(pg_blocking_pids(pid))"
            )
            if cursor.fetchone()[0]:
                return
            time.sleep(0.02)
    raise AssertionError("the rescreen never waited for the hit the reviewer holds")


@pytest.mark.django_db(transaction=True)
def test_a_decision_racing_a_rescreen_chunk_does_not_deadlock(reviewers):
    """A rescreen chunk records a new hit for one customer (an audit event) and then needs the hit
    of another customer, which a reviewer is deciding (the reviewer holds the hit and then needs
    the audit lock): neither may hold the audit lock while waiting for the other's row."""
    import threading

    from django.db import connection, transaction

    from compliance.models import RescreenRun

    load_version([IVAN, person("101", "Olga Nikolaevna Smirnova")])
    olga = Customer.objects.create(kind="person", legal_name="Olga Nikolaevna Smirnova")
    ivan = Customer.objects.create(kind="person", legal_name="Ivan Petrovich Sidorov", nationality="RU")
    services.customer_screen(customer=ivan, actor=ACTOR)
    decided_hit = Hit.objects.get()
    run = RescreenRun.objects.create(trigger="manual")
    holding = threading.Event()
    errors: list[BaseException] = []

    def decide() -> None:
        try:
            with transaction.atomic():
                # The reviewer's decision has locked the hit (widened here: it waits for the chunk).
                hit = Hit.objects.select_for_update(no_key=True).get(pk=decided_hit.pk)
                holding.set()
                _wait_until_another_transaction_waits_for_mine()
                services.hit_mark_false_positive(hit=hit, actor=reviewers[0], reason="Different person.")
        except BaseException as error:  # reported below
            errors.append(error)
        finally:
            holding.set()
            connection.close()

    thread = threading.Thread(target=decide)
    thread.start()
    try:
        assert holding.wait(10)
        services.rescreen_run_full(run_id=run.pk, actor=ACTOR)
    except BaseException as error:  # a deadlock aborts one side or the other
        errors.append(error)
    finally:
        thread.join()
    assert not errors
    run.refresh_from_db()
    assert (run.status, run.done, run.hits_created) == ("succeeded", 2, 1)
    assert Hit.objects.get(pk=decided_hit.pk).status == HitStatus.FALSE_POSITIVE
    assert Hit.objects.get(subject__customer=olga).status == HitStatus.OPEN


def test_the_queue_page_costs_the_same_queries_for_one_hit_or_many(
    client, hit, reviewers, django_assert_max_num_queries
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    login_with_mfa(client, reviewers[0])
    with CaptureQueriesContext(connection) as one:
        assert client.get("/compliance/").status_code == 200
    for _ in range(12):
        other = Customer.objects.create(kind="business", legal_name="Acme Trading LLC")
        services.customer_screen(customer=other, actor=ACTOR)
    services.counterparty_screen(
        name="Acme Trading LLC", country="GB", source_type="payments.payment", source_id="7", actor=ACTOR
    )
    assert Hit.objects.count() > 12
    with django_assert_max_num_queries(len(one.captured_queries)):
        response = client.get("/compliance/", {"status": "any"})
    assert len(response.context["page"].items) == Hit.objects.count()


# ---------------------------------------------------------------------------------- allow-list


def test_an_allow_listed_pair_raises_no_hit_until_the_entry_changes(hit, reviewers):
    allow = services.hit_allow_list(hit=hit, actor=reviewers[0], reason="Known namesake, checked 2026.")
    hit.refresh_from_db()
    assert hit.status == HitStatus.ALLOW_LISTED
    assert allow.expires_at > timezone.now() + timedelta(days=364)
    assert AuditEvent.objects.filter(action="compliance.allow_list_added", target_id=str(allow.pk)).exists()
    Customer.objects.filter(pk=hit.subject.customer_id).update(country_of_residence="CY")
    assert _screen_again(hit).suppressed == 1 and Hit.objects.count() == 1

    load_version([person("100", "Ivan Petrovich Sidorov", dob="1961-03-02", countries=["RU"], aliases=["I. Sidorov"])])
    outcome = _screen_again(hit)
    assert (outcome.suppressed, outcome.hits_created) == (0, 1)
    new = Hit.objects.get(status=HitStatus.OPEN)
    assert new.entry_hash != allow.entry_hash


def test_an_allow_list_entry_lapses_when_it_expires(hit, reviewers):
    allow = services.hit_allow_list(
        hit=hit, actor=reviewers[0], reason="Known namesake.", expires_at=timezone.now() + timedelta(days=30)
    )
    assert _screen_again(hit).suppressed == 1
    past = timezone.now() - timedelta(days=1)
    AllowListEntry.objects.filter(pk=allow.pk).update(created_at=past - timedelta(days=30), expires_at=past)
    assert _screen_again(hit).hits_created == 1


def test_an_allow_list_expiry_must_be_in_the_future(hit, reviewers):
    with pytest.raises(ValidationFailed):
        services.hit_allow_list(hit=hit, actor=reviewers[0], reason="x", expires_at=timezone.now() - timedelta(days=1))
    hit.refresh_from_db()
    assert hit.status == HitStatus.OPEN and not AllowListEntry.objects.exists()


# -------------------------------------------------------------------------------------- pages


@pytest.mark.parametrize("role", ["ops", "admin"])
def test_review_pages_are_for_the_compliance_role_only(client, hit, role):
    from tests.factories import StaffUserFactory

    login_with_mfa(client, StaffUserFactory(username=f"{role}-member", roles=[role]))
    for url in ("/compliance/", f"/compliance/hits/{hit.pk}/", "/compliance/rescreens/"):
        assert client.get(url).status_code == 403
    assert client.post(f"/compliance/hits/{hit.pk}/false-positive/", {"reason": "x"}).status_code == 403
    hit.refresh_from_db()
    assert hit.status == HitStatus.OPEN


def test_the_queue_filters_by_list_score_status_and_age(client, hit, reviewers):
    login_with_mfa(client, reviewers[0])
    page = client.get("/compliance/")
    assert [item.pk for item in page.context["page"].items] == [hit.pk]
    assert b"Ivan Petrovich Sidorov" in page.content
    assert client.get("/compliance/", {"source": "un"}).status_code == 200  # unknown list: a form error
    assert client.get("/compliance/", {"source": "ofac_sdn", "score": "high"}).context["page"].items == [hit]
    assert client.get("/compliance/", {"score": "low"}).context["page"].items == []
    assert client.get("/compliance/", {"status": "false_positive"}).context["page"].items == []
    assert client.get("/compliance/", {"age": "older"}).context["page"].items == []
    Hit.objects.filter(pk=hit.pk).update(created_at=timezone.now() - timedelta(days=40))
    assert client.get("/compliance/", {"age": "older"}).context["page"].items == [Hit.objects.get(pk=hit.pk)]
    bad = client.get("/compliance/", {"status": "nonsense"})
    assert bad.status_code == 200 and bad.context["page"].items == [] and b"not valid" in bad.content


def test_the_hit_page_shows_both_sides_masked_and_the_explanation(client, hit, reviewers):
    import datetime

    login_with_mfa(client, reviewers[0])
    customer = Customer.objects.get(pk=hit.subject.customer_id)
    customer.date_of_birth = datetime.date(1970, 1, 31)
    customer.save()
    response = client.get(f"/compliance/hits/{hit.pk}/")
    html = response.content.decode()
    assert response.status_code == 200
    assert "ofac_sdn:100" in html and "1961-03-02" in html  # the list's side is public data
    assert "••••-••-••" in html and "1970" not in html  # the customer's date of birth is masked
    assert "Similarity" in html and "Contribution" in html
    assert 'name="csrfmiddlewaretoken"' in html and "<script" not in html
    assert client.get("/compliance/hits/999999/").status_code == 404


def test_deciding_through_the_pages_with_four_eyes(client, hit, reviewers):
    first, second, _ = reviewers
    login_with_mfa(client, first)
    response = client.post(f"/compliance/hits/{hit.pk}/true-match/", {"reason": "Same person."})
    assert response.status_code == 302
    assert b"another reviewer" in client.get(response.headers["Location"]).content
    assert client.post(f"/compliance/hits/{hit.pk}/confirm/", {"reason": "Me again."}).status_code == 403
    hit.refresh_from_db()
    assert hit.status == HitStatus.TRUE_MATCH_PENDING

    login_with_mfa(client, second)
    assert client.post(f"/compliance/hits/{hit.pk}/confirm/", {"reason": ""}).status_code == 302  # reason missing
    hit.refresh_from_db()
    assert hit.status == HitStatus.TRUE_MATCH_PENDING
    client.post(f"/compliance/hits/{hit.pk}/confirm/", {"reason": "Checked."})
    hit.refresh_from_db()
    assert hit.status == HitStatus.TRUE_MATCH
    assert Customer.objects.get(pk=hit.subject.customer_id).status == Customer.Status.FROZEN
    # Deciding a decided hit again: a clear 409, nothing changes.
    assert client.post(f"/compliance/hits/{hit.pk}/false-positive/", {"reason": "Oops."}).status_code == 409
    assert client.post(f"/compliance/hits/{hit.pk}/nonsense/", {"reason": "x"}).status_code == 404
    customer_page = client.get(f"/customers/{hit.subject.customer_id}/").content.decode()
    assert "frozen" in customer_page


def test_allow_listing_through_the_page_with_an_expiry(client, hit, reviewers):
    login_with_mfa(client, reviewers[0])
    day = (timezone.now() + timedelta(days=10)).date()
    client.post(f"/compliance/hits/{hit.pk}/allow-list/", {"reason": "Namesake.", "expires_on": day.isoformat()})
    allow = AllowListEntry.objects.get()
    assert allow.expires_at.date() == day
    assert (
        client.post(f"/compliance/hits/{hit.pk}/allow-list/", {"reason": "x", "expires_on": "soon"}).status_code == 302
    )
    assert AllowListEntry.objects.count() == 1


def test_allow_listing_an_entry_the_list_changed_after_the_page_was_loaded_is_refused(client, hit, reviewers):
    login_with_mfa(client, reviewers[0])
    page = client.get(f"/compliance/hits/{hit.pk}/").content.decode()
    seen = hit.entry.content_hash
    assert f'name="entry_hash" value="{seen}"' in page
    load_version([person("100", "Ivan Petrovich Sidorov", dob="1961-03-02", countries=["RU"], aliases=["I. Sidorov"])])

    url = f"/compliance/hits/{hit.pk}/allow-list/"
    assert client.post(url, {"reason": "Namesake.", "entry_hash": seen}).status_code == 409
    hit.refresh_from_db()
    assert hit.status == HitStatus.OPEN and not AllowListEntry.objects.exists()
    assert not AuditEvent.objects.filter(action="compliance.hit_allow_listed").exists()

    current = Hit.objects.select_related("entry").get(pk=hit.pk).entry.content_hash
    assert client.post(url, {"reason": "Namesake.", "entry_hash": current}).status_code == 302
    assert AllowListEntry.objects.get().entry_hash == current


def test_the_rescreen_page_starts_a_full_rescreen(client, hit, reviewers, django_capture_on_commit_callbacks):
    login_with_mfa(client, reviewers[0])
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post("/compliance/rescreens/start/")
    assert response.status_code == 302 and len(callbacks) == 1
    page = client.get("/compliance/rescreens/")
    assert page.context["busy"] and b"queued" in page.content
    assert client.post("/compliance/rescreens/start/").status_code == 409


def test_the_jobs_page_lists_the_section_task_runs(client, reviewers):
    from django_celery_results.models import TaskResult

    TaskResult.objects.create(task_id="c1", task_name="compliance.rescreen_all", status="SUCCESS", result='"x"')
    TaskResult.objects.create(task_id="p1", task_name="payments.reconcile", status="SUCCESS", result='"x"')
    login_with_mfa(client, reviewers[0])
    response = client.get("/compliance/jobs/")
    assert [result.task_id for result in response.context["recent_runs"]] == ["c1"]


def test_a_compliance_officer_freezes_and_unfreezes_on_the_customer_page(client, reviewers):
    from django.db import IntegrityError, transaction

    customer = Customer.objects.create(kind="person", legal_name="Grace Hopper")
    login_with_mfa(client, reviewers[0])
    url = f"/customers/{customer.pk}/status/"
    assert client.post(url, {"value": "frozen", "reason": ""}).status_code == 400
    assert client.post(url, {"value": "gone", "reason": "x"}).status_code == 400
    assert client.post(url, {"value": "frozen", "reason": "Court order."}).status_code == 302
    assert Customer.objects.get(pk=customer.pk).status == Customer.Status.FROZEN
    assert b"Unfreeze the customer" in client.get(f"/customers/{customer.pk}/").content
    assert client.post(url, {"value": "active", "reason": "Order lifted."}).status_code == 302
    assert Customer.objects.get(pk=customer.pk).status == Customer.Status.ACTIVE
    changes = AuditEvent.objects.filter(action="customer.status_changed").order_by("seq")
    assert [(event.details["to"], event.details["reason"]) for event in changes] == [
        ("frozen", "Court order."),
        ("active", "Order lifted."),
    ]
    login_with_mfa(client, reviewers[2])  # ops: may view customers, not change their status
    assert client.post(url, {"value": "frozen", "reason": "x"}).status_code == 403
    with pytest.raises(IntegrityError), transaction.atomic():
        Customer.objects.filter(pk=customer.pk).update(status="suspended")
