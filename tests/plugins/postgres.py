"""PostgreSQL fixtures: a throwaway cluster from Debian's binaries, one per test session.

``make test`` installs the ``postgresql`` package first; the cluster itself is
ours: ``initdb`` into a temporary folder, ``pg_ctl start`` on a free port on
127.0.0.1 with trust authentication, stopped and deleted at the end. PostgreSQL
refuses to run as root, so as root the cluster runs as ``nobody`` (through
``runuser``). When the binaries are missing the tests that need PostgreSQL are
skipped with the reason printed.

Fixtures:
    postgres_server: the server's base URL (session).
    postgres_url: a fresh, empty database on it for one test.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

RUN_AS = "nobody"


def _pg_bin() -> Path | None:
    root = Path("/usr/lib/postgresql")
    found = list(root.glob("*/bin/pg_ctl")) if root.is_dir() else []
    candidates = sorted(found, key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0, reverse=True)
    return candidates[0].parent if candidates else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_cluster_user(cmd: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return cmd
    runuser = shutil.which("runuser")
    if runuser is None:
        pytest.skip("PostgreSQL tests: running as root without runuser, cannot drop privileges")
    return [runuser, "-u", RUN_AS, "--", *cmd]


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """Starts a private PostgreSQL cluster; yields ``postgresql://postgres@127.0.0.1:PORT``."""
    bindir = _pg_bin()
    if bindir is None:
        reason = "PostgreSQL binaries not found (/usr/lib/postgresql/*/bin); `make test` installs them"
        print(f"\n[postgres] skipped: {reason}")
        pytest.skip(reason)
    # Not under pytest's tmp_path: its parents are 0700 to root, and the cluster runs as nobody.
    base = Path(tempfile.mkdtemp(prefix="procbots-pg-"))
    data = base / "data"
    if os.geteuid() == 0:
        import pwd

        entry = pwd.getpwnam(RUN_AS)
        os.chown(base, entry.pw_uid, entry.pw_gid)
    base.chmod(0o700)
    port = _free_port()
    log = base / "server.log"
    env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
    try:
        subprocess.run(
            _as_cluster_user(
                [
                    str(bindir / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ]
            ),
            check=True,
            capture_output=True,
            env=env,
            cwd=base,
        )
        options = f"-p {port} -c listen_addresses=127.0.0.1 -k {base} -c fsync=off -c max_connections=60"
        subprocess.run(
            _as_cluster_user(
                [str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "start"]
            ),
            check=True,
            capture_output=True,
            env=env,
            cwd=base,
        )
    except subprocess.CalledProcessError as exc:
        detail = (exc.stderr or b"").decode(errors="replace")[-800:]
        if log.exists():
            detail += log.read_text(errors="replace")[-800:]
        shutil.rmtree(base, ignore_errors=True)
        pytest.fail(f"could not start PostgreSQL from {bindir}: {detail}")
    url = f"postgresql://postgres@127.0.0.1:{port}"
    try:
        yield url
    finally:
        subprocess.run(
            _as_cluster_user([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]),
            capture_output=True,
            env=env,
            cwd=base,
            check=False,
        )
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: str) -> str:
    """A fresh database on the session's PostgreSQL server, for one test."""
    import psycopg

    name = f"procbots_{uuid.uuid4().hex[:10]}"
    deadline = time.monotonic() + 20
    while True:
        try:
            with psycopg.connect(f"{postgres_server}/postgres", autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            break
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    return f"{postgres_server}/{name}"
