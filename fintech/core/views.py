"""The core app's pages: the health endpoint and the customer pages."""

import logging
from urllib.parse import urlencode

import redis
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import connection
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST, require_safe

from . import customers, selectors
from .audit import audit_record
from .exceptions import ValidationFailed
from .fields import EncryptedValueError
from .models import Customer
from .permissions import permission_required

logger = logging.getLogger(__name__)


def _check_database() -> dict:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return {"ok": True}


def _check_redis() -> dict:
    client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    finally:
        client.close()
    return {"ok": True}


def _check_worker() -> dict:
    health = selectors.worker_health()
    return {
        "ok": health.ok,
        "hostname": health.heartbeat.hostname if health.heartbeat else None,
        "last_heartbeat": health.heartbeat.last_seen_at.isoformat() if health.heartbeat else None,
        "age_seconds": round(health.age_seconds, 1) if health.age_seconds is not None else None,
        "max_age_seconds": health.max_age_seconds,
    }


@never_cache
@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    """200 when the database and Redis answer and a worker ran the health task recently, else 503."""
    checks = {}
    for name, check in (("database", _check_database), ("redis", _check_redis), ("worker", _check_worker)):
        try:
            checks[name] = check()
        except Exception as error:  # a health check reports failures, it never raises
            checks[name] = {"ok": False, "error": type(error).__name__}
    healthy = all(result["ok"] for result in checks.values())
    return JsonResponse({"status": "ok" if healthy else "failing", "checks": checks}, status=200 if healthy else 503)


# --------------------------------------------------------------------------- customers

CUSTOMERS_PAGE_SIZE = 50


@permission_required("core.view_customers")
def customer_list(request: HttpRequest) -> HttpResponse:
    filters = {name: request.GET.get(name, "").strip()[:100] for name in ("q", "kyc_status", "risk_rating")}
    tax_id = ""
    if request.method == "POST":
        # An exact tax-id search, sent by POST so the value stays out of access logs and history.
        if not request.user.has_perm("core.reveal_sensitive"):
            raise PermissionDenied("Your role may not search by tax id.")
        tax_id = request.POST.get("tax_id", "").strip()[:64]
        if not tax_id:
            raise ValidationFailed("Enter a tax id to search for.", field="tax_id")
    customers = selectors.customer_search(
        query=filters["q"], kyc_status=filters["kyc_status"], risk_rating=filters["risk_rating"], tax_id=tax_id
    )
    if tax_id:
        audit_record(
            actor=request.user,
            action="customer.searched_by_tax_id",
            details={"matches": customers.count()},
            request=request,
        )
    page = Paginator(customers, CUSTOMERS_PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "page": page,
        "filters": filters,
        "query": urlencode({name: value for name, value in filters.items() if value}),
        "kyc_statuses": Customer.KycStatus.choices,
        "risk_ratings": Customer.RiskRating.choices,
        "tax_id_search": bool(tax_id),
    }
    response = render(request, "core/customer_list.html", context)
    if tax_id:
        response["Cache-Control"] = "no-store"
    return response


def _sensitive_rows(customer: Customer, revealed: dict) -> list[dict]:
    rows = []
    for name in customers.SENSITIVE_FIELDS:
        label = customers.SENSITIVE_LABELS[name]
        try:
            value = getattr(customer, name)
        except EncryptedValueError:
            # One unreadable value (its key is missing, or it was altered) must not hide the rest.
            logger.error("customer %s: %s cannot be decrypted", customer.pk, name)
            rows.append({"name": name, "label": label, "unreadable": True})
            continue
        shown = _display(name, revealed[name]) if name in revealed else customers.mask(name, value)
        empty = value in (None, "")
        rows.append({"name": name, "label": label, "shown": shown, "revealed": name in revealed, "empty": empty})
    return rows


def _customer_page(request: HttpRequest, customer: Customer, *, revealed: dict | None = None, status: int = 200):
    sensitive = _sensitive_rows(customer, revealed or {})
    context = {
        "customer": customer,
        "sensitive": sensitive,
        "kyc_next": sorted(customers.KYC_TRANSITIONS[customer.kyc_status]),
        "risk_ratings": Customer.RiskRating.choices,
        "history": selectors.audit_for(customer, limit=20),
    }
    response = render(request, "core/customer_detail.html", context, status=status)
    response["Cache-Control"] = "no-store"  # a revealed value must not stay in any cache
    return response


def _display(name: str, value) -> str:
    if value in (None, ""):
        return "—"
    if name == "address" and isinstance(value, dict):
        parts = [*value.get("lines", []), value.get("city", ""), value.get("postal_code", ""), value.get("country", "")]
        return ", ".join(str(part) for part in parts if part)
    return str(value)


@permission_required("core.view_customers")
def customer_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return _customer_page(request, get_object_or_404(Customer, pk=pk))


@require_POST
@permission_required("core.reveal_sensitive")
def customer_reveal(request: HttpRequest, pk: int) -> HttpResponse:
    customer = get_object_or_404(Customer, pk=pk)
    field = request.POST.get("field", "")
    value = customers.customer_reveal(customer=customer, field=field, actor=request.user, request=request)
    return _customer_page(request, customer, revealed={field: value})


@require_POST
@permission_required("core.change_customer_status")
def customer_change_status(request: HttpRequest, pk: int, kind: str) -> HttpResponse:
    customer = get_object_or_404(Customer, pk=pk)
    reason = request.POST.get("reason", "")[:1000]
    if kind == "risk-rating":
        customers.customer_set_risk_rating(
            customer=customer, rating=request.POST.get("value", ""), actor=request.user, reason=reason, request=request
        )
    elif kind == "kyc-status":
        customers.customer_set_kyc_status(
            customer=customer, status=request.POST.get("value", ""), actor=request.user, reason=reason, request=request
        )
    elif kind == "status":
        # Freezing and unfreezing the relationship (a confirmed sanctions match freezes it too).
        value = request.POST.get("value", "")
        if value == Customer.Status.FROZEN:
            customers.customer_freeze(customer=customer, actor=request.user, reason=reason, request=request)
        elif value == Customer.Status.ACTIVE:
            customers.customer_unfreeze(customer=customer, actor=request.user, reason=reason, request=request)
        else:
            raise ValidationFailed(f"Unknown customer status {value[:20]!r}.", field="value")
    else:
        raise Http404("No such status.")
    messages.success(request, "Saved. The change is in the audit trail.")
    return redirect("customer_detail", pk=customer.pk)
