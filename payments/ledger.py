"""The double-entry ledger: post an effect once, reverse it, read balances.

Every effect of a gateway event (a capture, a fee, a refund, a dispute withdrawal, a payout) is
one journal entry whose ``idempotency_key`` names the effect, not the delivery. The insert is
``ON CONFLICT DO NOTHING``: a duplicate, a redelivered task or a second event describing the same
effect (``payment_intent.succeeded`` and ``charge.succeeded``) posts nothing the second time and
never raises, even when two transactions race (the second waits for the first and then skips).
Balance and append-only rules are enforced by PostgreSQL (migration 0002), not only here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection
from django.db.models import Sum

from fintech.core.prepared import prepared_cursor

from .models import JournalEntry, LedgerAccount, LedgerAccountKind, Payment, Payout, Posting, WebhookEvent


@dataclass(frozen=True)
class Line:
    """A posting to be made: positive debits, negative credits."""

    kind: LedgerAccountKind
    amount_minor: int


class UnbalancedEntryError(ValueError):
    pass


# First key of the advisory lock under which a gateway's and currency's accounts are created
# (the second is a hash of both).
_ACCOUNTS_LOCK_SPACE = 0x6C656467


def _create_accounts(gateway: str, currency: str, kinds: set[str]) -> None:
    """Create the missing accounts, one transaction at a time per gateway and currency.

    Without the lock, two transactions that each create some of them (a capture's clearing and
    customer funds then its fee's fees, against a dispute's disputes, fees and clearing) wait on
    each other's uncommitted inserts: a deadlock, which fails an event outside a drain. With it
    the second waits for the first to commit, then inserts what is still missing.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(%s, hashtext(%s))", [_ACCOUNTS_LOCK_SPACE, f"{gateway}:{currency}"]
        )
    LedgerAccount.objects.bulk_create(
        [LedgerAccount(kind=kind, gateway=gateway, currency=currency) for kind in sorted(kinds)],
        ignore_conflicts=True,
    )


# The lines of an entry with their accounts, found by (kind, gateway, currency) inside PostgreSQL,
# so no account id is kept in a process (and none can go stale). Postings are inserted all or
# none: none when an account does not exist yet.
_RESOLVED_LINES = """
line AS (
    SELECT * FROM unnest(%(kinds)s::varchar[], %(amounts)s::bigint[]) WITH ORDINALITY AS l(kind, amount_minor, n)
), resolved AS (
    SELECT line.n, line.amount_minor, account.id AS account_id
    FROM line JOIN payments_ledgeraccount account
    ON account.kind = line.kind AND account.gateway = %(gateway)s AND account.currency = %(currency)s
)"""
_ALL_LINES_RESOLVED = "(SELECT count(*) FROM resolved) = cardinality(%(kinds)s::varchar[])"

# The postings of an entry inserted before (after its accounts were created).
_INSERT_POSTINGS = f"""
WITH {_RESOLVED_LINES}
INSERT INTO payments_posting (entry_id, account_id, currency, amount_minor)
SELECT %(entry)s, account_id, %(currency)s, amount_minor FROM resolved
WHERE {_ALL_LINES_RESOLVED}
ORDER BY n
"""  # noqa: S608 (composed of the constants above)

# The entry and its postings in one round trip: the postings take the id the entry's insert
# returns, so a key posted before (no id returned) inserts no posting. The second column says
# how many postings went in: none for a new entry means an account is missing.
_INSERT_ENTRY_AND_POSTINGS = f"""
WITH entry AS (
    INSERT INTO payments_journalentry
        (idempotency_key, description, occurred_at, created_at, payment_id, payout_id, webhook_event_id, reverses_id)
    VALUES (%(key)s, %(description)s, %(occurred_at)s, now(), %(payment)s, %(payout)s, %(webhook_event)s, %(reverses)s)
    ON CONFLICT (idempotency_key) DO NOTHING RETURNING id
), {_RESOLVED_LINES}, posted AS (
    INSERT INTO payments_posting (entry_id, account_id, currency, amount_minor)
    SELECT entry.id, resolved.account_id, %(currency)s, resolved.amount_minor FROM entry, resolved
    WHERE {_ALL_LINES_RESOLVED}
    ORDER BY resolved.n
    RETURNING 1
)
SELECT (SELECT id FROM entry), (SELECT count(*) FROM posted)
"""  # noqa: S608 (composed of the constants above)


def ledger_post(
    *,
    key: str,
    description: str,
    occurred_at: datetime,
    gateway: str,
    currency: str,
    lines: Sequence[Line],
    payment: Payment | None = None,
    payout: Payout | None = None,
    webhook_event: WebhookEvent | None = None,
    reverses: JournalEntry | None = None,
) -> JournalEntry | None:
    """Post ``lines`` once under ``key``; None when the key was posted before. Call inside a transaction.

    One round trip (``_INSERT_ENTRY_AND_POSTINGS``); two more the first time a kind, gateway and
    currency is used, to create the account and post.
    """
    lines = [line for line in lines if line.amount_minor]
    if not lines:
        return None
    if sum(line.amount_minor for line in lines) != 0:
        raise UnbalancedEntryError(f"entry {key} does not balance: {lines}")
    postings: dict[str, Any] = {
        "kinds": [str(line.kind) for line in lines],
        "amounts": [line.amount_minor for line in lines],
        "gateway": gateway,
        "currency": currency,
    }
    with prepared_cursor() as cursor:
        cursor.execute(
            _INSERT_ENTRY_AND_POSTINGS,
            {
                **postings,
                "key": key,
                "description": description[:255],
                "occurred_at": occurred_at,
                "payment": payment.pk if payment else None,
                "payout": payout.pk if payout else None,
                "webhook_event": webhook_event.pk if webhook_event else None,
                "reverses": reverses.pk if reverses else None,
            },
        )
        entry_id, posted = cursor.fetchone()
        if entry_id is None:
            return None
        if posted == 0:
            # The first posting to one of these accounts: create them, then post.
            _create_accounts(gateway, currency, {line.kind for line in lines})
            cursor.execute(_INSERT_POSTINGS, {**postings, "entry": entry_id})
    return JournalEntry(pk=entry_id, idempotency_key=key)


def ledger_reverse(*, key: str, original_key: str, description: str, occurred_at: datetime) -> JournalEntry | None:
    """Post the opposite of the entry ``original_key`` once under ``key``; None if absent or done."""
    original = JournalEntry.objects.filter(idempotency_key=original_key).first()
    if original is None:
        return None
    postings = list(original.postings.select_related("account"))
    return ledger_post(
        key=key,
        description=description,
        occurred_at=occurred_at,
        gateway=postings[0].account.gateway,
        currency=postings[0].currency,
        lines=[Line(LedgerAccountKind(posting.account.kind), -posting.amount_minor) for posting in postings],
        payment=original.payment,
        payout=original.payout,
        reverses=original,
    )


def ledger_entry_exists(key: str) -> bool:
    return JournalEntry.objects.filter(idempotency_key=key).exists()


def ledger_unbalanced_currencies() -> dict[str, int]:
    """Currencies whose postings do not sum to zero over the whole ledger (always empty)."""
    totals = Posting.objects.values("currency").annotate(total=Sum("amount_minor"))
    return {row["currency"]: row["total"] for row in totals if row["total"]}
