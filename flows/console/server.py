"""Run the console: in the foreground (``procbots console``) or on a background thread.

:class:`ConsoleServer` serves it on a thread of this process (``procbots serve
--console`` beside the Prefect deployments, and tests), binding the socket first
so port 0 picks a free port without a race.

Example:
    >>> with ConsoleServer(get_settings(), port=0) as server:  # doctest: +SKIP
    ...     print(server.url)
    http://127.0.0.1:41235
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from types import TracebackType

import uvicorn

from config.logging import get_logger
from config.settings import Settings

__all__ = ["ConsoleServer", "is_loopback", "run_console", "setup_problem"]


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def setup_problem(settings: Settings) -> str | None:
    """Why the console cannot be used as configured (no one may sign in), or ``None``."""
    if not settings.console.users:
        return (
            "no console users are configured: add one to [console.users] with "
            "`procbots console hash-password NAME` (see docs/operations.md)"
        )
    return None


def _config(settings: Settings, host: str, port: int) -> uvicorn.Config:
    from flows.console.app import create_app

    return uvicorn.Config(
        create_app(settings), host=host, port=port, log_level="warning", access_log=False, lifespan="off"
    )


def run_console(settings: Settings, host: str | None = None, port: int | None = None) -> None:
    """Serves the console until Ctrl-C (``procbots console``)."""
    host = host or settings.console.host
    port = settings.console.port if port is None else port
    uvicorn.Server(_config(settings, host, port)).run()


class ConsoleServer:
    """The console on a daemon thread of this process; ``url`` is where it answers."""

    def __init__(self, settings: Settings, host: str | None = None, port: int | None = None) -> None:
        self.settings = settings
        self.host = host or settings.console.host
        self.port = settings.console.port if port is None else port
        self._thread: threading.Thread | None = None
        self._server: uvicorn.Server | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout_s: float = 30) -> ConsoleServer:
        """Binds the port, starts serving, and returns once the console answers."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        self._server = server = uvicorn.Server(_config(self.settings, self.host, self.port))
        self._thread = thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="procbots-console", daemon=True
        )
        thread.start()
        deadline = time.monotonic() + timeout_s
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the console did not start on {self.url}")
            time.sleep(0.02)
        get_logger("console").info("console started", url=self.url)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        self._thread = self._server = None

    def __enter__(self) -> ConsoleServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
