"""A real Prefect server, work pool and worker for the whole test session.

``prefect_server`` starts ``prefect server start`` on 127.0.0.1 (free port,
temporary PREFECT_HOME, analytics off, scheduler off so no scheduled run sneaks
in, SQLite in the temp folder), waits for ``/api/health``, creates the
``procbots`` process work pool and the ``portal-browser-sessions`` limit
(``procbots serve --setup``'s code), registers every deployment of
``prefect.yaml`` whose flow exists (``prefect deploy`` run in the checkout, as an
operator would; the others are skipped with the reason printed), and starts a
worker (``prefect worker start --pool procbots``) in another folder, so the
``set_working_directory`` pull step is what finds the checkout.

Everything is torn down at the end; when a test of the session failed, the
server and worker logs are printed.

The Prefect server database is SQLite by default. Override the
``prefect_server_database_url`` fixture (e.g. with one built on
``postgres_server``) to run the same server on PostgreSQL
(``postgresql+asyncpg://...``); ``PROCBOTS_TEST_PREFECT_DB=postgres`` does that
here when the PostgreSQL binaries exist.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

from flows.demo_server import stop_group

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.objects import FlowRun

REPO_ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(
    condition: Callable[[], T | None], *, timeout_s: float, interval_s: float = 0.25, what: str = "condition"
) -> T:
    """Polls ``condition`` until it returns something truthy; fails after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except Exception as exc:
            last_error = exc
        time.sleep(interval_s)
    raise TimeoutError(f"{what} not reached within {timeout_s:.0f} s (last error: {last_error!r})")


@dataclass
class PrefectServer:
    """A running Prefect server with the procbots work pool, deployments and one worker."""

    api_url: str
    ui_url: str
    home: Path
    checkout: Path
    env: dict[str, str]
    server_log: Path
    worker_log: Path
    deployed: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    worker_logs: list[Path] = field(default_factory=list)
    """Every worker's log (the first is ``worker_log``)."""

    @contextlib.contextmanager
    def client(self) -> Iterator[SyncPrefectClient]:
        """A sync Prefect client talking to this server (not the session's ephemeral API)."""
        from prefect.client.orchestration import get_client
        from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL, temporary_settings

        with (
            temporary_settings({PREFECT_API_URL: self.api_url, PREFECT_UI_URL: self.ui_url}),
            get_client(sync_client=True) as client,
        ):
            yield client

    def run_deployment(
        self,
        name: str,
        parameters: dict[str, Any] | None = None,
        *,
        job_variables: dict[str, Any] | None = None,
        timeout_s: float = 120,
    ) -> FlowRun:
        """Triggers ``flow/deployment`` through the API and waits for a final state."""
        from prefect.deployments import run_deployment
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings({PREFECT_API_URL: self.api_url}):
            created = run_deployment(
                name=name, parameters=parameters or {}, job_variables=job_variables, timeout=0
            )
        flow_run_id = created.id  # type: ignore[union-attr]

        def final() -> FlowRun | None:
            with self.client() as client:
                run = client.read_flow_run(flow_run_id)
            return run if run.state is not None and run.state.is_final() else None

        return wait_for(final, timeout_s=timeout_s, interval_s=0.5, what=f"final state of {name}")

    def logs(self, lines: int = 80) -> str:
        """The tails of the server and worker logs."""
        parts = []
        for path in (self.server_log, *(self.worker_logs or [self.worker_log])):
            text = path.read_text(errors="replace").splitlines() if path.exists() else []
            parts.append(f"----- {path.name} (last {lines} lines) -----\n" + "\n".join(text[-lines:]))
        return "\n".join(parts)


def _health(api_url: str) -> bool:
    with urllib.request.urlopen(f"{api_url}/health", timeout=2) as response:
        return bool(response.status == 200)


