"""Staff dashboard pages of the composition root: overview, sections, audit. Thin: read, render."""

import json
from dataclasses import asdict
from datetime import timedelta
from urllib.parse import urlencode

from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone

from fintech import selectors
from fintech.core.permissions import permission_required
from fintech.sections import SECTIONS_BY_SLUG

AUDIT_PAGE_SIZE = 50


@permission_required("core.access_dashboard")
def overview(request: HttpRequest) -> HttpResponse:
    return render(request, "dashboard/overview.html", {"overview": selectors.overview()})


def section(request: HttpRequest, section: str) -> HttpResponse:
    current = SECTIONS_BY_SLUG.get(section)
    if current is None:
        raise Http404("No such section.")
    return permission_required(current.permission)(_section_page)(request, current)


def _section_page(request: HttpRequest, current) -> HttpResponse:
    context = {
        "section": current,
        "schedules": selectors.schedules_for(current.task_prefix),
        "runs_24h": selectors.task_run_counts(
            since=timezone.now() - timedelta(hours=24), task_prefix=current.task_prefix
        ),
        "recent_runs": selectors.task_results_for(current.task_prefix, limit=25),
    }
    return render(request, "dashboard/section.html", context)


@permission_required("core.view_audit")
def audit(request: HttpRequest) -> HttpResponse:
    filters = selectors.AuditFilters(
        **{name: request.GET.get(name, "").strip()[:150] for name in ("action", "actor", "target_type", "target_id")}
    )
    page = Paginator(selectors.audit_events(filters), AUDIT_PAGE_SIZE).get_page(request.GET.get("page"))
    query = urlencode({name: value for name, value in asdict(filters).items() if value})
    context = {
        "page": page,
        "filters": filters,
        "query": query,
        "verification": selectors.audit_last_verification(),
    }
    return render(request, "dashboard/audit.html", context)


@permission_required("core.view_audit")
def audit_event(request: HttpRequest, seq: int) -> HttpResponse:
    event = get_object_or_404(selectors.audit_events(selectors.AuditFilters()), seq=seq)
    details_json = json.dumps(event.details, indent=2, sort_keys=True, ensure_ascii=False)
    return render(request, "dashboard/audit_event.html", {"event": event, "details_json": details_json})
