"""Payment rows written out in SQL read, insert and update exactly what the ORM would."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import transaction
from django.forms.models import model_to_dict

from payments.models import Payment
from payments.payment_rows import payment_insert, payment_lock_by_gateway_id, payment_update

pytestmark = pytest.mark.django_db


def fields_of(payment: Payment) -> dict:
    return {field.attname: getattr(payment, field.attname) for field in Payment._meta.concrete_fields}


def test_an_inserted_payment_reads_back_as_the_orm_reads_it():
    with transaction.atomic():
        inserted = payment_insert(
            Payment(
                gateway="stripe",
                gateway_payment_id="pi_rows1",
                currency="EUR",
                amount_minor=1999,
                metadata={"order": "A-1", "nested": {"n": 1}},
                status_event_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
            )
        )
    assert inserted is not None and inserted.pk and inserted.public_id.startswith("pay_")
    assert not inserted._state.adding
    stored = Payment.objects.get(pk=inserted.pk)
    assert fields_of(inserted) == fields_of(stored)
    assert stored.metadata == {"order": "A-1", "nested": {"n": 1}}
    with transaction.atomic():
        locked = payment_lock_by_gateway_id("stripe", "pi_rows1")
    assert locked is not None and fields_of(locked) == fields_of(stored)
    assert payment_lock_by_gateway_id("stripe", "pi_absent") is None
    assert payment_lock_by_gateway_id("braintree", "pi_rows1") is None


def test_a_second_insert_of_a_gateway_id_writes_nothing():
    first = payment_insert(Payment(gateway="stripe", gateway_payment_id="pi_rows2", currency="USD", amount_minor=100))
    assert first is not None
    again = payment_insert(Payment(gateway="stripe", gateway_payment_id="pi_rows2", currency="GBP", amount_minor=5))
    assert again is None
    assert Payment.objects.filter(gateway_payment_id="pi_rows2").count() == 1
    assert model_to_dict(Payment.objects.get(pk=first.pk), ["currency", "amount_minor"]) == {
        "currency": "USD",
        "amount_minor": 100,
    }


def test_an_update_writes_the_named_fields_only():
    payment = payment_insert(Payment(gateway="stripe", gateway_payment_id="pi_rows3", currency="USD", amount_minor=100))
    assert payment is not None
    payment.status = "succeeded"
    payment.metadata = {"k": "v"}
    payment.description = "not written"
    payment_update(payment, ["status", "metadata", "status"])
    stored = Payment.objects.get(pk=payment.pk)
    assert (stored.status, stored.metadata, stored.description) == ("succeeded", {"k": "v"}, "")
