"""Roles: every dashboard URL, as each role, a customer and a visitor, answers as designed."""

import pytest
from django.contrib.auth.models import Group, Permission
from django.db import connection
from django.urls import URLPattern, URLResolver, get_resolver

from fintech.core.audit import SystemActor, audit_record
from fintech.core.models import AuditEvent, Customer
from fintech.sections import SECTIONS
from payments.models import LedgerAccount, Payment, WebhookEvent
from tests.factories import StaffUserFactory, UserFactory
from tests.utils import login_with_mfa

pytestmark = pytest.mark.django_db

# URL -> roles that may open it; every other signed-in user gets 403.
ACCESS = {
    "/": {"ops", "compliance", "admin"},
    "/payments/": {"ops"},
    "/payments/jobs/": {"ops"},
    "/banking/jobs/": {"ops"},
    "/compliance/jobs/": {"compliance"},
    "/banking/": {"ops"},
    "/compliance/": {"compliance"},
    "/audit/": {"compliance", "admin"},
    "/audit/1/": {"compliance", "admin"},
    "/customers/": {"ops", "compliance"},
    "/customers/1/": {"ops", "compliance"},
    "/payments/webhooks/": {"ops"},
    "/payments/webhooks/1/": {"ops"},
    "/payments/disputes/": {"ops"},
    "/payments/ledger/": {"ops"},
    "/payments/ledger/1/": {"ops"},
    "/payments/payouts/": {"ops"},
    "/payments/dunning/": {"ops"},
    "/payments/pay_roles/": {"ops"},
    "/compliance/hits/1/": {"compliance"},
    "/compliance/rescreens/": {"compliance"},
}
# URL names that are not staff dashboard pages.
NOT_DASHBOARD = {"healthz", "stripe_webhook", "braintree_webhook", None}
# Included URL configurations that hold dashboard pages; the other includes (the admin, allauth,
# the merchant API) have their own access rules, tested separately.
DASHBOARD_NAMESPACES = {"payments", "compliance"}


def _dashboard_url_names(patterns=None, prefix: str = "") -> set[str]:
    names = set()
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(pattern, URLResolver):
            if pattern.namespace in DASHBOARD_NAMESPACES:
                names |= _dashboard_url_names(pattern.url_patterns, f"{prefix}{pattern.namespace}:")
            continue
        assert isinstance(pattern, URLPattern)
        if pattern.name not in NOT_DASHBOARD:
            names.add(f"{prefix}{pattern.name}")
    return names


def test_the_table_covers_every_dashboard_page():
    # POST-only actions (reveal, status changes, webhook replay) are tested with their pages.
    assert _dashboard_url_names() == {
        "overview",
        "section",
        "payments_jobs",
        "banking_jobs",
        "compliance_jobs",
        "audit",
        "audit_event",
        "customer_list",
        "customer_detail",
        "customer_reveal",
        "customer_change_status",
        "compliance:hit_queue",
        "compliance:hit_detail",
        "compliance:hit_decide",
        "compliance:rescreen_list",
        "compliance:rescreen_start",
        "payments:payment_list",
        "payments:payment_detail",
        "payments:webhook_list",
        "payments:webhook_detail",
        "payments:webhook_replay",
        "payments:dispute_list",
        "payments:ledger",
        "payments:ledger_account",
        "payments:payout_list",
        "payments:dunning_list",
    }
    assert {f"/{section.slug}/" for section in SECTIONS} <= set(ACCESS)
    assert {f"/{section.slug}/jobs/" for section in SECTIONS} <= set(ACCESS)


def test_roles_are_created_by_migration_with_their_permissions():
    def codes(role):
        return {f"{p.content_type.app_label}.{p.codename}" for p in Group.objects.get(name=role).permissions.all()}

    assert {"core.reveal_sensitive", "core.view_audit", "core.view_compliance"} <= codes("compliance")
    assert {"core.view_payments", "core.operate_payments", "core.view_banking"} <= codes("ops")
    assert "core.reveal_sensitive" not in codes("ops") | codes("admin")
    assert "core.operate_payments" not in codes("compliance") | codes("admin")
    assert {"core.manage_staff", "auth.change_user"} <= codes("admin")
    assert {"compliance.review_hit", "compliance.confirm_true_match"} <= codes("compliance")
    assert not {"compliance.review_hit", "compliance.confirm_true_match"} & (codes("ops") | codes("admin"))


