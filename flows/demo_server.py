"""The Prefect API of ``procbots demo``: the configured one, or a local ``prefect server start``.

Started in its own process group in the background (:meth:`PrefectApi.start_local`), waited
for through ``/api/health`` and stopped as one group. Used by :mod:`flows.demo`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "PREFECT_START_TIMEOUT_S",
    "PREFERRED_PREFECT_PORT",
    "DemoSetupError",
    "PrefectApi",
    "api_healthy",
    "stop_group",
]

PREFERRED_PREFECT_PORT = 4200  # Prefect's usual port, when free: the URL people know
PREFECT_START_TIMEOUT_S = 300.0  # a first start migrates a new database; slow on a busy 2-core box


class DemoSetupError(Exception):
    """The demo could not be prepared (exit 2): the message says what and how to fix it."""


def _free_port(preferred: int | None = None) -> int:
    if preferred is not None:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", preferred))
            except OSError:
                pass
            else:
                return preferred
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def api_healthy(api_url: str, timeout_s: float = 3.0) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url.rstrip('/')}/health", timeout=timeout_s) as response:  # noqa: S310 (http URL we built or were given)
            return bool(200 <= response.status < 300)
    except (urllib.error.URLError, TimeoutError, OSError):
        return False


def stop_group(process: subprocess.Popen[bytes] | None, timeout_s: float = 15.0) -> None:
    """Stops a process we started in its own session: SIGTERM to the group, then SIGKILL."""
    if process is None or process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


@dataclass
class PrefectApi:
    """The Prefect API the demo's runs report to: the configured one, or a local server we started."""

    api_url: str
    ui_url: str | None
    local: bool
    home: Path | None = None
    log: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    @classmethod
    def configured(cls) -> PrefectApi | None:
        """The API named by ``PREFECT_API_URL`` (environment or Prefect profile), if any."""
        from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL

        api_url = PREFECT_API_URL.value()
        if not api_url:
            return None
        ui_url = PREFECT_UI_URL.value()
        return cls(
            api_url=str(api_url).rstrip("/"), ui_url=str(ui_url).rstrip("/") if ui_url else None, local=False
        )

    @classmethod
    def start_local(cls, home: Path, log: Path) -> PrefectApi:
        """Starts ``prefect server start`` on 127.0.0.1 in the background (see :meth:`wait_ready`)."""
        port = _free_port(PREFERRED_PREFECT_PORT)
        home.mkdir(parents=True, exist_ok=True)
        log.parent.mkdir(parents=True, exist_ok=True)
        env = {
            key: value
            for key, value in os.environ.items()
            # Our own home and SQLite database, whatever the user's profile says.
            if not key.startswith(("PREFECT_API_", "PREFECT_SERVER_DATABASE", "PREFECT_UI_"))
        }
        env.update(
            {
                "PREFECT_HOME": str(home),
                "PREFECT_PROFILES_PATH": str(home / "profiles.toml"),
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "PREFECT_UI_ENABLED": "true",
                "PYTHONUNBUFFERED": "1",
            }
        )
        with log.open("ab") as out:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "prefect",
                    "server",
                    "start",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                ],
                env=env,
                cwd=home,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own group: stopped as one, and Ctrl-C reaches us first
            )
        base = f"http://127.0.0.1:{port}"
        return cls(api_url=f"{base}/api", ui_url=base, local=True, home=home, log=log, process=process)

    def wait_ready(self, timeout_s: float = PREFECT_START_TIMEOUT_S) -> float:
        """Waits for ``/api/health``; returns the seconds waited. Raises DemoSetupError."""
        started = time.monotonic()
        deadline = started + timeout_s
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise DemoSetupError(
                    f"prefect server exited with code {self.process.returncode}; see {self.log}:\n"
                    + _tail(self.log, 20)
                )
            if api_healthy(self.api_url):
                return time.monotonic() - started
            time.sleep(0.5)
        where = f"; see {self.log}" if self.log else ""
        raise DemoSetupError(
            f"the Prefect API at {self.api_url} did not answer within {timeout_s:.0f} s{where}"
        )

    def child_env(self) -> dict[str, str]:
        """Environment that sends a flow's runs, logs and artifacts to this API."""
        env = {"PREFECT_API_URL": self.api_url}
        if self.ui_url:
            env["PREFECT_UI_URL"] = self.ui_url
        if self.local and self.home is not None:
            env["PREFECT_HOME"] = str(self.home)
            env["PREFECT_PROFILES_PATH"] = str(self.home / "profiles.toml")
        return env

    def run_url(self, flow_run_id: str | None) -> str | None:
        if not flow_run_id or not self.ui_url:
            return None
        return f"{self.ui_url}/runs/flow-run/{flow_run_id}"

    def stop(self) -> None:
        stop_group(self.process)
        self.process = None


def _tail(path: Path | None, lines: int) -> str:
    if path is None or not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
