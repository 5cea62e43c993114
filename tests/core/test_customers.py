"""Customers: validated, audited writes; explicit transitions; masked pages; audited reveals."""

import datetime

import pytest

from fintech.core import customers
from fintech.core.exceptions import InvalidTransition, NotAllowed, ValidationFailed
from fintech.core.models import AuditEvent, Customer
from tests.factories import StaffUserFactory
from tests.utils import login_with_mfa

pytestmark = pytest.mark.django_db
TAX_ID = "123-45-6789"


@pytest.fixture
def compliance_officer():
    return StaffUserFactory(username="carla", roles=["compliance"])


@pytest.fixture
def ops_member():
    return StaffUserFactory(username="oscar", roles=["ops"])


@pytest.fixture
def customer(compliance_officer):
    return customers.customer_create(
        actor=compliance_officer,
        kind="person",
        legal_name="Ada Lovelace",
        tax_id=TAX_ID,
        date_of_birth=datetime.date(1815, 12, 10),
        address={"lines": ["12 St James's Square"], "city": "London", "country": "GB"},
        nationality="GB",
        country_of_residence="GB",
        email="ada@example.test",
    )


def test_creation_is_audited_without_sensitive_values(customer, compliance_officer):
    event = AuditEvent.objects.get(action="customer.created")
    assert (event.actor_label, event.target_id) == ("carla", str(customer.pk))
    assert "tax_id" in event.details["fields"]
    assert TAX_ID not in str(event.details) and "1815" not in str(event.details)


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"legal_name": ""}, "legal_name"),
        ({"nationality": "gbr"}, "nationality"),
        ({"date_of_birth": datetime.date(2999, 1, 1)}, "date_of_birth"),
        ({"address": {"planet": "Mars"}}, "address"),
        ({"kind": "robot"}, "kind"),
        ({"email": "not-an-email"}, "email"),
    ],
)
def test_invalid_values_are_refused_and_nothing_is_written(compliance_officer, values, field):
    with pytest.raises(ValidationFailed) as error:
        customers.customer_create(actor=compliance_officer, **{"kind": "person", "legal_name": "Ada", **values})
    assert error.value.field == field
    assert not Customer.objects.exists() and not AuditEvent.objects.filter(action="customer.created").exists()


def test_unknown_fields_such_as_statuses_cannot_be_set_on_creation(compliance_officer):
    with pytest.raises(ValidationFailed, match="Unknown customer fields"):
        customers.customer_create(actor=compliance_officer, kind="person", legal_name="Ada", kyc_status="verified")


def test_updates_record_changed_fields_but_not_personal_values(customer, compliance_officer):
    customers.customer_update(
        customer=customer,
        actor=compliance_officer,
        tax_id="999-99-9999",
        phone="+44 20 7946 0000",
        legal_name="Ada King",
        nationality="FR",
    )
    event = AuditEvent.objects.get(action="customer.updated")
    # The append-only trail keeps which fields changed; values only where they are not personal data.
    assert event.details == {
        "fields": ["legal_name", "nationality", "phone", "tax_id"],
        "values": {"nationality": "FR"},
    }
    assert Customer.objects.get(pk=customer.pk).tax_id == "999-99-9999"


def test_kyc_follows_its_review_flow(customer, compliance_officer):
    with pytest.raises(InvalidTransition, match="cannot go from not_started to verified"):
        customers.customer_set_kyc_status(customer=customer, status="verified", actor=compliance_officer, reason="ok")
    with pytest.raises(ValidationFailed, match="Give a reason"):
        customers.customer_set_kyc_status(customer=customer, status="pending", actor=compliance_officer, reason=" ")
    customers.customer_set_kyc_status(customer=customer, status="pending", actor=compliance_officer, reason="submitted")
    customers.customer_set_kyc_status(customer=customer, status="verified", actor=compliance_officer, reason="ID ok")
    assert Customer.objects.get(pk=customer.pk).kyc_status == "verified"
    changes = AuditEvent.objects.filter(action="customer.kyc_status_changed").order_by("seq")
    assert [(e.details["from"], e.details["to"]) for e in changes] == [
        ("not_started", "pending"),
        ("pending", "verified"),
    ]


def test_a_transition_from_a_stale_state_is_refused(customer, compliance_officer):
    stale = Customer.objects.get(pk=customer.pk)
    customers.customer_set_risk_rating(customer=customer, rating="high", actor=compliance_officer, reason="PEP")
    with pytest.raises(InvalidTransition, match="changed by someone else"):
        customers.customer_set_risk_rating(customer=stale, rating="low", actor=compliance_officer, reason="review")
    assert Customer.objects.get(pk=customer.pk).risk_rating == "high"


def test_reveal_is_for_allowed_roles_and_audited(customer, compliance_officer, ops_member):
    assert customers.customer_reveal(customer=customer, field="tax_id", actor=compliance_officer) == TAX_ID
    with pytest.raises(NotAllowed):
        customers.customer_reveal(customer=customer, field="tax_id", actor=ops_member)
    with pytest.raises(ValidationFailed):
        customers.customer_reveal(customer=customer, field="legal_name", actor=compliance_officer)
    reveals = AuditEvent.objects.filter(action="customer.sensitive_revealed")
    assert [(e.actor_label, e.details["field"]) for e in reveals] == [("carla", "tax_id")]


# --------------------------------------------------------------------------- pages


def test_pages_show_masked_values_only(client, customer, ops_member):
    login_with_mfa(client, ops_member)
    listing = client.get("/customers/")
    detail = client.get(f"/customers/{customer.pk}/")
    for response in (listing, detail):
        assert response.status_code == 200
        assert TAX_ID.encode() not in response.content and b"1815" not in response.content
    assert "•••••6789".encode() in detail.content
    assert b"Reveal" not in detail.content  # ops may not reveal


