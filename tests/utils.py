"""Helpers shared by tests."""

from urllib.parse import quote

from django.conf import settings


def database_url(name: str | None = None) -> str:
    """A DATABASE_URL for the test database server (a Unix-socket directory percent-encoded)."""
    database = settings.DATABASES["default"]
    host = quote(database["HOST"] or "", safe="")
    return f"postgres://{database['USER']}@{host}:{database['PORT'] or 5432}/{name or database['NAME']}"
