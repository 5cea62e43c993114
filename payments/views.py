"""The payments staff pages (mounted at /payments/): thin, they validate input, read, render.

Every page needs ``core.view_payments``; replaying a webhook needs ``core.operate_payments``.
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from fintech.core.money import CURRENCY_CHOICES, MoneyError, currency_code, to_minor
from fintech.core.permissions import permission_required

from . import inbox, selectors
from .models import DunningPlan, Gateway, PaymentStatus, WebhookEvent, WebhookEventStatus

VIEW = "core.view_payments"
OPERATE = "core.operate_payments"
# An amount as typed in a filter: digits, optionally a decimal point and decimals (no exponent,
# so "1e999999" never reaches the conversion), short enough to stay within a bigint.
AMOUNT_PATTERN = re.compile(r"\d{1,18}(\.\d{1,4})?")


def _any(choices) -> list[tuple[str, str]]:
    return [("", "any"), *choices]


class PaymentFilterForm(forms.Form):
    gateway = forms.ChoiceField(choices=_any(Gateway.choices), required=False)
    status = forms.ChoiceField(choices=_any(PaymentStatus.choices), required=False)
    # A text box with suggestions (a <datalist>), not a <select>: rendering 180 options through
    # the widget templates cost more than the query of the whole page.
    currency = forms.CharField(
        required=False,
        max_length=3,
        widget=forms.TextInput(attrs={"list": "currency-codes", "size": 4, "autocomplete": "off"}),
    )
    created_from = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}), label="From")
    created_to = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}), label="To")
    amount_min = forms.CharField(
        required=False, max_length=24, label="Min amount", widget=forms.TextInput(attrs={"inputmode": "decimal"})
    )
    amount_max = forms.CharField(
        required=False, max_length=24, label="Max amount", widget=forms.TextInput(attrs={"inputmode": "decimal"})
    )
    q = forms.CharField(
        required=False,
        max_length=255,
        label="Search",
        widget=forms.TextInput(attrs={"placeholder": "exact id, pay_…, customer, last4 or email", "type": "search"}),
    )

    def clean_currency(self) -> str:
        value = self.cleaned_data.get("currency", "").strip()
        try:
            return currency_code(value) if value else ""
        except MoneyError as error:
            raise forms.ValidationError(str(error)) from None

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        currency = data.get("currency") or ""
        for name in ("amount_min", "amount_max"):
            raw = (data.get(name) or "").strip()
            data[f"{name}_minor"] = None
            if not raw:
                continue
            if not currency:
                self.add_error(name, "Choose a currency to filter by amount.")
            elif not AMOUNT_PATTERN.fullmatch(raw):
                self.add_error(name, "Enter an amount such as 10.50, in the currency's units.")
            else:
                try:
                    value = to_minor(raw, currency)
                except MoneyError as error:
                    self.add_error(name, str(error))
                    continue
                if value > selectors.MAX_BIGINT:
                    self.add_error(name, "This amount is too large.")
                else:
                    data[f"{name}_minor"] = value
        low, high = data.get("amount_min_minor"), data.get("amount_max_minor")
        if low is not None and high is not None and low > high:
            self.add_error("amount_max", "The maximum is below the minimum.")
        start, end = data.get("created_from"), data.get("created_to")
        if start and end and start > end:
            self.add_error("created_to", "The end date is before the start date.")
        return data

    def filters(self) -> selectors.PaymentFilters:
        data = self.cleaned_data
        end = data.get("created_to")
        return selectors.PaymentFilters(
            gateway=data.get("gateway") or "",
            status=data.get("status") or "",
            currency=data.get("currency") or "",
            created_from=_start_of(data.get("created_from")),
            # The whole last day is included: up to the start of the next one.
            created_before=_start_of(end + timedelta(days=1)) if end and end < date.max else None,
            amount_min_minor=data.get("amount_min_minor"),
            amount_max_minor=data.get("amount_max_minor"),
            query=(data.get("q") or "").strip(),
        )


def _start_of(day: date | None) -> datetime | None:
    """Midnight of ``day`` in the dashboard's time zone (TIME_ZONE, UTC by default)."""
    return datetime.combine(day, time.min, tzinfo=timezone.get_current_timezone()) if day else None


def _query(form: forms.Form) -> str:
    """The form's non-empty values as a query string, for the pagination links."""
    return urlencode({name: form.data[name] for name in form.fields if form.data.get(name, "").strip()})


