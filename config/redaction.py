"""Secret values and secret-looking keys, masked wherever they would leave the process.

The one registry of secret values (:func:`register_secret`) and the one masking
function (:func:`redact`), used by log lines (:mod:`config.logging`), audit
records, artifacts, alerts and settings errors. It imports nothing of procbots,
so settings and logging both build on it without importing each other.

Example:
    >>> register_secret("hunter2")
    >>> redact({"note": "login with hunter2", "password": "x"})
    {'note': 'login with ***', 'password': '***'}
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, SecretStr

__all__ = [
    "REDACTED",
    "SECRET_KEY_PATTERN",
    "redact",
    "register_secret",
    "registered_secrets",
    "secrets_from_settings",
]

REDACTED = "***"

# Keys whose values are dropped whatever they hold. Matched anywhere in the key,
# case-insensitively, so ``portal_password``, ``X-Api-Key`` and ``set-cookie`` count.
SECRET_KEY_PATTERN = re.compile(
    r"pass(word|wd|phrase)?(?![a-z])|secret|token|api[_-]?key|authori[sz]ation|cookie|hmac|credential"
    r"|private[_-]?key|totp|signature",
    re.IGNORECASE,
)

_secret_values: set[str] = set()
_secrets_lock = threading.Lock()
# Longest first, so a secret that contains another is replaced whole.
_secret_pattern: re.Pattern[str] | None = None


def register_secret(value: str | SecretStr | None) -> None:
    """Adds a value that must never appear in a log line or audit record.

    Example:
        >>> register_secret("hunter2")
        >>> redact("login with hunter2")
        'login with ***'
    """
    global _secret_pattern
    raw = value.get_secret_value() if isinstance(value, SecretStr) else value
    if not raw:
        return
    with _secrets_lock:
        if raw in _secret_values:
            return
        _secret_values.add(raw)
        ordered = sorted(_secret_values, key=len, reverse=True)
        _secret_pattern = re.compile("|".join(re.escape(v) for v in ordered))


def registered_secrets() -> frozenset[str]:
    """The secret values currently redacted (for tests and diagnostics)."""
    return frozenset(_secret_values)


def secrets_from_settings(settings: BaseModel) -> list[str]:
    """Every non-empty ``SecretStr`` value found anywhere in a settings model."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, SecretStr):
            if value.get_secret_value():
                found.append(value.get_secret_value())
        elif isinstance(value, BaseModel):
            for name in type(value).model_fields:
                walk(getattr(value, name))
        elif isinstance(value, Mapping):
            for item in value.values():
                walk(item)
        elif isinstance(value, list | tuple | set | frozenset):
            for item in value:
                walk(item)

    walk(settings)
    return found


def _is_secret_key(key: object) -> bool:
    return isinstance(key, str) and SECRET_KEY_PATTERN.search(key) is not None


def redact(value: Any) -> Any:
    """A copy of ``value`` with secret-looking keys and known secret values masked.

    Strings have every registered secret replaced by ``***``; dicts lose the values
    of secret-looking keys; lists, tuples and sets are walked recursively;
    ``SecretStr`` becomes ``***``; other objects are kept unless their text shows a
    secret, in which case their redacted text replaces them.
    """
    pattern = _secret_pattern
    return _redact(value, pattern, 0)


def _redact(value: Any, pattern: re.Pattern[str] | None, depth: int) -> Any:
    if depth > 50:  # a cycle or absurd nesting: refuse to walk further, never leak
        return REDACTED
    if isinstance(value, str):
        return pattern.sub(REDACTED, value) if pattern is not None else value
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, SecretStr):
        return REDACTED
    if isinstance(value, Mapping):
        return {
            _redact(k, pattern, depth + 1) if isinstance(k, str) else k: (
                REDACTED if _is_secret_key(k) and v not in (None, "") else _redact(v, pattern, depth + 1)
            )
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_redact(v, pattern, depth + 1) for v in value]
    if isinstance(value, tuple):
        return tuple(_redact(v, pattern, depth + 1) for v in value)
    if isinstance(value, set | frozenset):
        return [_redact(v, pattern, depth + 1) for v in value]
    if isinstance(value, BaseModel):
        return _redact(value.model_dump(mode="json"), pattern, depth + 1)
    if isinstance(value, BaseException):
        return _redact(f"{type(value).__name__}: {value}", pattern, depth + 1)
    if pattern is not None:
        # Objects we do not know (Decimal, Path, datetime ...) are kept as they are
        # unless their text carries a secret.
        text = str(value)
        if pattern.search(text):
            return pattern.sub(REDACTED, text)
    return value
