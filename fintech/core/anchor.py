"""Keys that sign audit checkpoints: HMAC-SHA256 under a keyring kept outside the database.

``AUDIT_ANCHOR_KEYS`` is a comma-separated list of ``<key id>:<base64 32-byte key>``, like
``FIELD_ENCRYPTION_KEYS``: the first key signs new checkpoints, every listed key verifies the
checkpoints signed under its id. Retiring a key makes the checkpoints it signed unverifiable,
which the verification reports; keep old keys listed as long as their checkpoints matter.

This module imports nothing from Django models, so the settings can validate the keyring.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
from dataclasses import dataclass
from functools import lru_cache

from .crypto import parse_key_list

SETTING = "AUDIT_ANCHOR_KEYS"


def canonical_time(moment: datetime.datetime) -> str:
    """UTC, ISO 8601 with microseconds (what PostgreSQL keeps, so it signs the same after a round trip)."""
    return moment.astimezone(datetime.UTC).isoformat(timespec="microseconds")


def checkpoint_message(*, seq: int, chain_hash: str, created_at: datetime.datetime) -> bytes:
    """The canonical signed text ``seq|hash|created_at``."""
    return f"{seq}|{chain_hash}|{canonical_time(created_at)}".encode()


@dataclass(frozen=True)
class AnchorKeyring:
    keys: dict[str, bytes]
    current_key_id: str

    @classmethod
    def parse(cls, specification: str) -> AnchorKeyring:
        keys = parse_key_list(specification, setting=SETTING, command="generate_audit_anchor_key")
        return cls(keys=keys, current_key_id=next(iter(keys)))

    def sign(self, message: bytes) -> tuple[str, str]:
        """(key id, hex HMAC-SHA256) under the current key."""
        key_id = self.current_key_id
        return key_id, hmac.new(self.keys[key_id], message, hashlib.sha256).hexdigest()

    def verify(self, message: bytes, *, key_id: str, signature: str) -> bool | None:
        """True or False; None when ``key_id`` is not in the keyring."""
        key = self.keys.get(key_id)
        if key is None:
            return None
        expected = hmac.new(key, message, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, signature)


@lru_cache(maxsize=8)
def _keyring_for(specification: str) -> AnchorKeyring:
    return AnchorKeyring.parse(specification)


def anchor_keyring() -> AnchorKeyring | None:
    """The keyring of the current settings, or None when ``AUDIT_ANCHOR_KEYS`` is unset."""
    from django.conf import settings

    specification = getattr(settings, SETTING, "")
    return _keyring_for(specification) if specification.strip() else None
