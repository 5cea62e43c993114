"""Reads for the payments staff pages: lists, one payment with everything around it, the ledger.

Long lists (payments, the webhook inbox, an account's postings) are paginated by keyset, never by
OFFSET and never with a COUNT(*) over the table: a page is "the next N rows after this key", which
an index answers in the same time on page 1 and page 20,000. The key travels in an opaque cursor;
a cursor that does not decode is treated as no cursor (the first page).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from django.core.exceptions import ValidationError
from django.db.models import Count, F, Field, Model, Prefetch, Q, QuerySet, Sum
from django.db.models.functions import Coalesce

from fintech.core.models import Customer

from .models import (
    CustomerNotification,
    Dispute,
    DunningPlan,
    Gateway,
    JournalEntry,
    LedgerAccount,
    Payment,
    Payout,
    Posting,
    Refund,
    WebhookEvent,
    WebhookEventStatus,
)

PAGE_SIZE = 50
# Customers whose email matches a search, at most; an exact email has one in practice.
MAX_CUSTOMERS_PER_SEARCH = 20
# Upper bound of a PostgreSQL bigint: a longer number typed in the search box is not an id.
MAX_BIGINT = 2**63 - 1

ModelT = TypeVar("ModelT", bound=Model)


# ----------------------------------------------------------------------------------- keyset pages


@dataclass(frozen=True)
class KeysetPage(Generic[ModelT]):
    """One page of a keyset-paginated list; a cursor is empty when there is no page that way."""

    items: list[ModelT]
    next_cursor: str = ""
    previous_cursor: str = ""

    @property
    def has_other_pages(self) -> bool:
        return bool(self.next_cursor or self.previous_cursor)


@dataclass(frozen=True)
class _Cursor:
    direction: Literal["next", "previous"]
    # Index of the segment the key belongs to (lists made of several ordered segments).
    segment: int
    key: tuple[Any, Any]


def _encode_cursor(direction: str, segment: int, key: tuple[Any, Any]) -> str:
    values = [value.isoformat() if isinstance(value, datetime) else value for value in key]
    raw = json.dumps({"d": direction, "s": segment, "k": values}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str, model: type[Model], keys: tuple[str, str], segments: int) -> _Cursor | None:
    """The cursor's content, or None for anything that is not a cursor this list produced."""
    if not cursor or len(cursor) > 200:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        direction, segment, values = data["d"], data["s"], data["k"]
        if direction not in ("next", "previous") or type(segment) is not int or not 0 <= segment < segments:
            return None
        if not isinstance(values, list) or len(values) != len(keys):
            return None
        key = tuple(_key_field(model, name).to_python(value) for name, value in zip(keys, values, strict=True))
    except (ValueError, TypeError, KeyError, binascii.Error, ValidationError, OverflowError):
        return None
    if any(value is None for value in key) or any(
        isinstance(value, datetime) and value.tzinfo is None for value in key
    ):
        return None
    if any(isinstance(value, int) and not 0 <= value <= MAX_BIGINT for value in key):
        return None
    return _Cursor(direction, segment, (key[0], key[1]))


def _key_field(model: type[Model], name: str) -> Field:
    field = model._meta.get_field(name)
    if not isinstance(field, Field):
        raise TypeError(f"{name} is not a concrete field of {model.__name__}")
    return field


def _beyond(keys: tuple[str, str], key: tuple[Any, Any], *, older: bool) -> Q:
    """Rows after ``key`` in descending order (older) or before it (newer).

    The redundant bound on the first column lets PostgreSQL use it as an index condition; the
    OR alone would be a filter applied to a scan from the top of the index.
    """
    first, second = keys
    if older:
        return Q(**{f"{first}__lte": key[0]}) & (
            Q(**{f"{first}__lt": key[0]}) | Q(**{first: key[0], f"{second}__lt": key[1]})
        )
    return Q(**{f"{first}__gte": key[0]}) & (
        Q(**{f"{first}__gt": key[0]}) | Q(**{first: key[0], f"{second}__gt": key[1]})
    )


def _key_of(item: Model, keys: tuple[str, str]) -> tuple[Any, Any]:
    return (getattr(item, keys[0]), getattr(item, keys[1]))


