"""The ledger's rules hold in the database, whatever the application does."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from payments.ledger import Line, UnbalancedEntryError, ledger_post, ledger_reverse
from payments.models import JournalEntry, LedgerAccount, Posting

pytestmark = pytest.mark.django_db(transaction=True)

K = LedgerAccount.Kind


def post(key: str, amount: int = 1000, currency: str = "USD"):
    with transaction.atomic():
        return ledger_post(
            key=key,
            description="test",
            occurred_at=timezone.now(),
            gateway="stripe",
            currency=currency,
            lines=[Line(K.GATEWAY_CLEARING, amount), Line(K.CUSTOMER_FUNDS, -amount)],
        )


def test_an_effect_is_posted_once():
    assert post("effect-1") is not None
    assert post("effect-1") is None
    assert JournalEntry.objects.count() == 1 and Posting.objects.count() == 2


def test_python_refuses_an_unbalanced_entry():
    with pytest.raises(UnbalancedEntryError), transaction.atomic():
        ledger_post(
            key="bad",
            description="bad",
            occurred_at=timezone.now(),
            gateway="stripe",
            currency="USD",
            lines=[Line(K.GATEWAY_CLEARING, 100), Line(K.CUSTOMER_FUNDS, -90)],
        )


def test_the_database_refuses_an_unbalanced_entry_at_commit():
    account = LedgerAccount.objects.create(kind=K.FEES, gateway="stripe", currency="USD")
    with pytest.raises(DatabaseError, match="does not balance"), transaction.atomic():
        entry = JournalEntry.objects.create(idempotency_key="raw", description="raw", occurred_at=timezone.now())
        Posting.objects.create(entry=entry, account=account, currency="USD", amount_minor=100)
        Posting.objects.create(entry=entry, account=account, currency="USD", amount_minor=-90)
    assert JournalEntry.objects.count() == 0


def test_the_database_refuses_an_entry_with_one_posting_or_a_wrong_currency():
    account = LedgerAccount.objects.create(kind=K.FEES, gateway="stripe", currency="USD")
    with pytest.raises(DatabaseError, match="at least two"), transaction.atomic():
        entry = JournalEntry.objects.create(idempotency_key="one", description="one", occurred_at=timezone.now())
        Posting.objects.create(entry=entry, account=account, currency="USD", amount_minor=0 + 5)
    with pytest.raises(DatabaseError, match="differs from the currency"), transaction.atomic():
        entry = JournalEntry.objects.create(idempotency_key="cur", description="cur", occurred_at=timezone.now())
        Posting.objects.create(entry=entry, account=account, currency="EUR", amount_minor=5)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE payments_posting SET amount_minor = amount_minor * 2",
        "DELETE FROM payments_posting",
        "UPDATE payments_journalentry SET description = 'changed'",
        "DELETE FROM payments_journalentry",
        "TRUNCATE payments_posting, payments_journalentry",
    ],
)
def test_the_journal_is_append_only(statement):
    post("kept")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(statement)
    assert JournalEntry.objects.get().description == "test"
    assert sorted(Posting.objects.values_list("amount_minor", flat=True)) == [-1000, 1000]


def test_a_correction_is_a_reversing_entry():
    original = post("to-reverse")
    with transaction.atomic():
        reversal = ledger_reverse(
            key="to-reverse:reversed", original_key="to-reverse", description="undo", occurred_at=timezone.now()
        )
    assert reversal is not None
    assert JournalEntry.objects.get(idempotency_key="to-reverse:reversed").reverses_id == original.pk
    totals = {row.account.kind: 0 for row in Posting.objects.select_related("account")}
    for posting in Posting.objects.select_related("account"):
        totals[posting.account.kind] += posting.amount_minor
    assert set(totals.values()) == {0}


def test_transactions_creating_a_currencys_accounts_in_different_orders_do_not_deadlock():
    """The first postings in a gateway and currency create its accounts. A capture then its fee
    (clearing and customer funds, then fees) and a dispute (disputes, fees, clearing), side by
    side, create them in different orders: they take turns instead of deadlocking."""
    capture_posted = threading.Event()
    dispute_pid: list[int] = []
    errors: list[BaseException] = []

    def post_eur(key: str, lines: list[Line]) -> None:
        ledger_post(key=key, description=key, occurred_at=timezone.now(), gateway="stripe", currency="EUR", lines=lines)

    def capture_then_fee() -> None:
        try:
            with transaction.atomic():
                post_eur("capture", [Line(K.GATEWAY_CLEARING, 100), Line(K.CUSTOMER_FUNDS, -100)])
                capture_posted.set()
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:  # until the dispute waits for a lock
                    with connection.cursor() as cursor:
                        cursor.execute("SELECT 1 FROM pg_locks WHERE pid = %s AND NOT granted", dispute_pid or [0])
                        if cursor.fetchone():
                            break
                    time.sleep(0.02)
                post_eur("fee", [Line(K.FEES, 3), Line(K.GATEWAY_CLEARING, -3)])
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    def dispute() -> None:
        try:
            connection.ensure_connection()
            dispute_pid.append(connection.connection.info.backend_pid)
            assert capture_posted.wait(10)
            with transaction.atomic():
                post_eur("dispute", [Line(K.DISPUTES, 50), Line(K.FEES, 10), Line(K.GATEWAY_CLEARING, -60)])
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=dispute), threading.Thread(target=capture_then_fee)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert errors == []
    assert set(JournalEntry.objects.values_list("idempotency_key", flat=True)) == {"capture", "fee", "dispute"}
    assert LedgerAccount.objects.filter(gateway="stripe", currency="EUR").count() == 4
