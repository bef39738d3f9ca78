"""Run the sandbox portal: seed its database, serve it with uvicorn, or manage it from Python.

:class:`SandboxServer` starts the portal in a *subprocess* on a free loopback port
(the parent binds the socket and hands it over, so there is no race for the port),
waits until ``/healthz`` answers and stops it on exit.

Example:
    >>> with SandboxServer(seed=3, orders=50, chaos="latency_ms=50") as portal:  # doctest: +SKIP
    ...     portal.state(sections="purchase_orders")["purchase_orders"][0]["po_number"]
    'PO-000001'
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from sandbox.chaos import ChaosSpec

__all__ = ["DEFAULT_ORDERS", "DEFAULT_SEED", "SandboxServer", "default_db_path", "prepare_database", "serve"]

DEFAULT_SEED = 1
DEFAULT_ORDERS = 200
PASSWORD_ENV = "PROCBOTS_SANDBOX_PASSWORD"
TOTP_ENV = "PROCBOTS_SANDBOX_TOTP_SECRET"
ROOT = Path(__file__).resolve().parents[1]


class SandboxError(RuntimeError):
    """The portal could not be prepared or started (message says why)."""


def default_db_path(seed: int, orders: int) -> Path:
    """Where ``procbots sandbox serve`` keeps its database by default (under the data root)."""
    from config.settings import get_settings

    return get_settings().paths.root / "sandbox" / f"portal-seed{seed}-orders{orders}.db"


def prepare_database(db_path: Path, seed: int, orders: int, reset: bool = False) -> bool:
    """Seed ``db_path`` unless it already holds this seed; returns whether it seeded.

    Seeding writes a temporary file and renames it, so an interrupted seed never
    leaves a half-filled portal behind.
    """
    from sandbox.seed import generate, write_database

    if db_path.exists() and not reset:
        try:
            with sqlite3.connect(db_path) as conn:
                meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.DatabaseError as exc:
            raise SandboxError(
                f"{db_path}: not a sandbox database ({exc}); use --reset to replace it"
            ) from None
        if meta.get("seed") != str(seed) or meta.get("orders") != str(orders):
            raise SandboxError(
                f"{db_path} holds seed {meta.get('seed')} with {meta.get('orders')} orders, not seed {seed} with "  # noqa: E501
                f"{orders}; use --reset to seed it again or another --db"
            )
        return False
    db_path.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    partial = db_path.with_name(db_path.name + ".seeding")
    partial.unlink(missing_ok=True)
    write_database(partial, generate(seed, orders), orders)
    partial.replace(db_path)
    return True


def serve(
    db_path: Path,
    seed: int = DEFAULT_SEED,
    orders: int = DEFAULT_ORDERS,
    chaos: ChaosSpec | None = None,
    host: str = "127.0.0.1",
    port: int = 8765,
    fd: int | None = None,
    totp: bool = False,
    reset: bool = False,
    log_level: str = "info",
) -> None:
    """Seed if needed and serve the portal until interrupted (blocking)."""
    import uvicorn

    from sandbox.app import DEFAULT_PASSWORD, PortalConfig, create_app
    from sandbox.totp import DEFAULT_TOTP_SECRET

    prepare_database(db_path, seed, orders, reset)
    config = PortalConfig(
        db_path=db_path,
        chaos=chaos or ChaosSpec(),
        password=os.environ.get(PASSWORD_ENV) or DEFAULT_PASSWORD,
        totp_secret=(os.environ.get(TOTP_ENV) or DEFAULT_TOTP_SECRET) if totp else None,
    )
    app = create_app(config)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=False))
    if fd is not None:
        server.run(sockets=[socket.socket(fileno=fd)])
    else:
        server.run()


class SandboxServer:
    """The portal in a subprocess on a loopback port; a context manager.

    Args:
        port: 0 for any free port.
        seed, orders: seed data (orders 10 to 100,000+).
        chaos: a spec string (``"error_rate=0.1,shuffle=1"``) or :class:`ChaosSpec`.
        db_path: the SQLite file; default a temporary one removed on exit.
        totp: ask for a TOTP security code after the password (secret ``totp_secret``).
        password: buyer1's password (default: ``PROCBOTS_SANDBOX_PASSWORD`` or the documented one).
    """

    def __init__(
        self,
        port: int = 0,
        seed: int = DEFAULT_SEED,
        chaos: str | ChaosSpec | None = None,
        db_path: Path | None = None,
        orders: int = DEFAULT_ORDERS,
        host: str = "127.0.0.1",
        totp: bool = False,
        totp_secret: str | None = None,
        password: str | None = None,
        startup_timeout_s: float = 120.0,
    ) -> None:
        self.host = host
        self.port = port
        self.seed = seed
        self.orders = orders
        self.chaos = chaos if isinstance(chaos, ChaosSpec) else ChaosSpec.parse(chaos)
        self.db_path = db_path
        self.totp = totp
        self.totp_secret = totp_secret
        self.password = password
        self.startup_timeout_s = startup_timeout_s
        self._proc: subprocess.Popen[bytes] | None = None
        self._tmp: Path | None = None
        self._log: Path | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:43817``."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> SandboxServer:
        """Start the subprocess and return once ``/healthz`` answers."""
        import httpx

        self._tmp = Path(tempfile.mkdtemp(prefix="procbots-sandbox-"))
        if self.db_path is None:
            self.db_path = self._tmp / "portal.db"
        self._log = self._tmp / "server.log"
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        sock.listen(128)
        sock.set_inheritable(True)
        self.port = sock.getsockname()[1]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        if self.password is not None:
            env[PASSWORD_ENV] = self.password
        if self.totp_secret is not None:
            env[TOTP_ENV] = self.totp_secret
        cmd = [
            sys.executable,
            "-m",
            "sandbox.server",
            "--fd",
            str(sock.fileno()),
            "--seed",
            str(self.seed),
            "--orders",
            str(self.orders),
            "--db",
            str(self.db_path),
            "--chaos",
            self.chaos.to_spec(),
        ]
        if self.totp:
            cmd.append("--totp")
        with self._log.open("wb") as log:
            self._proc = subprocess.Popen(
                cmd, pass_fds=(sock.fileno(),), env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
            )
        sock.close()  # the child holds the listening socket now
        deadline = time.monotonic() + self.startup_timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.stop()
                raise SandboxError(
                    f"sandbox portal did not answer /healthz in {self.startup_timeout_s:.0f} s"
                )
            try:
                # Connections queue on the already-listening socket, so this waits for the app itself.
                if httpx.get(f"{self.url}/healthz", timeout=remaining).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            try:
                code = self._proc.wait(timeout=0.1)
            except subprocess.TimeoutExpired:
                continue
            log_tail = self._log.read_text(errors="replace")[-2000:]
            self.stop()
            raise SandboxError(f"sandbox portal exited with {code}:\n{log_tail}")

    def stop(self) -> None:
        """Terminate the subprocess (and remove the temporary folder)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    @property
    def log(self) -> str:
        """What the portal process wrote so far."""
        return self._log.read_text(errors="replace") if self._log and self._log.exists() else ""

    def state(self, **filters: str | int) -> dict[str, Any]:
        """``GET /_sandbox/state`` with filters (``sections="purchase_orders"``, ``since_po=...``)."""
        import httpx

        response = httpx.get(
            f"{self.url}/_sandbox/state", params={k: str(v) for k, v in filters.items()}, timeout=60
        )
        response.raise_for_status()
        return response.json()  # type: ignore[no-any-return]

    def advance_clock(self, seconds: float) -> float:
        """Move the portal clock forward (session expiry, lockout, TOTP) and return portal time."""
        import httpx

        response = httpx.post(f"{self.url}/_sandbox/clock", json={"advance_s": seconds}, timeout=10)
        response.raise_for_status()
        return float(response.json()["now"])

    def clock(self) -> float:
        """Portal time (Unix seconds), for computing TOTP codes the portal accepts."""
        import httpx

        return float(httpx.get(f"{self.url}/_sandbox/clock", timeout=10).json()["now"])

    def unlock(self, username: str = "buyer1") -> None:
        """Clear a login lockout."""
        import httpx

        httpx.post(f"{self.url}/_sandbox/unlock", json={"username": username}, timeout=10).raise_for_status()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve the sandbox portal (used by SandboxServer)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--fd", type=int, default=None, help="serve on this inherited listening socket")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--orders", type=int, default=DEFAULT_ORDERS)
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--chaos", default="")
    parser.add_argument("--totp", action="store_true")
    parser.add_argument("--reset", action="store_true")
    args = parser.parse_args(argv)
    try:
        serve(
            args.db,
            args.seed,
            args.orders,
            ChaosSpec.parse(args.chaos),
            args.host,
            args.port,
            args.fd,
            args.totp,
            args.reset,
            log_level="warning",
        )
    except SandboxError as exc:
        print(exc, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
