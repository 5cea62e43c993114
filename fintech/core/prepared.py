"""Prepared statements for the hot paths written out in SQL (webhook processing, the ledger).

Django's cursors bind parameters on the client, so PostgreSQL parses and plans every statement
again: for the few statements webhook processing runs per event that is about half of the
server's CPU. ``prepared_cursor()`` gives a Django cursor (same error translation, same query
log) whose statements are bound on the server and prepared by psycopg (again after a rollback,
when psycopg drops them).

Only single statements with typed parameters go through it. Prepared statements live in the
database session: behind a pooler in transaction mode (PgBouncer before 1.21, or without
``max_prepared_statements``) set ``DATABASE_PREPARED_STATEMENTS=false``.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import InterfaceError, connection
from django.db.backends.postgresql.base import ServerBindingCursor  # type: ignore[attr-defined]


class _PreparedCursor(ServerBindingCursor):
    """psycopg's server-binding cursor, preparing every statement it runs."""

    def execute(self, query: Any, params: Any = None, *, prepare: bool | None = None, binary: bool | None = None):
        return super().execute(query, params, prepare=True if prepare is None else prepare, binary=binary)


def prepared_cursor(*, health_check: bool = True) -> Any:
    """A cursor of the default connection whose statements are prepared (a plain one if disabled).

    ``health_check=False`` skips the check (a ``SELECT 1`` round trip) Django makes before a
    request's first statement with ``CONN_HEALTH_CHECKS``; the caller must then handle a kept
    connection that broke meanwhile itself (``session_ended``).
    """
    if not settings.DATABASE_PREPARED_STATEMENTS:
        return connection.cursor()  # Django's cursor makes its health check as usual
    if health_check:
        connection.close_if_health_check_failed()
    connection.ensure_connection()
    raw = connection.connection
    if raw.prepare_threshold is None:
        # Django turns psycopg's preparing off (None) for the connection. Any number turns it on;
        # only server-binding cursors such as this one ever prepare, and this one always does.
        raw.prepare_threshold = 0
    return connection._prepare_cursor(_PreparedCursor(raw))  # type: ignore[attr-defined]  # Django wraps it


# SQLSTATEs of errors that end the session: connection exceptions (08xxx), the server shutting
# down or terminating the backend (57P0x; not 57014, a cancelled statement).
_SESSION_ENDED = ("08", "57P")


def session_ended(error: BaseException | None) -> bool:
    """The error ended the database session (connection lost, backend terminated by an operator)."""
    if isinstance(error, InterfaceError):
        return True
    sqlstate = getattr(getattr(error, "__cause__", None), "sqlstate", None) or ""
    raw = connection.connection
    return sqlstate.startswith(_SESSION_ENDED) or raw is None or raw.closed or raw.broken
