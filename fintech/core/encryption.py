"""Key rotation for every encrypted column: find values under old keys and re-encrypt them.

Each batch is its own transaction and a value is rewritten only if it has not changed since it
was read, so the job can be interrupted and run again at any time (it skips values already under
the current key) while the application keeps writing.
"""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from django.apps import apps
from django.db import models, transaction

from .crypto import DecryptionError, keyring, split_stored_value
from .fields import EncryptedField, EncryptedValueError


@dataclass
class ColumnReport:
    label: str
    values_by_key: Counter[str] = field(default_factory=Counter)
    rotated: int = 0
    errors: list[str] = field(default_factory=list)


def encrypted_columns() -> Iterator[tuple[type[models.Model], EncryptedField]]:
    for model in apps.get_models():
        for model_field in model._meta.concrete_fields:
            if isinstance(model_field, EncryptedField):
                yield model, model_field


def _stored_values(model, model_field, batch_size: int) -> Iterator[list[tuple[object, bytes]]]:
    last_pk = None
    queryset = model._base_manager.filter(**{f"{model_field.attname}__isnull": False}).order_by("pk")
    while True:
        page = queryset if last_pk is None else queryset.filter(pk__gt=last_pk)
        rows = list(page.values_list("pk", model_field.attname)[:batch_size])
        if not rows:
            return
        last_pk = rows[-1][0]
        yield rows


def _key_id(stored: bytes) -> str:
    try:
        return split_stored_value(stored)[0]
    except DecryptionError:
        return "(unreadable)"


def count_values(model, model_field) -> int:
    return model._base_manager.filter(**{f"{model_field.attname}__isnull": False}).count()


def encryption_check(batch_size: int = 1000) -> list[ColumnReport]:
    """How many values of each encrypted column are stored under each key id."""
    reports = []
    for model, model_field in encrypted_columns():
        report = ColumnReport(label=f"{model._meta.label}.{model_field.name}")
        for rows in _stored_values(model, model_field, batch_size):
            report.values_by_key.update(_key_id(stored) for _, stored in rows)
        reports.append(report)
    mfa = ColumnReport(label=MFA_LABEL)
    _mfa_check(mfa)
    reports.append(mfa)
    return reports


# --------------------------------------------------------------------------- MFA secrets
# allauth keeps TOTP secrets and recovery-code seeds in a JSON column, encrypted through
# fintech.core.accounts.MFAAdapter; they rotate with the rest.
MFA_LABEL = "mfa.Authenticator.data"
MFA_SECRET_KEYS = ("secret", "seed")


def _mfa_key_id(value: str) -> str:
    from .accounts import MFA_CIPHERTEXT_PREFIX

    if not value.startswith(MFA_CIPHERTEXT_PREFIX):
        return "(unencrypted)"
    try:
        return _key_id(base64.b64decode(value[len(MFA_CIPHERTEXT_PREFIX) :]))
    except ValueError:
        return "(unreadable)"


def _mfa_check(report: ColumnReport) -> None:
    from allauth.mfa.models import Authenticator

    for data in Authenticator.objects.values_list("data", flat=True).iterator():
        for key in MFA_SECRET_KEYS:
            if isinstance(data, dict) and isinstance(data.get(key), str):
                report.values_by_key[_mfa_key_id(data[key])] += 1


def _mfa_rotate(report: ColumnReport, current: str, batch_size: int, on_progress) -> None:
    """Like the columns: batches of authenticators, each batch one transaction, rows locked in pk order."""
    from allauth.mfa.models import Authenticator

    last_pk = 0
    while True:
        with transaction.atomic():
            batch = list(Authenticator.objects.select_for_update().filter(pk__gt=last_pk).order_by("pk")[:batch_size])
            if not batch:
                return
            before = report.values_by_key.total()
            for authenticator in batch:
                _mfa_rotate_one(report, current, authenticator)
            last_pk = batch[-1].pk
        if on_progress:
            on_progress(report.label, report.values_by_key.total() - before)


def _mfa_rotate_one(report: ColumnReport, current: str, authenticator) -> None:
    from allauth.mfa.models import Authenticator
    from django.core.exceptions import PermissionDenied

    from .accounts import MFAAdapter

    adapter = MFAAdapter()
    data, changed = dict(authenticator.data), False
    for key in MFA_SECRET_KEYS:
        value = data.get(key)
        if not isinstance(value, str):
            continue
        key_id = _mfa_key_id(value)
        report.values_by_key[key_id] += 1
        if key_id == current:
            continue
        try:
            data[key] = adapter.encrypt(adapter.decrypt(value))
        except (DecryptionError, PermissionDenied, ValueError):
            # The adapter logged why; the value itself is never shown.
            report.errors.append(f"{MFA_LABEL}[{key}] of authenticator {authenticator.pk} cannot be decrypted.")
            continue
        changed = True
        report.rotated += 1
    if changed:
        Authenticator.objects.filter(pk=authenticator.pk).update(data=data)


def mfa_secret_count() -> int:
    report = ColumnReport(label=MFA_LABEL)
    _mfa_check(report)
    return report.values_by_key.total()


def encryption_rotate(
    *, batch_size: int = 500, on_progress: Callable[[str, int], None] | None = None
) -> list[ColumnReport]:
    """Re-encrypt every value not under the current key; returns per-column counts and errors."""
    current = keyring().current_key_id
    reports = []
    for model, model_field in encrypted_columns():
        report = ColumnReport(label=f"{model._meta.label}.{model_field.name}")
        for rows in _stored_values(model, model_field, batch_size):
            with transaction.atomic():
                for pk, stored in rows:
                    key_id = _key_id(stored)
                    report.values_by_key[key_id] += 1
                    if key_id == current:
                        continue
                    row = model(pk=pk)
                    try:
                        plaintext = model_field.decrypt_for(row, stored)
                    except EncryptedValueError as error:
                        report.errors.append(str(error))
                        continue
                    # Only if unchanged since read: a concurrent write already used the current key.
                    updated = model._base_manager.filter(pk=pk, **{model_field.attname: stored}).update(
                        **{model_field.attname: plaintext}
                    )
                    report.rotated += updated
            if on_progress:
                on_progress(report.label, len(rows))
        reports.append(report)
    mfa = ColumnReport(label=MFA_LABEL)
    _mfa_rotate(mfa, current, batch_size, on_progress)
    reports.append(mfa)
    return reports
