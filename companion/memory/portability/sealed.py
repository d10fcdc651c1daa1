"""Sealed exports: an export encrypted with a passphrase (scrypt + AES-256-GCM), for `memory export --encrypt`;
`memory import` opens one with the same passphrase."""

from __future__ import annotations

import secrets as random_secrets
from pathlib import Path

from companion.errors import CompanionError

SEALED_MAGIC = b"COMPANION-SEALED-EXPORT-1\n"
SALT_BYTES, NONCE_BYTES = 16, 12


def _derive(secret: str, salt: bytes) -> bytes:
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    return Scrypt(salt=salt, length=32, n=2**15, r=8, p=1).derive(secret.encode("utf-8"))


def seal(data: bytes, secret: str) -> bytes:
    """An export encrypted with a passphrase: scrypt for the key, AES-256-GCM for the bytes (authenticated,
    so a wrong passphrase or a damaged file is detected, never half-read)."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    salt, nonce = random_secrets.token_bytes(SALT_BYTES), random_secrets.token_bytes(NONCE_BYTES)
    return SEALED_MAGIC + salt + nonce + AESGCM(_derive(secret, salt)).encrypt(nonce, data, SEALED_MAGIC)


def unseal(blob: bytes, secret: str) -> bytes:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    body = blob[len(SEALED_MAGIC) :]
    if not blob.startswith(SEALED_MAGIC) or len(body) < SALT_BYTES + NONCE_BYTES + 16:
        raise CompanionError("The file is not a complete encrypted companion export; nothing was imported.")
    salt, nonce, data = (
        body[:SALT_BYTES],
        body[SALT_BYTES : SALT_BYTES + NONCE_BYTES],
        body[SALT_BYTES + NONCE_BYTES :],
    )
    try:
        return AESGCM(_derive(secret, salt)).decrypt(nonce, data, SEALED_MAGIC)
    except InvalidTag:
        raise CompanionError(
            "The passphrase does not open this export (or the file is damaged); nothing was imported."
        ) from None


def is_sealed_file(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(len(SEALED_MAGIC)) == SEALED_MAGIC
    except OSError:
        return False