def keyset_page(
    segments: Sequence[QuerySet[ModelT]], *, keys: tuple[str, str], cursor: str = "", size: int = PAGE_SIZE
) -> KeysetPage[ModelT]:
    """A page of the rows of ``segments`` in turn, each ordered by ``keys`` descending.

    ``segments`` are disjoint querysets shown one after the other (the webhook inbox shows
    failures, then received, then the rest); a plain list is one segment. Each page costs one
    query per segment it touches, each an index range scan with a LIMIT.
    """
    model = segments[0].model
    position = _decode_cursor(cursor, model, keys, len(segments))
    descending = tuple(f"-{name}" for name in keys)
    if position is None or position.direction == "next":
        start = position.segment if position else 0
        found: list[tuple[int, ModelT]] = []
        for index in range(start, len(segments)):
            rows = segments[index]
            if position is not None and index == position.segment:
                rows = rows.filter(_beyond(keys, position.key, older=True))
            found += [(index, row) for row in rows.order_by(*descending)[: size + 1 - len(found)]]
            if len(found) > size:
                break
        page = found[:size]
        return KeysetPage(
            items=[row for _, row in page],
            next_cursor=_encode_cursor("next", *_last(page, keys)) if len(found) > size else "",
            previous_cursor=_encode_cursor("previous", *_first(page, keys)) if position is not None and page else "",
        )
    found = []
    for index in range(position.segment, -1, -1):
        rows = segments[index]
        if index == position.segment:
            rows = rows.filter(_beyond(keys, position.key, older=False))
        found += [(index, row) for row in rows.order_by(*keys)[: size + 1 - len(found)]]
        if len(found) > size:
            break
    if len(found) <= size:
        # Nothing before these rows: this is the first page, shown as the first page is.
        return keyset_page(segments, keys=keys, size=size)
    page = list(reversed(found[:size]))
    return KeysetPage(
        items=[row for _, row in page],
        next_cursor=_encode_cursor("next", *_last(page, keys)),
        previous_cursor=_encode_cursor("previous", *_first(page, keys)),
    )


def _first(page: list[tuple[int, ModelT]], keys: tuple[str, str]) -> tuple[int, tuple[Any, Any]]:
    return page[0][0], _key_of(page[0][1], keys)


def _last(page: list[tuple[int, ModelT]], keys: tuple[str, str]) -> tuple[int, tuple[Any, Any]]:
    return page[-1][0], _key_of(page[-1][1], keys)


# ---------------------------------------------------------------------------------------- payments

PAYMENT_KEYS = ("created_at", "id")
# The columns the list shows (the wide ones, metadata and description, stay in the table).
PAYMENT_LIST_FIELDS = (
    "public_id",
    "gateway",
    "gateway_payment_id",
    "amount_minor",
    "currency",
    "amount_refunded_minor",
    "status",
    "failure_code",
    "card_brand",
    "card_last4",
    "email",
    "created_at",
    "customer__legal_name",
)


@dataclass(frozen=True)
class PaymentFilters:
    """Validated filters of the payments list; amounts in minor units of ``currency``."""

    gateway: str = ""
    status: str = ""
    currency: str = ""
    created_from: datetime | None = None
    # Exclusive upper bound (the start of the day after the last day asked for).
    created_before: datetime | None = None
    amount_min_minor: int | None = None
    amount_max_minor: int | None = None
    # Exact identifiers: gateway payment or charge id, our public id, customer id or email, card
    # last4, payer email.
    query: str = ""


def _search(query: str) -> Q:
    """Exact matches only, each on an indexed column, so PostgreSQL ORs index scans together."""
    # The unique index is on (gateway, gateway_payment_id): naming every gateway lets PostgreSQL
    # use it for the id alone (one index descent per gateway).
    condition = (
        Q(gateway__in=Gateway.values, gateway_payment_id=query) | Q(gateway_charge_id=query) | Q(public_id=query)
    )
    if "@" in query:
        condition |= Q(email=query.lower())
        customer_ids = list(
            Customer.objects.filter(email__iexact=query).values_list("pk", flat=True)[:MAX_CUSTOMERS_PER_SEARCH]
        )
        if customer_ids:
            condition |= Q(customer_id__in=customer_ids)
    if query.isascii() and query.isdigit():
        if len(query) == 4:
            condition |= Q(card_last4=query)
        if int(query) <= MAX_BIGINT:
            condition |= Q(customer_id=int(query))
    return condition


def payments_filtered(filters: PaymentFilters) -> QuerySet[Payment]:
    payments = Payment.objects.select_related("customer").only(*PAYMENT_LIST_FIELDS)
    if filters.gateway:
        payments = payments.filter(gateway=filters.gateway)
    if filters.status:
        payments = payments.filter(status=filters.status)
    if filters.currency:
        payments = payments.filter(currency=filters.currency)
    if filters.created_from:
        payments = payments.filter(created_at__gte=filters.created_from)
    if filters.created_before:
        payments = payments.filter(created_at__lt=filters.created_before)
    if filters.amount_min_minor is not None:
        payments = payments.filter(amount_minor__gte=filters.amount_min_minor)
    if filters.amount_max_minor is not None:
        payments = payments.filter(amount_minor__lte=filters.amount_max_minor)
    if filters.query:
        payments = payments.filter(_search(filters.query))
    return payments