def test_exact_tax_id_search_is_for_roles_that_may_reveal_and_audited(client, customer, ops_member, compliance_officer):
    login_with_mfa(client, ops_member)
    assert list(client.get("/customers/", {"q": TAX_ID}).context["page"]) == []  # names and emails only
    assert client.post("/customers/", {"tax_id": TAX_ID}).status_code == 403
    login_with_mfa(client, compliance_officer)
    response = client.post("/customers/", {"tax_id": "123 45 6789"})
    assert [c.pk for c in response.context["page"]] == [customer.pk]
    assert response["Cache-Control"] == "no-store"
    assert list(client.post("/customers/", {"tax_id": "123-45-678"}).context["page"]) == []
    assert client.post("/customers/", {"tax_id": " "}).status_code == 400
    searches = AuditEvent.objects.filter(action="customer.searched_by_tax_id").order_by("seq")
    assert [(e.actor_label, e.details) for e in searches] == [("carla", {"matches": 1}), ("carla", {"matches": 0})]
    assert TAX_ID not in str(list(searches.values_list("details", flat=True)))


def test_a_compliance_officer_reveals_one_value_and_it_is_audited(client, customer, compliance_officer):
    login_with_mfa(client, compliance_officer)
    assert b"Reveal" in client.get(f"/customers/{customer.pk}/").content
    response = client.post(f"/customers/{customer.pk}/reveal/", {"field": "tax_id"})
    assert response.status_code == 200
    assert TAX_ID.encode() in response.content
    assert b"1815" not in response.content  # only the one field asked for
    assert response["Cache-Control"] == "no-store"
    event = AuditEvent.objects.filter(action="customer.sensitive_revealed").get()
    assert (event.actor_label, event.details, event.ip_address) == ("carla", {"field": "tax_id"}, "127.0.0.1")


def test_reveal_refusals_change_nothing(client, customer, ops_member, compliance_officer):
    login_with_mfa(client, ops_member)
    assert client.post(f"/customers/{customer.pk}/reveal/", {"field": "tax_id"}).status_code == 403
    login_with_mfa(client, compliance_officer)
    assert client.get(f"/customers/{customer.pk}/reveal/").status_code == 405
    bad_field = client.post(f"/customers/{customer.pk}/reveal/", {"field": "password"})
    assert bad_field.status_code == 400
    assert b"is not a sensitive field" in bad_field.content
    assert client.post("/customers/999999/reveal/", {"field": "tax_id"}).status_code == 404
    assert not AuditEvent.objects.filter(action="customer.sensitive_revealed").exists()


def test_status_changes_from_the_page(client, customer, compliance_officer, ops_member):
    login_with_mfa(client, ops_member)
    url = f"/customers/{customer.pk}/kyc-status/"
    assert client.post(url, {"value": "pending", "reason": "docs in"}).status_code == 403
    login_with_mfa(client, compliance_officer)
    response = client.post(url, {"value": "pending", "reason": "docs in"})
    assert response.status_code == 302
    assert Customer.objects.get(pk=customer.pk).kyc_status == "pending"
    invalid = client.post(url, {"value": "not_started", "reason": "undo"})
    assert invalid.status_code == 409
    assert b"cannot go from pending to not_started" in invalid.content
    assert client.post(url, {"value": "verified", "reason": ""}).status_code == 400
    assert client.post(f"/customers/{customer.pk}/risk-rating/", {"value": "extreme", "reason": "x"}).status_code == 400
    assert client.post(f"/customers/{customer.pk}/nonsense/", {"value": "x", "reason": "x"}).status_code == 404
    assert Customer.objects.get(pk=customer.pk).kyc_status == "pending"


def test_the_admin_shows_customers_masked_and_read_only(client, customer, django_user_model):
    root = django_user_model.objects.create_superuser("root", "root@example.test", "x" * 16)
    login_with_mfa(client, root)
    page = client.get(f"/admin/core/customer/{customer.pk}/change/")
    assert page.status_code == 200
    assert "•••••6789".encode() in page.content
    assert TAX_ID.encode() not in page.content and b"1815" not in page.content
    assert client.post(f"/admin/core/customer/{customer.pk}/change/", {"legal_name": "X"}).status_code == 403


def test_an_unreadable_value_is_marked_and_the_rest_of_the_page_shown(client, customer, compliance_officer):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("UPDATE core_customer SET tax_id = address WHERE id = %s", [customer.pk])
    login_with_mfa(client, compliance_officer)
    response = client.get(f"/customers/{customer.pk}/")
    assert response.status_code == 200
    assert b"unreadable: see the error log" in response.content
    assert "••••-••-••".encode() in response.content  # the other fields still shown, masked


def test_an_update_from_a_stale_copy_keeps_a_newer_status_and_transitions_stamp_updated_at(
    customer, compliance_officer
):
    stale = Customer.objects.get(pk=customer.pk)
    before = stale.updated_at
    customers.customer_set_kyc_status(customer=customer, status="pending", actor=compliance_officer, reason="docs")
    assert Customer.objects.get(pk=customer.pk).updated_at > before
    customers.customer_update(customer=stale, actor=compliance_officer, phone="+44 20 7946 0001")
    fresh = Customer.objects.get(pk=customer.pk)
    assert (fresh.kyc_status, fresh.phone) == ("pending", "+44 20 7946 0001")
    customers.customer_update(customer=fresh, actor=compliance_officer, tax_id="555-55-5555")
    index = Customer._meta.get_field("tax_id_index").lookup_value("555-55-5555")
    assert Customer.objects.filter(pk=customer.pk, tax_id_index=index).exists()
