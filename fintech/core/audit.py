"""The tamper-evident audit trail: record events in one hash chain, verify the chain.

Every service that changes state calls ``audit_record`` inside its own transaction, so the event
and the change commit or roll back together. Concurrent writers are serialised by a
transaction-scoped PostgreSQL advisory lock, which makes the chain one line: each entry's
``prev_hash`` is the hash of the entry before it.

The chain alone cannot show a rewrite by someone who can bypass the database triggers and
recompute every hash after the change. A successful verification therefore writes a checkpoint
(``AuditCheckpoint``) signed with ``AUDIT_ANCHOR_KEYS``, a key the database does not hold, and logs
it; later verifications check every checkpoint against the trail.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import connection, models, transaction
from django.http import HttpRequest
from django.utils import timezone

from .anchor import SETTING as ANCHOR_SETTING
from .anchor import anchor_keyring, canonical_time, checkpoint_message
from .models import AuditCheckpoint, AuditEvent, AuditVerification
from .network import client_ip

logger = logging.getLogger("fintech.audit")

GENESIS_HASH = "0" * 64
# Any constant: the key of the advisory lock that serialises audit writers.
AUDIT_LOCK_KEY = 0x41554449  # "AUDI"
MAX_USER_AGENT = 512


class AuditDetailsError(ValueError):
    """Audit details must be plain JSON (no NaN, no objects that do not round-trip)."""


@dataclass(frozen=True)
class SystemActor:
    """A component acting on its own (beat, a worker, a command), not a person."""

    name: str


def _canonical(fields: dict[str, Any]) -> bytes:
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def event_hash(event: AuditEvent) -> str:
    """SHA-256 over the canonical encoding of every recorded field, ``prev_hash`` included."""
    occurred_at = event.occurred_at.astimezone(datetime.UTC).isoformat(timespec="microseconds")
    fields = {
        "seq": event.seq,
        "occurred_at": occurred_at,
        "actor_type": event.actor_type,
        "actor_id": event.actor_id,
        "actor_label": event.actor_label,
        "action": event.action,
        "target_type": event.target_type,
        "target_id": event.target_id,
        "ip_address": event.ip_address,
        "user_agent": event.user_agent,
        "details": event.details,
        "prev_hash": event.prev_hash,
    }
    return hashlib.sha256(_canonical(fields)).hexdigest()


def _plain_json(details: dict[str, Any] | None) -> dict[str, Any]:
    """The details as they will read back from jsonb, so the hash computed now verifies later."""
    try:
        encoded = json.dumps(details or {}, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise AuditDetailsError(f"audit details must be plain JSON: {error}") from None
    decoded = json.loads(encoded)
    if _contains_float(decoded):
        # jsonb rewrites some floats (1e16 reads back as an integer, -0.0 as 0): the hash would not verify.
        raise AuditDetailsError("audit details must not contain floats; use integers (minor units) or strings")
    if not isinstance(decoded, dict):
        raise AuditDetailsError("audit details must be a JSON object")
    if "\x00" in encoded or "\\u0000" in encoded:
        raise AuditDetailsError("audit details must not contain NUL characters")
    return decoded


def _contains_float(value: Any) -> bool:
    if isinstance(value, float):
        return True
    if isinstance(value, dict):
        return any(_contains_float(item) for item in value.values())
    if isinstance(value, list):
        return any(_contains_float(item) for item in value)
    return False


def _actor_fields(actor) -> dict[str, str]:
    if isinstance(actor, SystemActor):
        return {"actor_type": AuditEvent.ActorType.SYSTEM, "actor_id": "", "actor_label": actor.name[:150]}
    if actor is None or not getattr(actor, "is_authenticated", False):
        return {"actor_type": AuditEvent.ActorType.ANONYMOUS, "actor_id": "", "actor_label": "anonymous"}
    return {
        "actor_type": AuditEvent.ActorType.USER,
        "actor_id": str(actor.pk),
        "actor_label": actor.get_username()[:150],
    }


def _target_fields(target) -> dict[str, str]:
    if target is None:
        return {"target_type": "", "target_id": ""}
    if isinstance(target, models.Model):
        return {"target_type": target._meta.label_lower, "target_id": str(target.pk)}
    target_type, target_id = target  # ("app_label.model", id) for objects not loaded
    return {"target_type": str(target_type)[:100], "target_id": str(target_id)[:64]}


def audit_record(
    *,
    actor,
    action: str,
    target: models.Model | tuple[str, Any] | None = None,
    details: dict[str, Any] | None = None,
    request: HttpRequest | None = None,
) -> AuditEvent:
    """Append one event to the audit trail, in the caller's transaction.

    ``actor``: a user, a ``SystemActor``, or None/anonymous. ``target``: a model instance or
    ``("app_label.model", pk)``. ``details``: plain JSON, never secrets. ``request``: gives the
    IP address and user agent.
    """
    if not action or len(action) > 100:
        raise ValueError("an audit action is 1 to 100 characters")
    values: dict[str, Any] = {
        **_actor_fields(actor),
        **_target_fields(target),
        "action": action,
        "details": _plain_json(details),
        "ip_address": client_ip(request) if request is not None else None,
        "user_agent": (request.headers.get("User-Agent", "") if request is not None else "")[:MAX_USER_AGENT],
    }
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [AUDIT_LOCK_KEY])
        last = AuditEvent.objects.order_by("-seq").values_list("seq", "hash").first()
        seq, prev_hash = (last[0] + 1, last[1]) if last else (1, GENESIS_HASH)
        # Microsecond precision is what PostgreSQL keeps, so the hash verifies after a round trip.
        event = AuditEvent(seq=seq, occurred_at=timezone.now(), prev_hash=prev_hash, **values)
        event.hash = event_hash(event)
        event.save(force_insert=True)
    return event


# --------------------------------------------------------------------------- verification


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    events_checked: int
    first_broken_seq: int | None
    message: str
    # The last entry checked (0 and the genesis hash for an empty trail).
    head_seq: int = 0
    head_hash: str = GENESIS_HASH


def audit_chain_check(*, batch_size: int = 2000, on_progress: Callable[[int], None] | None = None) -> ChainReport:
    """Recompute the chain from the first entry and stop at the first one that does not match."""
    expected_seq, expected_prev = 1, GENESIS_HASH
    checked = 0
    last_seq = 0
    while True:
        batch = list(AuditEvent.objects.filter(seq__gt=last_seq).order_by("seq")[:batch_size])
        if not batch:
            break
        for event in batch:
            problem = None
            if event.seq != expected_seq:
                problem = f"entry #{expected_seq} is missing (next entry is #{event.seq})"
            elif event.prev_hash != expected_prev:
                problem = f"entry #{event.seq} does not link to entry #{event.seq - 1} (prev_hash differs)"
            elif event_hash(event) != event.hash:
                problem = f"entry #{event.seq} (id {event.pk}) was altered: its content does not match its hash"
            if problem:
                broken = expected_seq if event.seq != expected_seq else event.seq
                return ChainReport(ok=False, events_checked=checked, first_broken_seq=broken, message=problem)
            checked += 1
            expected_seq, expected_prev = event.seq + 1, event.hash
        last_seq = batch[-1].seq
        if on_progress:
            on_progress(len(batch))
    return ChainReport(
        ok=True,
        events_checked=checked,
        first_broken_seq=None,
        message=f"{checked} entries intact",
        head_seq=expected_seq - 1,
        head_hash=expected_prev,
    )


@dataclass(frozen=True)
class CheckpointReport:
    ok: bool
    checkpoints_checked: int
    first_broken_seq: int | None
    message: str


def audit_checkpoints_check(*, batch_size: int = 500) -> CheckpointReport:
    """Check every signed checkpoint against the trail; stop at the first that fails.

    Each checkpoint must carry a valid signature under a key of ``AUDIT_ANCHOR_KEYS`` (an unknown
    key id fails: it cannot be told from a forgery), its entry must still exist (not deleted from
    the end) and still have the signed hash (not rewritten with recomputed hashes).
    """
    keyring = anchor_keyring()
    head_seq = AuditEvent.objects.aggregate(head=models.Max("seq"))["head"] or 0
    checked = 0
    last_good_seq = 0
    last_key: tuple[int, int] = (0, 0)
    while True:
        batch = list(
            AuditCheckpoint.objects.filter(
                models.Q(seq__gt=last_key[0]) | models.Q(seq=last_key[0], pk__gt=last_key[1])
            ).order_by("seq", "pk")[:batch_size]
        )
        if not batch:
            break
        stored = dict(
            AuditEvent.objects.filter(seq__in={checkpoint.seq for checkpoint in batch}).values_list("seq", "hash")
        )
        for checkpoint in batch:
            label = f"checkpoint {checkpoint.pk} (entry #{checkpoint.seq}, signed {_utc(checkpoint.created_at)})"
            message = checkpoint_message(
                seq=checkpoint.seq, chain_hash=checkpoint.chain_hash, created_at=checkpoint.created_at
            )
            signed = (
                keyring.verify(message, key_id=checkpoint.key_id, signature=checkpoint.signature) if keyring else None
            )
            problem, broken = None, checkpoint.seq
            if signed is None:
                problem = (
                    f"{label} is signed with key {checkpoint.key_id!r}, which is not in {ANCHOR_SETTING}: "
                    "it cannot be verified"
                )
            elif not signed:
                problem = f"{label} has an invalid signature under key {checkpoint.key_id!r}: it was forged or altered"
            elif checkpoint.seq > head_seq:
                problem = (
                    f"{label} vouches for entry #{checkpoint.seq}, but the trail ends at #{head_seq}: "
                    "entries were deleted from the end"
                )
                broken = head_seq + 1
            elif stored.get(checkpoint.seq) != checkpoint.chain_hash:
                problem = (
                    f"entry #{checkpoint.seq} no longer has the hash signed in {label}: the trail was rewritten "
                    f"between entries #{last_good_seq + 1} and #{checkpoint.seq} and the hashes recomputed"
                )
            if problem:
                return CheckpointReport(ok=False, checkpoints_checked=checked, first_broken_seq=broken, message=problem)
            checked += 1
            last_good_seq = checkpoint.seq
        last_key = (batch[-1].seq, batch[-1].pk)
    return CheckpointReport(
        ok=True,
        checkpoints_checked=checked,
        first_broken_seq=None,
        message=f"{checked} checkpoint{'' if checked == 1 else 's'} verified",
    )


HEAD_PATTERN = re.compile(r"^\s*#?(\d{1,18}):([0-9a-fA-F]{64})\s*$")


def parse_head(text: str) -> tuple[int, str]:
    """``"SEQ:HASH"`` (as logged with each checkpoint) to ``(seq, hash)``; ValueError if malformed."""
    match = HEAD_PATTERN.match(text)
    if not match or int(match.group(1)) < 1:
        raise ValueError("a head is SEQ:HASH, a positive entry number and a 64-character hex SHA-256")
    return int(match.group(1)), match.group(2).lower()


def audit_head_check(*, seq: int, chain_hash: str) -> str | None:
    """The problem, if entry ``seq`` is missing or does not have ``chain_hash``; None if it matches."""
    stored = AuditEvent.objects.filter(seq=seq).values_list("hash", flat=True).first()
    if stored is None:
        head_seq = AuditEvent.objects.aggregate(head=models.Max("seq"))["head"] or 0
        return f"the expected head #{seq} is missing: the trail ends at #{head_seq} (entries were deleted)"
    if stored != chain_hash:
        return (
            f"entry #{seq} has hash {stored[:16]}…, not the expected {chain_hash[:16]}…: "
            f"the trail was rewritten at or before entry #{seq}"
        )
    return None


def _utc(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).isoformat(timespec="seconds")


def audit_chain_verify(
    *,
    triggered_by: str,
    on_progress: Callable[[int], None] | None = None,
    expected_head: tuple[int, str] | None = None,
) -> AuditVerification:
    """Check the chain, every checkpoint and (if given) an expected head; record the result.

    When everything holds, sign a checkpoint for the head just verified (if ``AUDIT_ANCHOR_KEYS``
    is set) and log it on the ``fintech.audit`` logger, the copy kept outside the database. The
    result is shown on the audit page.
    """
    started_at = timezone.now()
    chain = audit_chain_check(on_progress=on_progress)
    ok, broken_seq, message = chain.ok, chain.first_broken_seq, chain.message
    checkpoints: CheckpointReport | None = None
    if ok:
        checkpoints = audit_checkpoints_check()
        if checkpoints.ok:
            message = f"{chain.message}; {checkpoints.message}"
        else:
            ok, broken_seq, message = False, checkpoints.first_broken_seq, checkpoints.message
    if ok and expected_head is not None:
        problem = audit_head_check(seq=expected_head[0], chain_hash=expected_head[1])
        if problem:
            ok, broken_seq, message = False, expected_head[0], problem
        else:
            message = f"{message}; expected head #{expected_head[0]} matches"
    keyring = anchor_keyring()
    if ok and keyring is None:
        message = f"{message}; no checkpoint written: {ANCHOR_SETTING} is not set"
    with transaction.atomic():
        verification = AuditVerification.objects.create(
            started_at=started_at,
            finished_at=timezone.now(),
            ok=ok,
            events_checked=chain.events_checked,
            first_broken_seq=broken_seq,
            message=message,
            triggered_by=triggered_by[:64],
        )
        checkpoint = None
        if ok and chain.head_seq > 0 and keyring is not None:
            created_at = timezone.now()
            key_id, signature = keyring.sign(
                checkpoint_message(seq=chain.head_seq, chain_hash=chain.head_hash, created_at=created_at)
            )
            checkpoint = AuditCheckpoint.objects.create(
                seq=chain.head_seq,
                chain_hash=chain.head_hash,
                created_at=created_at,
                key_id=key_id,
                signature=signature,
                verification=verification,
            )
        details: dict[str, Any] = {"events_checked": chain.events_checked, "first_broken_seq": broken_seq}
        if checkpoints is not None:
            details["checkpoints_checked"] = checkpoints.checkpoints_checked
        if checkpoint is not None:
            details["checkpoint"] = {"seq": checkpoint.seq, "hash": checkpoint.chain_hash, "key_id": checkpoint.key_id}
        audit_record(
            actor=SystemActor(triggered_by),
            action="audit.chain_verified" if ok else "audit.chain_broken",
            target=verification,
            details=details,
        )
    if checkpoint is not None:
        # head=SEQ:HASH is what `verify_audit_chain --expect-head` takes.
        logger.info(
            "audit checkpoint head=%s:%s created_at=%s key_id=%s signature=%s",
            checkpoint.seq,
            checkpoint.chain_hash,
            canonical_time(checkpoint.created_at),
            checkpoint.key_id,
            checkpoint.signature,
        )
    if not ok:
        logger.error("audit trail verification FAILED at entry #%s: %s", broken_seq, message)
    return verification
