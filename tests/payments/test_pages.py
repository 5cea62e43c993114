"""The payments staff pages: access, filters, search, keyset pagination, replay, escaping, queries."""

from __future__ import annotations

import itertools
from datetime import timedelta
from urllib.parse import urlencode

import pytest
from django.contrib.auth.models import Permission
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from fintech.core.models import AuditEvent, Customer
from payments.ledger import Line, ledger_post
from payments.models import (
    CustomerNotification,
    Dispute,
    DunningPlan,
    LedgerAccount,
    Payment,
    Payout,
    Refund,
    WebhookEvent,
)
from tests.factories import StaffUserFactory
from tests.utils import login_with_mfa

pytestmark = pytest.mark.django_db

K = LedgerAccount.Kind
PAGES = [
    "/payments/",
    "/payments/pay_page/",
    "/payments/webhooks/",
    "/payments/webhooks/{event}/",
    "/payments/disputes/",
    "/payments/ledger/",
    "/payments/ledger/{account}/",
    "/payments/payouts/",
    "/payments/dunning/",
]
_numbers = itertools.count(1)


def make_payment(**fields) -> Payment:
    number = next(_numbers)
    values = {
        "gateway": "stripe",
        "gateway_payment_id": f"pi_{number:06d}",
        "amount_minor": 1000,
        "currency": "USD",
        "status": Payment.Status.SUCCEEDED,
    }
    values.update(fields)
    return Payment.objects.create(**values)


def make_event(**fields) -> WebhookEvent:
    number = next(_numbers)
    values = {
        "provider": "stripe",
        "event_id": f"evt_{number:06d}",
        "event_type": "payment_intent.succeeded",
        "occurred_at": timezone.now(),
        "payload": {"id": f"evt_{number:06d}"},
        "raw_body": "{}",
        "status": WebhookEvent.Status.PROCESSED,
    }
    values.update(fields)
    return WebhookEvent.objects.create(**values)


def post_capture(payment: Payment, key: str) -> None:
    with transaction.atomic():
        ledger_post(
            key=key,
            description="capture",
            occurred_at=timezone.now(),
            gateway=payment.gateway,
            currency=payment.currency,
            lines=[Line(K.GATEWAY_CLEARING, payment.amount_minor), Line(K.CUSTOMER_FUNDS, -payment.amount_minor)],
            payment=payment,
        )


@pytest.fixture
def ops_client(client):
    login_with_mfa(client, StaffUserFactory(username="ops-member", roles=["ops"]))
    return client


@pytest.fixture
def page_objects():
    payment = make_payment(public_id="pay_page")
    event = make_event(payment=payment)
    post_capture(payment, "page:capture")
    account = LedgerAccount.objects.get(kind=K.GATEWAY_CLEARING, gateway="stripe", currency="USD")
    return {"event": event.pk, "account": account.pk}


def urls(objects) -> list[str]:
    return [url.format(**objects) for url in PAGES]


# ------------------------------------------------------------------------------------------ access


def test_ops_open_every_page(ops_client, page_objects):
    assert {url: ops_client.get(url).status_code for url in urls(page_objects)} == dict.fromkeys(
        urls(page_objects), 200
    )


def test_compliance_staff_are_refused_every_page(client, page_objects):
    login_with_mfa(client, StaffUserFactory(username="compliance-member", roles=["compliance"]))
    assert {url: client.get(url).status_code for url in urls(page_objects)} == dict.fromkeys(urls(page_objects), 403)


def test_visitors_are_sent_to_sign_in(client, page_objects):
    for url in urls(page_objects):
        response = client.get(url)
        assert response.status_code == 302
        assert response.headers["Location"].startswith("/accounts/login/?next=")


def test_unknown_objects_are_404(ops_client):
    for url in ("/payments/pay_nothing/", "/payments/webhooks/999999/", "/payments/ledger/999999/"):
        assert ops_client.get(url).status_code == 404


# ------------------------------------------------------------------------------- filters and search


