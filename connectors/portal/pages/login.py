"""The portal's sign-in page (username, password, optional security code).

Signing in is :meth:`PortalSession.login <connectors.portal.pages.base.PortalSession.login>`,
because every page may need it again when the session expires; this page object is
the explicit entry for a bot that starts a session.

Example:
    >>> await LoginPage(session).sign_in()  # doctest: +SKIP
"""

from __future__ import annotations

from connectors.portal.pages.base import PortalPage

__all__ = ["LoginPage"]


class LoginPage(PortalPage):
    """``/login``: the username and password form, then the dashboard."""

    title = "Sign in"

    async def sign_in(self) -> None:
        """Signs in and waits for the dashboard.

        Raises:
            connectors.portal.pages.base.LoginRejected: wrong credentials or a locked account.
            bots.domain.errors.PortalUnavailable: the sign-in pages kept answering 5xx.
        """
        session = self.session
        await session.page.goto(session.url("/login"), wait_until="domcontentloaded")
        await session.login()
        await session.wait_visible(session.page.get_by_role("navigation", name="Main"), "the portal menu")
