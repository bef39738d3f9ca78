"""What every console page shares: the console's state, rendering, the signed-in person, CSRF."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from config.settings import Settings
from connectors.console_links import download_route
from flows.console.auth import LoginThrottle, Session, SessionStore, tokens_match
from flows.console.flowruns import FlowRunFinder
from flows.console.workqueue import Operator, WorkQueue

__all__ = ["SESSION_COOKIE", "Console", "NotSignedIn", "console", "operator", "render", "signed_in"]

HERE = Path(__file__).parent
SESSION_COOKIE = "procbots_console"
LONDON = ZoneInfo("Europe/London")


@dataclass
class Console:
    """The console's state, kept on ``app.state.console``."""

    settings: Settings
    queue: WorkQueue
    sessions: SessionStore
    flow_runs: FlowRunFinder
    throttle: LoginThrottle = field(default_factory=LoginThrottle)
    templates: Jinja2Templates = field(init=False)

    def __post_init__(self) -> None:
        self.templates = Jinja2Templates(directory=str(HERE / "templates"))
        self.templates.env.filters["london"] = _london
        self.templates.env.filters["data_path"] = self.data_path
        self.templates.env.filters["bot_title"] = _bot_title
        self.templates.env.globals["file_link"] = lambda path: download_route(path, self.settings)

    def data_path(self, path: str) -> str:
        """A path as people know it: relative to the data root when it is inside."""
        root = self.settings.paths.root.resolve()
        target = Path(path).resolve()
        return target.relative_to(root).as_posix() if target.is_relative_to(root) else path

    @property
    def secure_cookies(self) -> bool:
        return (self.settings.console.public_url or "").startswith("https://")


class NotSignedIn(Exception):
    """The request has no live session: pages redirect to the sign-in, actions are refused."""


def console(request: Request) -> Console:
    state: Console = request.app.state.console
    return state


def signed_in(request: Request) -> Session:
    """The request's session (raises :class:`NotSignedIn` without one)."""
    session = console(request).sessions.get(request.cookies.get(SESSION_COOKIE))
    if session is None:
        raise NotSignedIn(request.url.path)
    return session


def operator(session: Session) -> Operator:
    return Operator(session.username, session.name)


async def checked_form(request: Request) -> tuple[Session, dict[str, str]]:
    """The session and form fields of a POST whose CSRF token is the session's.

    Raises:
        NotSignedIn: no live session.
        PermissionError: the CSRF token is missing or wrong.
    """
    session = signed_in(request)
    form = await request.form()
    fields = {key: str(value) for key, value in form.items()}
    if not tokens_match(fields.get("csrf_token"), session.csrf):
        raise PermissionError("the form's security token is missing or out of date")
    return session, fields


def render(
    request: Request, name: str, context: dict[str, Any], *, status: int = 200, session: Session | None = None
) -> HTMLResponse:
    """A page of the console, with the signed-in person and their CSRF token."""
    ctx = {"session": session, "csrf": session.csrf if session else "", **context}
    response: HTMLResponse = console(request).templates.TemplateResponse(
        request, name, ctx, status_code=status
    )
    return response


def to_sign_in(path: str) -> Response:
    return RedirectResponse(f"/login?next={quote(path)}", status_code=303)


def _bot_title(ledger_bot: str) -> str:
    """How people call a bot (the registry's title), by the name its items carry in the ledger."""
    from bots import registry

    titles = {bot.ledger_bot: bot.title for bot in registry.bots() if bot.ledger_bot}
    return titles.get(ledger_bot, ledger_bot)


def _london(value: datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(LONDON).strftime("%d/%m/%Y %H:%M:%S %Z")
