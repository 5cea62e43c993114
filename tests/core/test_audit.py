"""The audit trail: one hash chain, append-only in the database, verified end to end."""

import threading

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, connections, transaction
from django.test import RequestFactory

from fintech.core.audit import (
    GENESIS_HASH,
    AuditDetailsError,
    SystemActor,
    audit_chain_check,
    audit_record,
    event_hash,
)
from fintech.core.models import AuditEvent, AuditVerification, Customer
from fintech.core.tasks import verify_audit_chain
from tests.factories import StaffUserFactory


def _sql(statement: str, params=()) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


def _without_triggers(statement: str, params=()) -> None:
    """What someone with direct database access could do: bypass the triggers, then tamper."""
    _sql("ALTER TABLE core_auditevent DISABLE TRIGGER USER")
    _sql(statement, params)
    _sql("ALTER TABLE core_auditevent ENABLE TRIGGER USER")


@pytest.mark.django_db
def test_events_record_who_what_which_object_when_and_from_where():
    user = StaffUserFactory(username="olivia")
    customer = Customer.objects.create(kind="person", legal_name="Ada Lovelace")
    request = RequestFactory().post("/", REMOTE_ADDR="203.0.113.7", HTTP_USER_AGENT="Firefox/140")
    event = audit_record(
        actor=user, action="customer.created", target=customer, details={"fields": ["legal_name"]}, request=request
    )
    event.refresh_from_db()
    assert (event.seq, event.prev_hash) == (1, GENESIS_HASH)
    assert (event.actor_type, event.actor_id, event.actor_label) == ("user", str(user.pk), "olivia")
    assert (event.action, event.target_type, event.target_id) == ("customer.created", "core.customer", str(customer.pk))
    assert (event.ip_address, event.user_agent) == ("203.0.113.7", "Firefox/140")
    assert event.details == {"fields": ["legal_name"]}
    assert event.hash == event_hash(event)  # the stored row hashes to what was computed before saving

    second = audit_record(actor=SystemActor("beat"), action="job.ran", target=("payments.payment", 42))
    assert (second.seq, second.prev_hash) == (2, event.hash)
    assert (second.actor_type, second.actor_label, second.target_id) == ("system", "beat", "42")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE core_auditevent SET action = 'nothing.happened'",
        "DELETE FROM core_auditevent",
        "TRUNCATE core_auditevent",
    ],
)
def test_the_database_rejects_update_delete_and_truncate(statement):
    audit_record(actor=None, action="login.failed")
    with pytest.raises(DatabaseError, match="core_auditevent is append-only"), transaction.atomic():
        _sql(statement)
    assert AuditEvent.objects.get().action == "login.failed"


@pytest.mark.django_db
def test_an_event_rolls_back_with_its_transaction():
    with pytest.raises(RuntimeError), transaction.atomic():
        audit_record(actor=None, action="customer.created")
        raise RuntimeError("the service failed")
    assert not AuditEvent.objects.exists()
    assert audit_record(actor=None, action="customer.created").seq == 1


@pytest.mark.django_db
def test_details_must_be_plain_json():
    with pytest.raises(AuditDetailsError):
        audit_record(actor=None, action="x.y", details={"amount": float("nan")})
    with pytest.raises(AuditDetailsError):
        audit_record(actor=None, action="x.y", details={"when": object()})
    assert not AuditEvent.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_produce_one_linear_chain():
    writers, per_writer = 6, 15
    barrier = threading.Barrier(writers)

    def write(index: int) -> None:
        barrier.wait()
        try:
            for n in range(per_writer):
                audit_record(actor=SystemActor(f"writer-{index}"), action="test.concurrent", details={"n": n})
        finally:
            connections.close_all()

    threads = [threading.Thread(target=write, args=(index,)) for index in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seqs = list(AuditEvent.objects.order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, writers * per_writer + 1))
    report = audit_chain_check()
    assert report.ok and report.events_checked == writers * per_writer


@pytest.mark.django_db
def test_verification_names_the_first_altered_entry(capsys):
    for n in range(5):
        audit_record(actor=None, action="test.event", details={"n": n})
    call_command("verify_audit_chain")
    assert "Audit chain intact: 5 entries verified." in capsys.readouterr().out

    _without_triggers("UPDATE core_auditevent SET details = '{\"n\": 99}' WHERE seq = 3")
    with pytest.raises(CommandError, match=r"BROKEN at entry #3: entry #3 \(id \d+\) was altered"):
        call_command("verify_audit_chain")
    latest = AuditVerification.objects.first()
    assert (latest.ok, latest.first_broken_seq, latest.events_checked) == (False, 3, 2)


@pytest.mark.django_db
def test_verification_detects_a_rewritten_hash_and_a_deleted_entry():
    for n in range(4):
        audit_record(actor=None, action="test.event", details={"n": n})
    forged = AuditEvent.objects.get(seq=2)
    forged.details = {"n": 42}
    _without_triggers(
        "UPDATE core_auditevent SET details = %s, hash = %s WHERE seq = 2",
        ['{"n": 42}', event_hash(forged)],
    )
    report = audit_chain_check()
    assert (report.ok, report.first_broken_seq) == (False, 3)
    assert "does not link to entry #2" in report.message

    _without_triggers("DELETE FROM core_auditevent WHERE seq >= 2 AND seq <= 3")
    report = audit_chain_check()
    assert (report.ok, report.first_broken_seq) == (False, 2)
    assert report.message == "entry #2 is missing (next entry is #4)"


@pytest.mark.django_db
def test_the_nightly_task_records_its_result_in_the_trail():
    audit_record(actor=None, action="test.event")
    assert verify_audit_chain.apply().get() == {"ok": True, "events_checked": 1, "checkpoint_seq": 1}
    verification = AuditVerification.objects.get()
    assert (verification.ok, verification.triggered_by) == (True, "beat")
    last = AuditEvent.objects.order_by("-seq").first()
    assert (last.action, last.actor_label, last.target_id) == ("audit.chain_verified", "beat", str(verification.pk))


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("remote", "stored"),
    [("::ffff:203.0.113.7", "203.0.113.7"), ("fe80::1%eth0", "fe80::1"), ("2001:db8:0:0::1", "2001:db8::1")],
)
def test_addresses_are_hashed_as_stored_so_the_chain_verifies(remote, stored):
    audit_record(actor=None, action="auth.login_failed", request=RequestFactory().post("/", REMOTE_ADDR=remote))
    event = AuditEvent.objects.get()
    assert event.ip_address == stored
    assert audit_chain_check().ok


@pytest.mark.django_db
def test_floats_are_refused_in_details():
    with pytest.raises(AuditDetailsError, match="must not contain floats"):
        audit_record(actor=None, action="x.y", details={"amount": {"value": 1e16}})
