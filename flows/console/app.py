"""The procbots console: a small web app where people work the bots' exceptions.

Pages (one router each in :mod:`flows.console.routes`): sign-in, the queues of
every bot by state and reason code, one item (payload, history, evidence, flow
run, actions) and file downloads from the outbox, evidence and audit folders.

Example:
    >>> app = create_app(get_settings())  # doctest: +SKIP
    >>> uvicorn.run(app, host="127.0.0.1", port=8800)  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles

from bots.runtime.ledger import Ledger
from config.settings import Settings
from flows.console.auth import SessionStore
from flows.console.flowruns import FlowRunFinder
from flows.console.routes import files, item, queue, signin
from flows.console.web import HERE, Console, NotSignedIn, render, to_sign_in
from flows.console.workqueue import WorkQueue

__all__ = ["create_app"]

_HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
_PAGE_POLICY = (
    "default-src 'self'; img-src 'self'; style-src 'self'; script-src 'none'; frame-ancestors 'none'"
)


def create_app(
    settings: Settings, ledger: Ledger | None = None, flow_runs: FlowRunFinder | None = None
) -> FastAPI:
    """The console over ``ledger`` (default: the one ``settings`` configure).

    Flow runs are looked up through the Prefect API of the Prefect settings in
    force when the app is made (``flow_runs`` to use another).
    """
    app = FastAPI(
        title="procbots console", docs_url=None, redoc_url=None, openapi_url=None, redirect_slashes=False
    )
    app.state.console = Console(
        settings=settings,
        queue=WorkQueue(ledger or Ledger.from_settings(settings)),
        sessions=SessionStore(ttl_s=settings.console.session_ttl_s),
        flow_runs=flow_runs or FlowRunFinder.from_prefect_settings(),
    )
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    for router in (signin.router, queue.router, item.router, files.router):
        app.include_router(router)

    @app.middleware("http")
    async def _security_headers(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        for name, value in _HEADERS.items():
            response.headers.setdefault(name, value)
        response.headers.setdefault("Content-Security-Policy", _PAGE_POLICY)
        return response

    @app.exception_handler(NotSignedIn)
    async def _not_signed_in(request: Request, exc: NotSignedIn) -> Response:
        if request.method == "GET":
            return to_sign_in(request.url.path)
        return render(request, "message.html", {"title": "Signed out", "message": _SIGNED_OUT}, status=403)

    @app.exception_handler(PermissionError)
    async def _refused(request: Request, exc: PermissionError) -> Response:
        return render(request, "message.html", {"title": "Refused", "message": str(exc)}, status=403)

    @app.get("/healthz", include_in_schema=False)
    def _healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


_SIGNED_OUT = "Your sign-in has ended. Sign in again, then repeat what you were doing."
