"""Payment rows locked, inserted and updated in SQL written out: the hot path of webhook processing.

Every event locks its payment and most update it. Through the ORM (``raw`` mapping some thirty
columns by the cursor's description, the UPDATE compiler) that cost more CPU than PostgreSQL
spends answering. Here the column list is fixed once, rows become instances with
``Model.from_db`` (the field converters applied, as the ORM would), and values are prepared by the
fields themselves (``get_db_prep_save``), so field types and encryption stay the model's business.
Payment has no save signal receivers; callers that need them use the ORM.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any

from django.db import connection
from django.db.models import Field

from fintech.core.prepared import prepared_cursor

from .models import Payment

Converter = Callable[[Any, Any, Any], Any]


@functools.cache
def _layout() -> tuple[list[Field], str, list[tuple[int, list[Converter], Any]]]:
    """The concrete fields in model order, their column list, and the converters per column."""
    fields = list(Payment._meta.concrete_fields)
    columns = ", ".join(connection.ops.quote_name(field.column) for field in fields)
    converters = []
    for index, field in enumerate(fields):
        expression = field.get_col(Payment._meta.db_table)
        found = connection.ops.get_db_converters(expression) + field.get_db_converters(connection)  # type: ignore[attr-defined]
        if found:
            converters.append((index, found, expression))
    return fields, columns, converters


def _from_row(row: tuple[Any, ...]) -> Payment:
    values = list(row)
    for index, converters, expression in _layout()[2]:
        for converter in converters:
            values[index] = converter(values[index], expression, connection)
    return Payment.from_db(connection.alias, None, values)  # type: ignore[arg-type]  # None: every field, in order


def payment_lock_by_gateway_id(gateway: str, gateway_payment_id: str) -> Payment | None:
    """The payment with this gateway id, locked; None when there is none yet."""
    _, columns, _ = _layout()
    with prepared_cursor() as cursor:
        cursor.execute(
            f"SELECT {columns} FROM {Payment._meta.db_table}"  # noqa: S608 (names from the model)
            " WHERE gateway = %s AND gateway_payment_id = %s FOR UPDATE",
            [gateway, gateway_payment_id],
        )
        row = cursor.fetchone()
    return _from_row(row) if row else None


def payment_insert(payment: Payment) -> Payment | None:
    """Insert the unsaved ``payment``, returning the stored row (locked by the insert); None when
    a payment with its gateway id exists already (nothing written)."""
    fields, columns, _ = _layout()
    written = [field for field in fields if not field.primary_key]
    names = ", ".join(connection.ops.quote_name(field.column) for field in written)
    with prepared_cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {Payment._meta.db_table} ({names}) VALUES ({', '.join(['%s'] * len(written))})"  # noqa: S608
            f" ON CONFLICT (gateway, gateway_payment_id) DO NOTHING RETURNING {columns}",
            [field.get_db_prep_save(field.pre_save(payment, add=True), connection) for field in written],
        )
        row = cursor.fetchone()
    return _from_row(row) if row else None


def _concrete_field(name: str) -> Field:
    field = Payment._meta.get_field(name)
    if not isinstance(field, Field) or not field.concrete:
        raise ValueError(f"{name} is not a column of Payment")
    return field


def payment_update(payment: Payment, names: Iterable[str]) -> None:
    """Write these fields of a locked, stored payment (like ``save(update_fields=...)``)."""
    fields = [_concrete_field(name) for name in sorted(set(names))]
    assignments = ", ".join(f"{connection.ops.quote_name(field.column)} = %s" for field in fields)
    with prepared_cursor() as cursor:
        cursor.execute(
            f"UPDATE {Payment._meta.db_table} SET {assignments} WHERE id = %s",  # noqa: S608 (names from the model)
            [*(field.get_db_prep_save(field.pre_save(payment, add=False), connection) for field in fields), payment.pk],
        )
