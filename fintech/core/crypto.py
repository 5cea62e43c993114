"""Field encryption: AES-256-GCM under a keyring, and HMAC-SHA256 blind indexes.

Stored form of an encrypted value (bytes)::

    version (1 byte, 0x01) | key id length (1 byte) | key id (ASCII) | nonce (12 bytes) | ciphertext + tag

Each value gets a fresh random 96-bit nonce. The associated data is ``"<table>.<column>"``, so a
ciphertext copied into another column (or table) fails authentication instead of decrypting.

Keyring: ``FIELD_ENCRYPTION_KEYS`` is a comma-separated list of ``<key id>:<base64 32-byte key>``;
the first is current (new writes), all of them decrypt. Blind indexes use ``BLIND_INDEX_KEY``,
a separate key, so an index never reveals anything about the encryption keys.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import secrets
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

FORMAT_VERSION = 1
NONCE_BYTES = 12
KEY_BYTES = 32
KEY_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class KeyringError(ValueError):
    """The keyring configuration is invalid; the message says what to fix."""


class DecryptionError(Exception):
    """A stored value cannot be decrypted: unknown key, tampered or misplaced ciphertext."""


def parse_key_list(specification: str, *, setting: str, command: str) -> dict[str, bytes]:
    """``<key id>:<base64 32-byte key>,...`` as an ordered dict (the first is current).

    ``setting`` names the variable in errors; ``command`` is the management command that makes a key.
    """
    entries = [entry.strip() for entry in specification.split(",") if entry.strip()]
    if not entries:
        raise KeyringError(f"{setting} is empty: generate a key with `manage.py {command}`.")
    keys: dict[str, bytes] = {}
    for position, entry in enumerate(entries, start=1):
        key_id, separator, encoded = entry.partition(":")
        if not separator or not KEY_ID_PATTERN.match(key_id):
            # Name the entry by position: echoing it could put key material in a log.
            raise KeyringError(
                f"{setting} entry {position} must look like <key id>:<base64 key>, "
                "the key id made of letters, digits, '.', '_' or '-'."
            )
        try:
            key = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise KeyringError(f"{setting} key {key_id!r} is not valid base64.") from None
        if len(key) != KEY_BYTES:
            raise KeyringError(f"{setting} key {key_id!r} must be 32 bytes; it is {len(key)}.")
        if key_id in keys:
            raise KeyringError(f"{setting} lists key id {key_id!r} twice.")
        keys[key_id] = key
    return keys


@dataclass(frozen=True)
class Keyring:
    keys: dict[str, bytes]
    current_key_id: str

    @classmethod
    def parse(cls, specification: str) -> Keyring:
        keys = parse_key_list(specification, setting="FIELD_ENCRYPTION_KEYS", command="generate_encryption_key")
        return cls(keys=keys, current_key_id=next(iter(keys)))

    def encrypt(self, plaintext: bytes, *, associated_data: str) -> bytes:
        key_id = self.current_key_id
        nonce = os.urandom(NONCE_BYTES)
        ciphertext = AESGCM(self.keys[key_id]).encrypt(nonce, plaintext, associated_data.encode())
        encoded_id = key_id.encode("ascii")
        return bytes([FORMAT_VERSION, len(encoded_id)]) + encoded_id + nonce + ciphertext

    def decrypt(self, stored: bytes, *, associated_data: str) -> bytes:
        key_id, nonce, ciphertext = split_stored_value(stored)
        key = self.keys.get(key_id)
        if key is None:
            raise DecryptionError(f"it was encrypted under key {key_id!r}, which is not in FIELD_ENCRYPTION_KEYS")
        try:
            return AESGCM(key).decrypt(nonce, ciphertext, associated_data.encode())
        except InvalidTag:
            raise DecryptionError(
                f"authentication failed under key {key_id!r}: the value was altered or belongs to another column"
            ) from None


def split_stored_value(stored: bytes) -> tuple[str, bytes, bytes]:
    """(key id, nonce, ciphertext+tag) of a stored value, without decrypting it."""
    stored = bytes(stored)
    if len(stored) < 2 or stored[0] != FORMAT_VERSION:
        raise DecryptionError("it is not an encrypted value of a known format version")
    id_length = stored[1]
    header_end = 2 + id_length
    if len(stored) < header_end + NONCE_BYTES + 16:
        raise DecryptionError("it is too short to be an encrypted value")
    try:
        key_id = stored[2:header_end].decode("ascii")
    except UnicodeDecodeError:
        raise DecryptionError("its key id is not ASCII") from None
    return key_id, stored[header_end : header_end + NONCE_BYTES], stored[header_end + NONCE_BYTES :]


def generate_key_entry(key_id: str) -> str:
    """A new keyring entry ``<key id>:<base64 key>`` with 32 random bytes."""
    if not KEY_ID_PATTERN.match(key_id):
        raise KeyringError("A key id is 1-64 letters, digits, '.', '_' or '-'.")
    return f"{key_id}:{base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()}"


@lru_cache(maxsize=8)
def _keyring_for(specification: str) -> Keyring:
    return Keyring.parse(specification)


def keyring() -> Keyring:
    """The keyring of the current settings (parsed once per distinct value)."""
    from django.conf import settings

    return _keyring_for(settings.FIELD_ENCRYPTION_KEYS)


# --------------------------------------------------------------------------- blind indexes


def normalize_identifier(value: str) -> str:
    """Case, width, spaces and punctuation do not matter: "123-45-6789" equals "123 45 6789"."""
    folded = unicodedata.normalize("NFKC", value).casefold()
    return "".join(character for character in folded if character.isalnum())


def normalize_text(value: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", value).casefold().split())


def blind_index(value: str, *, purpose: str, normalizer=normalize_identifier) -> str:
    """HMAC-SHA256 (hex) of the normalised value, under a key derived for ``purpose``.

    Deriving one key per purpose keeps equal values in different columns from having equal
    indexes, so one column's index cannot be joined against another's.
    """
    from django.conf import settings

    master = settings.BLIND_INDEX_KEY.encode()
    purpose_key = hmac.new(master, f"blind-index:{purpose}".encode(), hashlib.sha256).digest()
    return hmac.new(purpose_key, normalizer(value).encode(), hashlib.sha256).hexdigest()
