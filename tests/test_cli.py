"""The command line starts, lists its commands and rejects bad settings cleanly."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _procbots(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from flows.cli import main; main()", *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_help_lists_every_command_group() -> None:
    result = _procbots("--help")
    assert result.returncode == 0, result.stderr
    for command in ("sandbox", "audit", "items", "peppol", "run", "match", "demo", "serve"):
        assert command in result.stdout


def test_bad_setting_exits_2_naming_key_value_and_expectation() -> None:
    result = _procbots("demo", env={"PROCBOTS_BROWSER__CONTEXTS": "many"})
    assert result.returncode == 2
    assert "browser.contexts" in result.stderr
    assert "'many'" in result.stderr
    assert "integer" in result.stderr
    assert "Traceback" not in result.stderr
