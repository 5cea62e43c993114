"""Braintree webhook notifications: subject XML, the notification envelope and its signature.

Braintree POSTs a webhook as two form fields: ``bt_payload``, the notification XML in base64
(MIME-style, 76-character lines ending in newlines), and ``bt_signature``,
``"<public key>|<hex HMAC-SHA1>"`` where the HMAC key is the SHA-1 digest of the private key and
the message is the base64 text itself. This module reproduces that byte for byte (compare
``braintree/webhook_testing_gateway.py`` in the SDK), so the app's real
``gateway.webhook_notification.parse(bt_signature, bt_payload)`` call is what tests exercise.

The XML follows the shapes Braintree sends (dashed element names, ``type="datetime"`` /
``"date"`` / ``"array"`` / ``"boolean"`` attributes, ``nil="true"`` for nulls), compact, because
the SDK's parser treats text with surrounding whitespace literally (``" true "`` is not true).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from xml.sax.saxutils import escape

__all__ = [
    "DISPUTE_KINDS",
    "DISPUTE_STATUSES",
    "SUPPORTED_KINDS",
    "TRANSACTION_STATUSES",
    "braintree_notification_xml",
    "braintree_signed",
    "braintree_webhook_fields",
    "check_xml",
    "disbursement_xml",
    "dispute_xml",
    "subscription_xml",
    "transaction_xml",
]

# Kinds whose subject this module can build. Others are refused so a typo in a test or in the
# stand-in fails loudly instead of producing a notification no handler would ever match.
DISPUTE_KINDS = frozenset(
    {
        "dispute_opened",
        "dispute_lost",
        "dispute_won",
        "dispute_accepted",
        "dispute_disputed",
        "dispute_expired",
        "dispute_under_review",
        "dispute_auto_accepted",
    }
)
SUPPORTED_KINDS = frozenset(
    {
        "check",
        "transaction_settled",
        "transaction_settlement_declined",
        "subscription_charged_successfully",
        "subscription_charged_unsuccessfully",
        "subscription_went_past_due",
        "disbursement",
        "refund_failed",
        *DISPUTE_KINDS,
    }
)
TRANSACTION_STATUSES = frozenset(
    {
        "authorization_expired",
        "authorized",
        "authorizing",
        "failed",
        "gateway_rejected",
        "processor_declined",
        "settled",
        "settlement_confirmed",
        "settlement_declined",
        "settlement_pending",
        "settling",
        "submitted_for_settlement",
        "voided",
    }
)
DISPUTE_STATUSES = frozenset(
    {"accepted", "auto_accepted", "disputed", "expired", "lost", "open", "under_review", "won"}
)

Amount = Decimal | str | int


def _amount(value: Amount) -> str:
    """A Braintree decimal amount string ("12.50"); never a float, whose repr could lose cents."""
    if isinstance(value, float):
        raise TypeError("Amounts must be Decimal, str or int, never float.")
    return format(Decimal(value), "f")


def _datetime(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("Braintree timestamps must be timezone-aware datetimes.")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _element(name: str, value: object) -> str:
    """One XML element in Braintree's conventions for ``value``'s type; None becomes nil."""
    if value is None:
        return f'<{name} nil="true"/>'
    if isinstance(value, bool):
        return f'<{name} type="boolean">{"true" if value else "false"}</{name}>'
    if isinstance(value, datetime):
        return f'<{name} type="datetime">{_datetime(value)}</{name}>'
    if isinstance(value, date):
        return f'<{name} type="date">{value.isoformat()}</{name}>'
    if isinstance(value, int):
        return f'<{name} type="integer">{value}</{name}>'
    if isinstance(value, Decimal):
        return f"<{name}>{format(value, 'f')}</{name}>"
    return f"<{name}>{escape(str(value))}</{name}>"


def _elements(fields: Iterable[tuple[str, object]]) -> str:
    return "".join(_element(name, value) for name, value in fields)


def _dashed(name: str) -> str:
    if not name.replace("_", "").replace("-", "").isalnum() or not name[:1].isalpha():
        raise ValueError(f"{name!r} is not a valid Braintree field name (letters, digits and underscores).")
    return name.replace("_", "-")


def transaction_xml(
    *,
    transaction_id: str,
    amount: Amount,
    currency_iso_code: str = "USD",
    status: str = "settled",
    transaction_type: str = "sale",
    processor_response_code: str = "1000",
    processor_response_text: str = "Approved",
    processor_response_type: str | None = None,
    created_at: datetime | None = None,
    updated_at: datetime | None = None,
    customer_email: str | None = None,
    card_last_4: str | None = "1111",
    card_type: str | None = "Visa",
    order_id: str | None = None,
    custom_fields: Mapping[str, str] | None = None,
    service_fee_amount: Amount | None = None,
    disbursement_date: date | None = None,
    settlement_amount: Amount | None = None,
    settlement_currency_iso_code: str | None = None,
    subscription_id: str | None = None,
    refunded_transaction_id: str | None = None,
    refund_ids: Sequence[str] = (),
    merchant_account_id: str | None = None,
    gateway_rejection_reason: str | None = None,
    status_history: Sequence[tuple[str, datetime]] = (),
) -> str:
    """A ``<transaction>`` element as Braintree sends it in transaction and refund notifications.

    ``transaction_type`` is ``sale`` or ``credit`` (a refund is a credit transaction whose
    ``refunded_transaction_id`` names the sale). Only a card's last four digits and brand are
    carried: the sandbox never sees or stores a full card number.
    """
    if status not in TRANSACTION_STATUSES:
        raise ValueError(f"Unknown Braintree transaction status {status!r}; one of {sorted(TRANSACTION_STATUSES)}.")
    if transaction_type not in {"sale", "credit"}:
        raise ValueError("transaction_type must be 'sale' or 'credit'.")
    if card_last_4 is not None and not (len(card_last_4) == 4 and card_last_4.isdigit()):
        raise ValueError("card_last_4 must be exactly four digits (never a full card number).")
    if processor_response_type is None:
        processor_response_type = "approved" if processor_response_code.startswith("1") else "hard_declined"
    parts = [
        _elements(
            [
                ("id", transaction_id),
                ("status", status),
                ("type", transaction_type),
                ("currency-iso-code", currency_iso_code),
                ("amount", _amount(amount)),
                ("merchant-account-id", merchant_account_id),
                ("order-id", order_id),
                ("created-at", created_at),
                ("updated-at", updated_at or created_at),
                ("processor-response-code", processor_response_code),
                ("processor-response-text", processor_response_text),
                ("processor-response-type", processor_response_type),
                ("gateway-rejection-reason", gateway_rejection_reason),
                ("refunded-transaction-id", refunded_transaction_id),
                ("subscription-id", subscription_id),
                ("payment-instrument-type", "credit_card"),
            ]
        ),
    ]
    if service_fee_amount is not None:
        parts.append(_element("service-fee-amount", _amount(service_fee_amount)))
    parts.append(
        '<refund-ids type="array">' + "".join(_element("item", refund_id) for refund_id in refund_ids) + "</refund-ids>"
    )
    parts.append("<customer>" + _elements([("id", None), ("email", customer_email)]) + "</customer>")
    if card_last_4 is not None or card_type is not None:
        parts.append(
            "<credit-card>"
            + _elements([("token", None), ("last-4", card_last_4), ("card-type", card_type), ("bin", None)])
            + "</credit-card>"
        )
    if custom_fields:
        parts.append(
            "<custom-fields>"
            + "".join(_element(_dashed(name), value) for name, value in custom_fields.items())
            + "</custom-fields>"
        )
    if disbursement_date is not None or settlement_amount is not None:
        parts.append(
            "<disbursement-details>"
            + _elements(
                [
                    ("disbursement-date", disbursement_date),
                    ("settlement-amount", None if settlement_amount is None else _amount(settlement_amount)),
                    ("settlement-currency-iso-code", settlement_currency_iso_code or currency_iso_code),
                    ("settlement-currency-exchange-rate", "1"),
                    ("funds-held", False),
                    ("success", True),
                ]
            )
            + "</disbursement-details>"
        )
    parts.append(
        '<status-history type="array">'
        + "".join(
            "<status-event>"
            + _elements([("status", event_status), ("timestamp", at), ("amount", _amount(amount))])
            + "</status-event>"
            for event_status, at in status_history
        )
        + "</status-history>"
    )
    return "<transaction>" + "".join(parts) + "</transaction>"


def dispute_xml(
    *,
    dispute_id: str,
    amount_disputed: Amount,
    transaction_id: str,
    transaction_amount: Amount,
    currency_iso_code: str = "USD",
    kind: str = "chargeback",
    reason: str = "fraud",
    status: str = "open",
    reply_by_date: date | None = None,
    received_date: date | None = None,
    created_at: datetime | None = None,
    updated_at: datetime | None = None,
    amount_won: Amount | None = None,
    case_number: str | None = None,
    reason_code: str | None = None,
    merchant_account_id: str | None = None,
    transaction_created_at: datetime | None = None,
    order_id: str | None = None,
    status_history: Sequence[tuple[str, datetime]] = (),
) -> str:
    """A ``<dispute>`` element of Braintree's current dispute shape (``amount-disputed``, history).

    ``status_history`` lists ``(status, timestamp)`` pairs oldest first; when empty, a single
    entry for the current status at ``updated_at``/``created_at`` is written, as Braintree always
    has one.
    """
    if status not in DISPUTE_STATUSES:
        raise ValueError(f"Unknown Braintree dispute status {status!r}; one of {sorted(DISPUTE_STATUSES)}.")
    if kind not in {"chargeback", "pre_arbitration", "retrieval"}:
        raise ValueError("kind must be 'chargeback', 'pre_arbitration' or 'retrieval'.")
    history = list(status_history)
    last_change = updated_at or created_at
    if not history and last_change is not None:
        history = [(status, last_change)]
    body = _elements(
        [
            ("id", dispute_id),
            ("amount", _amount(amount_disputed)),
            ("amount-disputed", _amount(amount_disputed)),
            ("amount-won", _amount(amount_won if amount_won is not None else 0)),
            ("case-number", case_number),
            ("created-at", created_at),
            ("currency-iso-code", currency_iso_code),
            ("kind", kind),
            ("merchant-account-id", merchant_account_id),
            ("reason", reason),
            ("reason-code", reason_code),
            ("received-date", received_date),
            ("reply-by-date", reply_by_date),
            ("status", status),
            ("updated-at", updated_at or created_at),
        ]
    )
    body += (
        '<status-history type="array">'
        + "".join(
            "<status-history>" + _elements([("status", entry_status), ("timestamp", at)]) + "</status-history>"
            for entry_status, at in history
        )
        + "</status-history>"
    )
    body += '<evidence type="array"/>'
    body += (
        "<transaction>"
        + _elements(
            [
                ("id", transaction_id),
                ("amount", _amount(transaction_amount)),
                ("created-at", transaction_created_at),
                ("order-id", order_id),
                ("purchase-order-number", None),
                ("payment-instrument-subtype", "Visa"),
            ]
        )
        + "</transaction>"
    )
    if received_date is not None:
        body += _element("date-opened", received_date)
    if status == "won" and history:
        body += _element("date-won", history[-1][1].date())
    return "<dispute>" + body + "</dispute>"


def subscription_xml(
    *,
    subscription_id: str,
    status: str = "Active",
    transactions: Sequence[str] = (),
    plan_id: str | None = None,
    price: Amount | None = None,
    balance: Amount = "0.00",
    failure_count: int = 0,
    next_billing_date: date | None = None,
    paid_through_date: date | None = None,
) -> str:
    """A ``<subscription>`` element; ``transactions`` are :func:`transaction_xml` strings, newest first.

    ``status`` uses Braintree's spelling: Active, Canceled, Expired, Past Due, Pending.
    """
    if status not in {"Active", "Canceled", "Expired", "Past Due", "Pending"}:
        raise ValueError("status must be one of Active, Canceled, Expired, 'Past Due', Pending.")
    for transaction in transactions:
        if not transaction.startswith("<transaction>"):
            raise ValueError("transactions must be <transaction> elements built by transaction_xml().")
    return (
        "<subscription>"
        + _elements(
            [
                ("id", subscription_id),
                ("status", status),
                ("plan-id", plan_id),
                ("balance", _amount(balance)),
                ("failure-count", failure_count),
                ("next-billing-date", next_billing_date),
                ("paid-through-date", paid_through_date),
            ]
        )
        # The SDK converts a present price to Decimal, so an unknown price is left out, not nil.
        + ("" if price is None else _element("price", _amount(price)))
        + '<transactions type="array">'
        + "".join(transactions)
        + "</transactions>"
        + '<add-ons type="array"/><discounts type="array"/>'
        + "</subscription>"
    )


def disbursement_xml(
    *,
    disbursement_id: str,
    amount: Amount,
    disbursement_date: date,
    transaction_ids: Sequence[str],
    success: bool = True,
    retry: bool = False,
    currency_iso_code: str = "USD",
    merchant_account_id: str = "sandbox_merchant_account",
    exception_message: str | None = None,
    follow_up_action: str | None = None,
    disbursement_type: str = "credit",
) -> str:
    """A ``<disbursement>`` element: a payout of settled transactions to the merchant's bank."""
    if disbursement_type not in {"credit", "debit"}:
        raise ValueError("disbursement_type must be 'credit' or 'debit'.")
    return (
        "<disbursement>"
        + _element("id", disbursement_id)
        + '<transaction-ids type="array">'
        + "".join(_element("item", transaction_id) for transaction_id in transaction_ids)
        + "</transaction-ids>"
        + _elements([("success", success), ("retry", retry)])
        + "<merchant-account>"
        + _elements(
            [
                ("id", merchant_account_id),
                ("currency-iso-code", currency_iso_code),
                ("sub-merchant-account", False),
                ("status", "active"),
            ]
        )
        + "</merchant-account>"
        + _elements(
            [
                ("amount", _amount(amount)),
                ("disbursement-date", disbursement_date),
                ("disbursement-type", disbursement_type),
                ("exception-message", exception_message),
                ("follow-up-action", follow_up_action),
            ]
        )
        + "</disbursement>"
    )


