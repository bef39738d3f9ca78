"""The sandbox e-procurement portal: a FastAPI + Jinja2 + SQLite web app.

It behaves like the legacy portals NHS trusts run: a login with CSRF and lockout
(optionally a TOTP step), sessions that expire, forms validated server-side, no
deduplication of submissions, and chaos knobs (:mod:`sandbox.chaos`) for faults.
``/_sandbox/*`` tells tests the truth about what happened.

Example:
    >>> from sandbox.app import PortalConfig, create_app
    >>> app = create_app(PortalConfig(db_path=Path("var/sandbox/portal.db")))  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import hashlib
import hmac
import io
import json
import re
import secrets
import sqlite3
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from sandbox.chaos import ChaosSpec
from sandbox.seed import CONTRACT_COLUMNS, CONTRACT_PLACEHOLDERS, vat_is_valid
from sandbox.totp import verify_totp
from sandbox.ubl import parse_ubl

__all__ = ["DEFAULT_PASSWORD", "DEFAULT_USERNAME", "REASON_CODES", "PortalConfig", "create_app"]

HERE = Path(__file__).parent
DEFAULT_USERNAME = "buyer1"
DEFAULT_PASSWORD = "Sandbox-Buyer-2026!"  # documented sandbox credential, not a secret
SESSION_COOKIE = "sbx_session"
LOGIN_CSRF_COOKIE = "sbx_login_csrf"
MAX_FAILURES = 5
LOCKOUT_S = 15 * 60
PAGE_SIZE = 25
LONDON = ZoneInfo("Europe/London")
PENNY = Decimal("0.01")
VAT_RATES = ("20", "5", "0")
INVOICE_STATUSES = ("received", "approved", "on_hold", "rejected")
PO_STATUSES = ("open", "part_received", "received")
PROCEDURES = (
    ("open", "Open procedure"),
    ("competitive_flexible", "Competitive flexible procedure"),
    ("direct_award", "Direct award"),
    ("framework_call_off", "Call-off from a framework"),
    ("dynamic_market", "Dynamic market"),
    ("below_threshold", "Below threshold"),
)
REASON_CODES = (
    "NO_PO",
    "PO_NOT_FOUND",
    "SUPPLIER_MISMATCH",
    "CURRENCY_MISMATCH",
    "LINE_NOT_ON_PO",
    "PRICE_OVER_TOLERANCE",
    "QTY_OVER_ORDERED",
    "QTY_OVER_RECEIVED",
    "NOT_RECEIVED",
    "VAT_RATE_MISMATCH",
    "VAT_ARITHMETIC",
    "TOTALS_ARITHMETIC",
    "DUPLICATE_INVOICE",
    "POSSIBLE_DUPLICATE",
    "CREDIT_NOTE_NO_REFERENCE",
    "CREDIT_EXCEEDS_INVOICED",
    "OTHER",
)
MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_KPIS = 100
MAX_KPI_CHARS = 250
"""KPIs on one contract, and characters in one KPI name, the register accepts."""


@dataclass
class PortalConfig:
    """How one portal process runs."""

    db_path: Path
    chaos: ChaosSpec = field(default_factory=ChaosSpec)
    username: str = DEFAULT_USERNAME
    password: str = DEFAULT_PASSWORD
    totp_secret: str | None = None
    sandbox_endpoints: bool = True


class LoginRequired(Exception):
    """Raised by a page that needs a session; answered with a redirect to the login."""

    def __init__(self, next_url: str, expired: bool, api: bool) -> None:
        super().__init__(next_url)
        self.next_url = next_url
        self.expired = expired
        self.api = api


@dataclass
class Session:
    token: str
    username: str
    csrf: str
    expires: float


@dataclass
class FormField:
    """One labelled input of a form; ``dom_id``/``container_id`` change per load under shuffle."""

    name: str
    label: str
    kind: str = "text"
    value: str = ""
    error: str = ""
    hint: str = ""
    options: list[tuple[str, str]] = field(default_factory=list)
    dom_id: str = ""
    container_id: str = ""
    attrs: dict[str, str] = field(default_factory=dict)


def _hash_password(password: str, salt: str) -> str:
    return hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), 20_000).hex()


def _money(value: Decimal) -> Decimal:
    return value.quantize(PENNY, rounding=ROUND_HALF_UP)


def _gtin_ok(code: str) -> bool:
    body, check = code[:-1], code[-1]
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return str((10 - total % 10) % 10) == check


def _safe_next(value: str | None) -> str:
    # Only same-site paths: an open redirect on a login page is a classic phishing aid.
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


def _london(iso: str | None) -> str:
    if not iso:
        return ""
    moment = dt.datetime.fromisoformat(iso)
    return moment.astimezone(LONDON).strftime("%d %b %Y %H:%M")


def _gbp(value: str | Decimal | None) -> str:
    if value is None or value == "":
        return ""
    return f"£{Decimal(value):,.2f}"


class Portal:
    """Shared state of one portal process: config, database access, the sandbox clock."""

    def __init__(self, config: PortalConfig) -> None:
        self.config = config
        self.chaos = config.chaos
        self.clock_offset = 0.0
        self._ensure_kpi_names()
        self._ensure_user()

    def now(self) -> float:
        """Portal time: real time plus whatever a test advanced the sandbox clock by."""
        return time.time() + self.clock_offset

    def now_iso(self) -> str:
        return dt.datetime.fromtimestamp(self.now(), dt.UTC).isoformat(timespec="seconds")

    @contextmanager
    def db(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.config.db_path, timeout=30)
        conn.row_factory = sqlite3.Row
        try:
            with conn:
                yield conn
        finally:
            conn.close()

    def _ensure_kpi_names(self) -> None:
        # Databases seeded before the register kept KPI names have only their count;
        # their contracts keep an empty list of names.
        with self.db() as conn:
            columns = {r["name"] for r in conn.execute("PRAGMA table_info(contracts)")}
            if "kpis" not in columns:
                conn.execute("ALTER TABLE contracts ADD COLUMN kpis TEXT NOT NULL DEFAULT '[]'")

    def _ensure_user(self) -> None:
        salt = secrets.token_hex(8)
        with self.db() as conn:
            conn.execute(
                "INSERT INTO users (username, password_hash, salt, totp_secret) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(username) DO UPDATE SET password_hash=excluded.password_hash, salt=excluded.salt, "  # noqa: E501
                "totp_secret=excluded.totp_secret",
                (
                    self.config.username,
                    _hash_password(self.config.password, salt),
                    salt,
                    self.config.totp_secret,
                ),
            )


# --- form fields ----------------------------------------------------------------------


def _arrange(fields: list[FormField], chaos: ChaosSpec) -> list[FormField]:
    """Stable ids normally; under ``shuffle`` a new order and new ids on every load."""
    if not chaos.shuffle:
        for f in fields:
            f.dom_id = f.dom_id or f.name.replace("_", "-")
            f.container_id = f.container_id or f"field-{f.dom_id}"
        return fields
    rng = chaos.rng()
    for f in fields:
        f.dom_id = f"f{rng.getrandbits(40):010x}"
        f.container_id = f"c{rng.getrandbits(40):010x}"
    out = list(fields)
    original = list(fields)
    while len(out) > 1 and out == original:
        rng.shuffle(out)
    return out


LINE_FIELDS = (
    ("item_code", "item code", "text"),
    ("description", "description", "text"),
    ("quantity", "quantity", "text"),
    ("unit_price", "unit price", "text"),
    ("vat_rate", "VAT rate", "select"),
)


def _line_fields(n: int, values: dict[str, str], errors: dict[str, str], order: list[int]) -> list[FormField]:
    out = []
    for k in order:
        name, label, kind = LINE_FIELDS[k]
        f = FormField(
            name=f"line-{n}-{name}",
            label=f"Line {n} {label}",
            kind=kind,
            value=values.get(name, "20" if name == "vat_rate" else ""),
            error=errors.get(name, ""),
        )
        if kind == "select":
            f.options = [(r, f"{r}%") for r in VAT_RATES]
        if name in ("quantity", "unit_price"):
            f.attrs = {"inputmode": "decimal"}
        out.append(f)
    return out


def create_app(config: PortalConfig) -> FastAPI:
    """The portal as an ASGI app over an already seeded database."""
    portal = Portal(config)
    chaos = config.chaos
    app = FastAPI(title="Sandbox e-procurement portal", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.portal = portal
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.filters["london"] = _london
    templates.env.filters["gbp"] = _gbp
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    # --- chaos ------------------------------------------------------------------------

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

    # --- helpers ----------------------------------------------------------------------

    def session_for(request: Request, api: bool = False) -> Session:
        token = request.cookies.get(SESSION_COOKIE)
        if request.method == "GET":
            next_url = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        else:
            referer = request.headers.get("referer", "")
            match = re.match(r"https?://[^/]+(/.*)?$", referer)
            next_url = _safe_next(match.group(1) if match and match.group(1) else "/")
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
        request: Request,
        name: str,
        context: dict[str, Any],
        status: int = 200,
        session: Session | None = None,
    ) -> HTMLResponse:
        ctx = {
            "session": session,
            "csrf": session.csrf if session else "",
            "slow_render_ms": chaos.slow_render_ms,
            "path": request.url.path,
            **context,
        }
        return templates.TemplateResponse(request, name, ctx, status_code=status)

    async def checked_form(request: Request, session: Session) -> Any:
        form = await request.form()
        token = str(form.get("csrf_token", ""))
        if not hmac.compare_digest(token, session.csrf):
            raise CsrfFailed()
        return form

    class CsrfFailed(Exception):
        pass

    @app.exception_handler(CsrfFailed)
    async def _csrf_failed(request: Request, exc: CsrfFailed) -> Response:
        html = templates.get_template("message.html").render(
            title="Your form has expired",
            message="The page was open too long or came from elsewhere. Go back, reload the page and try again.",  # noqa: E501
            session=None,
        )
        return HTMLResponse(html, status_code=400)

    def page_of(request: Request) -> int:
        try:
            return max(1, int(request.query_params.get("page", "1")))
        except ValueError:
            return 1

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

    # --- health and truth ---------------------------------------------------------------

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        with portal.db() as conn:
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        return {"status": "ok", "seed": int(meta["seed"]), "orders": int(meta["orders"])}

    if config.sandbox_endpoints:
        from sandbox.state import register_state_routes

        register_state_routes(app, portal)

    # --- login --------------------------------------------------------------------------

    def login_page(
        request: Request,
        next_url: str,
        error: str = "",
        status: int = 200,
        notice: str = "",
        username: str = "",
    ) -> HTMLResponse:
        token = secrets.token_urlsafe(24)
        fields = _arrange(
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
        return login_page(request, _safe_next(next), notice=notice)

    @app.post("/login")
    async def login(request: Request) -> Response:
        form = await request.form()
        next_url = _safe_next(str(form.get("next", "/")))
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
                _hash_password(password, user["salt"]), user["password_hash"]
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
            return RedirectResponse(f"/login?{urlencode({'next': _safe_next(next)})}", status_code=303)
        fields = _arrange(
            [
                FormField(
                    "code", "Security code", attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}
                )
            ],
            chaos,
        )
        return render(request, "totp.html", {"fields": fields, "next": _safe_next(next), "csrf": row["csrf"]})

    @app.post("/login/totp")
    async def totp_submit(request: Request) -> Response:
        form = await request.form()
        next_url = _safe_next(str(form.get("next", "/")))
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
                fields = _arrange(
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

    # --- dashboard and suppliers ----------------------------------------------------------

    @app.get("/", response_class=HTMLResponse)
    def dashboard(request: Request) -> HTMLResponse:
        session = session_for(request)
        with portal.db() as conn:
            counts = {
                "orders": conn.execute("SELECT COUNT(*) FROM purchase_orders").fetchone()[0],
                "open_orders": conn.execute(
                    "SELECT COUNT(*) FROM purchase_orders WHERE status != 'received'"
                ).fetchone()[0],
                "inbox": conn.execute("SELECT COUNT(*) FROM invoices WHERE status = 'received'").fetchone()[
                    0
                ],
                "on_hold": conn.execute("SELECT COUNT(*) FROM invoices WHERE status = 'on_hold'").fetchone()[
                    0
                ],
                "contracts": conn.execute("SELECT COUNT(*) FROM contracts").fetchone()[0],
                "receipts": conn.execute("SELECT COUNT(*) FROM receipts").fetchone()[0],
            }
            buyer = conn.execute("SELECT * FROM buyer").fetchone()
        return render(request, "dashboard.html", {"counts": counts, "buyer": buyer}, session=session)

    @app.get("/api/suppliers")
    def supplier_lookup(request: Request, q: str = "") -> JSONResponse:
        session_for(request, api=True)
        q = q.strip()
        if not q:
            return JSONResponse([])
        like = f"%{q}%"
        with portal.db() as conn:
            rows = conn.execute(
                "SELECT supplier_id, name, vat FROM suppliers WHERE name LIKE ? OR supplier_id LIKE ? OR vat LIKE ? "  # noqa: E501
                "ORDER BY name LIMIT 10",
                (like, f"{q}%", f"%{q}%"),
            ).fetchall()
        return JSONResponse([{"id": r["supplier_id"], "name": r["name"], "vat": r["vat"]} for r in rows])

    @app.get("/suppliers", response_class=HTMLResponse)
    def suppliers(request: Request, q: str = "") -> HTMLResponse:
        session = session_for(request)
        page = page_of(request)
        where, args = "", []
        if q.strip():
            like = f"%{q.strip()}%"
            where, args = "WHERE name LIKE ? OR supplier_id LIKE ? OR vat LIKE ?", [like, like, like]
        with portal.db() as conn:
            total = conn.execute(f"SELECT COUNT(*) FROM suppliers {where}", args).fetchone()[0]
            rows = conn.execute(
                f"SELECT * FROM suppliers {where} ORDER BY name LIMIT ? OFFSET ?",
                [*args, PAGE_SIZE, (page - 1) * PAGE_SIZE],
            ).fetchall()
        return render(
            request,
            "suppliers.html",
            {"rows": rows, "q": q, "pager": pager(request, page, total)},
            session=session,
        )

    @app.get("/suppliers/{supplier_id}", response_class=HTMLResponse)
    def supplier_detail(request: Request, supplier_id: str) -> HTMLResponse:
        session = session_for(request)
        with portal.db() as conn:
            supplier = conn.execute(
                "SELECT * FROM suppliers WHERE supplier_id = ?", (supplier_id,)
            ).fetchone()
            items = conn.execute(
                "SELECT * FROM items WHERE supplier_id = ? ORDER BY description", (supplier_id,)
            ).fetchall()
        if supplier is None:
            return not_found(request, session, f"There is no supplier {supplier_id}.")
        return render(request, "supplier.html", {"s": supplier, "items": items}, session=session)

    def not_found(request: Request, session: Session | None, message: str) -> HTMLResponse:
        return render(request, "message.html", {"title": "Page not found", "message": message}, 404, session)

    # --- purchase orders ------------------------------------------------------------------

    def po_filters(request: Request) -> tuple[str, list[Any], dict[str, str]]:
        params = {
            k: request.query_params.get(k, "").strip() for k in ("requisition_ref", "supplier", "status")
        }
        clauses, args = [], []
        if params["requisition_ref"]:
            clauses.append("po.requisition_ref LIKE ?")
            args.append(f"%{params['requisition_ref']}%")
        if params["supplier"]:
            clauses.append("(s.name LIKE ? OR po.supplier_id = ? OR s.vat = ?)")
            args += [f"%{params['supplier']}%", params["supplier"], params["supplier"]]
        if params["status"]:
            clauses.append("po.status = ?")
            args.append(params["status"])
        return ("WHERE " + " AND ".join(clauses)) if clauses else "", args, params

    @app.get("/purchase-orders", response_class=HTMLResponse)
    def purchase_orders(request: Request) -> HTMLResponse:
        session = session_for(request)
        where, args, params = po_filters(request)
        page = page_of(request)
        with portal.db() as conn:
            total = conn.execute(
                f"SELECT COUNT(*) FROM purchase_orders po JOIN suppliers s USING (supplier_id) {where}", args
            ).fetchone()[0]
            rows = conn.execute(
                f"SELECT po.*, s.name AS supplier_name FROM purchase_orders po JOIN suppliers s USING (supplier_id) "  # noqa: E501
                f"{where} ORDER BY po.id DESC LIMIT ? OFFSET ?",
                [*args, PAGE_SIZE, (page - 1) * PAGE_SIZE],
            ).fetchall()
        export = "/purchase-orders/export.csv?" + urlencode({k: v for k, v in params.items() if v})
        return render(
            request,
            "purchase_orders.html",
            {
                "rows": rows,
                "params": params,
                "statuses": PO_STATUSES,
                "pager": pager(request, page, total),
                "export": export,
            },
            session=session,
        )

    @app.get("/purchase-orders/export.csv")
    def purchase_orders_csv(request: Request) -> StreamingResponse:
        session_for(request)
        where, args, _ = po_filters(request)

        def rows() -> Iterator[str]:
            buf = io.StringIO()
            writer = csv.writer(buf, lineterminator="\n")
            writer.writerow(
                [
                    "po_number",
                    "line_no",
                    "supplier_id",
                    "supplier_vat",
                    "item_code",
                    "description",
                    "quantity",
                    "unit_price",
                    "vat_rate",
                    "receipt_required",
                ]
            )
            with portal.db() as conn:
                cursor = conn.execute(
                    "SELECT po.po_number, l.line_no, po.supplier_id, s.vat, l.item_code, l.description, l.quantity, "  # noqa: E501
                    "l.unit_price, l.vat_rate, l.receipt_required FROM purchase_orders po "
                    "JOIN suppliers s USING (supplier_id) JOIN po_lines l ON l.po_id = po.id "
                    f"{where} ORDER BY po.id, l.line_no",
                    args,
                )
                for n, r in enumerate(cursor):
                    writer.writerow([*r[:9], "true" if r[9] else "false"])
                    if n % 2000 == 0:
                        yield buf.getvalue()
                        buf.seek(0)
                        buf.truncate()
            yield buf.getvalue()

        return StreamingResponse(
            rows(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="orders.csv"'},
        )

    def po_form_fields(values: dict[str, str], errors: dict[str, str]) -> list[FormField]:
        return _arrange(
            [
                FormField(
                    "supplier",
                    "Supplier",
                    value=values.get("supplier", ""),
                    error=errors.get("supplier", ""),
                    hint="Start typing a name, VAT number or supplier ID",
                    attrs={"data-autocomplete": "/api/suppliers", "autocomplete": "off"},
                ),
                FormField(
                    "cost_centre",
                    "Cost centre",
                    value=values.get("cost_centre", ""),
                    error=errors.get("cost_centre", ""),
                    hint="For example CC4100",
                    attrs={"list": "cost-centres"},
                ),
                FormField(
                    "delivery_site",
                    "Delivery site (ODS code)",
                    value=values.get("delivery_site", ""),
                    error=errors.get("delivery_site", ""),
                    hint="For example RX101",
                    attrs={"list": "delivery-sites"},
                ),
                FormField(
                    "need_by",
                    "Need-by date",
                    kind="date",
                    value=values.get("need_by", ""),
                    error=errors.get("need_by", ""),
                ),
                FormField(
                    "requisition_ref",
                    "Requisition reference",
                    value=values.get("requisition_ref", ""),
                    error=errors.get("requisition_ref", ""),
                ),
            ],
            chaos,
        )

    def line_order() -> list[int]:
        order = list(range(len(LINE_FIELDS)))
        if chaos.shuffle:
            chaos.rng().shuffle(order)
        return order

    def new_po_page(
        request: Request,
        session: Session,
        values: dict[str, str],
        errors: dict[str, str],
        lines: list[tuple[int, dict[str, str], dict[str, str]]],
        status: int = 200,
    ) -> HTMLResponse:
        order = line_order()
        with portal.db() as conn:
            cost_centres = conn.execute("SELECT * FROM cost_centres ORDER BY code").fetchall()
            sites = conn.execute("SELECT * FROM sites ORDER BY ods").fetchall()
        line_rows = [
            (
                n,
                _arrange(_line_fields(n, v, e, order), ChaosSpec())
                if not chaos.shuffle
                else _arrange_keep_order(_line_fields(n, v, e, order), chaos),
            )
            for n, v, e in lines
        ]
        template_fields = _line_fields(0, {}, {}, order)
        summary = list(errors.items())
        for n, _, line_errors in lines:
            summary += [(f"line-{n}-{k}", v) for k, v in line_errors.items()]
        return render(
            request,
            "po_new.html",
            {
                "fields": po_form_fields(values, errors),
                "lines": line_rows,
                "line_template": template_fields,
                "cost_centres": cost_centres,
                "sites": sites,
                "errors": summary,
                "form_error": errors.get("_form"),
            },
            status=status,
            session=session,
        )

    @app.get("/purchase-orders/new", response_class=HTMLResponse)
    def new_po(request: Request) -> HTMLResponse:
        session = session_for(request)
        return new_po_page(request, session, {}, {}, [(1, {}, {})])

    @app.post("/purchase-orders/new")
    async def create_po(request: Request) -> Response:
        session = session_for(request)
        form = await checked_form(request, session)
        values = {
            k: str(form.get(k, "")).strip()
            for k in ("supplier", "cost_centre", "delivery_site", "need_by", "requisition_ref")
        }
        raw_lines: dict[int, dict[str, str]] = {}
        for key, value in form.multi_items():
            m = re.fullmatch(r"line-(\d+)-(\w+)", key)
            if m and m.group(2) in {f[0] for f in LINE_FIELDS}:
                raw_lines.setdefault(int(m.group(1)), {})[m.group(2)] = str(value).strip()
        lines = [(n, v) for n, v in sorted(raw_lines.items()) if any(v.get(f) for f, _, _ in LINE_FIELDS[:4])]
        errors: dict[str, str] = {}
        with portal.db() as conn:
            supplier = resolve_supplier(conn, values["supplier"])
            if not values["supplier"]:
                errors["supplier"] = "Enter a supplier"
            elif supplier is None:
                errors["supplier"] = f"No supplier matches “{values['supplier']}”. Choose one from the list."
            if not values["cost_centre"]:
                errors["cost_centre"] = "Enter a cost centre"
            elif (
                conn.execute(
                    "SELECT 1 FROM cost_centres WHERE code = ?", (values["cost_centre"].upper(),)
                ).fetchone()
                is None
            ):
                errors["cost_centre"] = f"Cost centre “{values['cost_centre']}” does not exist"
            if not values["delivery_site"]:
                errors["delivery_site"] = "Enter a delivery site ODS code"
            elif (
                conn.execute(
                    "SELECT 1 FROM sites WHERE ods = ?", (values["delivery_site"].upper(),)
                ).fetchone()
                is None
            ):
                errors["delivery_site"] = (
                    f"“{values['delivery_site']}” is not an ODS site code of this trust, for example RX101"
                )
        try:
            need_by = dt.date.fromisoformat(values["need_by"])
        except ValueError:
            need_by = None
            errors["need_by"] = "Enter the need-by date as a real date, for example 2026-12-31"
        ref = values["requisition_ref"]
        if not ref:
            errors["requisition_ref"] = "Enter a requisition reference"
        elif not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9/_-]{2,39}", ref):
            errors["requisition_ref"] = "Requisition reference: 3 to 40 letters, digits, / - or _"
        parsed: list[tuple[str, str, Decimal, Decimal, Decimal]] = []
        line_views = []
        for n, v in lines:
            e: dict[str, str] = {}
            code = v.get("item_code", "")
            if not code:
                e["item_code"] = f"Line {n}: enter an item code or GTIN"
            elif code.isdigit() and len(code) in (8, 12, 13, 14) and not _gtin_ok(code):
                e["item_code"] = f"Line {n}: GTIN {code} has a wrong check digit"
            if not v.get("description"):
                e["description"] = f"Line {n}: enter a description"
            qty = _decimal(v.get("quantity", ""))
            if qty is None or qty <= 0 or qty.as_tuple().exponent < -3:  # type: ignore[operator]
                e["quantity"] = f"Line {n}: quantity must be a number greater than 0"
            price = _decimal(v.get("unit_price", "").replace("£", "").replace(",", ""))
            if price is None or price < 0 or price.as_tuple().exponent < -4:  # type: ignore[operator]
                e["unit_price"] = f"Line {n}: unit price must be an amount in pounds, for example 12.50"
            rate = v.get("vat_rate", "")
            if rate not in VAT_RATES:
                e["vat_rate"] = f"Line {n}: choose a VAT rate"
            if not e and qty is not None and price is not None:
                parsed.append((code, v["description"], qty, price, Decimal(rate)))
            line_views.append((n, v, e))
        if not lines:
            errors["_form"] = "Add at least one line"
            line_views = [(1, {}, {"item_code": "Line 1: enter an item code or GTIN"})]
        if errors or any(e for _, _, e in line_views):
            return new_po_page(request, session, values, errors, line_views, status=422)
        assert supplier is not None
        assert need_by is not None
        po_number = insert_po(session, supplier["supplier_id"], values, need_by, parsed)
        return RedirectResponse(f"/purchase-orders/{po_number}/confirmation", status_code=303)

    def resolve_supplier(conn: sqlite3.Connection, text: str) -> sqlite3.Row | None:
        if not text:
            return None
        m = re.search(r"\((SUP-\d+)\)\s*$", text)
        key = m.group(1) if m else text
        return cast(
            "sqlite3.Row | None",
            conn.execute(
                "SELECT * FROM suppliers WHERE supplier_id = ? OR name = ? COLLATE NOCASE OR vat = ?",
                (key.upper(), key, key.upper().replace(" ", "")),
            ).fetchone(),
        )

    def insert_po(
        session: Session,
        supplier_id: str,
        values: dict[str, str],
        need_by: dt.date,
        lines: list[tuple[str, str, Decimal, Decimal, Decimal]],
    ) -> str:
        groups: dict[Decimal, Decimal] = {}
        line_rows = []
        with portal.db() as conn:
            for k, (code, desc, qty, price, rate) in enumerate(lines, start=1):
                net = _money(qty * price)
                groups[rate] = groups.get(rate, Decimal("0")) + net
                item = conn.execute("SELECT receipt_required FROM items WHERE code = ?", (code,)).fetchone()
                receipt = bool(item[0]) if item else not code.upper().startswith("SVC-")
                line_rows.append(
                    (k, code, desc, _plain(qty), _price(price), _plain(rate), str(net), int(receipt))
                )
            net_total = _money(sum(groups.values(), Decimal("0")))
            vat_total = _money(sum((_money(v * r / 100) for r, v in groups.items()), Decimal("0")))
            cur = conn.execute(
                "INSERT INTO purchase_orders (requisition_ref, supplier_id, cost_centre, delivery_site, need_by, "  # noqa: E501
                "status, net_total, vat_total, gross_total, created_at, created_by) "
                "VALUES (?, ?, ?, ?, ?, 'open', ?, ?, ?, ?, ?)",
                (
                    values["requisition_ref"],
                    supplier_id,
                    values["cost_centre"].upper(),
                    values["delivery_site"].upper(),
                    need_by.isoformat(),
                    str(net_total),
                    str(vat_total),
                    str(net_total + vat_total),
                    portal.now_iso(),
                    session.username,
                ),
            )
            po_id = cur.lastrowid
            po_number = f"PO-{po_id:06d}"
            conn.execute("UPDATE purchase_orders SET po_number = ? WHERE id = ?", (po_number, po_id))
            conn.executemany(
                "INSERT INTO po_lines VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(po_id, *row) for row in line_rows],
            )
        return po_number

    @app.get("/purchase-orders/{po_number}/confirmation", response_class=HTMLResponse)
    def po_confirmation(request: Request, po_number: str) -> HTMLResponse:
        session = session_for(request)
        with portal.db() as conn:
            po = conn.execute("SELECT * FROM purchase_orders WHERE po_number = ?", (po_number,)).fetchone()
        if po is None:
            return not_found(request, session, f"There is no purchase order {po_number}.")
        return render(request, "po_created.html", {"po": po}, session=session)

    @app.get("/purchase-orders/{po_number}", response_class=HTMLResponse)
    def po_detail(request: Request, po_number: str) -> HTMLResponse:
        session = session_for(request)
        with portal.db() as conn:
            po = conn.execute(
                "SELECT po.*, s.name AS supplier_name, s.vat AS supplier_vat FROM purchase_orders po "
                "JOIN suppliers s USING (supplier_id) WHERE po_number = ?",
                (po_number,),
            ).fetchone()
            if po is None:
                return not_found(request, session, f"There is no purchase order {po_number}.")
            lines = conn.execute(
                "SELECT l.*, (SELECT COALESCE(SUM(CAST(rl.quantity_received AS REAL)), 0) FROM receipt_lines rl "  # noqa: E501
                "JOIN receipts r ON r.id = rl.receipt_id WHERE r.po_id = l.po_id AND rl.line_no = l.line_no) "
                "AS received FROM po_lines l WHERE po_id = ? ORDER BY line_no",
                (po["id"],),
            ).fetchall()
            receipts = conn.execute(
                "SELECT * FROM receipts WHERE po_id = ? ORDER BY id", (po["id"],)
            ).fetchall()
            invoices = conn.execute(
                "SELECT id, invoice_number, document_type, status, gross_total FROM invoices WHERE po_number = ? "  # noqa: E501
                "ORDER BY id",
                (po_number,),
            ).fetchall()
        return render(
            request,
            "po_detail.html",
            {"po": po, "lines": lines, "receipts": receipts, "invoices": invoices},
            session=session,
        )

    # --- goods receipts ---------------------------------------------------------------------

    @app.get("/receipts", response_class=HTMLResponse)
    def receipts(request: Request, po_number: str = "") -> HTMLResponse:
        session = session_for(request)
        page = page_of(request)
        where, args = "", []
        if po_number.strip():
            where, args = "WHERE po.po_number = ?", [po_number.strip().upper()]
        with portal.db() as conn:
            total = conn.execute(
                f"SELECT COUNT(*) FROM receipts r JOIN purchase_orders po ON po.id = r.po_id {where}", args
            ).fetchone()[0]
            rows = conn.execute(
                "SELECT r.*, po.po_number, s.name AS supplier_name, (SELECT COUNT(*) FROM receipt_lines "
                "WHERE receipt_id = r.id) AS line_count FROM receipts r JOIN purchase_orders po ON po.id = r.po_id "  # noqa: E501
                f"JOIN suppliers s USING (supplier_id) {where} ORDER BY r.id DESC LIMIT ? OFFSET ?",
                [*args, PAGE_SIZE, (page - 1) * PAGE_SIZE],
            ).fetchall()
        export = "/receipts/export.csv" + (
            f"?{urlencode({'po_number': po_number.strip()})}" if po_number.strip() else ""
        )
        return render(
            request,
            "receipts.html",
            {"rows": rows, "po_number": po_number, "pager": pager(request, page, total), "export": export},
            session=session,
        )

    @app.get("/receipts/export.csv")
    def receipts_csv(request: Request, po_number: str = "") -> StreamingResponse:
        session_for(request)
        where, args = (
            ("WHERE po.po_number = ?", [po_number.strip().upper()]) if po_number.strip() else ("", [])
        )

        def rows() -> Iterator[str]:
            buf = io.StringIO()
            writer = csv.writer(buf, lineterminator="\n")
            writer.writerow(["grn_number", "po_number", "line_no", "quantity_received", "received_date"])
            with portal.db() as conn:
                cursor = conn.execute(
                    "SELECT r.grn_number, po.po_number, rl.line_no, rl.quantity_received, r.received_date "
                    "FROM receipts r JOIN receipt_lines rl ON rl.receipt_id = r.id "
                    f"JOIN purchase_orders po ON po.id = r.po_id {where} ORDER BY r.id, rl.line_no",
                    args,
                )
                for n, r in enumerate(cursor):
                    writer.writerow(list(r))
                    if n % 2000 == 0:
                        yield buf.getvalue()
                        buf.seek(0)
                        buf.truncate()
            yield buf.getvalue()

        return StreamingResponse(
            rows(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="receipts.csv"'},
        )

    @app.get("/receipts/{grn_number}", response_class=HTMLResponse)
    def receipt_detail(request: Request, grn_number: str) -> HTMLResponse:
        session = session_for(request)
        with portal.db() as conn:
            receipt = conn.execute(
                "SELECT r.*, po.po_number, s.name AS supplier_name FROM receipts r JOIN purchase_orders po "
                "ON po.id = r.po_id JOIN suppliers s USING (supplier_id) WHERE grn_number = ?",
                (grn_number,),
            ).fetchone()
            if receipt is None:
                return not_found(request, session, f"There is no goods receipt {grn_number}.")
            lines = conn.execute(
                "SELECT rl.*, l.item_code, l.description, l.quantity AS ordered FROM receipt_lines rl "
                "JOIN po_lines l ON l.po_id = ? AND l.line_no = rl.line_no WHERE rl.receipt_id = ? ORDER BY rl.line_no",  # noqa: E501
                (receipt["po_id"], receipt["id"]),
            ).fetchall()
        return render(request, "receipt_detail.html", {"r": receipt, "lines": lines}, session=session)

    # --- invoice inbox --------------------------------------------------------------------

    @app.get("/invoices", response_class=HTMLResponse)
    def invoices(request: Request, status: str = "", supplier: str = "", number: str = "") -> HTMLResponse:
        session = session_for(request)
        page = page_of(request)
        clauses, args = [], []
        if status.strip():
            clauses.append("i.status = ?")
            args.append(status.strip())
        if supplier.strip():
            clauses.append("(s.name LIKE ? OR i.supplier_id = ? OR i.supplier_vat = ?)")
            args += [f"%{supplier.strip()}%", supplier.strip(), supplier.strip().upper()]
        if number.strip():
            clauses.append("i.invoice_number LIKE ?")
            args.append(f"%{number.strip()}%")
        where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
        with portal.db() as conn:
            total = conn.execute(
                f"SELECT COUNT(*) FROM invoices i JOIN suppliers s USING (supplier_id) {where}", args
            ).fetchone()[0]
            rows = conn.execute(
                "SELECT i.id, i.invoice_number, i.document_type, i.po_number, i.issue_date, i.gross_total, i.status, "  # noqa: E501
                f"i.received_at, s.name AS supplier_name FROM invoices i JOIN suppliers s USING (supplier_id) {where} "  # noqa: E501
                "ORDER BY i.received_at DESC, i.id DESC LIMIT ? OFFSET ?",
                [*args, PAGE_SIZE, (page - 1) * PAGE_SIZE],
            ).fetchall()
        return render(
            request,
            "invoices.html",
            {
                "rows": rows,
                "status": status,
                "supplier": supplier,
                "number": number,
                "statuses": INVOICE_STATUSES,
                "pager": pager(request, page, total),
            },
            session=session,
        )

    def invoice_page(
        request: Request,
        session: Session,
        invoice_id: int,
        error: str = "",
        status: int = 200,
        notice: str = "",
    ) -> HTMLResponse:
        with portal.db() as conn:
            inv = conn.execute(
                "SELECT i.*, s.name AS supplier_name FROM invoices i JOIN suppliers s USING (supplier_id) WHERE id = ?",  # noqa: E501
                (invoice_id,),
            ).fetchone()
            if inv is None:
                return not_found(request, session, f"There is no invoice {invoice_id}.")
            history = conn.execute(
                "SELECT * FROM invoice_history WHERE invoice_id = ? ORDER BY rowid", (invoice_id,)
            ).fetchall()
        doc = parse_ubl(zlib.decompress(inv["ubl_gz"]).decode())
        return render(
            request,
            "invoice_detail.html",
            {
                "inv": inv,
                "doc": doc,
                "history": history,
                "reasons": REASON_CODES,
                "error": error,
                "notice": notice,
                "actionable": inv["status"] in ("received", "on_hold"),
            },
            status=status,
            session=session,
        )

    @app.get("/invoices/{invoice_id}", response_class=HTMLResponse)
    def invoice_detail(request: Request, invoice_id: int, done: str = "") -> HTMLResponse:
        session = session_for(request)
        notice = {
            "approved": "Invoice approved.",
            "on_hold": "Invoice put on hold.",
            "rejected": "Invoice rejected.",
        }
        return invoice_page(request, session, invoice_id, notice=notice.get(done, ""))

    @app.get("/invoices/{invoice_id}/ubl")
    def invoice_ubl(request: Request, invoice_id: int) -> Response:
        session_for(request)
        with portal.db() as conn:
            row = conn.execute(
                "SELECT invoice_number, ubl_gz FROM invoices WHERE id = ?", (invoice_id,)
            ).fetchone()
        if row is None:
            return Response("no such invoice", status_code=404)
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", row["invoice_number"])
        return Response(
            zlib.decompress(row["ubl_gz"]),
            media_type="application/xml",
            headers={"Content-Disposition": f'attachment; filename="{safe}-{invoice_id}.xml"'},
        )

    @app.post("/invoices/{invoice_id}/{action}")
    async def invoice_action(request: Request, invoice_id: int, action: str) -> Response:
        session = session_for(request)
        form = await checked_form(request, session)
        target = {"approve": "approved", "hold": "on_hold", "reject": "rejected"}.get(action)
        if target is None:
            return not_found(request, session, f"Unknown action {action}.")
        reason = str(form.get("reason_code", "")).strip() or None
        note = str(form.get("note", "")).strip() or None
        if target != "approved" and reason not in REASON_CODES:
            verb = "hold" if target == "on_hold" else "reject"
            return invoice_page(request, session, invoice_id, f"Choose a reason to {verb} this invoice.", 422)
        with portal.db() as conn:
            row = conn.execute("SELECT status FROM invoices WHERE id = ?", (invoice_id,)).fetchone()
            if row is None:
                return not_found(request, session, f"There is no invoice {invoice_id}.")
            if row["status"] not in ("received", "on_hold"):
                pass
            else:
                conn.execute("UPDATE invoices SET status = ? WHERE id = ?", (target, invoice_id))
                conn.execute(
                    "INSERT INTO invoice_history VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        invoice_id,
                        target,
                        reason if target != "approved" else None,
                        note,
                        portal.now_iso(),
                        session.username,
                    ),
                )
                return RedirectResponse(f"/invoices/{invoice_id}?done={target}", status_code=303)
        return invoice_page(
            request,
            session,
            invoice_id,
            f"This invoice is already {row['status'].replace('_', ' ')}; nothing changed.",
            409,
        )

    # --- contract register ------------------------------------------------------------------

    @app.get("/contracts", response_class=HTMLResponse)
    def contracts(request: Request, q: str = "") -> HTMLResponse:
        session = session_for(request)
        page = page_of(request)
        where, args = "", []
        if q.strip():
            like = f"%{q.strip()}%"
            where = "WHERE contract_id LIKE ? OR title LIKE ? OR supplier_name LIKE ? OR supplier_vat LIKE ?"
            args = [like, like, like, like]
        with portal.db() as conn:
            total = conn.execute(f"SELECT COUNT(*) FROM contracts {where}", args).fetchone()[0]
            rows = conn.execute(
                "SELECT contract_id, title, supplier_name, value_net, start_date, end_date, uploaded_at "
                f"FROM contracts {where} ORDER BY id DESC LIMIT ? OFFSET ?",
                [*args, PAGE_SIZE, (page - 1) * PAGE_SIZE],
            ).fetchall()
        return render(
            request,
            "contracts.html",
            {"rows": rows, "q": q, "pager": pager(request, page, total)},
            session=session,
        )

    def contract_fields(values: dict[str, str], errors: dict[str, str]) -> list[FormField]:
        def f(name: str, label: str, kind: str = "text", hint: str = "", **kw: Any) -> FormField:
            return FormField(name, label, kind, values.get(name, ""), errors.get(name, ""), hint, **kw)

        return _arrange(
            [
                f("contract_id", "Contract ID"),
                f("title", "Contract title"),
                f("supplier_name", "Supplier name"),
                f(
                    "supplier_vat",
                    "Supplier VAT number",
                    hint="GB and 9 digits; or give the Companies House number",
                ),
                f("companies_house", "Companies House number"),
                f("buyer_ods", "Buyer ODS code", hint="For example RX1"),
                f("cpv_codes", "CPV codes", hint="One or more, separated by commas, for example 33141420-0"),
                f("procedure", "Procedure", "select", options=[("", "Choose a procedure"), *PROCEDURES]),
                f("value_net", "Contract value excluding VAT", hint="In pounds, for example 125000.00"),
                f("value_gross", "Contract value including VAT"),
                f("start_date", "Start date", "date"),
                f("end_date", "End date", "date"),
                f("max_end_date", "Maximum end date (with extensions)", "date"),
                f("kpis", "KPIs", "textarea", hint="One key performance indicator per line"),
                f("sme", "Supplier is an SME", "checkbox"),
                f("document", "Contract document (PDF)", "file", attrs={"accept": "application/pdf,.pdf"}),
            ],
            chaos,
        )

    @app.get("/contracts/new", response_class=HTMLResponse)
    def new_contract(request: Request) -> HTMLResponse:
        session = session_for(request)
        return render(
            request, "contract_new.html", {"fields": contract_fields({}, {}), "errors": []}, session=session
        )

    @app.post("/contracts/new")
    async def upload_contract(request: Request) -> Response:
        session = session_for(request)
        form = await checked_form(request, session)
        names = (
            "contract_id",
            "title",
            "supplier_name",
            "supplier_vat",
            "companies_house",
            "buyer_ods",
            "cpv_codes",
            "procedure",
            "value_net",
            "value_gross",
            "start_date",
            "end_date",
            "max_end_date",
            "kpis",
            "kpi_count",
        )
        values = {n: str(form.get(n, "")).strip() for n in names}
        values["sme"] = "on" if form.get("sme") else ""
        upload = form.get("document")
        errors: dict[str, str] = {}
        for n, label in (
            ("contract_id", "a contract ID"),
            ("title", "a contract title"),
            ("supplier_name", "the supplier name"),
            ("buyer_ods", "the buyer ODS code"),
        ):
            if not values[n]:
                errors[n] = f"Enter {label}"
        if values["contract_id"] and not re.fullmatch(
            r"[A-Za-z0-9][A-Za-z0-9/_.-]{0,63}", values["contract_id"]
        ):
            errors["contract_id"] = "Contract ID: up to 64 letters, digits, / . - or _"
        vat = values["supplier_vat"].replace(" ", "").upper()
        if vat and not vat_is_valid(vat if vat.startswith("GB") else "GB" + vat):
            errors["supplier_vat"] = f"“{values['supplier_vat']}” is not a valid GB VAT number"
        ch = values["companies_house"].replace(" ", "").upper()
        if ch and not re.fullmatch(r"\d{8}|[A-Z]{2}\d{6}", ch):
            errors["companies_house"] = "Companies House number: 8 digits, or 2 letters and 6 digits"
        if not vat and not ch:
            errors["supplier_vat"] = "Enter the supplier VAT number or Companies House number"
        if values["buyer_ods"] and not re.fullmatch(r"[A-Za-z0-9]{3}|[A-Za-z0-9]{5}", values["buyer_ods"]):
            errors["buyer_ods"] = "Buyer ODS code: 3 or 5 letters and digits, for example RX1"
        cpvs = [c.strip() for c in re.split(r"[,;\s]+", values["cpv_codes"]) if c.strip()]
        if not cpvs:
            errors["cpv_codes"] = "Enter at least one CPV code"
        elif bad := [c for c in cpvs if not re.fullmatch(r"\d{8}(-\d)?", c)]:
            errors["cpv_codes"] = f"Not a CPV code: {', '.join(bad)} (expected 8 digits and a check digit)"
        if values["procedure"] not in {p for p, _ in PROCEDURES}:
            errors["procedure"] = "Choose a procedure"
        amounts = {}
        for n in ("value_net", "value_gross"):
            amount = _decimal(values[n].replace("£", "").replace(",", ""))
            if amount is None or amount < 0:
                errors[n] = "Enter an amount in pounds, for example 125000.00"
            else:
                amounts[n] = _money(amount)
        if len(amounts) == 2 and amounts["value_gross"] < amounts["value_net"]:
            errors["value_gross"] = "The value including VAT cannot be less than the value excluding VAT"
        dates: dict[str, dt.date] = {}
        for n, label in (
            ("start_date", "start date"),
            ("end_date", "end date"),
            ("max_end_date", "maximum end date"),
        ):
            if not values[n] and n == "max_end_date":
                continue
            try:
                dates[n] = dt.date.fromisoformat(values[n])
            except ValueError:
                errors[n] = f"Enter the {label} as a real date, for example 2026-04-01"
        if "start_date" in dates and "end_date" in dates and dates["end_date"] < dates["start_date"]:
            errors["end_date"] = "The end date must be on or after the start date"
        if "max_end_date" in dates and "end_date" in dates and dates["max_end_date"] < dates["end_date"]:
            errors["max_end_date"] = "The maximum end date must be on or after the end date"
        kpis = [k.strip() for k in values["kpis"].splitlines() if k.strip()]
        if len(kpis) > MAX_KPIS:
            errors["kpis"] = f"List at most {MAX_KPIS} KPIs (there are {len(kpis)})"
        elif long := [n for n, k in enumerate(kpis, 1) if len(k) > MAX_KPI_CHARS]:
            errors["kpis"] = f"KPI {long[0]} is longer than {MAX_KPI_CHARS} characters"
        # The form no longer asks for a count; a scripted client that still sends one
        # is told when it disagrees with the names rather than losing its KPIs silently.
        if values["kpi_count"] and values["kpi_count"] != str(len(kpis)):
            errors["kpis"] = (
                f"Number of KPIs {values['kpi_count']} does not match the {len(kpis)} KPIs listed "
                "(one per line)"
            )
        data = b""
        filename = ""
        if upload is None or not getattr(upload, "filename", ""):
            errors["document"] = "Choose the contract PDF"
        else:
            data = await upload.read(MAX_UPLOAD_BYTES + 1)
            filename = Path(str(upload.filename)).name
            if len(data) > MAX_UPLOAD_BYTES:
                errors["document"] = "The file is larger than 10 MB"
            elif not data.startswith(b"%PDF-"):
                errors["document"] = f"“{filename}” is not a PDF file"
        with portal.db() as conn:
            if (
                values["contract_id"]
                and conn.execute(
                    "SELECT 1 FROM contracts WHERE contract_id = ?", (values["contract_id"],)
                ).fetchone()
            ):
                errors["contract_id"] = (
                    f"A contract with ID {values['contract_id']} is already in the register"
                )
            if errors:
                return render(
                    request,
                    "contract_new.html",
                    {"fields": contract_fields(values, errors), "errors": list(errors.items())},
                    status=422,
                    session=session,
                )
            conn.execute(
                f"INSERT INTO contracts ({CONTRACT_COLUMNS}) VALUES ({CONTRACT_PLACEHOLDERS})",
                (
                    values["contract_id"],
                    values["title"],
                    values["supplier_name"],
                    vat or None,
                    ch or None,
                    values["buyer_ods"].upper(),
                    ",".join(cpvs),
                    values["procedure"],
                    str(amounts["value_net"]),
                    str(amounts["value_gross"]),
                    dates["start_date"].isoformat(),
                    dates["end_date"].isoformat(),
                    dates["max_end_date"].isoformat() if "max_end_date" in dates else None,
                    len(kpis),
                    int(bool(values["sme"])),
                    filename,
                    data,
                    hashlib.sha256(data).hexdigest(),
                    portal.now_iso(),
                    session.username,
                    json.dumps(kpis),
                ),
            )
        return RedirectResponse(
            f"/contracts/{quote(values['contract_id'], safe='')}?uploaded=1", status_code=303
        )

    @app.get("/contracts/{contract_id}/document")
    def contract_document(request: Request, contract_id: str) -> Response:
        session_for(request)
        with portal.db() as conn:
            row = conn.execute(
                "SELECT filename, document FROM contracts WHERE contract_id = ?", (contract_id,)
            ).fetchone()
        if row is None:
            return Response("no such contract", status_code=404)
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", row["filename"]) or "contract.pdf"
        return Response(
            row["document"],
            media_type="application/pdf",
            headers={"Content-Disposition": f'attachment; filename="{safe}"'},
        )

    @app.get("/contracts/{contract_id}", response_class=HTMLResponse)
    def contract_detail(request: Request, contract_id: str, uploaded: str = "") -> HTMLResponse:
        session = session_for(request)
        with portal.db() as conn:
            row = conn.execute(
                "SELECT *, length(document) AS size FROM contracts WHERE contract_id = ?", (contract_id,)
            ).fetchone()
        if row is None:
            return not_found(request, session, f"There is no contract {contract_id}.")
        procedure = dict(PROCEDURES).get(row["procedure"], row["procedure"])
        return render(
            request,
            "contract_detail.html",
            {"c": row, "procedure": procedure, "kpis": json.loads(row["kpis"]), "uploaded": bool(uploaded)},
            session=session,
        )

    return app


def _arrange_keep_order(fields: list[FormField], chaos: ChaosSpec) -> list[FormField]:
    """New ids under shuffle, keeping the (already shuffled) order of a line's fields."""
    rng = chaos.rng()
    for f in fields:
        f.dom_id = f"f{rng.getrandbits(40):010x}"
        f.container_id = f"c{rng.getrandbits(40):010x}"
    return fields


def _decimal(text: str) -> Decimal | None:
    try:
        value = Decimal(text)
    except (InvalidOperation, ValueError):
        return None
    return value if value.is_finite() else None


def _plain(value: Decimal) -> str:
    """A quantity or rate without exponent or trailing zeros (``12``, ``2.5``)."""
    return format(value.normalize(), "f")


def _price(value: Decimal) -> str:
    """A unit price to the penny, or to the stated precision when finer (``4.50``, ``0.1234``)."""
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent >= -2:
        return str(value.quantize(PENNY))
    return format(value.normalize(), "f")
