"""Isolates every test session: temporary PREFECT_HOME and procbots data root.

Set at import time, before anything imports Prefect, so no test touches the
developer's own ~/.prefect or ./var.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

_SESSION_DIR = Path(tempfile.mkdtemp(prefix="procbots-tests-"))
os.environ["PREFECT_HOME"] = str(_SESSION_DIR / "prefect-home")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "90"
os.environ["PREFECT_LOGGING_TO_API_BATCH_INTERVAL"] = "0.3"
os.environ["PROCBOTS_PATHS__ROOT"] = str(_SESSION_DIR / "var")
# PROCBOTS_TEST_* are switches of the test suite itself (e.g. PROCBOTS_TEST_PREFECT_DB), kept.
for _key in [
    k
    for k in os.environ
    if k.startswith("PROCBOTS_") and k != "PROCBOTS_PATHS__ROOT" and not k.startswith("PROCBOTS_TEST_")
]:
    del os.environ[_key]


@pytest.fixture(scope="session")
def session_dir() -> Path:
    """A temporary folder for the whole test session."""
    return _SESSION_DIR


@pytest.fixture
def settings_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Points procbots settings at a fresh data root for one test; returns that root."""
    from config.settings import get_settings

    monkeypatch.setenv("PROCBOTS_PATHS__ROOT", str(tmp_path / "var"))
    get_settings.cache_clear()
    yield tmp_path / "var"
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def test_output() -> Path:
    """Folder for artefacts a human may want to look at after the run (screenshots)."""
    out = Path(__file__).resolve().parents[2] / "test-output"
    out.mkdir(exist_ok=True)
    return out
