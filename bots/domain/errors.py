"""The exception taxonomy of procbots: business exceptions and system exceptions.

Every failure of a work item is one of two kinds, and the runner treats them
differently:

* :class:`BusinessError`: the data or a business rule is wrong (an unknown
  supplier, a price over tolerance, a missing purchase order). Retrying cannot
  help, so it is never retried; the item ends in ``business_exception`` with a
  reason code and a message a procurement officer understands.
* :class:`ApplicationError`: the machinery failed (the portal answered 5xx, the
  session expired, a page did not render in time, the process crashed). These
  are retried with exponential backoff and jitter; after the last attempt the
  item ends in ``failed``. It is named so as not to shadow the builtin
  ``SystemError``.

Anything else (a ``KeyError`` in a bot, Playwright's ``TimeoutError``) counts
as a system exception: :func:`classify` says which kind an exception is and
:func:`as_bot_error` turns any exception into a :class:`BotError` with a code.

Example:
    >>> raise BusinessError("UNKNOWN_SUPPLIER", "Supplier SUP-9 is not on the vendor master")
    Traceback (most recent call last):
    ...
    bots.domain.errors.BusinessError: UNKNOWN_SUPPLIER: Supplier SUP-9 is not on the vendor master
"""

from __future__ import annotations

from typing import Literal

__all__ = [
    "ApplicationError",
    "BotError",
    "BusinessError",
    "ErrorKind",
    "LeaseLost",
    "PortalTimeout",
    "PortalUnavailable",
    "SessionExpired",
    "as_bot_error",
    "classify",
]

ErrorKind = Literal["business", "system"]


class BotError(Exception):
    """A failure of a work item with a stable reason ``code`` and a readable ``message``."""

    default_code = "BOT_ERROR"

    def __init__(self, code: str | None = None, message: str = "") -> None:
        self.code: str = code or self.default_code
        self.message: str = message or self.code
        super().__init__(f"{self.code}: {self.message}")

    def __reduce__(self) -> tuple[type[BotError], tuple[str, str]]:
        # Keeps (code, message) when an error crosses a process boundary.
        return (type(self), (self.code, self.message))


class BusinessError(BotError):
    """Bad data or a broken business rule: never retried, shown to the user.

    Example:
        >>> BusinessError("PO_NOT_FOUND", "Purchase order PO-000042 is not in the portal").code
        'PO_NOT_FOUND'
    """

    default_code = "BUSINESS_RULE"


class ApplicationError(BotError):
    """A system exception (the portal, the network, the session): retried with backoff."""

    default_code = "SYSTEM_ERROR"


class PortalUnavailable(ApplicationError):
    """The portal answered with an HTTP 5xx or could not be reached."""

    default_code = "PORTAL_UNAVAILABLE"


class SessionExpired(ApplicationError):
    """The portal session ended (logged out, cookie expired); log in again and retry."""

    default_code = "SESSION_EXPIRED"


class PortalTimeout(ApplicationError):
    """A page or element did not appear in time."""

    default_code = "PORTAL_TIMEOUT"


class LeaseLost(ApplicationError):
    """This worker no longer holds the item's lease (it expired and was taken back).

    The worker must stop working on the item: another worker may own it now.
    """

    default_code = "LEASE_LOST"


def classify(exc: BaseException) -> ErrorKind:
    """``"business"`` for a :class:`BusinessError`, ``"system"`` for everything else.

    Unknown exceptions and Playwright's ``TimeoutError`` are system exceptions:
    a bug or a slow page is not the supplier's fault, and a retry may succeed.
    """
    return "business" if isinstance(exc, BusinessError) else "system"


def _is_playwright_timeout(exc: BaseException) -> bool:
    cls = type(exc)
    return cls.__name__ == "TimeoutError" and cls.__module__.startswith("playwright")


def as_bot_error(exc: BaseException) -> BotError:
    """The :class:`BotError` for any exception (the same object when it already is one).

    Playwright timeouts become :class:`PortalTimeout`; an ``httpx.HTTPStatusError``
    with a 5xx status becomes :class:`PortalUnavailable`; anything else unknown is
    an :class:`ApplicationError` with code ``UNEXPECTED_ERROR`` naming the type.
    """
    if isinstance(exc, BotError):
        return exc
    if _is_playwright_timeout(exc):
        return PortalTimeout("PORTAL_TIMEOUT", f"The portal did not respond in time: {exc}".splitlines()[0])
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    if isinstance(status, int) and status >= 500:
        return PortalUnavailable("PORTAL_UNAVAILABLE", f"The portal answered HTTP {status}")
    text = str(exc).splitlines()[0] if str(exc) else ""
    return ApplicationError(
        "UNEXPECTED_ERROR", f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    )
