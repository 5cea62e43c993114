from django.http import HttpRequest
from django.urls import reverse

from fintech.sections import SECTIONS, SECTIONS_BY_SLUG

# Pages that belong to another page's navigation entry.
NAVIGATION_PARENT = {"audit_event": "audit", "customer_list": "customers", "customer_detail": "customers"}


def navigation(request: HttpRequest) -> dict:
    """The dashboard's navigation: the pages the user's role opens, the current one marked."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"navigation": []}
    match = getattr(request, "resolver_match", None)
    current = (match.kwargs.get("section") or match.url_name or "") if match else ""
    current = NAVIGATION_PARENT.get(current, current)
    if match and match.namespace in SECTIONS_BY_SLUG:  # an app's own pages (payments:payment_list...)
        current = match.namespace
    pages = [("overview", "Overview", reverse("overview"), "core.access_dashboard")]
    pages += [(s.slug, s.title, reverse("section", kwargs={"section": s.slug}), s.permission) for s in SECTIONS]
    pages.append(("customers", "Customers", reverse("customer_list"), "core.view_customers"))
    pages.append(("audit", "Audit", reverse("audit"), "core.view_audit"))
    items = [(slug, title, url) for slug, title, url, permission in pages if user.has_perm(permission)]
    return {
        "navigation": [
            {"slug": slug, "title": title, "url": url, "active": slug == current} for slug, title, url in items
        ]
    }
