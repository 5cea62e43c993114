"""Signed checkpoints anchor the audit chain outside the database.

The attacker simulated here holds database superuser access: triggers off, rows rewritten or
deleted, every hash after them recomputed, so the chain alone verifies. The checkpoints, signed
with AUDIT_ANCHOR_KEYS (which the database does not hold), still expose it.
"""

import json
import logging

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction
from django.test import override_settings
from django.utils import timezone

from fintech.core.anchor import AnchorKeyring, checkpoint_message
from fintech.core.audit import audit_chain_check, audit_chain_verify, audit_record, event_hash
from fintech.core.crypto import generate_key_entry
from fintech.core.models import AuditCheckpoint, AuditEvent, AuditVerification
from fintech.core.tasks import verify_audit_chain

pytestmark = pytest.mark.django_db


def _as_superuser(statement: str, params=()) -> None:
    """Triggers do not fire for a session in replica mode, which only a superuser may set."""
    with connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = replica")
        try:
            cursor.execute(statement, params)
        finally:
            cursor.execute("SET session_replication_role = origin")


def _rewrite_entry_and_recompute_chain(seq: int, details: dict) -> None:
    """Change one entry, then recompute the hash of that entry and of every entry after it."""
    events = list(AuditEvent.objects.filter(seq__gte=seq).order_by("seq"))
    prev_hash = AuditEvent.objects.get(seq=seq - 1).hash if seq > 1 else events[0].prev_hash
    events[0].details = details
    for event in events:
        event.prev_hash = prev_hash
        event.hash = event_hash(event)
        prev_hash = event.hash
        _as_superuser(
            "UPDATE core_auditevent SET details = %s::jsonb, prev_hash = %s, hash = %s WHERE seq = %s",
            [json.dumps(event.details), event.prev_hash, event.hash, event.seq],
        )


def _events(count: int) -> None:
    for n in range(count):
        audit_record(actor=None, action="test.event", details={"n": n})


def _signature(keyring_spec: str, *, seq: int, chain_hash: str, created_at) -> tuple[str, str]:
    return AnchorKeyring.parse(keyring_spec).sign(
        checkpoint_message(seq=seq, chain_hash=chain_hash, created_at=created_at)
    )


