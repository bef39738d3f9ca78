"""RFC 6238 time-based one-time passwords (SHA-1, 30 s, 6 digits) with the stdlib only.

Example:
    >>> totp("JBSWY3DPEHPK3PXP", at=59)
    '996554'
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct

__all__ = ["DEFAULT_TOTP_SECRET", "totp", "verify_totp"]

# The documented sandbox secret (base32), used when TOTP is switched on without one.
DEFAULT_TOTP_SECRET = "JBSWY3DPEHPK3PXP"


def _key(secret_b32: str) -> bytes:
    cleaned = secret_b32.replace(" ", "").upper()
    return base64.b32decode(cleaned + "=" * (-len(cleaned) % 8))


def totp(secret_b32: str, at: float, step: int = 30, digits: int = 6) -> str:
    """The code valid at Unix time ``at`` (RFC 6238 / RFC 4226 dynamic truncation)."""
    counter = int(at // step)
    mac = hmac.new(_key(secret_b32), struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    number = struct.unpack(">I", mac[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(number % 10**digits).zfill(digits)


def verify_totp(secret_b32: str, code: str, at: float, window: int = 1, step: int = 30) -> bool:
    """Whether ``code`` is valid at ``at``, allowing ``window`` steps of clock drift."""
    code = code.strip().replace(" ", "")
    if not code.isdigit():
        return False
    return any(
        hmac.compare_digest(totp(secret_b32, at + k * step, step), code) for k in range(-window, window + 1)
    )
