"""The sandbox e-procurement portal: a FastAPI + Jinja2 + SQLite web app.

It behaves like the legacy portals NHS trusts run: a login with CSRF and lockout
(optionally a TOTP step), sessions that expire, forms validated server-side, no
deduplication of submissions, and chaos knobs (:mod:`sandbox.chaos`) for faults.
``/_sandbox/*`` tells tests the truth about what happened.

The pages live in :mod:`sandbox.routes`, one module per page; this module puts
them together with the chaos middleware and the answers to a missing session or
an expired form.

Example:
    >>> from sandbox.app import PortalConfig, create_app
    >>> app = create_app(PortalConfig(db_path=Path("var/sandbox/portal.db")))  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from sandbox.portal import DEFAULT_PASSWORD, DEFAULT_USERNAME, Portal, PortalConfig
from sandbox.routes import contracts, dashboard, exports, invoices, login, purchase_orders, receipts, state
from sandbox.routes.invoices import REASON_CODES
from sandbox.web import SESSION_COOKIE, CsrfFailed, LoginRequired, Web

__all__ = ["DEFAULT_PASSWORD", "DEFAULT_USERNAME", "REASON_CODES", "PortalConfig", "create_app"]

HERE = Path(__file__).parent


def create_app(config: PortalConfig) -> FastAPI:
    """The portal as an ASGI app over an already seeded database."""
    portal = Portal(config)
    chaos = config.chaos
    web = Web(portal)
    templates = web.templates
    app = FastAPI(title="Sandbox e-procurement portal", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.portal = portal
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    @app.middleware("http")
    async def _chaos(request: Request, call_next: Any) -> Response:
        path = request.url.path
        if path.startswith("/_sandbox") or path == "/healthz":
            return await call_next(request)  # type: ignore[no-any-return]
        if chaos.latency_ms:
            await asyncio.sleep(chaos.latency_ms / 1000)
        if chaos.error_rate and not path.startswith("/static") and chaos.random() < chaos.error_rate:
            status = 500 if chaos.random() < 0.5 else 503
            if request.method == "POST" and chaos.random() < 0.5:
                # The change is saved but the answer is lost, as when a legacy portal times out.
                lost = await call_next(request)
                async for _ in lost.body_iterator:
                    pass
            html = templates.get_template("error.html").render(status=status)
            return HTMLResponse(
                html, status_code=status, headers={"Retry-After": "1"} if status == 503 else None
            )
        return await call_next(request)  # type: ignore[no-any-return]

    @app.exception_handler(LoginRequired)
    async def _login_required(request: Request, exc: LoginRequired) -> Response:
        if exc.api:
            return JSONResponse(
                {"detail": "session expired" if exc.expired else "not signed in"}, status_code=401
            )
        query = {"next": exc.next_url}
        if exc.expired:
            query["reason"] = "expired"
        response = RedirectResponse(f"/login?{urlencode(query)}", status_code=303)
        if exc.expired:
            response.delete_cookie(SESSION_COOKIE)
        return response

    @app.exception_handler(CsrfFailed)
    async def _csrf_failed(request: Request, exc: CsrfFailed) -> Response:
        html = templates.get_template("message.html").render(
            title="Your form has expired",
            message="The page was open too long or came from elsewhere. Go back, reload the page and try again.",  # noqa: E501
            session=None,
        )
        return HTMLResponse(html, status_code=400)

    # Exports first: their paths would otherwise be taken for a PO or GRN number.
    pages = [dashboard, login, exports, purchase_orders, receipts, invoices, contracts]
    if config.sandbox_endpoints:
        pages.append(state)
    for page in pages:
        page.register(app, web)
    return app
