"""The ``invoice-matching`` flow and ``procbots run invoice-matching`` in file mode.

Inputs are the sandbox generator's own files (orders, receipts, UBL invoices) for
a fixed seed; the flow runs once through a real ephemeral Prefect API.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from bots.bot_parameters import InvoiceMatchingParameters
from sandbox.server import SandboxServer

SEED = 1
ORDERS = 20


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Orders, receipts and invoices written by the sandbox generator (seed 1, 20 orders)."""
    from sandbox.datafiles import write_input_files

    folder = tmp_path_factory.mktemp("invoice-sample")
    write_input_files(folder, seed=SEED, orders=ORDERS)
    return folder


def _engine_counts(sample: Path) -> Counter[str]:
    from connectors.match_inputs import load_invoices, load_orders, load_receipts
    from tests.oracle.matching import match_invoices

    decisions = match_invoices(
        load_orders(sample / "orders.csv"),
        load_receipts(sample / "receipts.csv"),
        load_invoices([sample / "invoices"]),
    )
    return Counter(d.decision for d in decisions)


@pytest.mark.parametrize(
    ("given", "message"),
    [
        pytest.param(
            {"portal_url": "http://127.0.0.1:1", "orders": "o.csv", "invoices": ["i"]},
            "either portal_url",
            id="both-modes",
        ),
        pytest.param({"orders": "o.csv"}, "needs both orders and invoices", id="orders-without-invoices"),
        pytest.param({"invoices": ["i.xml"]}, "needs both orders and invoices", id="invoices-without-orders"),
        # 0 means "use the browser.contexts setting" (a plain default, no None toggle in the form)
        pytest.param({"workers": -1}, "greater than or equal to 0", id="negative-workers"),
        pytest.param({"portal": "x"}, "Extra inputs are not permitted", id="unknown-field"),
    ],
)
def test_parameters_refuse_mixed_or_incomplete_modes(given: dict[str, Any], message: str) -> None:
    """A bad parameter set is refused before a run starts, saying what is wrong."""
    with pytest.raises(ValidationError, match=message):
        InvoiceMatchingParameters(**given)


def test_parameters_choose_the_mode_from_the_inputs() -> None:
    """No files means the portal's inbox; orders and invoices mean offline file matching."""
    assert InvoiceMatchingParameters().mode == "portal"
    assert InvoiceMatchingParameters(orders="o.csv", invoices=["inv"]).mode == "files"


def test_cli_file_mode_prints_json_and_exits_1_when_some_are_held(
    sample: Path, settings_env: Path, tmp_path: Path
) -> None:
    """``procbots run invoice-matching --orders --receipts --invoices --json``: counts as the engine's,
    the report written, exit 1 because some documents are held."""
    from flows.cli import app

    out = tmp_path / "report.xlsx"
    result = CliRunner().invoke(
        app,
        [
            "run", "invoice-matching", "--orders", str(sample / "orders.csv"),
            "--receipts", str(sample / "receipts.csv"), "--invoices", str(sample / "invoices"),
            "--out", str(out), "--json",
        ],
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    shown = json.loads(result.stdout)
    expected = _engine_counts(sample)
    assert shown["mode"] == "files"
    assert shown["counts"] == {kind: expected.get(kind, 0) for kind in ("approve", "hold", "reject")}
    assert len(shown["exceptions"]) == expected["hold"] + expected["reject"]
    assert sum(r["count"] for r in shown["hold_reasons"]) >= expected["hold"]
    assert shown["report"] == str(out)
    assert out.is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["--orders", "nowhere.csv", "--invoices", "nowhere"], "no such file", id="missing-file"),
        pytest.param(
            ["--portal", "http://127.0.0.1:1", "--orders", "o.csv", "--invoices", "i"],
            "either portal_url",
            id="both-modes",
        ),
        pytest.param(["--orders", "o.csv"], "needs both orders and invoices", id="no-invoices"),
    ],
)
def test_cli_bad_usage_exits_2_with_a_clear_message(
    args: list[str], message: str, settings_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bad usage is exit 2 and one line on stderr, never a traceback."""
    from flows.cli import app

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["run", "invoice-matching", *args])
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.prefect
@pytest.mark.slow
def test_flow_file_mode_completes_with_summary_exceptions_and_report_artifacts(
    prefect_api: None, sample: Path, settings_env: Path
) -> None:
    """The flow through the Prefect API in file mode: Completed, a markdown summary with the
    counts by decision and top hold reasons, the exceptions and hold-reason tables, a link to
    the report, and the bot's lines in the run logs."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        LogFilter,
        LogFilterFlowRunId,
    )

    from flows.bot_flows import invoice_matching_flow
    from tests.plugins.prefect_server import wait_for

    params = InvoiceMatchingParameters(
        orders=str(sample / "orders.csv"),
        receipts=str(sample / "receipts.csv"),
        invoices=[str(sample / "invoices")],
    )
    state = invoice_matching_flow(params, return_state=True)
    assert state.is_completed(), state.message
    expected = _engine_counts(sample)
    assert f"{expected['hold']} hold" in str(state.message)

    reports = list((settings_env / "outbox").glob("invoice-matching-*.xlsx"))
    assert len(reports) == 1
    flow_run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
        by_key = {a.key: a for a in artifacts}
        assert set(by_key) == {
            "invoice-matching-summary",
            "invoice-matching-exceptions",
            "invoice-matching-hold-reasons",
            "invoice-matching-link-report",
        }
        summary = str(by_key["invoice-matching-summary"].data)
        assert f"| approve | {expected['approve']} |" in summary
        assert f"| hold | {expected['hold']} |" in summary
        assert f"| reject | {expected['reject']} |" in summary
        assert "held or rejected for:" in summary
        assert reports[0].resolve().as_uri() in summary
        exceptions = json.loads(str(by_key["invoice-matching-exceptions"].data))
        assert Counter(row["decision"] for row in exceptions) == Counter(
            {"hold": expected["hold"], "reject": expected["reject"]}
        )
        assert all(row["reason_codes"] and row["what_to_check"] for row in exceptions)
        reasons = json.loads(str(by_key["invoice-matching-hold-reasons"].data))
        assert reasons
        assert reasons[0]["count"] == max(r["count"] for r in reasons)
        # Every held or rejected document is counted under each of its codes (rejections too).
        codes = Counter(code for row in exceptions for code in row["reason_codes"].split(", "))
        assert {r["code"]: r["count"] for r in reasons} == dict(codes)
        assert "held or rejected" in str(by_key["invoice-matching-hold-reasons"].description)
        assert reports[0].resolve().as_uri() in str(by_key["invoice-matching-link-report"].data)

        def finished_line() -> str | None:
            logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])), limit=200)
            finished = (log.message for log in logs if log.message.startswith("invoice matching finished"))
            return next(finished, None)

        line = wait_for(finished_line, timeout_s=20, what="the finished line in the run logs")
    # A sentence for people: the event and its counts.
    assert f"hold={expected['hold']}" in line
    assert str(state.message).startswith("Invoice matching (files): ")
    assert f"approve={expected['approve']}" in line


