"""A payment's payer (the counterparty) is recorded from the gateway and handed to screening once."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from payments.handlers.braintree import _payer_name
from payments.models import Payment

from .deliveries import charge, deliver_stripe, stripe_event
from .test_webhooks import process_all

pytestmark = pytest.mark.django_db
CALLS: list[dict] = []


def record_counterparty(**kwargs) -> None:
    CALLS.append(kwargs)


@pytest.fixture
def screening_calls(settings):
    settings.COUNTERPARTY_SCREENING_HOOK = f"{__name__}.record_counterparty"
    CALLS.clear()
    yield CALLS
    CALLS.clear()


def test_the_payer_is_recorded_and_screened_once(client, screening_calls, django_capture_on_commit_callbacks):
    now = int(time.time())
    billing = {"email": "ivan@example.com", "name": "Ivan Petrov", "address": {"country": "ru"}}
    with django_capture_on_commit_callbacks(execute=True):
        deliver_stripe(
            client, stripe_event("charge.succeeded", charge("pi_payer", billing_details=billing), created=now)
        )
        deliver_stripe(
            client,
            stripe_event("charge.captured", charge("pi_payer", billing_details=billing), created=now + 1),
        )
        process_all()
    payment = Payment.objects.get(gateway_payment_id="pi_payer")
    assert (payment.payer_name, payment.payer_country) == ("Ivan Petrov", "RU")
    assert screening_calls == [
        {"name": "Ivan Petrov", "country": "RU", "source_type": "payments.payment", "source_id": payment.pk}
    ]


def test_a_payment_without_a_payer_name_is_not_screened(client, screening_calls, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        deliver_stripe(client, stripe_event("charge.succeeded", charge("pi_anonymous")))
        process_all()
    assert Payment.objects.get(gateway_payment_id="pi_anonymous").payer_name == ""
    assert screening_calls == []


def test_braintree_payer_is_the_billing_person_else_the_customer_else_a_company():
    person = SimpleNamespace(first_name="Ana", last_name="Lima", company="Lima Ltda")
    nobody = SimpleNamespace(first_name=None, last_name=None, company=None)
    company_only = SimpleNamespace(first_name="", last_name="", company="Acme Trading LLC")
    assert _payer_name(person, nobody) == "Ana Lima"
    assert _payer_name(nobody, person) == "Ana Lima"
    assert _payer_name(company_only, nobody) == "Acme Trading LLC"
    assert _payer_name(None, None) == ""
