"""Serializers of the merchant REST API: strict input (unknown fields and loose types refused) and output.

Input serializers only check shapes and types; the rules (amount limits, currency, the merchant's
customers, refundable amounts) are the services' (``payments.checkout``), so they hold for any
caller. A field a client may not set (``status``, ``fee_minor``, ``merchant``...) is refused with
400 rather than ignored, so a client never believes it set something it did not.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from fintech.core.models import Customer

from .models import Gateway, Payment, PaymentStatus, Refund, RefundMethod, RefundStatus

UNKNOWN_FIELD = "Unknown field: it cannot be set through the API."


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer: "100", 100.0 and true are refused (DRF's IntegerField accepts them)."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    """A JSON boolean: "true", 1 and "yes" are refused."""

    default_error_messages = {"invalid": "Must be true or false."}

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


class StrictCharField(serializers.CharField):
    """A JSON string: numbers are refused, not turned into text."""

    default_error_messages = {"not_a_string": "Must be a string."}

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("not_a_string")
        return super().to_internal_value(data)


class StrictInputSerializer(serializers.Serializer):
    """Refuses any field it does not declare."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping):
            writable = {name for name, field in self.fields.items() if not field.read_only}
            unknown = sorted(str(name) for name in data if name not in writable)
            if unknown:
                raise serializers.ValidationError({name: [UNKNOWN_FIELD] for name in unknown})
        return super().to_internal_value(data)


# ------------------------------------------------------------------------------------------ input


class PaymentCreateSerializer(StrictInputSerializer):
    gateway = serializers.ChoiceField(choices=Gateway.choices)
    amount_minor = StrictIntegerField(min_value=1, help_text="Amount in minor units of the currency (cents).")
    currency = StrictCharField(min_length=3, max_length=3, help_text="ISO 4217 code, e.g. USD, EUR, JPY.")
    customer = StrictIntegerField(
        min_value=1,
        required=False,
        allow_null=True,
        help_text="Id of one of your customers (created with POST /api/customers or linked to you by staff).",
    )
    payment_method = StrictCharField(
        max_length=255, required=False, help_text='Stripe only: a PaymentMethod id such as "pm_card_visa".'
    )
    payment_method_nonce = StrictCharField(
        max_length=255, required=False, help_text='Braintree only: a payment method nonce such as "fake-valid-nonce".'
    )
    description = StrictCharField(max_length=500, required=False, allow_blank=True, default="")
    capture = StrictBooleanField(
        required=False, default=True, help_text="Stripe only: false authorises now and captures later."
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        gateway = attrs["gateway"]
        wanted, other = (
            ("payment_method", "payment_method_nonce")
            if gateway == Gateway.STRIPE
            else ("payment_method_nonce", "payment_method")
        )
        if attrs.get(other) is not None:
            raise serializers.ValidationError({other: [f"Not used with {gateway}: send {wanted}."]})
        if not attrs.get(wanted):
            raise serializers.ValidationError({wanted: [f"Required for {gateway} payments."]})
        return attrs


class RefundCreateSerializer(StrictInputSerializer):
    amount_minor = StrictIntegerField(
        min_value=1,
        required=False,
        allow_null=True,
        help_text="Amount to refund in minor units; omit it to refund everything still refundable.",
    )
    reason = StrictCharField(max_length=100, required=False, allow_blank=True, default="")


class CustomerCreateSerializer(StrictInputSerializer):
    kind = serializers.ChoiceField(choices=Customer.Kind.choices)
    legal_name = StrictCharField(max_length=255)
    email = serializers.EmailField(required=False, allow_blank=True, max_length=254)
    phone = StrictCharField(required=False, allow_blank=True, max_length=32)
    country_of_residence = StrictCharField(
        required=False, allow_blank=True, max_length=2, help_text="ISO 3166-1 alpha-2, e.g. GB."
    )


class PaymentListQuerySerializer(StrictInputSerializer):
    """Query parameters of GET /api/payments (``cursor`` and ``limit`` belong to the paginator)."""

    status = serializers.ChoiceField(choices=PaymentStatus.choices, required=False)
    currency = serializers.CharField(min_length=3, max_length=3, required=False)
    created_gte = serializers.DateTimeField(required=False, help_text="Created at or after (ISO 8601).")
    created_lt = serializers.DateTimeField(required=False, help_text="Created before (ISO 8601).")
    cursor = serializers.CharField(required=False, help_text="The cursor of the next or previous page.")
    limit = serializers.IntegerField(required=False, min_value=1, max_value=100, help_text="Page size, 1 to 100.")


# ----------------------------------------------------------------------------------------- output


class RefundSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="public_id", read_only=True)
    payment = serializers.CharField(source="payment.public_id", read_only=True)
    status = serializers.ChoiceField(choices=RefundStatus.choices, read_only=True)
    method = serializers.ChoiceField(
        choices=RefundMethod.choices,
        read_only=True,
        help_text="refund: money sent back; void: an unsettled Braintree sale canceled in full (payment canceled).",
    )

    class Meta:
        model = Refund
        fields = [
            "id",
            "payment",
            "method",
            "amount_minor",
            "currency",
            "status",
            "reason",
            "failure_reason",
            "created_at",
        ]
        read_only_fields = fields


class PaymentSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="public_id", read_only=True)
    status = serializers.ChoiceField(choices=PaymentStatus.choices, read_only=True)
    customer = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)
    amount_refundable_minor = serializers.SerializerMethodField()
    refunds = RefundSerializer(many=True, read_only=True)

    class Meta:
        model = Payment
        fields = [
            "id",
            "gateway",
            "status",
            "amount_minor",
            "currency",
            "amount_captured_minor",
            "amount_refunded_minor",
            "amount_refundable_minor",
            "failure_code",
            "failure_message",
            "customer",
            "description",
            "card_brand",
            "card_last4",
            "created_at",
            "refunds",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.IntegerField(help_text="Captured minus pending and succeeded refunds."))
    def get_amount_refundable_minor(self, payment: Payment) -> int:
        if payment.status != PaymentStatus.SUCCEEDED:
            return 0
        reserved = sum(
            refund.amount_minor
            for refund in payment.refunds.all()
            if refund.status in (RefundStatus.PENDING, RefundStatus.SUCCEEDED)
        )
        return max(payment.amount_captured_minor - reserved, 0)


class CustomerSerializer(serializers.ModelSerializer):
    class Meta:
        model = Customer
        fields = ["id", "kind", "legal_name", "email", "phone", "country_of_residence", "created_at"]
        read_only_fields = fields


# ------------------------------------------------------------------------------- errors (schema)


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable, machine-readable, e.g. invalid_request, not_found.")
    message = serializers.CharField(help_text="What went wrong, for people.")
    field = serializers.CharField(required=False, allow_null=True, help_text="The input field at fault, if one.")
    fields = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text="Every invalid field with its messages (400 invalid_request).",
    )
    payment_id = serializers.CharField(required=False, help_text="503: the payment left pending.")
    refund_id = serializers.CharField(required=False, help_text="503: the refund left pending.")


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()
