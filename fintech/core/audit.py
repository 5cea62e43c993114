"""The tamper-evident audit trail: record events in one hash chain, verify the chain.

Every service that changes state calls ``audit_record`` inside its own transaction, so the event
and the change commit or roll back together. Concurrent writers are serialised by a
transaction-scoped PostgreSQL advisory lock, which makes the chain one line: each entry's
``prev_hash`` is the hash of the entry before it.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import connection, models, transaction
from django.http import HttpRequest
from django.utils import timezone

from .models import AuditEvent, AuditVerification
from .network import client_ip

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
    return ChainReport(ok=True, events_checked=checked, first_broken_seq=None, message=f"{checked} entries intact")


def audit_chain_verify(*, triggered_by: str, on_progress: Callable[[int], None] | None = None) -> AuditVerification:
    """Check the whole chain and record the result (shown on the audit page)."""
    started_at = timezone.now()
    report = audit_chain_check(on_progress=on_progress)
    with transaction.atomic():
        verification = AuditVerification.objects.create(
            started_at=started_at,
            finished_at=timezone.now(),
            ok=report.ok,
            events_checked=report.events_checked,
            first_broken_seq=report.first_broken_seq,
            message=report.message,
            triggered_by=triggered_by[:64],
        )
        audit_record(
            actor=SystemActor(triggered_by),
            action="audit.chain_verified" if report.ok else "audit.chain_broken",
            target=verification,
            details={"events_checked": report.events_checked, "first_broken_seq": report.first_broken_seq},
        )
    return verification