def listed(client, **params) -> list[str]:
    response = client.get("/payments/", params)
    assert response.status_code == 200
    assert not response.context["form"].errors, response.context["form"].errors
    return [payment.public_id for payment in response.context["page"].items]


@pytest.fixture
def catalogue():
    now = timezone.now()
    customer = Customer.objects.create(kind="person", legal_name="Grace Hopper", email="Grace@Example.test")
    return {
        "usd_small": make_payment(amount_minor=500, created_at=now - timedelta(days=1), card_last4="4242"),
        "usd_big": make_payment(
            amount_minor=250_000, email="payer@example.test", created_at=now - timedelta(days=10), customer=customer
        ),
        "eur_failed": make_payment(
            currency="EUR",
            status=Payment.Status.FAILED,
            failure_code="card_declined",
            created_at=now - timedelta(days=3),
        ),
        "jpy": make_payment(currency="JPY", amount_minor=1500, created_at=now - timedelta(days=40)),
        "braintree": make_payment(
            gateway="braintree", gateway_payment_id="bt_txn_1", created_at=now - timedelta(days=5), card_last4="1111"
        ),
        "charge": make_payment(gateway_charge_id="ch_abc", created_at=now - timedelta(days=2)),
    }


def ids(catalogue, *names) -> set[str]:
    return {catalogue[name].public_id for name in names}


def test_filters_return_the_right_rows(ops_client, catalogue):
    everything = set(listed(ops_client))
    assert everything == ids(catalogue, *catalogue)
    assert set(listed(ops_client, gateway="braintree")) == ids(catalogue, "braintree")
    assert set(listed(ops_client, status="failed")) == ids(catalogue, "eur_failed")
    assert set(listed(ops_client, currency="JPY")) == ids(catalogue, "jpy")
    assert set(listed(ops_client, currency="jpy")) == ids(catalogue, "jpy")
    week_ago = (timezone.now() - timedelta(days=7)).date().isoformat()
    recent = set(listed(ops_client, created_from=week_ago))
    assert recent == ids(catalogue, "usd_small", "eur_failed", "braintree", "charge")
    day = (timezone.now() - timedelta(days=10)).date().isoformat()
    assert set(listed(ops_client, created_from=day, created_to=day)) == ids(catalogue, "usd_big")
    # Amounts in the currency's units: 5.00 USD to 2,500.00 USD; JPY has no decimals.
    assert set(listed(ops_client, currency="USD", amount_min="5", amount_max="5.00")) == ids(catalogue, "usd_small")
    assert set(listed(ops_client, currency="USD", amount_min="100.50")) == ids(catalogue, "usd_big")
    assert set(listed(ops_client, currency="JPY", amount_min="1500", amount_max="1500")) == ids(catalogue, "jpy")
    assert listed(ops_client, currency="JPY", amount_min="1501") == []


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("pi_placeholder", "usd_small"),  # the gateway payment id, filled in by the test
        ("bt_txn_1", "braintree"),
        ("ch_abc", "charge"),
        ("4242", "usd_small"),
        ("PAYER@example.test", "usd_big"),  # payer email, matched lower-cased
        ("grace@example.TEST", "usd_big"),  # the customer's email
        ("customer-id", "usd_big"),  # the customer's id, filled in by the test
        ("public-id", "eur_failed"),  # our public id, filled in by the test
    ],
)
def test_search_matches_exact_identifiers(ops_client, catalogue, query, expected):
    query = {
        "pi_placeholder": catalogue["usd_small"].gateway_payment_id,
        "customer-id": str(catalogue["usd_big"].customer_id),
        "public-id": catalogue["eur_failed"].public_id,
    }.get(query, query)
    assert set(listed(ops_client, q=query)) == ids(catalogue, expected)