@pytest.fixture(autouse=True)
def objects_the_urls_name():
    """Audit entry #1, customer 1, payment pay_roles, webhook event 1 and ledger account 1 exist,
    so detail pages answer 200 to those allowed."""
    audit_record(actor=SystemActor("test"), action="test.event")
    with connection.cursor() as cursor:
        for table in ("core_customer", "payments_webhookevent", "payments_ledgeraccount"):
            cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), 1, false)")
    Customer.objects.create(kind="person", legal_name="Ada Lovelace")
    payment = Payment.objects.create(
        public_id="pay_roles", gateway="stripe", gateway_payment_id="pi_roles", amount_minor=1000, currency="USD"
    )
    WebhookEvent.objects.create(
        provider="stripe",
        event_id="evt_roles",
        event_type="payment_intent.succeeded",
        occurred_at=payment.created_at,
        payload={"id": "evt_roles"},
        raw_body="{}",
        payment=payment,
    )
    LedgerAccount.objects.create(kind="gateway_clearing", gateway="stripe", currency="USD")
    _sanctions_hit_1()


def _sanctions_hit_1() -> None:
    """Sanctions hit 1 (of customer 1 against a hand-made list entry), for /compliance/hits/1/."""
    from compliance.models import Hit, ListEntry, ListVersion, ScreeningSubject

    with connection.cursor() as cursor:
        cursor.execute("SELECT setval(pg_get_serial_sequence('compliance_hit', 'id'), 1, false)")
    version = ListVersion.objects.create(source="ofac_sdn", origin="tests", file_sha256="0" * 64, status="active")
    names = [{"name": "Ada", "kind": "primary"}]
    data = {"source": "ofac_sdn", "key": "1", "entity_type": "individual", "names": names}
    entry = ListEntry.objects.create(
        source="ofac_sdn",
        key="1",
        entity_type="individual",
        primary_name="Ada",
        data=data,
        content_hash="0" * 64,
        first_version=version,
        changed_version=version,
    )
    subject = ScreeningSubject.objects.create(kind="customer", customer_id=1)
    Hit.objects.create(
        subject=subject,
        entry=entry,
        entry_hash="0" * 64,
        list_version=version,
        score=0.9,
        matched_name="Ada",
        matched_name_kind="primary",
        last_screened_at=version.started_at,
    )


@pytest.mark.parametrize("role", ["ops", "compliance", "admin"])
def test_each_role_opens_exactly_its_pages(client, role):
    login_with_mfa(client, StaffUserFactory(username=f"{role}-member", roles=[role]))
    answers = {url: client.get(url).status_code for url in ACCESS}
    assert answers == {url: 200 if role in allowed else 403 for url, allowed in ACCESS.items()}


def test_navigation_shows_only_the_pages_of_the_role(client):
    login_with_mfa(client, StaffUserFactory(username="ops-member", roles=["ops"]))
    titles = [item["title"] for item in client.get("/").context["navigation"]]
    assert titles == ["Overview", "Payments", "Banking", "Customers"]


def test_a_superuser_opens_every_page(client, django_user_model):
    login_with_mfa(client, django_user_model.objects.create_superuser("root", "root@example.test", "x" * 16))
    assert {url: client.get(url).status_code for url in ACCESS} == dict.fromkeys(ACCESS, 200)


@pytest.mark.parametrize("url", sorted(ACCESS))
def test_a_customer_is_refused_every_staff_page(client, url):
    login_with_mfa(client, UserFactory(username="customer"))
    assert client.get(url).status_code == 403


@pytest.mark.parametrize("url", sorted(ACCESS))
def test_staff_without_a_role_are_refused(client, url):
    login_with_mfa(client, StaffUserFactory(username="no-role"))
    assert client.get(url).status_code == 403


@pytest.mark.parametrize("url", sorted(ACCESS))
def test_visitors_are_sent_to_sign_in(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/accounts/login/?next=")


def test_a_deleted_role_comes_back_after_migrate_with_extra_grants_kept():
    from django.core.management import call_command

    Group.objects.filter(name="ops").delete()
    compliance = Group.objects.get(name="compliance")
    extra = Permission.objects.get(codename="view_periodictask")
    compliance.permissions.add(extra)
    call_command("migrate", verbosity=0)
    assert Group.objects.get(name="ops").permissions.filter(codename="view_payments").exists()
    assert compliance.permissions.filter(pk=extra.pk).exists()


def test_refusals_are_audited_once_per_user_and_page(client):
    customer = UserFactory(username="customer")
    login_with_mfa(client, customer)
    for _ in range(3):
        assert client.get("/audit/").status_code == 403
    client.get("/customers/")
    refusals = AuditEvent.objects.filter(action="auth.access_refused").order_by("seq")
    assert [(event.actor_label, event.details["path"]) for event in refusals] == [
        ("customer", "/audit/"),
        ("customer", "/customers/"),
    ]
    assert refusals[0].details["permission"] == "core.view_audit"
