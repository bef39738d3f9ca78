"""Each `procbots` command imports only what it uses: `--help` none of the heavy libraries,
the sandbox only inside the `sandbox` and `demo` commands.

The modules a command imports are read from ``python -X importtime`` of the installed
console script, so what is checked is what a user's shell runs. How fast start-up is,
is measured by ``benchmarks/bench_startup.py``, not here.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROCBOTS = Path(sys.executable).with_name("procbots")
FIXTURES = ROOT / "tests" / "fixtures"

HEAVY = ("prefect", "playwright", "polars", "numpy", "openpyxl", "sqlalchemy", "sandbox")
"""Libraries (and the fake portal) that ``procbots --help`` must not load."""


def imported_modules(*args: str, env: dict[str, str] | None = None) -> tuple[set[str], int]:
    """The modules (full dotted names) a ``procbots`` run imported, and its exit code."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", str(PROCBOTS), *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )
    modules = {
        line.rsplit("|", 1)[1].strip()
        for line in result.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    modules.discard("imported package")  # the header line
    return modules, result.returncode


def imported_packages(*args: str, env: dict[str, str] | None = None) -> tuple[set[str], int]:
    """The top-level packages a ``procbots`` run imported, and its exit code."""
    modules, code = imported_modules(*args, env=env)
    return {module.split(".")[0] for module in modules}, code


RUN_OPTIONS = {"bots", "bots.registry", "bots.bot_parameters"}
"""What ``procbots run <bot> --help`` makes its options from: the bot registry and the
parameter models (pydantic only), never the bot itself."""


def test_the_console_script_is_installed_where_the_tests_look() -> None:
    assert PROCBOTS.is_file(), f"{PROCBOTS}: run `uv sync` so the console script exists"


def test_procbots_help_imports_none_of_the_heavy_libraries_nor_the_sandbox() -> None:
    packages, code = imported_packages("--help")
    assert code == 0
    assert "typer" in packages, "the importtime listing was not read (control)"
    assert sorted(packages & set(HEAVY)) == []


def test_procbots_help_does_not_load_the_settings_or_pydantic() -> None:
    packages, code = imported_packages("--help")
    assert code == 0
    assert {"config", "pydantic", "pydantic_settings", "bots", "connectors"} & packages == set()


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["peppol", "--help"], id="peppol"),
        pytest.param(["run", "purchase-orders", "--help"], id="run-purchase-orders"),
        pytest.param(["match", "--help"], id="match"),
        pytest.param(["sandbox", "serve", "--help"], id="sandbox-serve"),
        pytest.param(["demo", "--help"], id="demo"),
        pytest.param(["serve", "--help"], id="serve"),
        pytest.param(["console", "--help"], id="console"),
        pytest.param(["items", "list", "--help"], id="items-list"),
        pytest.param(["audit", "verify", "--help"], id="audit-verify"),
    ],
)
def test_a_command_help_does_not_load_the_settings_nor_what_the_command_runs(args: list[str]) -> None:
    modules, code = imported_modules(*args)
    packages = {module.split(".")[0] for module in modules - RUN_OPTIONS}
    assert code == 0
    # (Typer itself imports pydantic to convert a subcommand's parameters.)
    assert sorted(packages & {"config", "pydantic_settings", "bots", "connectors", *HEAVY}) == []


@pytest.mark.parametrize(
    ("args", "needed"),
    [
        pytest.param(
            ["peppol", "read", str(FIXTURES / "peppol" / "invoice" / "base-example.xml"), "--json"],
            {"connectors", "defusedxml"},
            id="peppol-read",
        ),
        pytest.param(["audit", "verify", "{tmp}/audit.jsonl"], {"connectors"}, id="audit-verify"),
        pytest.param(["items", "list"], {"sqlalchemy"}, id="items-list"),
    ],
)
def test_a_command_imports_what_it_uses_and_not_the_browser_orchestrator_or_sandbox(
    args: list[str], needed: set[str], tmp_path: Path
) -> None:
    (tmp_path / "audit.jsonl").touch()
    argv = [arg.replace("{tmp}", str(tmp_path)) for arg in args]
    packages, _ = imported_packages(*argv, env={"PROCBOTS_PATHS__ROOT": str(tmp_path)})
    assert needed <= packages, f"the command did not run as expected (control): {sorted(packages)}"
    assert sorted(packages & {"prefect", "playwright", "sandbox", "polars", "numpy", "openpyxl"}) == []


def test_the_sandbox_commands_do_load_the_sandbox(tmp_path: Path) -> None:
    packages, code = imported_packages("sandbox", "data", "--out", str(tmp_path), "--orders", "10")
    assert code == 0
    assert "sandbox" in packages


def test_procbots_match_of_csv_files_loads_no_browser_orchestrator_ledger_or_workbook_writer(
    tmp_path: Path,
) -> None:
    import csv

    from tests.test_match_cli import INVOICE_A1, INVOICE_HEADER, ORDER_HEADER, ORDER_ROWS, RECEIPTS_CSV

    with (tmp_path / "orders.csv").open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([ORDER_HEADER, *ORDER_ROWS])
    (tmp_path / "receipts.csv").write_text(RECEIPTS_CSV, encoding="utf-8")
    (tmp_path / "invoices.csv").write_text(INVOICE_HEADER + INVOICE_A1, encoding="utf-8")
    packages, code = imported_packages(
        "match", "--orders", str(tmp_path / "orders.csv"), "--receipts", str(tmp_path / "receipts.csv"),
        "--invoices", str(tmp_path / "invoices.csv"), "--json",
    )  # fmt: skip
    assert code == 0, "the invoice is approved (control: the command ran)"
    assert sorted(packages & {"prefect", "playwright", "sqlalchemy", "sandbox", "openpyxl"}) == []
