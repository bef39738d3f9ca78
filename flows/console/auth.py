"""Sign-in for the console: scrypt password hashes, server-side sessions, CSRF tokens.

Passwords are stored as ``scrypt$n$r$p$salt$hash`` (standard library
``hashlib.scrypt``; salt and hash base64). A session is a random token in an
HttpOnly, SameSite=Strict cookie, held in memory with its person, expiry and CSRF
token: signing out or restarting the console ends it. Every POST carries the
session's CSRF token in a hidden field; the sign-in form, before any session,
carries one that must equal a cookie (double submit).

Example:
    >>> encoded = hash_password("correct horse battery staple")
    >>> verify_password("correct horse battery staple", encoded), verify_password("wrong", encoded)
    (True, False)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["LoginThrottle", "Session", "SessionStore", "hash_password", "tokens_match", "verify_password"]

_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1
_MAX_MEMORY = 64 * 1024 * 1024
#: A hash to check against when the user is unknown, so timing does not say who exists.
_DUMMY = "scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$" + base64.b64encode(bytes(32)).decode()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """The ``scrypt$n$r$p$salt$hash`` string to put in ``console.users.<name>.password_hash``."""
    if not password:
        raise ValueError("the password must not be empty")
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode("utf-8"),
        salt=salt,
        n=_SCRYPT_N,
        r=_SCRYPT_R,
        p=_SCRYPT_P,
        maxmem=_MAX_MEMORY,
        dklen=32,
    )
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, encoded: str | None) -> bool:
    """Whether ``password`` matches ``encoded`` (``None``: an unknown user, always False)."""
    try:
        scheme, n, r, p, salt, expected = (encoded or _DUMMY).split("$")
        if scheme != "scrypt":
            return False
        digest = hashlib.scrypt(
            password.encode("utf-8"),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=_MAX_MEMORY,
            dklen=len(base64.b64decode(expected)),
        )
    except (ValueError, TypeError):
        return False
    return encoded is not None and hmac.compare_digest(digest, base64.b64decode(expected))


def tokens_match(given: str | None, expected: str | None) -> bool:
    """Constant-time comparison of two tokens; a missing one never matches."""
    return bool(given) and bool(expected) and hmac.compare_digest(str(given), str(expected))


@dataclass
class Session:
    """A signed-in person: sign-in name, full name, CSRF token, expiry (``time.time()`` seconds)."""

    username: str
    name: str
    csrf: str
    expires: float


@dataclass
class SessionStore:
    """Sessions by token, in memory; each lasts ``ttl_s`` from sign-in."""

    ttl_s: float
    clock: Callable[[], float] = time.time
    _sessions: dict[str, Session] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, username: str, name: str) -> tuple[str, Session]:
        """A new session for this person; returns its cookie token and the session."""
        token = secrets.token_urlsafe(32)
        session = Session(username, name, secrets.token_urlsafe(32), self.clock() + self.ttl_s)
        with self._lock:
            now = self.clock()
            for stale in [t for t, s in self._sessions.items() if s.expires <= now]:
                del self._sessions[stale]
            self._sessions[token] = session
        return token, session

    def get(self, token: str | None) -> Session | None:
        """The live session of a cookie token, or ``None`` (unknown or expired)."""
        if not token:
            return None
        with self._lock:
            session = self._sessions.get(token)
            if session is not None and session.expires <= self.clock():
                del self._sessions[token]
                return None
            return session

    def end(self, token: str | None) -> None:
        """Signs a session out."""
        with self._lock:
            self._sessions.pop(token or "", None)


@dataclass
class LoginThrottle:
    """Refuses a sign-in name for ``lock_s`` after ``max_failures`` wrong passwords in a row."""

    max_failures: int = 5
    lock_s: float = 15 * 60
    clock: Callable[[], float] = time.time
    _failures: dict[str, tuple[int, float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def locked(self, username: str) -> bool:
        with self._lock:
            count, last = self._failures.get(username.lower(), (0, 0.0))
            return count >= self.max_failures and self.clock() - last < self.lock_s

    def failed(self, username: str) -> None:
        with self._lock:
            count, _last = self._failures.get(username.lower(), (0, 0.0))
            self._failures[username.lower()] = (count + 1, self.clock())

    def succeeded(self, username: str) -> None:
        with self._lock:
            self._failures.pop(username.lower(), None)
