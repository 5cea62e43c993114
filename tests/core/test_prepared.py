"""Statements run through ``prepared_cursor`` are prepared once per session and behave as Django's."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, connection, transaction

from fintech.core.prepared import prepared_cursor

pytestmark = pytest.mark.django_db

STATEMENT = "SELECT %s::int + 1, %s::text"


def prepared_statements(pattern: str = "%::int + 1,%") -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements WHERE statement LIKE %s", [pattern])
        return [row[0] for row in cursor.fetchall()]


def test_a_statement_is_prepared_once_and_answers_as_usual():
    for n in range(3):
        with prepared_cursor() as cursor:
            cursor.execute(STATEMENT, [n, "x"])
            assert cursor.fetchone() == (n + 1, "x")
    assert prepared_statements() == ["SELECT $1::int + 1, $2::text"]


def test_errors_are_djangos_and_the_transaction_goes_on():
    with transaction.atomic():
        with pytest.raises(IntegrityError), transaction.atomic(), prepared_cursor() as cursor:
            cursor.execute("INSERT INTO core_customer (id) VALUES (%s), (%s)", [1, 1])
        with prepared_cursor() as cursor:
            cursor.execute(STATEMENT, [41, "ok"])
            assert cursor.fetchone() == (42, "ok")


def test_with_prepared_statements_off_nothing_is_prepared(settings):
    settings.DATABASE_PREPARED_STATEMENTS = False
    with prepared_cursor() as cursor:
        cursor.execute("SELECT %s::int + 7, %s::text", [1, "y"])
        assert cursor.fetchone() == (8, "y")
    assert prepared_statements("%::int + 7,%") == []
