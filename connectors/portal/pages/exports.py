"""Files the portal hands out: CSV exports of orders and goods receipts, UBL downloads.

A real e-procurement portal has no API, but it does let a signed-in user export
its order book and goods receipts as CSV and download each invoice's UBL XML.
These are fetched with the browser context's own session cookie
(``context.request``), so there is no second sign-in and nothing is parsed from
HTML tables. Each fetch survives the portal's faults the way page navigation
does: a 5xx answer is asked again (a GET is safe to repeat), a redirect to the
sign-in form signs in again and asks again.

Example:
    >>> exports = PortalExports(session)  # doctest: +SKIP
    >>> (folder / "orders.csv").write_bytes(await exports.orders_csv())  # doctest: +SKIP
"""

from __future__ import annotations

from urllib.parse import urlsplit

from bots.domain.errors import ApplicationError, PortalUnavailable, SessionExpired
from connectors.portal.pages.base import LOGIN_PATH, TOTP_PATH, PortalSession

__all__ = ["FETCH_ATTEMPTS", "PortalExports", "fetch_file"]

FETCH_ATTEMPTS = 5
"""Times one file is asked for before the fetch gives up (5xx answers or sign-ins)."""


async def fetch_file(
    session: PortalSession,
    path: str,
    *,
    content_type: str,
    what: str,
    query: dict[str, str] | None = None,
    attempts: int = FETCH_ATTEMPTS,
) -> bytes:
    """GET a portal file with the session's cookie; the body, byte for byte.

    Args:
        session: the signed-in portal session (its browser context's cookies are used).
        path: portal path such as ``/receipts/export.csv``.
        content_type: the media type the file must have (``text/csv``); anything else
            (an HTML page) is an error, never returned as the file.
        what: how errors name the file (``"the orders export"``).
        attempts: how many answers to ask for before giving up.
        query: query parameters (empty values left out).

    Raises:
        PortalUnavailable: every answer was HTTP 5xx.
        SessionExpired: the portal kept sending the request to its sign-in form.
        ApplicationError: another status, or not the expected kind of file.
    """
    url = session.url(path, **(query or {}))
    request = session.page.context.request
    expired = False
    for _attempt in range(attempts):
        response = await request.get(url, fail_on_status_code=False)
        try:
            expired = urlsplit(response.url).path in (LOGIN_PATH, TOTP_PATH)
            if response.status >= 500:
                expired = False
                continue
            if expired:
                await session.login()
                continue
            shown_type = response.headers.get("content-type", "")
            if response.status != 200 or content_type not in shown_type:
                raise ApplicationError(
                    "DOWNLOAD_FAILED",
                    f"The portal answered HTTP {response.status} ({shown_type or 'no content type'}) "
                    f"to {what}, not a {content_type} file",
                )
            return await response.body()
        finally:
            await response.dispose()
    if expired:
        raise SessionExpired("SESSION_EXPIRED", f"The portal session kept ending while fetching {what}")
    raise PortalUnavailable("PORTAL_UNAVAILABLE", f"The portal kept answering HTTP 5xx to {what}")


class PortalExports:
    """The portal's CSV exports (the order book and goods receipts) as bytes.

    The column layout is the procbots orders and receipts format (ARCHITECTURE.md),
    so the bytes load with :func:`connectors.formats.load_orders` and
    :func:`connectors.formats.load_receipts` once written to a file.
    """

    def __init__(self, session: PortalSession) -> None:
        self.session = session

    async def orders_csv(self, **filters: str) -> bytes:
        """``/purchase-orders/export.csv``: one row per order line (filters as the PO list's)."""
        return await fetch_file(
            self.session,
            "/purchase-orders/export.csv",
            content_type="text/csv",
            what="the purchase-order export",
            query=filters,
        )

    async def receipts_csv(self, po_number: str = "") -> bytes:
        """``/receipts/export.csv``: one row per goods-receipt line (optionally of one order)."""
        return await fetch_file(
            self.session,
            "/receipts/export.csv",
            content_type="text/csv",
            what="the goods-receipt export",
            query={"po_number": po_number},
        )
