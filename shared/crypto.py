"""Sealing and keyed hashing of one-time codes.

A code leaves the issuer in two forms only: sealed with AES-256-GCM for the
customer-facing side (the notifier and the tracking view can open it), and as an
HMAC-SHA256 digest for the verifier, which can check a candidate but never recover the
code. Both carry a key id so keys can rotate: new codes use the active key, older ones
stay verifiable while their key is kept in the ring. The associated data binds a sealed
code to its shipment and code id, so a sealed value cannot be replayed onto another
parcel.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import SecretStr

from shared.errors import ConfigurationError, SealError

__all__ = [
    "Keyring",
    "generate_code",
    "keyed_digest",
    "load_keyring",
    "open_sealed",
    "seal",
    "verify_digest",
]


@dataclass(frozen=True)
class Keyring:
    active: str
    keys: dict[str, bytes]

    def __repr__(self) -> str:
        return f"Keyring(active={self.active!r}, key_ids={sorted(self.keys)!r})"

    def key(self, key_id: str) -> bytes:
        try:
            return self.keys[key_id]
        except KeyError:
            raise SealError(f"unknown key id {key_id[:40]!r}") from None


def load_keyring(path: Path, variable: str) -> Keyring:
    """Reads a key file `{"active": id, "keys": {id: base64}}` that only its owner can read."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise ConfigurationError(f"{variable}: key file {path} does not exist") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigurationError(f"{variable}: key file {path} must not be readable by others")
    try:
        document = json.loads(path.read_text())
        keys = {kid: base64.b64decode(value, validate=True) for kid, value in document["keys"].items()}
        active = document["active"]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigurationError(f"{variable}: key file {path} is malformed ({type(exc).__name__})") from None
    if active not in keys or any(len(key) != 32 for key in keys.values()):
        raise ConfigurationError(f"{variable}: active key missing or a key is not 32 bytes")
    return Keyring(active=active, keys=keys)


def generate_code(digits: int) -> SecretStr:
    """Uniform over 10**digits values; leading zeros are part of the code."""
    return SecretStr(f"{secrets.randbelow(10**digits):0{digits}d}")


def seal(keyring: Keyring, plaintext: SecretStr, associated_data: bytes) -> tuple[str, str]:
    """Returns (key id, base64 of nonce || ciphertext-with-tag)."""
    nonce = os.urandom(12)
    sealed = AESGCM(keyring.key(keyring.active)).encrypt(
        nonce, plaintext.get_secret_value().encode(), associated_data
    )
    return keyring.active, base64.b64encode(nonce + sealed).decode()


def open_sealed(keyring: Keyring, key_id: str, blob: str, associated_data: bytes) -> SecretStr:
    try:
        raw = base64.b64decode(blob, validate=True)
        plain = AESGCM(keyring.key(key_id)).decrypt(raw[:12], raw[12:], associated_data)
    except (InvalidTag, ValueError):
        raise SealError("sealed code failed authentication") from None
    return SecretStr(plain.decode())


def keyed_digest(keyring: Keyring, code: SecretStr, context: bytes, key_id: str | None = None) -> tuple[str, str]:
    """Returns (key id, hex HMAC of context || code); the context ties it to one code id."""
    kid = key_id or keyring.active
    mac = hmac.new(keyring.key(kid), context + b"\x00" + code.get_secret_value().encode(), hashlib.sha256)
    return kid, mac.hexdigest()


def verify_digest(keyring: Keyring, key_id: str, digest: str, candidate: SecretStr, context: bytes) -> bool:
    _, expected = keyed_digest(keyring, candidate, context, key_id)
    return hmac.compare_digest(expected, digest)
