"""`procbots console` and `procbots serve --console` as a user starts them: real processes, real HTTP."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import httpx
import pytest

from flows.console.auth import hash_password
from tests.plugins.prefect_server import wait_for

pytestmark = [pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
PROCBOTS = Path(sys.executable).with_name("procbots")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def console_users(settings_env: Path) -> dict[str, str]:
    users = {"jsmith": {"name": "Jane Smith", "password_hash": hash_password("Console-Command-Pw-1")}}
    return {
        **os.environ,
        "PROCBOTS_CONSOLE__USERS": json.dumps(users),
        "PROCBOTS_PATHS__ROOT": str(settings_env),
    }


@contextmanager
def started(command: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        yield process
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def answers(url: str, process: subprocess.Popen[str]) -> bool:
    """Whether the console answers (raises once the process has ended, so the wait stops)."""
    if process.poll() is not None:
        output = process.stdout.read() if process.stdout else ""
        raise AssertionError(f"exited {process.returncode}: {output[-2000:]}")
    return httpx.get(url + "/login", timeout=2).status_code == 200


def test_procbots_console_serves_the_sign_in_page_on_the_port_given(console_users: dict[str, str]) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with started([str(PROCBOTS), "console", "--port", str(port)], console_users) as process:
        wait_for(partial(answers, url, process), timeout_s=60, what="procbots console answering")
        assert "Sign in" in httpx.get(url + "/login").text
        assert httpx.get(url + "/", follow_redirects=False).headers["location"] == "/login?next=/"
        assert process.poll() is None


@pytest.mark.prefect
def test_procbots_serve_with_console_serves_the_console_beside_the_deployments(
    prefect_api: None, console_users: dict[str, str]
) -> None:
    from prefect.settings import PREFECT_API_URL

    port = free_port()
    env = {
        **console_users,
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
        "PROCBOTS_CONSOLE__PORT": str(port),
    }
    url = f"http://127.0.0.1:{port}"
    with started([str(PROCBOTS), "serve", "--console"], env) as process:
        wait_for(partial(answers, url, process), timeout_s=120, what="the console beside procbots serve")
        assert "Sign in" in httpx.get(url + "/login").text
        assert process.poll() is None  # still serving the deployments
