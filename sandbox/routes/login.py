"""Sign-in pages: the login form with CSRF and lockout, the optional TOTP step, sign-out."""

from __future__ import annotations

import hmac
import secrets
import sqlite3
from typing import cast
from urllib.parse import quote, urlencode

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from sandbox.forms import FormField, arrange
from sandbox.portal import hash_password, safe_next
from sandbox.totp import verify_totp
from sandbox.web import SESSION_COOKIE, Web

__all__ = ["LOCKOUT_S", "LOGIN_CSRF_COOKIE", "MAX_FAILURES", "register"]

LOGIN_CSRF_COOKIE = "sbx_login_csrf"
MAX_FAILURES = 5
LOCKOUT_S = 15 * 60


def register(app: FastAPI, web: Web) -> None:
    """Add ``/login``, ``/login/totp`` and ``/logout``."""
    portal, chaos, render = web.portal, web.chaos, web.render

    def login_page(
        request: Request,
        next_url: str,
        error: str = "",
        status: int = 200,
        notice: str = "",
        username: str = "",
    ) -> HTMLResponse:
        token = secrets.token_urlsafe(24)
        fields = arrange(
            [
                FormField("username", "Username", value=username, attrs={"autocomplete": "username"}),
                FormField(
                    "password", "Password", kind="password", attrs={"autocomplete": "current-password"}
                ),
            ],
            chaos,
        )
        response = render(
            request,
            "login.html",
            {"fields": fields, "login_csrf": token, "next": next_url, "error": error, "notice": notice},
            status=status,
        )
        response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="lax")
        return response

    @app.get("/login", response_class=HTMLResponse)
    def login_form(request: Request, next: str = "/", reason: str = "") -> HTMLResponse:
        notice = "Your session has expired. Sign in again to continue." if reason == "expired" else ""
        return login_page(request, safe_next(next), notice=notice)

    @app.post("/login")
    async def login(request: Request) -> Response:
        form = await request.form()
        next_url = safe_next(str(form.get("next", "/")))
        username = str(form.get("username", "")).strip()
        password = str(form.get("password", ""))
        cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
        if not cookie or not hmac.compare_digest(cookie, str(form.get("csrf_token", ""))):
            return login_page(
                request, next_url, "Your sign-in form expired. Please try again.", 400, username=username
            )
        now = portal.now()
        with portal.db() as conn:
            user = conn.execute("SELECT * FROM users WHERE username = ?", (username,)).fetchone()
            if user is not None and user["locked_until"] > now:
                conn.execute("INSERT INTO login_events VALUES (?, ?, 'locked')", (now, username))
                minutes = max(1, round((user["locked_until"] - now) / 60))
                return login_page(
                    request,
                    next_url,
                    f"This account is locked after {MAX_FAILURES} failed sign-in attempts. "
                    f"Try again in {minutes} minutes or contact the service desk.",
                    403,
                    username=username,
                )
            ok = user is not None and hmac.compare_digest(
                hash_password(password, user["salt"]), user["password_hash"]
            )
            if not ok:
                conn.execute("INSERT INTO login_events VALUES (?, ?, 'failed')", (now, username))
                if user is not None:
                    failed = user["failed"] + 1
                    locked_until = now + LOCKOUT_S if failed >= MAX_FAILURES else 0
                    conn.execute(
                        "UPDATE users SET failed = ?, locked_until = ? WHERE username = ?",
                        (0 if locked_until else failed, locked_until, username),
                    )
                    if locked_until:
                        return login_page(
                            request,
                            next_url,
                            f"This account is locked after {MAX_FAILURES} failed sign-in attempts. "
                            "Try again in 15 minutes or contact the service desk.",
                            403,
                            username=username,
                        )
                return login_page(
                    request, next_url, "Incorrect username or password.", 401, username=username
                )
            conn.execute("UPDATE users SET failed = 0, locked_until = 0 WHERE username = ?", (username,))
            stage = "totp" if user["totp_secret"] else "full"
            token = secrets.token_urlsafe(32)
            conn.execute(
                "INSERT INTO sessions VALUES (?, ?, ?, ?, ?, ?)",
                (token, username, secrets.token_urlsafe(24), now, now + chaos.session_ttl_s, stage),
            )
            if stage == "full":
                conn.execute("INSERT INTO login_events VALUES (?, ?, 'succeeded')", (now, username))
        target = next_url if stage == "full" else f"/login/totp?next={quote(next_url)}"
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="lax")
        response.delete_cookie(LOGIN_CSRF_COOKIE)
        return response

    def pending_totp(request: Request) -> sqlite3.Row | None:
        token = request.cookies.get(SESSION_COOKIE, "")
        with portal.db() as conn:
            return cast(
                "sqlite3.Row | None",
                conn.execute(
                    "SELECT * FROM sessions WHERE token = ? AND stage = 'totp' AND expires > ?",
                    (token, portal.now()),
                ).fetchone(),
            )

    @app.get("/login/totp", response_class=HTMLResponse)
    def totp_form(request: Request, next: str = "/") -> Response:
        row = pending_totp(request)
        if row is None:
            return RedirectResponse(f"/login?{urlencode({'next': safe_next(next)})}", status_code=303)
        fields = arrange(
            [
                FormField(
                    "code", "Security code", attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}
                )
            ],
            chaos,
        )
        return render(request, "totp.html", {"fields": fields, "next": safe_next(next), "csrf": row["csrf"]})

    @app.post("/login/totp")
    async def totp_submit(request: Request) -> Response:
        form = await request.form()
        next_url = safe_next(str(form.get("next", "/")))
        row = pending_totp(request)
        if row is None or not hmac.compare_digest(row["csrf"], str(form.get("csrf_token", ""))):
            return RedirectResponse(f"/login?{urlencode({'next': next_url})}", status_code=303)
        now = portal.now()
        with portal.db() as conn:
            secret = conn.execute(
                "SELECT totp_secret FROM users WHERE username = ?", (row["username"],)
            ).fetchone()
            if not verify_totp(secret[0], str(form.get("code", "")), now):
                conn.execute("INSERT INTO login_events VALUES (?, ?, 'totp_failed')", (now, row["username"]))
                fields = arrange(
                    [
                        FormField(
                            "code",
                            "Security code",
                            error="The security code is not right. "
                            "Enter the 6-digit code from your authenticator app.",
                        )
                    ],
                    chaos,
                )
                return render(
                    request, "totp.html", {"fields": fields, "next": next_url, "csrf": row["csrf"]}, 401
                )
            conn.execute("UPDATE sessions SET stage = 'full' WHERE token = ?", (row["token"],))
            conn.execute("INSERT INTO login_events VALUES (?, ?, 'succeeded')", (now, row["username"]))
        return RedirectResponse(next_url, status_code=303)

    @app.post("/logout")
    async def logout(request: Request) -> Response:
        token = request.cookies.get(SESSION_COOKIE, "")
        with portal.db() as conn:
            conn.execute("DELETE FROM sessions WHERE token = ?", (token,))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE)
        return response
