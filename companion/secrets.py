"""Secrets live in the OS keyring, never in the TOML file.

The remote backend's API key is stored under the service "companion". Where no keyring backend exists
(a headless Linux box), saying so is better than writing the key in plain text: the user is told to set
`COMPANION_API_KEY` for the process instead.
"""

from __future__ import annotations

import os
from typing import Any

from companion.errors import CompanionError

SERVICE = "companion"
API_KEY_ENTRY = "remote-api-key"
API_KEY_ENV = "COMPANION_API_KEY"


def _keyring() -> tuple[Any, Any]:
    import keyring
    import keyring.errors

    return keyring, keyring.errors


def keyring_backend_name() -> str:
    keyring, _ = _keyring()
    backend = keyring.get_keyring()
    return f"{type(backend).__module__}.{type(backend).__name__}"


def keyring_usable() -> bool:
    keyring, _ = _keyring()
    backend = keyring.get_keyring()
    priority = getattr(backend, "priority", 0)
    return "fail" not in type(backend).__module__ and (priority is None or priority > 0)


def get_api_key() -> str | None:
    """The remote API key: the environment variable first (for scripts), then the keyring."""
    from_env = os.environ.get(API_KEY_ENV)
    if from_env:
        return from_env
    keyring, errors = _keyring()
    try:
        return keyring.get_password(SERVICE, API_KEY_ENTRY)
    except errors.KeyringError:
        return None


def set_api_key(value: str) -> None:
    keyring, errors = _keyring()
    if not value.strip():
        raise CompanionError("The API key is empty; paste the key your server expects.")
    try:
        keyring.set_password(SERVICE, API_KEY_ENTRY, value.strip())
    except errors.KeyringError as error:
        raise CompanionError(
            f"No OS keyring is available to store the key ({error}); set {API_KEY_ENV} in the environment "
            "of the companion process instead."
        ) from None


def delete_api_key() -> bool:
    keyring, errors = _keyring()
    try:
        keyring.delete_password(SERVICE, API_KEY_ENTRY)
    except errors.PasswordDeleteError:
        return False
    except errors.KeyringError as error:
        raise CompanionError(f"The OS keyring could not be reached ({error}).") from None
    return True