def check_xml() -> str:
    """The subject of a ``check`` notification (Braintree's "is my endpoint set up?" ping)."""
    return '<check type="boolean">true</check>'


def braintree_notification_xml(
    kind: str, subject_xml: str, *, timestamp: datetime, source_merchant_id: str | None = None
) -> str:
    """The ``<notification>`` document around a subject built by the functions above."""
    if kind not in SUPPORTED_KINDS:
        raise ValueError(f"Unsupported Braintree webhook kind {kind!r}; one of {sorted(SUPPORTED_KINDS)}.")
    source = _element("source-merchant-id", source_merchant_id) if source_merchant_id is not None else ""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        "<notification>"
        f"{_element('timestamp', timestamp)}{_element('kind', kind)}{source}"
        f"<subject>{subject_xml}</subject>"
        "</notification>"
    )


def braintree_signed(xml: str, *, public_key: str, private_key: str) -> tuple[str, str]:
    """``(bt_signature, bt_payload)`` exactly as Braintree POSTs them for ``xml``.

    The payload is MIME base64 (with its trailing newline); the signature is
    ``public_key|hex(HMAC-SHA1(key=SHA1(private_key), msg=payload))``.
    """
    if not (public_key and private_key):
        raise ValueError("Braintree public and private keys are required to sign a notification.")
    payload = base64.encodebytes(xml.encode("utf-8")).decode("ascii")
    digest = hmac.new(
        hashlib.sha1(private_key.encode("utf-8")).digest(),  # noqa: S324 (Braintree's scheme, not a choice)
        payload.encode("ascii"),
        hashlib.sha1,
    ).hexdigest()
    return f"{public_key}|{digest}", payload


def braintree_webhook_fields(
    kind: str, subject_xml: str, *, timestamp: datetime, public_key: str, private_key: str
) -> dict[str, str]:
    """The form fields of one webhook POST: ``{"bt_signature": ..., "bt_payload": ...}``."""
    signature, payload = braintree_signed(
        braintree_notification_xml(kind, subject_xml, timestamp=timestamp),
        public_key=public_key,
        private_key=private_key,
    )
    return {"bt_signature": signature, "bt_payload": payload}
