"""Staff dashboard pages of the composition root: overview, sections, audit. Thin: read, render."""

from datetime import timedelta

from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from fintech import selectors
from fintech.core.permissions import staff_required
from fintech.sections import SECTIONS_BY_SLUG

AUDIT_PAGE_SIZE = 50


@staff_required
def overview(request: HttpRequest) -> HttpResponse:
    return render(request, "dashboard/overview.html", {"overview": selectors.overview()})


@staff_required
def section(request: HttpRequest, section: str) -> HttpResponse:
    current = SECTIONS_BY_SLUG.get(section)
    if current is None:
        raise Http404("No such section.")
    context = {
        "section": current,
        "schedules": selectors.schedules_for(current.task_prefix),
        "runs_24h": selectors.task_run_counts(
            since=timezone.now() - timedelta(hours=24), task_prefix=current.task_prefix
        ),
        "recent_runs": selectors.task_results_for(current.task_prefix, limit=25),
    }
    return render(request, "dashboard/section.html", context)


@staff_required
def audit(request: HttpRequest) -> HttpResponse:
    changes = selectors.staff_changes()
    username = request.GET.get("user", "").strip()[:150]
    if username:
        changes = changes.filter(user__username=username)
    page = Paginator(changes, AUDIT_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "dashboard/audit.html", {"page": page, "username": username})