def test_search_is_exact_not_partial(ops_client, catalogue):
    assert listed(ops_client, q="pi_") == []
    assert listed(ops_client, q="424") == []
    assert listed(ops_client, q="payer@example") == []
    # Search and filters combine.
    assert listed(ops_client, q="4242", gateway="braintree") == []


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"amount_min": "abc", "currency": "USD"}, "amount_min", "Enter an amount"),
        ({"amount_min": "1e9999999", "currency": "USD"}, "amount_min", "Enter an amount"),
        ({"amount_max": "10.001", "currency": "USD"}, "amount_max", "more than 2 decimals"),
        ({"amount_min": "1.5", "currency": "JPY"}, "amount_min", "more than 0 decimals"),
        ({"amount_min": "10"}, "amount_min", "Choose a currency"),
        ({"amount_min": "999999999999999999", "currency": "USD"}, "amount_min", "too large"),
        ({"amount_min": "20", "amount_max": "10", "currency": "USD"}, "amount_max", "below the minimum"),
        ({"created_from": "2026-13-45"}, "created_from", "valid date"),
        ({"created_from": "2026-02-02", "created_to": "2026-02-01"}, "created_to", "before the start"),
        ({"created_to": "9999-12-31"}, None, None),  # the last representable day: no overflow
        ({"status": "nonsense"}, "status", "valid choice"),
        ({"currency": "XXX"}, "currency", "unknown currency"),
    ],
)
def test_bad_filter_input_is_a_form_error_not_a_500(ops_client, catalogue, params, field, message):
    response = ops_client.get("/payments/", params)
    assert response.status_code == 200
    errors = response.context["form"].errors
    if field is None:
        assert not errors
        return
    assert message in " ".join(errors[field])
    assert response.context["page"].items == []
    assert message.encode() in response.content


# ----------------------------------------------------------------------------- keyset pagination


