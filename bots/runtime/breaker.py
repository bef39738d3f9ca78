"""The circuit breaker of a run: stop early when the portal is down or refuses the sign-in.

Without it every remaining item would spend its attempts on a portal that cannot
answer and end ``failed``. With it the run stops at once, the item in hand goes
back to ``pending`` with its attempt given back, the items never tried stay
``pending`` untouched, and the run ends with one reason:

* ``LOGIN_REJECTED``: the portal refused the credentials (retrying locks the account);
* ``PORTAL_UNAVAILABLE``: the portal cannot be reached (connection refused, host
  unknown), or ``threshold`` portal failures in a row (HTTP 5xx, timeouts, dropped
  connections) with no success between them.

Example:
    >>> breaker = CircuitBreaker(threshold=3)
    >>> breaker.record(PortalUnavailable("PORTAL_UNAVAILABLE", "HTTP 503")), breaker.reason
    (False, None)
    >>> breaker.record(RuntimeError("Page.goto: net::ERR_CONNECTION_REFUSED at http://x/"))
    True
    >>> breaker.reason
    'PORTAL_UNAVAILABLE'
"""

from __future__ import annotations

from bots.domain.errors import ApplicationError, PortalTimeout, PortalUnavailable, as_bot_error

__all__ = ["LOGIN_REJECTED", "PORTAL_UNAVAILABLE", "CircuitBreaker", "RunStopped"]

LOGIN_REJECTED = "LOGIN_REJECTED"
PORTAL_UNAVAILABLE = "PORTAL_UNAVAILABLE"

# Chromium's network errors that mean nobody answers at that address at all.
_UNREACHABLE = ("ERR_CONNECTION_REFUSED", "ERR_ADDRESS_UNREACHABLE", "ERR_NAME_NOT_RESOLVED")
# Network errors that may be a blip (counted like a 5xx).
_FLAKY = ("ERR_CONNECTION_RESET", "ERR_CONNECTION_CLOSED", "ERR_EMPTY_RESPONSE", "ERR_TIMED_OUT")


class RunStopped(ApplicationError):
    """The breaker opened: the run stops; the item in hand goes back to ``pending``.

    ``refund`` says whether the attempt in hand is given back (it was cut short by
    the fault that opened the breaker, or never started).
    """

    def __init__(self, code: str | None = None, message: str = "", *, refund: bool = True) -> None:
        super().__init__(code, message)
        self.refund = refund


class CircuitBreaker:
    """Counts portal failures across the workers of one run; opens once, stays open."""

    def __init__(self, threshold: int = 8) -> None:
        self.threshold = threshold
        self.reason: str | None = None
        self.message: str = ""
        self._streak = 0

    @property
    def open(self) -> bool:
        """True once the run must stop."""
        return self.reason is not None

    def stopped(self, *, refund: bool) -> RunStopped:
        """The exception that stops the item in hand."""
        return RunStopped(self.reason, self.message, refund=refund)

    def success(self) -> None:
        """An item got through: the portal answers, the streak starts again."""
        self._streak = 0

    def record(self, exc: BaseException) -> bool:
        """Takes note of a failed attempt; True when it opened (or found open) the breaker."""
        if self.open:
            return True
        text = str(exc)
        if getattr(exc, "code", None) == LOGIN_REJECTED:
            return self._trip(LOGIN_REJECTED, as_bot_error(exc).message)
        if any(code in text for code in _UNREACHABLE):
            first = text.splitlines()[0] if text else type(exc).__name__
            return self._trip(PORTAL_UNAVAILABLE, f"The portal cannot be reached: {first}")
        portal_fault = isinstance(as_bot_error(exc), PortalUnavailable | PortalTimeout) or any(
            code in text for code in _FLAKY
        )
        if portal_fault:
            self._streak += 1
            if self._streak >= self.threshold:
                return self._trip(
                    PORTAL_UNAVAILABLE,
                    f"The portal failed {self._streak} times in a row; last: {as_bot_error(exc).message}",
                )
        return False

    def _trip(self, reason: str, message: str) -> bool:
        self.reason, self.message = reason, message
        return True
