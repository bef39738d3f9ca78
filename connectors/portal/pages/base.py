"""The base of every portal page object: navigation that survives a real portal's faults.

A :class:`PortalSession` is one browser page signed in to the e-procurement portal.
Page objects (``LoginPage``, ``PurchaseOrderListPage`` ...) navigate through it, so
every page gets the same behaviour:

* **5xx pages**: a GET that answers HTTP 5xx is asked again (reading is safe to
  repeat) a few times, then :class:`~bots.domain.errors.PortalUnavailable` is raised, a
  system error the runner retries with backoff. A POST that answers 5xx is never
  repeated here: the portal may have saved it, so the caller must look first.
* **Session expiry**: when the portal sends the page to its sign-in form, the
  session signs in again (password typed through
  :func:`connectors.portal.evidence.secret_entry`, so it never reaches a trace)
  and goes back to where it was going.
* **Late rendering**: pages wait for their own heading or table (``expect`` /
  ``wait_for``), never for a fixed time.

Everything is located by role and label, never by position, id or generated CSS,
so the shuffled field order and ids of ``shuffle=1`` change nothing.

Example:
    >>> session = PortalSession(page, "http://127.0.0.1:8765", credentials)  # doctest: +SKIP
    >>> await session.open("/purchase-orders", ready=session.heading("Purchase orders"))  # doctest: +SKIP
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from pydantic import SecretStr

from bots.domain.errors import ApplicationError, PortalTimeout, PortalUnavailable, SessionExpired
from connectors.portal.evidence import secret_entry

if TYPE_CHECKING:
    from playwright.async_api import Locator, Page, Response

__all__ = [
    "LoginRejected",
    "PortalCredentials",
    "PortalPage",
    "PortalSession",
    "parse_gbp",
]

LOGIN_PATH = "/login"
TOTP_PATH = "/login/totp"


class LoginRejected(ApplicationError):
    """The portal refused the credentials or locked the account.

    Retrying would only lock the account (five failures), so sessions stop
    signing in once they saw this; the run reports it as a configuration problem.
    """

    default_code = "LOGIN_REJECTED"


@dataclass(frozen=True)
class PortalCredentials:
    """Who the bot signs in as. The password and TOTP secret stay :class:`SecretStr`."""

    username: str
    password: SecretStr
    totp_secret: SecretStr | None = None

    @classmethod
    def from_settings(cls, settings: Any = None) -> PortalCredentials:
        """The portal user of procbots settings (password from settings or the Prefect Secret block)."""
        from config.settings import get_settings, portal_password

        settings = settings or get_settings()
        return cls(settings.portal.username, portal_password(settings), settings.portal.totp_secret)


def parse_gbp(text: str) -> Decimal:
    """An amount as the portal shows it (``£1,234.50``) as a Decimal.

    Raises:
        ValueError: the text is not an amount.
    """
    cleaned = text.replace("£", "").replace(",", "").replace("\u00a0", "").strip()
    negative = cleaned.startswith("-") or (cleaned.startswith("(") and cleaned.endswith(")"))
    cleaned = cleaned.strip("()-")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise ValueError(f"not an amount: {text!r}") from None
    return -value if negative else value


def _totp(secret_b32: str, at: float | None = None, step: int = 30, digits: int = 6) -> str:
    """RFC 6238 time-based one-time password (what an authenticator app shows)."""
    key = base64.b32decode(
        secret_b32.replace(" ", "").upper() + "=" * (-len(secret_b32.replace(" ", "")) % 8)
    )
    counter = int((time.time() if at is None else at) // step)
    digest = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    code = (struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF) % 10**digits
    return f"{code:0{digits}d}"


class PortalSession:
    """One browser page signed in to the portal, which signs in again when it must.

    Args:
        page: a Playwright async page (one per browser context).
        base_url: the portal's URL, e.g. ``http://127.0.0.1:8765``.
        credentials: who to sign in as.
        get_attempts: how many times a GET answering 5xx is asked before giving up.
        max_logins: sign-ins one navigation may need before the session gives up
            (a portal that logs the user out at once would otherwise loop).
    """

    def __init__(
        self,
        page: Page,
        base_url: str,
        credentials: PortalCredentials,
        *,
        get_attempts: int = 3,
        max_logins: int = 3,
    ) -> None:
        self.page = page
        self.base_url = base_url.rstrip("/")
        self.credentials = credentials
        self.get_attempts = get_attempts
        self.max_logins = max_logins
        self.logins = 0
        self.last_status = 0
        """HTTP status of the last page this session navigated to."""
        self.rejected: LoginRejected | None = None
        self.on_relogin: Callable[[], Awaitable[None]] | None = None
        self.before_submit: Callable[[], Awaitable[None]] | None = None
        """Awaited right before every form post (the runtime's lease fence): raising stops the post."""

    # -- locators --------------------------------------------------------------------------

    def heading(self, name: str | re.Pattern[str]) -> Locator:
        """The page's main heading (level 1) with this name."""
        return self.page.get_by_role("heading", level=1, name=name)

    def url(self, path: str, **query: str) -> str:
        """Absolute URL of a portal path with an optional query."""
        tail = f"?{urlencode({k: v for k, v in query.items() if v})}" if any(query.values()) else ""
        return f"{self.base_url}{path}{tail}"

    def path(self) -> str:
        """The path of the page's current URL."""
        return urlsplit(self.page.url).path

    def on_login_page(self) -> bool:
        """True when the portal has sent this page to its sign-in (or security code) form."""
        return self.path() in (LOGIN_PATH, TOTP_PATH)

    # -- navigation ------------------------------------------------------------------------

    def check_response(self, response: Response | None, what: str) -> None:
        """Raises :class:`PortalUnavailable` for an HTTP 5xx answer."""
        status = response.status if response is not None else 0
        if status >= 500:
            raise PortalUnavailable(
                "PORTAL_UNAVAILABLE", f"The portal answered HTTP {status} to {what}; it may be busy"
            )

    async def open(self, path: str, *, ready: Locator | None = None, **query: str) -> None:
        """Go to a portal page (GET): retries 5xx answers, signs in again if sent to the login.

        Args:
            path: portal path such as ``/purchase-orders``.
            ready: a locator that is visible once the page has rendered (late rendering).
            query: query parameters.

        Raises:
            PortalUnavailable: the page answered 5xx ``get_attempts`` times in a row.
            SessionExpired: signing in again did not get back to the page.
        """
        target = self.url(path, **query)
        logins = 0
        failures = 0
        while True:
            response = await self.page.goto(target, wait_until="domcontentloaded")
            self.last_status = response.status if response is not None else 0
            try:
                self.check_response(response, f"GET {path}")
            except PortalUnavailable:
                failures += 1
                if failures >= self.get_attempts:
                    raise
                continue
            if self.on_login_page():
                logins += 1
                if logins > self.max_logins:
                    raise SessionExpired(
                        "SESSION_EXPIRED", f"The portal kept asking to sign in again on the way to {path}"
                    )
                await self.login()
                continue
            break
        if ready is not None:
            await self.wait_visible(ready, f"the {path} page")

    async def wait_visible(self, locator: Locator, what: str) -> None:
        """Waits until ``locator`` is visible; a timeout is a :class:`PortalTimeout` naming ``what``."""
        from playwright.async_api import TimeoutError as PlaywrightTimeout

        try:
            await locator.wait_for(state="visible")
        except PlaywrightTimeout:
            if self.on_login_page():
                raise SessionExpired(
                    "SESSION_EXPIRED", f"The session ended while waiting for {what}"
                ) from None
            raise PortalTimeout("PORTAL_TIMEOUT", f"The portal did not show {what} in time") from None

    @asynccontextmanager
    async def submitting(self, what: str) -> AsyncIterator[list[Response | None]]:
        """Wraps the click that posts a form; checks the answer once the next page arrived.

        The block yields a one-element list that holds the final response afterwards.
        ``before_submit`` (the runtime's lease fence) is awaited first; when it raises,
        nothing is posted.
        A 5xx answer raises :class:`PortalUnavailable` (the change may or may not be
        saved: never post again without looking); a redirect to the sign-in form
        signs in again and raises :class:`SessionExpired` (the post was not applied).
        """
        if self.before_submit is not None:
            await self.before_submit()  # the last moment to find out the item is no longer ours
        holder: list[Response | None] = [None]
        async with self.page.expect_navigation(wait_until="domcontentloaded") as navigation:
            yield holder
        response = await navigation.value
        holder[0] = response
        self.last_status = response.status if response is not None else 0
        self.check_response(response, what)
        if self.on_login_page():
            await self.login()
            raise SessionExpired("SESSION_EXPIRED", f"The portal session ended while sending {what}")

    # -- signing in ------------------------------------------------------------------------

    async def login(self) -> None:
        """Signs in through the portal's form (and security code step), landing where it was going.

        Raises:
            LoginRejected: wrong credentials or a locked account (not retried).
            PortalUnavailable: the sign-in pages kept answering 5xx.
        """
        if self.rejected is not None:
            raise self.rejected
        page = self.page
        for attempt in range(self.get_attempts):
            # The form on screen is used only when the portal just served it well; an error
            # page at /login (HTTP 5xx) or a second try loads a fresh form.
            if attempt or self.path() != LOGIN_PATH or self.last_status >= 400:
                response = await page.goto(self.url(LOGIN_PATH), wait_until="domcontentloaded")
                self.last_status = response.status if response is not None else 0
                if self.last_status >= 500:
                    continue
            heading = self.heading("Sign in")
            await self.wait_visible(heading, "the sign-in form")
            await page.get_by_label("Username", exact=True).fill(self.credentials.username)
            password = page.get_by_label("Password", exact=True)
            # Typed and sent with the trace paused; the password input is emptied before it resumes.
            async with secret_entry(page.context):
                await password.fill(self.credentials.password.get_secret_value())
                async with page.expect_navigation(wait_until="domcontentloaded") as navigation:
                    await page.get_by_role("button", name="Sign in").click()
                response = await navigation.value
            status = self.last_status = response.status if response is not None else 0
            if status >= 500 or status == 400:  # busy portal, or the sign-in form went stale
                continue
            if status in (401, 403):
                message = (await page.get_by_role("alert").first.inner_text()).strip()
                self.rejected = LoginRejected(
                    "LOGIN_REJECTED",
                    f"The portal refused to sign in {self.credentials.username}: {message}",
                )
                raise self.rejected
            if self.path() == TOTP_PATH:
                await self._security_code()
            if self.on_login_page():
                continue
            self.logins += 1
            if self.on_relogin is not None:
                await self.on_relogin()
            return
        raise PortalUnavailable("PORTAL_UNAVAILABLE", "The portal's sign-in kept failing (HTTP 5xx)")

    async def _security_code(self) -> None:
        if self.credentials.totp_secret is None:
            self.rejected = LoginRejected(
                "LOGIN_REJECTED", "The portal asks for a security code but no portal.totp_secret is set"
            )
            raise self.rejected
        page = self.page
        await self.wait_visible(self.heading("Enter your security code"), "the security code form")
        code = _totp(self.credentials.totp_secret.get_secret_value())
        async with secret_entry(page.context):
            await page.get_by_label("Security code", exact=True).fill(code)
            async with page.expect_navigation(wait_until="domcontentloaded") as navigation:
                await page.get_by_role("button", name="Verify").click()
            response = await navigation.value
        if response is not None and response.status == 401:
            raise SessionExpired("SESSION_EXPIRED", "The portal did not accept the security code")
        self.check_response(response, "the security code")


class PortalPage:
    """A page object: one portal page, reached and read through a :class:`PortalSession`."""

    title: str = ""
    """The page's level-1 heading (used to know it has rendered)."""

    def __init__(self, session: PortalSession) -> None:
        self.session = session
        self.page = session.page

    @property
    def ready(self) -> Locator:
        """Visible once the page has rendered."""
        return self.session.heading(self.title)

    async def read_table(self, table: Locator) -> list[dict[str, str]]:
        """The body rows of a table as ``{column header: cell text}``, in one round trip.

        Cells are matched to the ``<thead>`` column headers by name, so a portal
        that reorders its columns changes nothing. A row with a single cell
        spanning the table ("No purchase orders match.") is not a data row.
        """
        rows: list[dict[str, str]] = await table.evaluate(_READ_TABLE_JS)
        return rows


_READ_TABLE_JS = """
(table) => {
  const headers = Array.from(table.querySelectorAll("thead th")).map((th) => th.innerText.trim());
  const out = [];
  for (const tbody of table.tBodies) {
    for (const tr of tbody.rows) {
      if (tr.cells.length !== headers.length) continue;
      const row = {};
      Array.from(tr.cells).forEach((cell, i) => { row[headers[i]] = cell.innerText.trim(); });
      out.push(row);
    }
  }
  return out;
}
"""
