"""Sign in and out. The form's CSRF token is double-submitted (cookie and field) before a session exists."""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from flows.console.auth import tokens_match, verify_password
from flows.console.web import SESSION_COOKIE, checked_form, console, render

router = APIRouter()
LOGIN_CSRF_COOKIE = "procbots_console_login"


def _safe_next(target: str | None) -> str:
    # Only paths of this site: never //host or a scheme (an open redirect).
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _form(request: Request, *, next_path: str, error: str | None = None, status: int = 200) -> Response:
    token = secrets.token_urlsafe(32)
    response = render(
        request, "login.html", {"next": next_path, "login_csrf": token, "error": error}, status=status
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=console(request).secure_cookies,
        max_age=3600,
    )
    return response


@router.get("/login")
def login_page(request: Request, next: str = "/") -> Response:
    return _form(request, next_path=_safe_next(next))


@router.post("/login")
async def login(request: Request) -> Response:
    state = console(request)
    form = {k: str(v) for k, v in (await request.form()).items()}
    next_path = _safe_next(form.get("next"))
    if not tokens_match(form.get("csrf_token"), request.cookies.get(LOGIN_CSRF_COOKIE)):
        return _form(request, next_path=next_path, error="The form was out of date. Try again.", status=403)
    username = form.get("username", "").strip()
    if state.throttle.locked(username):
        return _form(
            request,
            next_path=next_path,
            error="Too many wrong passwords for this name; wait 15 minutes.",
            status=429,
        )
    user = state.settings.console.users.get(username)
    hashed = user.password_hash.get_secret_value() if user else None
    if user is None or not verify_password(form.get("password", ""), hashed):
        state.throttle.failed(username)
        return _form(request, next_path=next_path, error="Wrong name or password.", status=401)
    state.throttle.succeeded(username)
    token, _session = state.sessions.start(username, user.name)
    response = RedirectResponse(next_path, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=state.secure_cookies,
        max_age=int(state.settings.console.session_ttl_s),
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE)
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    await checked_form(request)
    console(request).sessions.end(request.cookies.get(SESSION_COOKIE))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response
