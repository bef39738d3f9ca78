"""The portal's shared state: its configuration, database access and sandbox clock.

Every page module (:mod:`sandbox.routes`) works through one :class:`Portal`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from sandbox.chaos import ChaosSpec

__all__ = [
    "DEFAULT_PASSWORD",
    "DEFAULT_USERNAME",
    "LONDON",
    "PAGE_SIZE",
    "Portal",
    "PortalConfig",
    "Session",
    "gbp",
    "hash_password",
    "london",
    "safe_next",
]

DEFAULT_USERNAME = "buyer1"
DEFAULT_PASSWORD = "Sandbox-Buyer-2026!"  # documented sandbox credential, not a secret
PAGE_SIZE = 25
LONDON = ZoneInfo("Europe/London")


@dataclass
class PortalConfig:
    """How one portal process runs."""

    db_path: Path
    chaos: ChaosSpec = field(default_factory=ChaosSpec)
    username: str = DEFAULT_USERNAME
    password: str = DEFAULT_PASSWORD
    totp_secret: str | None = None
    sandbox_endpoints: bool = True


@dataclass
class Session:
    token: str
    username: str
    csrf: str
    expires: float


def hash_password(password: str, salt: str) -> str:
    return hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), 20_000).hex()


def safe_next(value: str | None) -> str:
    # Only same-site paths: an open redirect on a login page is a classic phishing aid.
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


def london(iso: str | None) -> str:
    if not iso:
        return ""
    moment = dt.datetime.fromisoformat(iso)
    return moment.astimezone(LONDON).strftime("%d %b %Y %H:%M")


def gbp(value: str | Decimal | None) -> str:
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
                    hash_password(self.config.password, salt),
                    salt,
                    self.config.totp_secret,
                ),
            )