def test_a_verification_signs_a_checkpoint_for_the_head_and_logs_it(caplog):
    _events(3)
    head = AuditEvent.objects.get(seq=3)
    with caplog.at_level(logging.INFO, logger="fintech.audit"):
        verification = audit_chain_verify(triggered_by="test")
    assert verification.ok
    checkpoint = AuditCheckpoint.objects.get()
    assert (checkpoint.seq, checkpoint.chain_hash, checkpoint.key_id) == (3, head.hash, "anchor1")
    assert checkpoint.verification == verification
    checkpoint.refresh_from_db()  # the signature holds for the stored (round-tripped) values
    expected = _signature(settings.AUDIT_ANCHOR_KEYS, seq=3, chain_hash=head.hash, created_at=checkpoint.created_at)
    assert (checkpoint.key_id, checkpoint.signature) == expected
    logged = [record.getMessage() for record in caplog.records if record.name == "fintech.audit"]
    assert len(logged) == 1
    assert f"head=3:{head.hash}" in logged[0]
    assert f"key_id=anchor1 signature={checkpoint.signature}" in logged[0]
    event = AuditEvent.objects.latest("seq")
    assert event.action == "audit.chain_verified"
    assert event.details["checkpoint"] == {"seq": 3, "hash": head.hash, "key_id": "anchor1"}

    # The next run verifies that checkpoint and signs the new head (which includes the first run's event).
    second = audit_chain_verify(triggered_by="test")
    assert second.ok and "4 entries intact; 1 checkpoint verified" in second.message
    assert list(AuditCheckpoint.objects.order_by("seq").values_list("seq", flat=True)) == [3, 4]


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE core_auditcheckpoint SET chain_hash = repeat('0', 64)",
        "DELETE FROM core_auditcheckpoint",
        "TRUNCATE core_auditcheckpoint",
    ],
)
def test_the_database_rejects_changes_to_checkpoints(statement):
    _events(1)
    audit_chain_verify(triggered_by="test")
    before = AuditCheckpoint.objects.get()
    with (
        pytest.raises(DatabaseError, match="core_auditcheckpoint is append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        # The test's own transaction still has the deferred foreign-key checks of the insert pending.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(statement)
    assert AuditCheckpoint.objects.get().chain_hash == before.chain_hash


def test_a_rewritten_entry_with_recomputed_hashes_is_detected_through_the_checkpoint():
    _events(5)
    call_command("verify_audit_chain")  # checkpoint at #5, then its own event #6
    _rewrite_entry_and_recompute_chain(2, {"n": 42})
    assert AuditEvent.objects.get(seq=2).details == {"n": 42}
    assert audit_chain_check().ok  # the chain alone cannot tell

    with pytest.raises(CommandError, match=r"BROKEN at entry #5: entry #5 no longer has the hash signed in checkpoint"):
        call_command("verify_audit_chain")
    latest = AuditVerification.objects.latest("pk")
    assert (latest.ok, latest.first_broken_seq, latest.events_checked) == (False, 5, 6)
    assert "rewritten between entries #1 and #5" in latest.message
    assert AuditCheckpoint.objects.count() == 1  # a failed run signs nothing
    assert AuditEvent.objects.latest("seq").action == "audit.chain_broken"


def test_entries_deleted_from_the_end_are_detected():
    _events(4)
    audit_chain_verify(triggered_by="test")  # checkpoint at #4, event #5
    _as_superuser("DELETE FROM core_auditevent WHERE seq >= 4")
    assert audit_chain_check().ok  # what is left still links up

    verification = audit_chain_verify(triggered_by="test")
    assert (verification.ok, verification.first_broken_seq) == (False, 4)
    assert "vouches for entry #4, but the trail ends at #3: entries were deleted from the end" in verification.message


def test_a_checkpoint_altered_to_match_a_rewrite_fails_its_signature():
    _events(3)
    audit_chain_verify(triggered_by="test")  # checkpoint at #3
    _rewrite_entry_and_recompute_chain(2, {"n": 7})
    # The attacker also points the checkpoint at the new hash, but cannot sign it.
    _as_superuser("UPDATE core_auditcheckpoint SET chain_hash = %s WHERE seq = 3", [AuditEvent.objects.get(seq=3).hash])
    verification = audit_chain_verify(triggered_by="test")
    assert (verification.ok, verification.first_broken_seq) == (False, 3)
    assert "has an invalid signature under key 'anchor1': it was forged or altered" in verification.message


def test_a_checkpoint_forged_under_a_guessed_key_is_detected():
    _events(2)
    head = AuditEvent.objects.get(seq=2)
    created_at = timezone.now()
    key_id, signature = _signature(generate_key_entry("anchor1"), seq=2, chain_hash=head.hash, created_at=created_at)
    AuditCheckpoint.objects.create(
        seq=2, chain_hash=head.hash, created_at=created_at, key_id=key_id, signature=signature
    )
    verification = audit_chain_verify(triggered_by="test")
    assert not verification.ok
    assert "invalid signature under key 'anchor1'" in verification.message


def test_a_checkpoint_under_an_unknown_key_id_is_reported():
    _events(2)
    head = AuditEvent.objects.get(seq=2)
    created_at = timezone.now()
    key_id, signature = _signature(generate_key_entry("elsewhere"), seq=2, chain_hash=head.hash, created_at=created_at)
    AuditCheckpoint.objects.create(
        seq=2, chain_hash=head.hash, created_at=created_at, key_id=key_id, signature=signature
    )
    with pytest.raises(CommandError, match=r"signed with key 'elsewhere', which is not in AUDIT_ANCHOR_KEYS"):
        call_command("verify_audit_chain")
    assert AuditCheckpoint.objects.count() == 1


def test_without_anchor_keys_nothing_is_signed_and_existing_checkpoints_fail():
    _events(2)
    with override_settings(AUDIT_ANCHOR_KEYS=""):
        verification = audit_chain_verify(triggered_by="test")
    assert verification.ok and "no checkpoint written: AUDIT_ANCHOR_KEYS is not set" in verification.message
    assert not AuditCheckpoint.objects.exists()

    audit_chain_verify(triggered_by="test")  # signs one with the configured key
    with override_settings(AUDIT_ANCHOR_KEYS=""):
        verification = audit_chain_verify(triggered_by="test")
    assert not verification.ok
    assert "which is not in AUDIT_ANCHOR_KEYS: it cannot be verified" in verification.message


def test_key_rotation_old_key_verifies_old_checkpoints_new_key_signs():
    old_keys = settings.AUDIT_ANCHOR_KEYS
    new_entry = generate_key_entry("anchor2")
    _events(2)
    audit_chain_verify(triggered_by="test")
    with override_settings(AUDIT_ANCHOR_KEYS=f"{new_entry},{old_keys}"):
        verification = audit_chain_verify(triggered_by="test")
        assert verification.ok and "1 checkpoint verified" in verification.message
        assert list(AuditCheckpoint.objects.order_by("seq").values_list("key_id", flat=True)) == [
            "anchor1",
            "anchor2",
        ]
        assert audit_chain_verify(triggered_by="test").ok  # both keys' checkpoints verify
    # Dropping the old key too early: its checkpoints are reported, not silently accepted.
    with override_settings(AUDIT_ANCHOR_KEYS=new_entry):
        verification = audit_chain_verify(triggered_by="test")
    assert not verification.ok and "signed with key 'anchor1'" in verification.message


def test_expect_head_checks_a_head_kept_outside_the_database(capsys):
    _events(3)
    call_command("verify_audit_chain")
    output = capsys.readouterr().out
    checkpoint = AuditCheckpoint.objects.get()
    kept = f"{checkpoint.seq}:{checkpoint.chain_hash}"
    assert f"--expect-head: {kept}" in output

    call_command("verify_audit_chain", expect_head=kept)
    assert "expected head #3 matches" in AuditVerification.objects.latest("pk").message

    wrong = f"3:{'ab' * 32}"
    with pytest.raises(CommandError, match=r"BROKEN at entry #3: entry #3 has hash \w+…, not the expected abab"):
        call_command("verify_audit_chain", expect_head=wrong)
    with pytest.raises(CommandError, match=r"the expected head #999 is missing: the trail ends at #\d+"):
        call_command("verify_audit_chain", expect_head=f"999:{checkpoint.chain_hash}")


def test_expect_head_catches_a_rewrite_even_without_checkpoints():
    _events(3)
    kept = f"3:{AuditEvent.objects.get(seq=3).hash}"
    _rewrite_entry_and_recompute_chain(1, {"n": 99})
    with override_settings(AUDIT_ANCHOR_KEYS=""), pytest.raises(CommandError, match="rewritten at or before entry #3"):
        call_command("verify_audit_chain", expect_head=kept)


@pytest.mark.parametrize("value", ["abc", "3", f"0:{'a' * 64}", f"3:{'a' * 63}", f"3:{'g' * 64}"])
def test_a_malformed_expected_head_is_refused_and_changes_nothing(value):
    _events(1)
    with pytest.raises(CommandError, match=r"--expect-head: a head is SEQ:HASH"):
        call_command("verify_audit_chain", expect_head=value)
    assert not AuditVerification.objects.exists()
    assert not AuditCheckpoint.objects.exists()


def test_the_nightly_task_checks_and_signs_checkpoints():
    _events(2)
    assert verify_audit_chain.apply().get() == {"ok": True, "events_checked": 2, "checkpoint_seq": 2}
    _as_superuser("DELETE FROM core_auditevent WHERE seq >= 2")
    assert verify_audit_chain.apply().get() == {"ok": False, "events_checked": 1, "checkpoint_seq": None}
    latest = AuditVerification.objects.latest("pk")
    assert (latest.triggered_by, latest.first_broken_seq) == ("beat", 2)


def test_the_audit_page_shows_the_checkpoint_of_the_last_verification(staff_client):
    _events(2)
    verification = audit_chain_verify(triggered_by="test")
    checkpoint = verification.checkpoint
    page = staff_client.get("/audit/").content.decode()
    assert "intact" in page
    assert f'data-checkpoint="{checkpoint.seq}"' in page
    assert f"signed checkpoint at #{checkpoint.seq}" in page
    assert "key anchor1" in page
    assert "0 checkpoints verified" in page  # the first run had none to check


def test_checkpoints_are_read_only_in_the_admin(client, django_user_model):
    from tests.factories import DEFAULT_PASSWORD
    from tests.utils import login_with_mfa

    _events(1)
    audit_chain_verify(triggered_by="test")
    root = django_user_model.objects.create_superuser("root", "root@example.test", DEFAULT_PASSWORD)
    login_with_mfa(client, root)
    checkpoint = AuditCheckpoint.objects.get()
    assert client.get("/admin/core/auditcheckpoint/").status_code == 200
    assert client.get("/admin/core/auditcheckpoint/add/").status_code == 403
    assert client.get(f"/admin/core/auditcheckpoint/{checkpoint.pk}/delete/").status_code == 403