@pytest.fixture(scope="session")
def prefect_server_database_url(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> str:
    """The Prefect server's database: SQLite in a temp folder, or PostgreSQL on request."""
    if os.environ.get("PROCBOTS_TEST_PREFECT_DB") == "postgres":
        import psycopg

        server: str = request.getfixturevalue("postgres_server")
        with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
            conn.execute('CREATE DATABASE "prefect_server"')
        return server.replace("postgresql://", "postgresql+asyncpg://", 1) + "/prefect_server"
    folder = tmp_path_factory.mktemp("prefect-server-db")
    return f"sqlite+aiosqlite:///{folder / 'prefect.db'}"


@contextlib.contextmanager
def start_prefect_server(
    base: Path,
    database_url: str,
    request: pytest.FixtureRequest,
    *,
    workers: int = 1,
    worker_limit: int | None = None,
) -> Iterator[PrefectServer]:
    """``prefect server start`` + ``procbots`` work pool + deployments + ``workers`` workers.

    Worker 0 uses ``base/var`` as its data root (``server.env``); each further
    worker is another "machine": its own folder, data root ``base/var-w<n>`` and
    name ``procbots-worker-<n>``. ``worker_limit`` caps the flow runs a worker
    takes at once (``--limit``).
    """
    from flows.commands.serve import PREFECT_YAML, deploy_to_work_pool, ensure_operations_setup

    port = _free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    ui_url = f"http://127.0.0.1:{port}"
    home = base / "home"
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("PREFECT_") and not key.startswith("PROCBOTS_")
    }
    env.update(
        {
            "PREFECT_HOME": str(home),
            "PREFECT_API_URL": api_url,
            "PREFECT_UI_URL": ui_url,
            "PREFECT_UI_ENABLED": "true",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_API_DATABASE_CONNECTION_URL": database_url,
            # Schedules are stored and read back, but no scheduled run may start mid-test.
            "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",
            "PREFECT_LOGGING_EXTRA_LOGGERS": "procbots",
            "PREFECT_LOGGING_TO_API_BATCH_INTERVAL": "0.3",
            "PREFECT_WORKER_QUERY_SECONDS": "1",
            "PREFECT_WORKER_HEARTBEAT_SECONDS": "5",
            "PROCBOTS_CHECKOUT": str(REPO_ROOT),
            "PROCBOTS_PATHS__ROOT": str(base / "var"),
            "PYTHONUNBUFFERED": "1",
        }
    )
    server_log = base / "server.log"
    worker_log = base / "worker.log"
    server = PrefectServer(api_url, ui_url, home, REPO_ROOT, env, server_log, worker_log)
    server.worker_logs = [worker_log] + [base / f"worker-{n}.log" for n in range(1, workers)]
    failed_before = request.session.testsfailed
    processes: list[subprocess.Popen[bytes]] = []
    started = time.monotonic()
    try:
        with server_log.open("wb") as log:
            processes.append(
                subprocess.Popen(
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
                    cwd=base,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )

        def healthy() -> bool:
            if processes[0].poll() is not None:
                pytest.fail(f"prefect server exited ({processes[0].returncode}):\n{server.logs()}")
            return _health(api_url)

        wait_for(healthy, timeout_s=120, what="prefect server /api/health")
        server.timings["server_start_s"] = time.monotonic() - started

        mark = time.monotonic()
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings({PREFECT_API_URL: api_url}):
            ensure_operations_setup()
        # The workers only need the pool: start them now, so their start-up overlaps the deploy.
        for number, log_path in enumerate(server.worker_logs):
            worker_dir = base / ("worker" if number == 0 else f"worker-{number}")
            worker_dir.mkdir()
            command = [sys.executable, "-m", "prefect", "worker", "start", "--pool", "procbots"]
            command += ["--type", "process"]
            worker_env = env
            if number:
                command += ["--name", f"procbots-worker-{number}"]
                worker_env = {**env, "PROCBOTS_PATHS__ROOT": str(base / f"var-w{number}")}
            if worker_limit is not None:
                command += ["--limit", str(worker_limit)]
            with log_path.open("wb") as log:
                processes.append(
                    subprocess.Popen(
                        command,
                        env=worker_env,
                        cwd=worker_dir,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
        server.deployed, server.skipped = deploy_to_work_pool(PREFECT_YAML, REPO_ROOT, env=env)
        for name, reason in server.skipped:
            print(f"prefect_server: skipped deployment {name}: {reason}")
        server.timings["deploy_s"] = time.monotonic() - mark

        def workers_online() -> bool:
            for process in processes[1:]:
                if process.poll() is not None:
                    pytest.fail(f"prefect worker exited ({process.returncode}):\n{server.logs()}")
            with server.client() as client:
                return len(client.read_workers_for_work_pool("procbots")) >= workers

        wait_for(
            workers_online,
            timeout_s=90,
            interval_s=0.5,
            what=f"{workers} worker(s) registered with pool procbots",
        )
        server.timings["worker_ready_s"] = time.monotonic() - mark
    except BaseException:
        for process in reversed(processes):
            stop_group(process)
        print(f"\n===== Prefect server and worker logs ({base}) =====\n{server.logs()}")
        raise
    try:
        yield server
    finally:
        print(f"\nprefect_server timings: {', '.join(f'{k}={v:.1f}' for k, v in server.timings.items())}")
        for process in reversed(processes):
            stop_group(process)
        if request.session.testsfailed > failed_before:
            print(f"\n===== Prefect server and worker logs ({base}) =====\n{server.logs()}")


@pytest.fixture(scope="session")
def prefect_server(
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
    prefect_server_database_url: str,
) -> Iterator[PrefectServer]:
    """A real ``prefect server start`` + ``procbots`` work pool + deployments + a worker."""
    base = tmp_path_factory.mktemp("prefect-server")
    with start_prefect_server(base, prefect_server_database_url, request) as server:
        yield server


@dataclass
class RecordedRequest:
    """One request a :class:`WebhookReceiver` saw."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int

    def json(self) -> Any:
        import json

        return json.loads(self.body)


class WebhookReceiver:
    """A real HTTP server on 127.0.0.1 that records requests and answers from a script.

    ``statuses`` are answered in order (e.g. ``[503]`` fails the first request),
    then 200 for every later one. ``url`` has a secret-looking token in its path,
    as Teams webhook URLs do.
    """

    def __init__(self, statuses: list[int] | None = None, token: str = "s3cr3t-webhook-token-7f9a") -> None:
        import http.server
        import threading

        self.token = token
        self.requests: list[RecordedRequest] = []
        self._statuses = list(statuses or [])
        self._lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with receiver._lock:
                    status = receiver._statuses.pop(0) if receiver._statuses else 200
                    receiver.requests.append(
                        RecordedRequest("POST", self.path, dict(self.headers.items()), body, status)
                    )
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="webhook-receiver", daemon=True
        )
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/webhook/{token}"

    def delivered(self) -> list[RecordedRequest]:
        """Requests answered 2xx."""
        with self._lock:
            return [r for r in self.requests if 200 <= r.status < 300]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    """A recording webhook that fails its first request with 503."""
    receiver = WebhookReceiver(statuses=[503])
    yield receiver
    receiver.close()