def payment_list(filters: PaymentFilters, *, cursor: str = "", size: int = PAGE_SIZE) -> KeysetPage[Payment]:
    """Payments newest first (created_at, id), by keyset on the index payments_payment_recent."""
    return keyset_page([payments_filtered(filters)], keys=PAYMENT_KEYS, cursor=cursor, size=size)


def payment_detail(public_id: str) -> Payment | None:
    """One payment with its events, journal entries and postings, refunds, disputes, dunning plan
    and notifications, each fetched once (six queries, whatever their number of rows)."""
    postings = Posting.objects.select_related("account").order_by("id")
    entries = JournalEntry.objects.order_by("occurred_at", "id").prefetch_related(Prefetch("postings", postings))
    events = WebhookEvent.objects.defer("payload", "raw_body", "headers").order_by("occurred_at", "id")
    return (
        Payment.objects.select_related("customer", "dunning", "merchant")
        .prefetch_related(
            Prefetch("webhook_events", events),
            Prefetch("journal_entries", entries),
            Prefetch("refunds", Refund.objects.order_by("created_at", "id")),
            Prefetch("disputes", Dispute.objects.order_by("opened_at", "id")),
            Prefetch("notifications", CustomerNotification.objects.order_by("created_at", "id")),
        )
        .filter(public_id=public_id)
        .first()
    )


# ----------------------------------------------------------------------------------- webhook inbox

WEBHOOK_KEYS = ("received_at", "id")
# The inbox shows these groups in this order, each newest first: what needs a look comes first.
WEBHOOK_SEGMENTS: tuple[tuple[str, ...], ...] = (
    (WebhookEventStatus.FAILED,),
    (WebhookEventStatus.RECEIVED,),
    (WebhookEventStatus.PROCESSED, WebhookEventStatus.IGNORED),
)
WEBHOOK_LIST_FIELDS = (
    "provider",
    "event_id",
    "event_type",
    "object_id",
    "occurred_at",
    "received_at",
    "status",
    "attempts",
    "last_error",
    "next_retry_at",
    "processed_at",
    "payment__public_id",
)


@dataclass(frozen=True)
class WebhookFilters:
    provider: str = ""
    status: str = ""
    event_type: str = ""


def webhook_inbox(filters: WebhookFilters, *, cursor: str = "", size: int = PAGE_SIZE) -> KeysetPage[WebhookEvent]:
    """Failed events first, then received (not yet processed), then the rest; newest first in each."""
    events = WebhookEvent.objects.select_related("payment").only(*WEBHOOK_LIST_FIELDS)
    if filters.provider:
        events = events.filter(provider=filters.provider)
    if filters.event_type:
        events = events.filter(event_type=filters.event_type)
    segments = []
    for statuses in WEBHOOK_SEGMENTS:
        wanted = [status for status in statuses if not filters.status or status == filters.status]
        # A segment the status filter rules out stays in place (cursors name segments by index)
        # but asks the database for nothing.
        segments.append(events.filter(status__in=wanted) if wanted else events.none())
    return keyset_page(segments, keys=WEBHOOK_KEYS, cursor=cursor, size=size)


def webhook_detail(pk: int) -> WebhookEvent | None:
    return WebhookEvent.objects.select_related("payment").filter(pk=pk).first()


# ---------------------------------------------------------------------------------------- disputes

CLOSED_DISPUTES_SHOWN = 50


@dataclass(frozen=True)
class DisputeBoard:
    open: list[Dispute]
    recently_closed: list[Dispute]


def dispute_board() -> DisputeBoard:
    """Open disputes by evidence due date (soonest first, undated last); the latest closed ones."""
    disputes = Dispute.objects.select_related("payment").defer("payment__metadata", "payment__description")
    final = Dispute.FINAL_STATUSES
    # Due date first; an open dispute without one comes after the dated ones, oldest first.
    open_disputes = disputes.exclude(status__in=final).order_by(
        F("evidence_due_by").asc(nulls_last=True), "opened_at", "id"
    )
    closed = disputes.filter(status__in=final).order_by("-closed_at", "-opened_at", "-id")[:CLOSED_DISPUTES_SHOWN]
    return DisputeBoard(open=list(open_disputes), recently_closed=list(closed))


