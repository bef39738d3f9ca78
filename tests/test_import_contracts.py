"""The architecture's import contracts hold: the layers, a pure domain, no import cycle."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PURE_MODULES = [
    "bots/domain/models.py",
    "bots/domain/identifiers.py",
    "bots/domain/matching.py",
    "bots/domain/match_sequential.py",
    "bots/domain/match_tables.py",
]
FORBIDDEN = {"prefect", "playwright", "openpyxl", "python_calamine", "sqlalchemy", "httpx", "requests",
             "socket", "subprocess", "connectors", "flows", "sandbox", "structlog", "defusedxml", "os", "io",
             "pathlib", "shutil", "sqlite3", "urllib"}


def test_import_linter_contracts_pass() -> None:
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint_imports)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Pure domain" in result.stdout
    assert "imports the sandbox only inside the sandbox and demo commands KEPT" in result.stdout
    assert "Layers: flows -> bot modules -> bots.runtime -> connectors" in result.stdout
    assert "Production code never imports the tests (the matching oracle lives there) KEPT" in result.stdout


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


PRODUCT_PACKAGES = ("bots", "connectors", "config", "flows", "sandbox")


def import_cycles(*packages: str) -> list[tuple[str, ...]]:
    """Every import cycle among the modules of ``packages``, as a chain that comes back to its
    start (function-level and TYPE_CHECKING imports count: they are imports too)."""
    import grimp

    graph = grimp.build_graph(*packages, cache_dir=None)
    cycles: dict[frozenset[str], tuple[str, ...]] = {}
    for module in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            back = graph.find_shortest_chain(importer=imported, imported=module)
            if back is not None:
                cycle = (module, *back)
                cycles.setdefault(frozenset(cycle), cycle)
    return sorted(cycles.values())


def test_no_import_cycle_among_product_modules() -> None:
    """No product module imports (directly or through others) a module that imports it back."""
    cycles = import_cycles(*PRODUCT_PACKAGES)
    assert cycles == [], "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_the_cycle_finder_finds_a_planted_cycle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Control: a cycle through a function-level import and a TYPE_CHECKING one is found."""
    package = tmp_path / "planted"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("def f():\n    from planted import b\n    return b\n")
    (package / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from planted import a\n"
    )
    (package / "c.py").write_text("from planted import a\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert import_cycles("planted") == [("planted.a", "planted.b", "planted.a")]


def _layers() -> list[str]:
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    [layers] = [c["layers"] for c in config["contracts"] if c["type"] == "layers"]
    return list(layers)


def test_the_layers_contract_runs_flows_bots_runtime_connectors_domain_and_config() -> None:
    """The contract's layers, top to bottom, are the architecture's."""
    layers = _layers()
    assert layers[0] == "flows"
    assert layers[2:] == ["bots.runtime", "connectors", "bots.domain | config"]


def test_every_bot_module_is_in_the_bot_modules_layer() -> None:
    """A module added to bots/ sits in the layers contract's bot-modules layer (else import-linter
    would not check it): add it there, next to the other bot modules."""
    layer = {name.strip().strip("()") for name in _layers()[1].split(":")}
    modules = {f"bots.{path.stem}" for path in (ROOT / "bots").glob("*.py") if path.stem != "__init__"}
    missing = sorted(modules - layer)
    assert missing == [], f"add {missing} to the bot-modules layer in pyproject.toml"


def test_no_product_module_imports_the_tests_or_a_reference_engine() -> None:
    """One matching engine in the product: the reference engine is the tests' oracle
    (tests/oracle/matching.py), and no product module imports anything from tests/."""
    offenders = []
    for package in ("bots", "connectors", "config", "flows"):
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                names = []
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names = [node.module]
                offenders += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] == "tests"]
    assert offenders == []
    import bots.domain.matching as matching

    assert not hasattr(matching, "match_invoices")
    assert not hasattr(matching, "match_invoice")
