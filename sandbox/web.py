"""What every page of the portal needs: sessions, rendering, CSRF-checked forms, pagination.

One :class:`Web` per app; the page modules in :mod:`sandbox.routes` take it.
"""

from __future__ import annotations

import hmac
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from sandbox.portal import PAGE_SIZE, Portal, Session, gbp, london, safe_next

__all__ = ["SESSION_COOKIE", "CsrfFailed", "LoginRequired", "Web"]

HERE = Path(__file__).parent
SESSION_COOKIE = "sbx_session"


class LoginRequired(Exception):
    """Raised by a page that needs a session; answered with a redirect to the login."""

    def __init__(self, next_url: str, expired: bool, api: bool) -> None:
        super().__init__(next_url)
        self.next_url = next_url
        self.expired = expired
        self.api = api


class CsrfFailed(Exception):
    """A form came without this session's token; answered with a 400 page."""


class Web:
    """The portal, its templates and the helpers the pages share."""

    def __init__(self, portal: Portal) -> None:
        self.portal = portal
        self.chaos = portal.chaos
        self.templates = Jinja2Templates(directory=str(HERE / "templates"))
        self.templates.env.filters["london"] = london
        self.templates.env.filters["gbp"] = gbp

    def session_for(self, request: Request, api: bool = False) -> Session:
        portal = self.portal
        token = request.cookies.get(SESSION_COOKIE)
        if request.method == "GET":
            next_url = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        else:
            referer = request.headers.get("referer", "")
            match = re.match(r"https?://[^/]+(/.*)?$", referer)
            next_url = safe_next(match.group(1) if match and match.group(1) else "/")
        if not token:
            raise LoginRequired(next_url, expired=False, api=api)
        expired = False
        with portal.db() as conn:
            row = conn.execute("SELECT * FROM sessions WHERE token = ?", (token,)).fetchone()
            if row is not None and row["stage"] == "full" and row["expires"] <= portal.now():
                conn.execute("DELETE FROM sessions WHERE token = ?", (token,))
                conn.execute(
                    "INSERT INTO login_events VALUES (?, ?, 'session_expired')",
                    (portal.now(), row["username"]),
                )
                expired = True
        # Raised outside the transaction, which would otherwise roll the bookkeeping back.
        if row is None or row["stage"] != "full" or expired:
            raise LoginRequired(next_url, expired=row is None or expired, api=api)
        return Session(row["token"], row["username"], row["csrf"], row["expires"])

    def render(
        self,
        request: Request,
        name: str,
        context: dict[str, Any],
        status: int = 200,
        session: Session | None = None,
    ) -> HTMLResponse:
        ctx = {
            "session": session,
            "csrf": session.csrf if session else "",
            "slow_render_ms": self.chaos.slow_render_ms,
            "path": request.url.path,
            **context,
        }
        return self.templates.TemplateResponse(request, name, ctx, status_code=status)

    @staticmethod
    async def checked_form(request: Request, session: Session) -> Any:
        form = await request.form()
        token = str(form.get("csrf_token", ""))
        if not hmac.compare_digest(token, session.csrf):
            raise CsrfFailed()
        return form

    @staticmethod
    def page_of(request: Request) -> int:
        try:
            return max(1, int(request.query_params.get("page", "1")))
        except ValueError:
            return 1

    @staticmethod
    def pager(request: Request, page: int, total: int) -> dict[str, Any]:
        pages = max(1, -(-total // PAGE_SIZE))
        params = dict(request.query_params)

        def link(p: int) -> str:
            return request.url.path + "?" + urlencode({**params, "page": str(p)})

        return {
            "page": page,
            "pages": pages,
            "total": total,
            "prev": link(page - 1) if page > 1 else None,
            "next": link(page + 1) if page < pages else None,
        }

    def not_found(self, request: Request, session: Session | None, message: str) -> HTMLResponse:
        return self.render(
            request, "message.html", {"title": "Page not found", "message": message}, 404, session
        )