# ------------------------------------------------------------------------------------------ ledger


@dataclass
class AccountBalance:
    account: LedgerAccount
    # Sum of postings: debits positive, credits negative.
    net_minor: int
    postings: int
    # The balance on the account's normal side (debit for most, credit for customer funds);
    # negative when the account holds the opposite of its normal balance.
    balance_minor: int = field(init=False)
    normal_side: str = field(init=False)

    def __post_init__(self) -> None:
        credit_normal = self.account.kind in LedgerAccount.CREDIT_NORMAL
        self.normal_side = "credit" if credit_normal else "debit"
        self.balance_minor = -self.net_minor if credit_normal else self.net_minor


@dataclass
class CurrencyTotals:
    currency: str
    debits_minor: int = 0
    credits_minor: int = 0

    @property
    def balanced(self) -> bool:
        return self.debits_minor == self.credits_minor

    @property
    def difference_minor(self) -> int:
        return self.debits_minor - self.credits_minor


@dataclass(frozen=True)
class LedgerSummary:
    # Grouped by (gateway, currency), in that order.
    groups: list[tuple[str, str, list[AccountBalance]]]
    currencies: list[CurrencyTotals]

    @property
    def balanced(self) -> bool:
        return all(totals.balanced for totals in self.currencies)


def ledger_summary() -> LedgerSummary:
    """Every account's balance, derived from its postings in one aggregate query.

    Per currency, debit balances must equal credit balances: that is the statement that the
    ledger balances (the database enforces it per entry; this shows it for the whole book).
    """
    accounts = LedgerAccount.objects.annotate(
        net=Coalesce(Sum("postings__amount_minor"), 0), posting_count=Count("postings")
    ).order_by("gateway", "currency", "kind")
    groups: dict[tuple[str, str], list[AccountBalance]] = {}
    currencies: dict[str, CurrencyTotals] = {}
    for account in accounts:
        balance = AccountBalance(account=account, net_minor=account.net, postings=account.posting_count)
        groups.setdefault((account.gateway, account.currency), []).append(balance)
        totals = currencies.setdefault(account.currency, CurrencyTotals(account.currency))
        if balance.net_minor > 0:
            totals.debits_minor += balance.net_minor
        else:
            totals.credits_minor -= balance.net_minor
    return LedgerSummary(
        groups=[(gateway, currency, rows) for (gateway, currency), rows in groups.items()],
        currencies=[currencies[code] for code in sorted(currencies)],
    )


POSTING_KEYS = ("entry_id", "id")


def ledger_account(pk: int) -> AccountBalance | None:
    account = (
        LedgerAccount.objects.annotate(net=Coalesce(Sum("postings__amount_minor"), 0), posting_count=Count("postings"))
        .filter(pk=pk)
        .first()
    )
    if account is None:
        return None
    return AccountBalance(account=account, net_minor=account.net, postings=account.posting_count)


def account_postings(account: LedgerAccount, *, cursor: str = "", size: int = PAGE_SIZE) -> KeysetPage[Posting]:
    """An account's postings, latest entry first, by keyset on the index payments_posting_account."""
    postings = Posting.objects.filter(account=account).select_related("entry", "entry__payment", "entry__payout")
    postings = postings.defer("entry__payment__metadata", "entry__payment__description")
    return keyset_page([postings], keys=POSTING_KEYS, cursor=cursor, size=size)


# ------------------------------------------------------------------------------- payouts, dunning

PAYOUTS_SHOWN = 100
DUNNING_SHOWN = 200


def recent_payouts(*, limit: int = PAYOUTS_SHOWN) -> list[Payout]:
    return list(Payout.objects.order_by("-created_at", "-id")[:limit])


def active_dunning_plans(*, limit: int = DUNNING_SHOWN) -> list[DunningPlan]:
    """Active plans, the next attempt due first."""
    return list(
        DunningPlan.objects.filter(status=DunningPlan.Status.ACTIVE)
        .select_related("payment")
        .only(
            "status",
            "attempts",
            "next_attempt_at",
            "last_failure_code",
            "last_attempt_at",
            "created_at",
            "payment__public_id",
            "payment__amount_minor",
            "payment__currency",
            "payment__email",
            "payment__failure_code",
        )
        .order_by("next_attempt_at", "id")[:limit]
    )


def active_dunning_count() -> int:
    return DunningPlan.objects.filter(status=DunningPlan.Status.ACTIVE).count()
