"""The sanctions hit review pages (mounted at /compliance/): thin, they validate input, call one
service, render.

Every page needs ``compliance.review_hit``; confirming or rejecting a proposed true match needs
``compliance.confirm_true_match`` (checked again by the services, with the four-eyes rule).
"""

from __future__ import annotations

import json
from datetime import datetime, time
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from fintech.core.customers import SENSITIVE_FIELDS, SENSITIVE_LABELS, mask
from fintech.core.fields import EncryptedValueError
from fintech.core.permissions import permission_required
from payments.selectors import KeysetPage

from . import selectors, services
from .lists.entities import ListedEntity
from .models import Hit, HitStatus, RescreenRunStatus, RescreenTrigger

REVIEW = "compliance.review_hit"
CONFIRM = "compliance.confirm_true_match"
DECISIONS = {"false-positive", "true-match", "confirm", "reject", "allow-list"}


class HitFilterForm(forms.Form):
    source = forms.ChoiceField(required=False, label="List")
    status = forms.ChoiceField(
        required=False,
        choices=[
            (selectors.STATUS_UNDECIDED, "needs review"),
            (selectors.STATUS_ANY, "any"),
            *HitStatus.choices,
        ],
    )
    score = forms.ChoiceField(required=False, label="Score", choices=[("", "any"), *selectors.SCORE_BAND_CHOICES])
    age = forms.ChoiceField(required=False, label="Raised", choices=[("", "any time"), *selectors.AGE_CHOICES])

    def __init__(self, *args: Any, sources: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        source = self.fields["source"]
        assert isinstance(source, forms.ChoiceField)  # noqa: S101 - declared above
        source.choices = [("", "any"), *((name, name) for name in sources)]

    def filters(self) -> selectors.HitFilters:
        data = self.cleaned_data
        return selectors.HitFilters(
            source=data.get("source") or "",
            status=data.get("status") or selectors.STATUS_UNDECIDED,
            score_band=data.get("score") or "",
            age=data.get("age") or "",
        )


class DecisionForm(forms.Form):
    reason = forms.CharField(max_length=services.MAX_REASON, strip=True)
    expires_on = forms.DateField(required=False)
    # Allow-list: the entry's content hash the page showed.
    entry_hash = forms.CharField(required=False, max_length=64)


def _query(form: forms.Form) -> str:
    return urlencode({name: form.data[name] for name in form.fields if form.data.get(name, "").strip()})


@permission_required(REVIEW)
def hit_queue(request: HttpRequest) -> HttpResponse:
    form = HitFilterForm(request.GET, sources=selectors.list_sources())
    page: KeysetPage[Hit]
    if form.is_valid():
        page = selectors.hit_queue(form.filters(), cursor=request.GET.get("cursor", ""))
    else:
        page = KeysetPage(items=[])
    context = {
        "tab": "hits",
        "form": form,
        "page": page,
        "query": _query(form),
        "counts": selectors.hit_counts(),
        "now": timezone.now(),
    }
    return render(request, "compliance/hit_queue.html", context)


def _customer_rows(hit: Hit) -> list[dict[str, Any]]:
    """The customer's screened details; sensitive values masked as on the customer page."""
    customer = hit.subject.customer
    if customer is None:
        return [
            {"label": "Counterparty name", "shown": hit.subject.name},
            {"label": "Country", "shown": hit.subject.country or "—"},
            {"label": "Named by", "shown": f"{hit.subject.source_type} #{hit.subject.source_id}"},
        ]
    rows: list[dict[str, Any]] = [
        {"label": "Name", "shown": customer.legal_name},
        {"label": "Kind", "shown": customer.get_kind_display()},
        {"label": "Nationality", "shown": customer.nationality or "—"},
        {"label": "Residence", "shown": customer.country_of_residence or "—"},
    ]
    for name in SENSITIVE_FIELDS:
        try:
            shown = mask(name, getattr(customer, name))
        except EncryptedValueError:
            shown = "unreadable"
        rows.append({"label": SENSITIVE_LABELS[name], "shown": shown, "masked": True})
    return rows


def _signed(value: Any) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return f"{number:+.3f}"


def _explanation(explanation: Any) -> dict[str, Any]:
    """The matcher's explanation as rows a reviewer can read: the token alignment, the factors
    with signed contributions, notes and the remaining numbers; the stored JSON stays available."""
    view: dict[str, Any] = {"summary": "", "alignment": [], "factors": [], "notes": [], "facts": [], "json": ""}
    if not isinstance(explanation, dict):
        view["json"] = json.dumps(explanation, indent=2, ensure_ascii=False, default=str)
        return view
    view["summary"] = str(explanation.get("summary", ""))
    for pair in explanation.get("alignment") or []:
        if isinstance(pair, dict):
            view["alignment"].append(
                {
                    "query": pair.get("query_token", pair.get("query", "")),
                    "listed": pair.get("list_token", pair.get("listed", "")),
                    "similarity": _number(pair.get("similarity")),
                    "weight": _number(pair.get("weight")),
                }
            )
    factors = explanation.get("factors") or {}
    if isinstance(factors, dict):
        for name, value in factors.items():
            if isinstance(value, dict):
                value = value.get("value", 0)
            view["factors"].append(
                {"name": str(name).replace("_", " "), "value": _signed(value), "positive": _is_positive(value)}
            )
    view["notes"] = [str(note) for note in explanation.get("notes") or [] if note]
    for key, value in explanation.items():
        if key in {"alignment", "factors", "notes", "summary"}:
            continue
        if isinstance(value, str | int | float | bool) or value is None:
            view["facts"].append({"name": str(key).replace("_", " "), "value": value})
        elif isinstance(value, list) and all(isinstance(item, str) for item in value):
            view["facts"].append({"name": str(key).replace("_", " "), "value": " · ".join(value) or "—"})
    view["json"] = json.dumps(explanation, indent=2, sort_keys=True, ensure_ascii=False, default=str)
    return view


def _number(value: Any) -> str:
    try:
        return f"{float(value):.3f}"
    except (TypeError, ValueError):
        return "" if value is None else str(value)


def _is_positive(value: Any) -> bool:
    try:
        return float(value) > 0
    except (TypeError, ValueError):
        return False


@permission_required(REVIEW)
def hit_detail(request: HttpRequest, pk: int) -> HttpResponse:
    hit = selectors.hit_detail(pk)
    if hit is None:
        raise Http404("No such hit.")
    entity = ListedEntity.from_json(hit.entry.data)
    now = timezone.now()
    context = {
        "tab": "hits",
        "hit": hit,
        "entity": entity,
        "customer_rows": _customer_rows(hit),
        "explanation": _explanation(hit.explanation),
        "entry_changed": hit.entry.content_hash != hit.entry_hash,
        "entry_removed": hit.entry.removed_in_id is not None,
        "other_hits": [other for other in hit.subject.all_hits if other.pk != hit.pk],  # type: ignore[attr-defined]
        "allow_entries": hit.subject.allow_entries,  # type: ignore[attr-defined]
        "now": now,
        "four_eyes_pending": hit.status == HitStatus.TRUE_MATCH_PENDING,
        "may_confirm": request.user.has_perm(CONFIRM) and hit.decided_by_id != request.user.pk,
        "open": hit.status == HitStatus.OPEN,
        "four_eyes": settings.SCREENING_FOUR_EYES,
    }
    response = render(request, "compliance/hit_detail.html", context)
    response["Cache-Control"] = "no-store"
    return response


def _end_of_day(day) -> datetime:
    return datetime.combine(day, time.max, tzinfo=timezone.get_current_timezone())


@require_POST
@permission_required(REVIEW)
def hit_decide(request: HttpRequest, pk: int, decision: str) -> HttpResponse:
    if decision not in DECISIONS:
        raise Http404("No such decision.")
    hit = get_object_or_404(Hit.objects.select_related("subject", "entry"), pk=pk)
    form = DecisionForm(request.POST)
    if not form.is_valid():
        for field, errors in form.errors.items():
            messages.error(request, f"{field.replace('_', ' ').capitalize()}: {' '.join(str(e) for e in errors)}")
        return redirect("compliance:hit_detail", pk=hit.pk)
    reason = form.cleaned_data["reason"]
    arguments = {"hit": hit, "actor": request.user, "reason": reason, "request": request}
    if decision == "false-positive":
        services.hit_mark_false_positive(**arguments)
        messages.success(request, "Marked as a false positive.")
    elif decision == "true-match":
        hit = services.hit_mark_true_match(**arguments)
        if hit.status == HitStatus.TRUE_MATCH_PENDING:
            messages.success(request, "Proposed as a true match: another reviewer must confirm it.")
        else:
            messages.success(request, "Confirmed as a true match; the customer is frozen.")
    elif decision == "confirm":
        services.hit_confirm_true_match(**arguments)
        messages.success(request, "True match confirmed; the customer is frozen.")
    elif decision == "reject":
        services.hit_reject_true_match(**arguments)
        messages.success(request, "The proposed true match was rejected; the hit is open again.")
    else:
        expires_on = form.cleaned_data.get("expires_on")
        services.hit_allow_list(
            **arguments,
            expires_at=_end_of_day(expires_on) if expires_on else None,
            reviewed_entry_hash=form.cleaned_data.get("entry_hash") or None,
        )
        messages.success(request, "Allow-listed: this pair raises no hit while the list entry is unchanged.")
    return redirect("compliance:hit_detail", pk=hit.pk)


@permission_required(REVIEW)
def rescreen_list(request: HttpRequest) -> HttpResponse:
    runs = selectors.rescreen_runs()
    # A failed full rescreen is resumed, not replaced: no new one until it finishes.
    failed_full = any(run.trigger == RescreenTrigger.MANUAL and run.status == RescreenRunStatus.FAILED for run in runs)
    context = {
        "tab": "rescreens",
        "runs": runs,
        "busy": failed_full or selectors.rescreen_in_progress(),
    }
    return render(request, "compliance/rescreen_list.html", context)


@require_POST
@permission_required(REVIEW)
def rescreen_start(request: HttpRequest) -> HttpResponse:
    run = services.rescreen_all_request(actor=request.user, request=request)
    messages.success(
        request,
        f"Rescreen #{run.pk} queued: every customer and payment counterparty is screened against the full lists.",
    )
    return redirect("compliance:rescreen_list")
