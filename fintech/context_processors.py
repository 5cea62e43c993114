from django.http import HttpRequest
from django.urls import reverse

from fintech.sections import SECTIONS


def navigation(request: HttpRequest) -> dict:
    """The dashboard's navigation, with the current page marked."""
    match = getattr(request, "resolver_match", None)
    current = match and (match.kwargs.get("section") or match.url_name)
    items = [("overview", "Overview", reverse("overview"))]
    items += [(s.slug, s.title, reverse("section", kwargs={"section": s.slug})) for s in SECTIONS]
    items.append(("audit", "Audit", reverse("audit")))
    return {
        "navigation": [
            {"slug": slug, "title": title, "url": url, "active": slug == current} for slug, title, url in items
        ]
    }