def walk(client, url: str, params: dict, direction: str = "next_cursor", start: str = "") -> list[list[int]]:
    pages, cursor = [], start
    for _ in range(100):
        response = client.get(url, {**params, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200
        page = response.context["page"]
        pages.append([item.pk for item in page.items])
        cursor = getattr(page, direction)
        if not cursor:
            return pages
    raise AssertionError("pagination did not end")


def test_keyset_pagination_walks_every_row_once_forward_and_back(ops_client):
    now = timezone.now()
    # Ties on created_at (same instant for groups of seven) are broken by id.
    payments = [make_payment(created_at=now - timedelta(seconds=n // 7)) for n in range(123)]
    expected = [p.pk for p in sorted(payments, key=lambda p: (p.created_at, p.pk), reverse=True)]

    forward = walk(ops_client, "/payments/", {})
    assert [len(page) for page in forward] == [50, 50, 23]
    assert list(itertools.chain(*forward)) == expected

    last_page = ops_client.get("/payments/", {"cursor": _cursor_to_page(ops_client, 3)}).context["page"]
    backward = walk(ops_client, "/payments/", {}, "previous_cursor", start=last_page.previous_cursor)
    assert backward == [forward[1], forward[0]]
    assert not last_page.next_cursor


def _cursor_to_page(client, number: int) -> str:
    cursor = ""
    for _ in range(number - 1):
        cursor = client.get("/payments/", {"cursor": cursor} if cursor else {}).context["page"].next_cursor
    return cursor


def test_pagination_keeps_the_filters_in_its_links(ops_client):
    for _ in range(55):
        make_payment(status=Payment.Status.FAILED)
    make_payment(status=Payment.Status.SUCCEEDED)
    pages = walk(ops_client, "/payments/", {"status": "failed"})
    assert [len(page) for page in pages] == [50, 5]
    html = ops_client.get("/payments/", {"status": "failed"}).content.decode()
    assert "?status=failed&amp;cursor=" in html


@pytest.mark.parametrize(
    "cursor", ["garbage", "e30", "eyJkIjoibmV4dCIsInMiOjAsImsiOlsibm90IGEgZGF0ZSIsMV19", "x" * 500, "%00"]
)
def test_a_bad_cursor_shows_the_first_page(ops_client, cursor):
    first = make_payment()
    response = ops_client.get("/payments/", {"cursor": cursor})
    assert response.status_code == 200
    assert [p.pk for p in response.context["page"].items] == [first.pk]


# -------------------------------------------------------------------------------- payment detail


@pytest.fixture
def full_payment():
    customer = Customer.objects.create(kind="person", legal_name="Ada Lovelace", email="ada@example.test")
    payment = make_payment(
        public_id="pay_full",
        amount_minor=123456,
        amount_captured_minor=123456,
        amount_refunded_minor=2000,
        fee_minor=3610,
        status=Payment.Status.FAILED,
        failure_code="insufficient_funds",
        failure_message="Your card has insufficient funds.",
        card_brand="visa",
        card_last4="4242",
        customer=customer,
    )
    make_event(payment=payment, event_type="payment_intent.payment_failed", status=WebhookEvent.Status.FAILED)
    make_event(payment=payment, event_type="charge.refunded")
    post_capture(payment, "full:capture")
    Refund.objects.create(payment=payment, amount_minor=2000, currency="USD", status=Refund.Status.SUCCEEDED)
    Dispute.objects.create(
        gateway="stripe", gateway_dispute_id="dp_full", payment=payment, amount_minor=5000, currency="USD",
        status=Dispute.Status.NEEDS_RESPONSE,
    )  # fmt: skip
    DunningPlan.objects.create(payment=payment, attempts=2, last_failure_code="card_declined")
    CustomerNotification.objects.create(
        payment=payment, kind="payment_failed", recipient="ada@example.test", dedupe_key="full:failed"
    )
    return payment


def test_payment_detail_shows_everything_around_the_payment(ops_client, full_payment):
    response = ops_client.get("/payments/pay_full/")
    html = response.content.decode()
    for text in (
        "1,234.56 USD",  # amount
        "36.10 USD",  # fee
        "20.00 USD",  # refunded, and the refund
        "insufficient_funds",
        "Your card has insufficient funds.",
        "visa •••• 4242",
        f'href="/customers/{full_payment.customer_id}/"',
        "payment_intent.payment_failed",
        "charge.refunded",
        "full:capture",
        "Gateway clearing",
        "Customer funds",
        "dp_full",
        "50.00 USD",
        "card_declined",
        "Payment failed",
        "ada@example.test",
    ):
        assert text in html, text


def _count_queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


def test_list_and_detail_queries_do_not_grow_with_rows(ops_client, full_payment, django_assert_max_num_queries):
    list_before = _count_queries(ops_client, "/payments/")
    detail_before = _count_queries(ops_client, "/payments/pay_full/")
    customer = Customer.objects.create(kind="person", legal_name="Someone Else")
    for number in range(20):
        make_payment(customer=customer)
        make_event(payment=full_payment, event_type=f"charge.updated.{number}")
        post_capture(full_payment, f"full:more:{number}")
        Refund.objects.create(payment=full_payment, amount_minor=1, currency="USD")
        CustomerNotification.objects.create(payment=full_payment, kind="retry_scheduled", dedupe_key=f"more:{number}")
    assert _count_queries(ops_client, "/payments/") == list_before
    assert _count_queries(ops_client, "/payments/pay_full/") == detail_before
    with django_assert_max_num_queries(6):
        ops_client.get("/payments/")
    with django_assert_max_num_queries(11):
        ops_client.get("/payments/pay_full/")


def test_other_pages_queries_do_not_grow_with_rows(ops_client, page_objects):
    pages = ["/payments/webhooks/", "/payments/disputes/", "/payments/ledger/", "/payments/dunning/"]
    pages.append(f"/payments/ledger/{page_objects['account']}/")
    before = {url: _count_queries(ops_client, url) for url in pages}
    for number in range(15):
        payment = make_payment()
        make_event(payment=payment, status=WebhookEvent.Status.FAILED, last_error="boom")
        post_capture(payment, f"more:{number}")
        Dispute.objects.create(
            gateway="stripe", gateway_dispute_id=f"dp_{number}", payment=payment, amount_minor=1, currency="USD",
            status=Dispute.Status.NEEDS_RESPONSE if number % 2 else Dispute.Status.WON,
        )  # fmt: skip
        DunningPlan.objects.create(payment=payment, next_attempt_at=timezone.now())
    assert {url: _count_queries(ops_client, url) for url in pages} == before


# ---------------------------------------------------------------------------------- webhook inbox


def test_inbox_shows_failures_first_then_received_then_the_rest_newest_first(ops_client):
    now = timezone.now()
    processed_new = make_event(received_at=now)
    failed_old = make_event(status="failed", received_at=now - timedelta(hours=3), last_error="KeyError: 'data'")
    received = make_event(status="received", received_at=now - timedelta(hours=1))
    failed_new = make_event(status="failed", received_at=now - timedelta(hours=2), next_retry_at=now)
    ignored_old = make_event(status="ignored", received_at=now - timedelta(hours=5))
    response = ops_client.get("/payments/webhooks/")
    order = [event.pk for event in response.context["page"].items]
    assert order == [failed_new.pk, failed_old.pk, received.pk, processed_new.pk, ignored_old.pk]
    assert "KeyError: &#x27;data&#x27;" in response.content.decode()


def test_inbox_filters_and_pages_across_groups(ops_client):
    now = timezone.now()
    for number in range(30):
        make_event(status="failed", received_at=now - timedelta(minutes=number))
        make_event(status="processed", received_at=now - timedelta(minutes=number), provider="braintree")
        make_event(status="received", received_at=now - timedelta(minutes=number), event_type="charge.refunded")
    pages = walk(ops_client, "/payments/webhooks/", {})
    assert [len(page) for page in pages] == [50, 40]
    walked = list(itertools.chain(*pages))
    statuses = list(WebhookEvent.objects.in_bulk(walked).values())
    assert len(set(walked)) == 90 and len(statuses) == 90
    by_id = WebhookEvent.objects.in_bulk(walked)
    assert [by_id[pk].status for pk in walked] == ["failed"] * 30 + ["received"] * 30 + ["processed"] * 30
    back = walk(ops_client, "/payments/webhooks/", {}, "previous_cursor", start=_inbox_cursor(ops_client))
    assert back == [pages[0]]

    def shown(**params):
        return {event.pk for event in ops_client.get("/payments/webhooks/", params).context["page"].items}

    assert {by_id[pk].provider for pk in shown(provider="braintree")} == {"braintree"}
    assert {by_id[pk].status for pk in shown(status="received")} == {"received"}
    assert {by_id[pk].event_type for pk in shown(event_type="charge.refunded")} == {"charge.refunded"}
    assert ops_client.get("/payments/webhooks/", {"status": "bogus"}).context["form"].errors


def _inbox_cursor(client) -> str:
    second = client.get(
        "/payments/webhooks/", {"cursor": client.get("/payments/webhooks/").context["page"].next_cursor}
    )
    return second.context["page"].previous_cursor


def test_webhook_payload_and_headers_are_escaped(ops_client):
    script = "<script>alert(1)</script>"
    event = make_event(
        payload={"data": {"description": script}}, headers={"User-Agent": script}, raw_body=f'{{"x": "{script}"}}'
    )
    html = ops_client.get(f"/payments/webhooks/{event.pk}/").content.decode()
    assert script not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&quot;description&quot;: &quot;&lt;script&gt;" in html  # pretty-printed JSON, escaped


def test_replay_requeues_a_failed_event_and_audits_it(ops_client, django_capture_on_commit_callbacks):
    event = make_event(status="failed", attempts=3, last_error="boom", next_retry_at=None)
    with django_capture_on_commit_callbacks() as callbacks:
        response = ops_client.post(f"/payments/webhooks/{event.pk}/replay/")
    assert response.status_code == 302
    assert response.headers["Location"] == f"/payments/webhooks/{event.pk}/"
    assert len(callbacks) == 1  # the task is sent once the transaction commits
    event.refresh_from_db()
    assert event.next_retry_at is not None
    audit = AuditEvent.objects.get(action="webhook.replayed")
    assert (audit.actor_label, audit.target_id) == ("ops-member", str(event.pk))
    page = ops_client.get(response.headers["Location"]).content.decode()
    assert "Replay queued" in page


def test_replaying_a_processed_event_changes_nothing(ops_client, django_capture_on_commit_callbacks):
    event = make_event(status="processed", attempts=1, processed_at=timezone.now())
    before = WebhookEvent.objects.values().get(pk=event.pk)
    with django_capture_on_commit_callbacks() as callbacks:
        response = ops_client.post(f"/payments/webhooks/{event.pk}/replay/", follow=True)
    assert response.status_code == 200
    assert "Nothing changed" in response.content.decode()
    assert callbacks == []
    assert WebhookEvent.objects.values().get(pk=event.pk) == before
    assert not AuditEvent.objects.filter(action="webhook.replayed").exists()


def test_replay_is_refused_without_operate_payments(client):
    viewer = StaffUserFactory(username="viewer")
    viewer.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="core", codename__in=["access_dashboard", "view_payments"])
    )
    login_with_mfa(client, viewer)
    event = make_event(status="failed")
    assert client.get(f"/payments/webhooks/{event.pk}/").status_code == 200
    assert b"Replay</button>" not in client.get(f"/payments/webhooks/{event.pk}/").content
    assert client.post(f"/payments/webhooks/{event.pk}/replay/").status_code == 403
    assert not AuditEvent.objects.filter(action="webhook.replayed").exists()
    event.refresh_from_db()
    assert event.next_retry_at is None


def test_replay_needs_post(ops_client):
    event = make_event(status="failed")
    assert ops_client.get(f"/payments/webhooks/{event.pk}/replay/").status_code == 405


def test_admin_action_replays_the_selected_events(client, django_user_model, django_capture_on_commit_callbacks):
    login_with_mfa(client, django_user_model.objects.create_superuser("root", "root@example.test", "x" * 16))
    failed, processed = make_event(status="failed"), make_event(status="processed")
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(
            "/admin/payments/webhookevent/",
            {"action": "replay_selected", "_selected_action": [failed.pk, processed.pk]},
            follow=True,
        )
    assert response.status_code == 200
    assert "1 event(s) queued for processing again; 1 already processed or ignored" in response.content.decode()
    assert len(callbacks) == 1
    assert AuditEvent.objects.filter(action="webhook.replayed", target_id=str(failed.pk)).count() == 1
    assert client.get(f"/admin/payments/webhookevent/{failed.pk}/change/").status_code == 200  # read-only view


# ------------------------------------------------------------------------- disputes, ledger, lists


def test_disputes_open_first_by_due_date_with_overdue_marked(ops_client):
    now = timezone.now()
    payment = make_payment(public_id="pay_disputed")

    def dispute(name, status, due):
        return Dispute.objects.create(
            gateway="stripe", gateway_dispute_id=name, payment=payment, amount_minor=100, currency="USD",
            status=status, evidence_due_by=due,
        )  # fmt: skip

    later = dispute("dp_later", Dispute.Status.NEEDS_RESPONSE, now + timedelta(days=5))
    overdue = dispute("dp_overdue", Dispute.Status.NEEDS_RESPONSE, now - timedelta(days=1))
    undated = dispute("dp_undated", Dispute.Status.UNDER_REVIEW, None)
    won = dispute("dp_won", Dispute.Status.WON, now - timedelta(days=30))
    response = ops_client.get("/payments/disputes/")
    board = response.context["board"]
    assert [d.pk for d in board.open] == [overdue.pk, later.pk, undated.pk]
    assert [d.pk for d in board.recently_closed] == [won.pk]
    html = response.content.decode()
    assert html.count('class="row-overdue"') == 1 and "overdue</span>" in html
    assert 'href="/payments/pay_disputed/"' in html


def test_ledger_shows_balances_per_gateway_and_currency_and_that_it_balances(ops_client):
    usd = make_payment(amount_minor=10_000)
    eur = make_payment(amount_minor=700, currency="EUR", gateway="braintree")
    post_capture(usd, "usd:capture")
    post_capture(eur, "eur:capture")
    with transaction.atomic():
        ledger_post(
            key="usd:fee", description="fee", occurred_at=timezone.now(), gateway="stripe", currency="USD",
            lines=[Line(K.FEES, 320), Line(K.GATEWAY_CLEARING, -320)], payment=usd,
        )  # fmt: skip
    response = ops_client.get("/payments/ledger/")
    summary = response.context["summary"]
    assert summary.balanced
    balances = {
        (gateway, currency, row.account.kind): row.balance_minor
        for gateway, currency, rows in summary.groups
        for row in rows
    }
    assert balances == {
        ("braintree", "EUR", K.CUSTOMER_FUNDS): 700,  # credit-normal, shown as a credit balance
        ("braintree", "EUR", K.GATEWAY_CLEARING): 700,
        ("stripe", "USD", K.CUSTOMER_FUNDS): 10_000,
        ("stripe", "USD", K.FEES): 320,
        ("stripe", "USD", K.GATEWAY_CLEARING): 9_680,
    }
    html = response.content.decode()
    assert "debit balances 100.00 USD" in html and "balances</span>" in html
    assert "does not balance" not in html


def test_ledger_account_lists_postings_by_keyset_with_links(ops_client):
    payments = [make_payment(amount_minor=100 + number) for number in range(60)]
    for payment in payments:
        post_capture(payment, f"walk:{payment.pk}")
    payout = Payout.objects.create(
        gateway="stripe", gateway_payout_id="po_1", amount_minor=50, currency="USD", status="paid"
    )
    with transaction.atomic():
        ledger_post(
            key="payout", description="payout", occurred_at=timezone.now(), gateway="stripe", currency="USD",
            lines=[Line(K.PAYOUTS, 50), Line(K.GATEWAY_CLEARING, -50)], payout=payout,
        )  # fmt: skip
    account = LedgerAccount.objects.get(kind=K.GATEWAY_CLEARING, gateway="stripe", currency="USD")
    url = f"/payments/ledger/{account.pk}/"
    pages = walk(ops_client, url, {})
    assert [len(page) for page in pages] == [50, 11]
    walked = list(itertools.chain(*pages))
    assert walked == sorted(account.postings.values_list("pk", flat=True), reverse=True)
    html = ops_client.get(url).content.decode()
    assert "payout <code>po_1</code>" in html
    assert f'href="/payments/{payments[-1].public_id}/"' in html
    assert ops_client.get(url).context["balance"].balance_minor == sum(100 + n for n in range(60)) - 50


def test_payouts_and_dunning_lists(ops_client):
    Payout.objects.create(
        gateway="stripe", gateway_payout_id="po_fail", amount_minor=9900, currency="USD", status="failed",
        failure_code="account_closed",
    )  # fmt: skip
    payment = make_payment(public_id="pay_dunned", status=Payment.Status.FAILED, email="late@example.test")
    DunningPlan.objects.create(
        payment=payment,
        attempts=2,
        next_attempt_at=timezone.now() + timedelta(hours=4),
        last_failure_code="do_not_honor",
    )
    recovered = make_payment(status=Payment.Status.SUCCEEDED)
    DunningPlan.objects.create(payment=recovered, status=DunningPlan.Status.RECOVERED)
    payouts = ops_client.get("/payments/payouts/").content.decode()
    assert "po_fail" in payouts and "99.00 USD" in payouts and "account_closed" in payouts
    response = ops_client.get("/payments/dunning/")
    assert [plan.payment.public_id for plan in response.context["plans"]] == ["pay_dunned"]
    html = response.content.decode()
    assert "do_not_honor" in html and "late@example.test" in html and "1 active plan " in html


def test_navigation_leads_to_the_payments_pages(ops_client):
    html = ops_client.get("/").content.decode()
    assert 'href="/payments/">Payments</a>' in html
    html = ops_client.get("/payments/").content.decode()
    for url in ("/payments/webhooks/", "/payments/disputes/", "/payments/ledger/", "/payments/payouts/"):
        assert f'href="{url}"' in html


def test_query_string_of_links_is_escaped(ops_client):
    response = ops_client.get("/payments/?" + urlencode({"q": '"><script>x</script>'}))
    assert response.status_code == 200
    assert "<script>x</script>" not in response.content.decode()