@permission_required(VIEW)
def payment_list(request: HttpRequest) -> HttpResponse:
    form = PaymentFilterForm(request.GET)
    if form.is_valid():
        page = selectors.payment_list(form.filters(), cursor=request.GET.get("cursor", ""))
    else:
        # Never a guess at what was meant: the errors are shown and no rows.
        page = selectors.KeysetPage(items=[])
    context = {
        "tab": "payments",
        "form": form,
        "page": page,
        "query": _query(form),
        "currency_codes": CURRENCY_CHOICES,
    }
    return render(request, "payments/payment_list.html", context)


@permission_required(VIEW)
def payment_detail(request: HttpRequest, public_id: str) -> HttpResponse:
    payment = selectors.payment_detail(public_id)
    if payment is None:
        raise Http404("No such payment.")
    try:
        dunning = payment.dunning
    except DunningPlan.DoesNotExist:
        dunning = None
    context = {"tab": "payments", "payment": payment, "dunning": dunning}
    return render(request, "payments/payment_detail.html", context)


# ----------------------------------------------------------------------------------- webhook inbox


class WebhookFilterForm(forms.Form):
    provider = forms.ChoiceField(choices=_any(Gateway.choices), required=False)
    status = forms.ChoiceField(choices=_any(WebhookEventStatus.choices), required=False)
    event_type = forms.CharField(required=False, max_length=100, label="Type")

    def filters(self) -> selectors.WebhookFilters:
        data = self.cleaned_data
        return selectors.WebhookFilters(
            provider=data.get("provider") or "",
            status=data.get("status") or "",
            event_type=(data.get("event_type") or "").strip(),
        )


@permission_required(VIEW)
def webhook_list(request: HttpRequest) -> HttpResponse:
    form = WebhookFilterForm(request.GET)
    if form.is_valid():
        page = selectors.webhook_inbox(form.filters(), cursor=request.GET.get("cursor", ""))
    else:
        page = selectors.KeysetPage(items=[])
    context = {"tab": "webhooks", "form": form, "page": page, "query": _query(form), "now": timezone.now()}
    return render(request, "payments/webhook_list.html", context)


def _pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


@permission_required(VIEW)
def webhook_detail(request: HttpRequest, pk: int) -> HttpResponse:
    event = selectors.webhook_detail(pk)
    if event is None:
        raise Http404("No such webhook event.")
    context = {
        "tab": "webhooks",
        "event": event,
        # Rendered as escaped text inside <pre>: a payload is data from outside, never markup.
        "payload_json": _pretty_json(event.payload),
        "headers_json": _pretty_json(event.headers),
        "done": event.status in inbox.DONE,
    }
    return render(request, "payments/webhook_detail.html", context)


@require_POST
@permission_required(OPERATE)
def webhook_replay(request: HttpRequest, pk: int) -> HttpResponse:
    event = get_object_or_404(WebhookEvent, pk=pk)
    result = inbox.webhook_replay(event=event, actor=request.user, request=request)
    if result.requeued:
        messages.success(
            request, "Replay queued: a worker processes the event again. The replay is in the audit trail."
        )
    else:
        messages.info(request, f"Nothing changed: the event was {result.reason}.")
    return redirect("payments:webhook_detail", pk=event.pk)


# ---------------------------------------------------------------------- disputes, ledger, payouts


@permission_required(VIEW)
def dispute_list(request: HttpRequest) -> HttpResponse:
    context = {"tab": "disputes", "board": selectors.dispute_board(), "now": timezone.now()}
    return render(request, "payments/dispute_list.html", context)


@permission_required(VIEW)
def ledger(request: HttpRequest) -> HttpResponse:
    return render(request, "payments/ledger.html", {"tab": "ledger", "summary": selectors.ledger_summary()})


@permission_required(VIEW)
def ledger_account(request: HttpRequest, account_id: int) -> HttpResponse:
    balance = selectors.ledger_account(account_id)
    if balance is None:
        raise Http404("No such ledger account.")
    page = selectors.account_postings(balance.account, cursor=request.GET.get("cursor", ""))
    context = {"tab": "ledger", "balance": balance, "account": balance.account, "page": page, "query": ""}
    return render(request, "payments/ledger_account.html", context)


@permission_required(VIEW)
def payout_list(request: HttpRequest) -> HttpResponse:
    context = {"tab": "payouts", "payouts": selectors.recent_payouts(), "shown": selectors.PAYOUTS_SHOWN}
    return render(request, "payments/payout_list.html", context)


@permission_required(VIEW)
def dunning_list(request: HttpRequest) -> HttpResponse:
    context = {
        "tab": "dunning",
        "plans": selectors.active_dunning_plans(),
        "active": selectors.active_dunning_count(),
        "shown": selectors.DUNNING_SHOWN,
        "now": timezone.now(),
    }
    return render(request, "payments/dunning_list.html", context)
