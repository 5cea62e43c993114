"""Encrypted model fields (AES-256-GCM, see fintech.core.crypto) and blind-index fields.

An encrypted field stores ``bytea``. Values are decrypted on first attribute access, not when the
row is loaded: a row whose value cannot be decrypted still loads, and reading that one value
raises ``EncryptedValueError`` naming the model, the field and the primary key.
"""

from __future__ import annotations

import datetime
import json
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models

from .crypto import DecryptionError, blind_index, keyring, normalize_identifier


class EncryptedValueError(Exception):
    """A stored encrypted value cannot be read (unknown key, tampered, or moved from another column)."""


class Ciphertext(bytes):
    """A value as stored, not yet decrypted."""


class _DecryptingDescriptor:
    def __init__(self, field: EncryptedField):
        self.field = field

    def __get__(self, instance, owner=None):
        if instance is None:
            return self
        if self.field.attname not in instance.__dict__:  # deferred (.only()/.defer()): load it now
            instance.refresh_from_db(fields=[self.field.attname])
        value = instance.__dict__.get(self.field.attname)
        if isinstance(value, Ciphertext):
            value = self.field.decrypt_for(instance, value)
            instance.__dict__[self.field.attname] = value
        return value

    def __set__(self, instance, value):
        instance.__dict__[self.field.attname] = value


class EncryptedField(models.BinaryField):
    """Base class: subclasses say how a Python value becomes bytes and back."""

    empty_values = [None, ""]

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("editable", True)
        super().__init__(*args, **kwargs)

    def contribute_to_class(self, cls, name, private_only=False):
        super().contribute_to_class(cls, name, private_only)
        setattr(cls, self.attname, _DecryptingDescriptor(self))

    @property
    def associated_data(self) -> str:
        return f"{self.model._meta.db_table}.{self.column}"

    # Subclasses -----------------------------------------------------------------------
    def to_bytes(self, value: Any) -> bytes:
        raise NotImplementedError

    def from_bytes(self, data: bytes) -> Any:
        raise NotImplementedError

    # Django hooks ---------------------------------------------------------------------
    def from_db_value(self, value, expression, connection):
        return None if value is None else Ciphertext(bytes(value))

    def to_python(self, value):
        return value

    def get_db_prep_value(self, value, connection, prepared=False):
        if value is None:
            return None
        if isinstance(value, Ciphertext):  # unchanged since it was loaded
            return connection.Database.Binary(bytes(value))
        stored = keyring().encrypt(self.to_bytes(value), associated_data=self.associated_data)
        return connection.Database.Binary(stored)

    def value_to_string(self, obj):
        # Serialisation (dumpdata) must never write plaintext or keys: refuse plainly.
        raise TypeError(f"{self.model.__name__}.{self.name} is encrypted and is not serialised.")

    def formfield(self, form_class=None, choices_form_class=None, **kwargs):
        return None  # pages use purpose-built forms that mask and audit; never a raw bytes widget

    def decrypt_for(self, instance, stored: bytes):
        try:
            data = keyring().decrypt(stored, associated_data=self.associated_data)
        except DecryptionError as error:
            raise EncryptedValueError(
                f"{self.model._meta.label}.{self.name} of primary key {instance.pk!r} cannot be decrypted: {error}."
            ) from None
        return self.from_bytes(data)


class EncryptedTextField(EncryptedField):
    def to_bytes(self, value: Any) -> bytes:
        return str(value).encode("utf-8")

    def from_bytes(self, data: bytes) -> str:
        return data.decode("utf-8")


class EncryptedJSONField(EncryptedField):
    def to_bytes(self, value: Any) -> bytes:
        return json.dumps(value, cls=DjangoJSONEncoder, sort_keys=True, separators=(",", ":")).encode("utf-8")

    def from_bytes(self, data: bytes) -> Any:
        return json.loads(data)


class EncryptedDateField(EncryptedField):
    def to_bytes(self, value: Any) -> bytes:
        if isinstance(value, datetime.datetime) or not isinstance(value, datetime.date):
            raise TypeError(f"{self.model.__name__}.{self.name} takes a datetime.date, not {type(value).__name__}.")
        return value.isoformat().encode("ascii")

    def from_bytes(self, data: bytes) -> datetime.date:
        return datetime.date.fromisoformat(data.decode("ascii"))


class BlindIndexField(models.CharField):
    """HMAC-SHA256 of another field's normalised value, kept in step on every save.

    ``BlindIndexField(source="tax_id")`` indexes ``tax_id``; look rows up with
    ``Model.objects.filter(tax_id_index=Model.tax_id_index_for("123-45-6789"))`` or the field's
    ``lookup_value`` helper. Equal values under the same purpose give equal indexes, so only exact
    matches are possible, and nothing about the plaintext is revealed.
    """

    def __init__(self, *args, source: str = "", purpose: str = "", normalizer=normalize_identifier, **kwargs):
        self.source = source
        self.purpose = purpose
        self.normalizer = normalizer
        kwargs.setdefault("max_length", 64)
        kwargs.setdefault("db_index", True)
        kwargs.setdefault("editable", False)
        kwargs.setdefault("blank", True)
        kwargs.setdefault("default", "")
        super().__init__(*args, **kwargs)

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        kwargs.update(source=self.source, purpose=self.purpose)
        return name, path, args, kwargs

    def lookup_value(self, value: str) -> str:
        return blind_index(value, purpose=self.purpose or self.source, normalizer=self.normalizer)

    def pre_save(self, model_instance, add):
        source_value = getattr(model_instance, self.source)
        value = "" if source_value in (None, "") else self.lookup_value(str(source_value))
        setattr(model_instance, self.attname, value)
        return value
