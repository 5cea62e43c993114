"""Helpers shared by tests."""

from urllib.parse import quote

from django.conf import settings


def database_url(name: str | None = None) -> str:
    """A DATABASE_URL for the test database server (a Unix-socket directory percent-encoded)."""
    database = settings.DATABASES["default"]
    host = quote(database["HOST"] or "", safe="")
    return f"postgres://{database['USER']}@{host}:{database['PORT'] or 5432}/{name or database['NAME']}"


def redis_database_url(database: int) -> str:
    """REDIS_URL of the test server with another database number, for a process of a test's own."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(settings.REDIS_URL)
    if parts.scheme == "unix":
        return f"unix://{parts.path}?db={database}"
    return urlunsplit(parts._replace(path=f"/{database}"))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def login_with_mfa(client, user) -> None:
    """Sign ``user`` in as if they had passed password and TOTP (allauth's session records)."""
    import time

    from allauth.account.internal.flows.login import (
        _AUTHENTICATION_METHODS_USER_SESSION_KEY,
        AUTHENTICATION_METHODS_SESSION_KEY,
    )

    client.force_login(user)
    session = client.session
    session[_AUTHENTICATION_METHODS_USER_SESSION_KEY] = str(user.pk)
    session[AUTHENTICATION_METHODS_SESSION_KEY] = [
        {"method": "password", "at": time.time(), "username": user.get_username()},
        {"method": "mfa", "at": time.time(), "type": "totp"},
    ]
    session.save()


def totp_code(secret: str, *, offset: int = 0, min_remaining: float = 4.0) -> str:
    """The TOTP code of ``secret`` now (or ``offset`` periods away).

    A code is accepted only in its own 30-second period (MFA_TOTP_TOLERANCE = 0): when fewer
    than ``min_remaining`` seconds of the period are left, this waits for the next one, so a
    code typed by a browser test is not already stale when the form reaches the server.
    """
    import time

    from allauth.mfa.totp.internal.auth import format_hotp_value, hotp_value

    remaining = 30 - time.time() % 30
    if remaining < min_remaining:
        time.sleep(remaining + 0.05)
    return format_hotp_value(hotp_value(secret, int(time.time()) // 30 + offset))
