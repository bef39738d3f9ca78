"""The architecture's import contracts hold: pure domain modules import no I/O library."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PURE_MODULES = ["bots/domain/models.py", "bots/domain/identifiers.py", "bots/domain/matching.py"]
FORBIDDEN = {"prefect", "playwright", "openpyxl", "python_calamine", "sqlalchemy", "httpx", "requests",
             "socket", "subprocess", "connectors", "flows", "sandbox", "structlog", "defusedxml", "os", "io",
             "pathlib", "shutil", "sqlite3", "urllib"}


def test_import_linter_contracts_pass() -> None:
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint_imports)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Pure domain" in result.stdout
    assert "imports the sandbox only inside the sandbox and demo commands KEPT" in result.stdout


@pytest.mark.parametrize("module", PURE_MODULES)
def test_pure_module_imports_nothing_that_does_io(module: str) -> None:
    path = ROOT / module
    if not path.exists():
        pytest.skip(f"{module} does not exist yet")
    imported: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            imported.add(node.module.split(".")[0])
    assert not imported & FORBIDDEN, f"{module} imports {sorted(imported & FORBIDDEN)}"