@pytest.mark.prefect
@pytest.mark.browser
@pytest.mark.slow
def test_flow_portal_mode_decides_the_inbox_and_links_the_report(
    prefect_api: None,
    sandbox_factory: Callable[..., SandboxServer],
    settings_env: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Portal mode through the Prefect API: Completed, every open invoice decided in the portal,
    counts by decision in the summary, links to the report and the run's work folder."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    from config.settings import get_settings
    from flows.bot_flows import invoice_matching_flow
    from tests.plugins.sandbox import SANDBOX_PASSWORD

    monkeypatch.setenv("PROCBOTS_PORTAL__PASSWORD", SANDBOX_PASSWORD)
    get_settings.cache_clear()
    portal = sandbox_factory(seed=SEED, orders=8)

    state = invoice_matching_flow(
        InvoiceMatchingParameters(portal_url=portal.url, workers=2), return_state=True
    )

    assert state.is_completed(), state.message
    invoices = portal.state(sections="invoices")["invoices"]
    statuses = Counter(i["status"] for i in invoices)
    assert statuses["received"] == 0
    assert all(len([h for h in i["history"] if h["status"] != "received"]) == 1 for i in invoices)
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id])
            )
        )
    by_key = {a.key: a for a in artifacts}
    assert {"invoice-matching-link-report", "invoice-matching-link-work-folder"} <= set(by_key)
    summary = str(by_key["invoice-matching-summary"].data)
    assert f"| approve | {statuses['approved']} |" in summary
    assert f"| hold | {statuses['on_hold']} |" in summary
    assert f"| reject | {statuses['rejected']} |" in summary
    assert "(portal)" in summary


@pytest.mark.browser
def test_cli_portal_mode_with_a_wrong_password_exits_2_without_deciding_anything(
    sandbox_factory: Callable[..., SandboxServer], settings_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A portal that refuses the bot's credentials is a configuration problem: exit 2, one
    clear line, one failed sign-in (never retried into a lockout), no invoice touched."""
    from config.settings import get_settings
    from flows.cli import app

    monkeypatch.setenv("PROCBOTS_PORTAL__PASSWORD", "not-the-password")
    get_settings.cache_clear()
    portal = sandbox_factory(seed=SEED, orders=5)

    result = CliRunner().invoke(app, ["run", "invoice-matching", "--portal", portal.url])

    assert result.exit_code == 2, result.output
    assert "refused to sign in buyer1" in result.stderr
    assert "not-the-password" not in result.output
    state = portal.state(sections="invoices,logins")
    assert state["logins"]["failed"] == 1
    assert {i["status"] for i in state["invoices"]} == {"received"}
