"""``procbots demo`` end to end: a real sandbox portal, a real ``prefect server start``,
real Chromium, every flow of the checkout as a Prefect flow run, in a subprocess as
``make demo`` runs it.

The full demo runs once per module (``demo``) with a small order count; each test
checks one promise of it. The set-up failures (bad ``--chaos``, a dead
``PREFECT_API_URL``) and the child runner's import-error path are checked on their own.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from flows.demo import DEMO_FLOWS, HEALTHCHECK, SUMMARY_FILE, run_flow_child

REPO_ROOT = Path(__file__).resolve().parents[1]
DEMO_TIMEOUT_S = 900  # a few minutes on an idle 2-core machine; far more when it is shared


def _procbots(
    *args: str, env: dict[str, str], timeout_s: float = DEMO_TIMEOUT_S
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from flows.cli import main; main()", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def _demo_env(root: Path, **extra: str) -> dict[str, str]:
    """The session's environment without any Prefect API: the demo must start its own server."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API", "PREFECT_UI"))}
    env.update(
        {
            "PROCBOTS_PATHS__ROOT": str(root),
            "PREFECT_HOME": str(root / "user-prefect-home"),  # no profile naming an API
            "COLUMNS": "220",  # the summary table on one line per flow
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


@dataclass
class DemoRun:
    result: subprocess.CompletedProcess[str]
    root: Path  # the data root the demo made under PROCBOTS_PATHS__ROOT
    base: Path
    summary: dict[str, Any]
    password: str
    seconds: float
    # What the live Prefect API said about each flow run while --keep-server held it up.
    live_runs: dict[str, dict[str, Any]]
    live_logs: dict[str, int]

    def explain(self) -> str:
        logs = "\n".join(
            f"----- {p.name} -----\n" + "\n".join(p.read_text(errors="replace").splitlines()[-30:])
            for p in sorted((self.root / "logs").glob("*.log"))
        )
        return f"stdout:\n{self.result.stdout}\nstderr:\n{self.result.stderr[-4000:]}\n{logs}"


def _api(url: str, body: dict[str, Any] | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def _ask_the_live_api(summary: dict[str, Any]) -> tuple[dict[str, dict[str, Any]], dict[str, int]]:
    api = summary["prefect"]["api_url"]
    runs: dict[str, dict[str, Any]] = {}
    logs: dict[str, int] = {}
    for flow in summary["flows"]:
        run_id = flow.get("flow_run_id")
        if not run_id:
            continue
        runs[run_id] = _api(f"{api}/flow_runs/{run_id}")
        found = _api(f"{api}/logs/filter", {"logs": {"flow_run_id": {"any_": [run_id]}}, "limit": 200})
        logs[run_id] = len(found)
    return runs, logs


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """``procbots demo --orders 10 --keep-server`` once, with a portal password of its own.

    While the demo keeps its Prefect server up, the flow runs and their logs are read from
    the live API; then Ctrl-C (SIGINT) ends it, as a person would.
    """
    base = tmp_path_factory.mktemp("demo")
    password = "Pw-" + secrets.token_urlsafe(12)
    env = _demo_env(base, PROCBOTS_SANDBOX_PASSWORD=password)
    args = ["demo", "--orders", "10", "--seed", "3", "--keep-server"]
    stderr_path = base / "demo.stderr"
    started = time.monotonic()
    lines: list[str] = []
    with stderr_path.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-c", "from flows.cli import main; main()", *args],
            cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True,
        )  # fmt: skip
        assert process.stdout is not None
        reader = threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True)  # type: ignore[arg-type]
        reader.start()
        live_runs: dict[str, dict[str, Any]] = {}
        live_logs: dict[str, int] = {}
        try:
            deadline = time.monotonic() + DEMO_TIMEOUT_S
            while not any("Press Ctrl-C" in line for line in lines):
                if process.poll() is not None or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            seconds = time.monotonic() - started
            roots = sorted(base.glob("demo-*"))
            if process.poll() is None and roots and (roots[0] / SUMMARY_FILE).is_file():
                live_runs, live_logs = _ask_the_live_api(json.loads((roots[0] / SUMMARY_FILE).read_text()))
            process.send_signal(signal.SIGINT)
            process.wait(timeout=120)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        reader.join(timeout=10)
    result = subprocess.CompletedProcess(args, process.returncode, "".join(lines), stderr_path.read_text())
    roots = sorted(base.glob("demo-*"))
    assert len(roots) == 1, (
        f"expected one demo root under {base}, found {roots}\n{result.stdout}\n{result.stderr}"
    )
    summary_path = roots[0] / SUMMARY_FILE
    assert summary_path.is_file(), f"no {SUMMARY_FILE}\n{result.stdout}\n{result.stderr}"
    print(f"procbots demo --orders 10 took {seconds:.0f} s until its summary")
    summary = json.loads(summary_path.read_text())
    return DemoRun(result, roots[0], base, summary, password, seconds, live_runs, live_logs)


@pytest.mark.slow
@pytest.mark.timeout(DEMO_TIMEOUT_S + 60)
def test_demo_exits_0_with_every_flow_of_the_checkout_completed(demo: DemoRun) -> None:
    """Every flow whose module exists ends Completed, in the printed table and the summary file."""
    assert demo.result.returncode == 0, demo.explain()
    flows = {flow["key"]: flow for flow in demo.summary["flows"]}
    expected = [HEALTHCHECK, *(f for f in DEMO_FLOWS if f.exists())]
    for spec in expected:
        assert flows[spec.key]["state"] == "Completed", demo.explain()
        row = next(line for line in demo.result.stdout.splitlines() if line.startswith(f"│ {spec.title} "))
        assert "Completed" in row, row
    for spec in DEMO_FLOWS:
        if not spec.exists():
            assert flows[spec.key]["state"] == "NOT THERE YET"
            assert f"{spec.title}: not there yet" in demo.result.stdout
    assert demo.summary["ok"] is True
    assert "Demo OK" in demo.result.stdout


@pytest.mark.slow
def test_demo_bots_did_their_work_and_wrote_their_reports(demo: DemoRun) -> None:
    """Each bot flow processed items (done or business exception, none failed) and its report exists."""
    flows = {flow["key"]: flow for flow in demo.summary["flows"]}
    reports = [Path(p) for p in demo.summary["reports"]]
    assert all(p.is_file() and p.stat().st_size > 0 for p in reports), reports
    for spec in DEMO_FLOWS:
        if not spec.exists():
            continue
        items = flows[spec.key]["items"]
        assert items["done"] + items["business_exceptions"] > 0, flows[spec.key]
        assert items["system_errors"] == 0, flows[spec.key]
        # The run's own links (in its final state) name its report workbook in the outbox.
        linked = [Path(target) for target in flows[spec.key]["links"].values()]
        workbooks = [p for p in linked if p.suffix == ".xlsx"]
        assert workbooks, flows[spec.key]
        for workbook in workbooks:
            assert workbook in reports, (workbook, reports)
            assert str(workbook.relative_to(demo.root)) in demo.result.stdout, workbook
    # The sample data plants problems: they show up as business exceptions with a reason.
    if any(spec.exists() for spec in DEMO_FLOWS):
        assert demo.summary["business_exceptions"] > 0
        assert "Business exceptions:" in demo.result.stdout


@pytest.mark.slow
def test_demo_runs_are_prefect_flow_runs_on_a_server_it_stopped(demo: DemoRun) -> None:
    """The runs are Completed and tagged on the live API and in the server's database; Ctrl-C stops it."""
    assert demo.summary["prefect"]["local"] is True
    database = demo.base / "prefect-home" / "prefect.db"
    with sqlite3.connect(database) as conn:
        runs = conn.execute("SELECT id, name, state_name, tags FROM flow_run").fetchall()
        logs = conn.execute("SELECT COUNT(*) FROM log").fetchone()[0]
    by_id = {row[0].replace("-", ""): row for row in runs}
    for flow in demo.summary["flows"]:
        if flow["state"] in ("NOT THERE YET",):
            continue
        run = by_id[flow["flow_run_id"].replace("-", "")]
        assert run[2] == "Completed"
        assert "procbots-demo" in json.loads(run[3])
        assert flow["ui_url"].endswith(f"/runs/flow-run/{flow['flow_run_id']}")
        assert flow["ui_url"] in demo.result.stdout
    assert logs > 0
    # While --keep-server held the server up, its API served the same runs, with their logs.
    assert set(demo.live_runs) == {
        flow["flow_run_id"] for flow in demo.summary["flows"] if flow["flow_run_id"]
    }
    for run_id, run in demo.live_runs.items():
        assert run["state"]["type"] == "COMPLETED", run["state"]
        assert demo.live_logs[run_id] > 0, run["name"]
    assert "Press Ctrl-C to stop" in demo.result.stdout
    ui = demo.summary["prefect"]["ui_url"]
    port = int(ui.rsplit(":", 1)[1])
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0, f"the demo's Prefect server still answers on {ui}"


@pytest.mark.slow
def test_demo_audit_log_is_intact_and_verified_in_the_output(demo: DemoRun) -> None:
    """The flows' audit events chain; the demo ran the verification and printed it."""
    from connectors.audit import verify_audit

    audit = Path(demo.summary["audit"]["path"])
    assert audit.is_relative_to(demo.root)
    verification = verify_audit(audit)
    assert verification.ok, verification.message
    assert verification.records > 0
    assert demo.summary["audit"]["ok"] is True
    assert "procbots audit verify:" in demo.result.stdout
    assert "intact" in demo.summary["audit"]["result"]


@pytest.mark.slow
def test_demo_never_shows_the_portal_password(demo: DemoRun) -> None:
    """The password reaches portal and bots, but no output, log, report, audit line or Prefect record."""
    assert demo.password not in demo.result.stdout
    assert demo.password not in demo.result.stderr
    secret = demo.password.encode()
    leaked = [
        path
        for path in demo.base.rglob("*")
        if path.is_file() and not path.name.endswith((".pdf", ".png")) and secret in path.read_bytes()
    ]
    assert leaked == []


def test_demo_refuses_a_bad_chaos_spec_with_exit_2(tmp_path: Path) -> None:
    """A typo in --chaos is a usage error: exit 2, the knob named, nothing started."""
    result = _procbots("demo", "--chaos", "error_rat=0.1", env=_demo_env(tmp_path), timeout_s=120)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "--chaos" in result.stdout
    assert not (tmp_path / "prefect-home").exists()


def test_demo_with_an_unreachable_prefect_api_exits_2_and_says_so(tmp_path: Path) -> None:
    """PREFECT_API_URL set but dead: exit 2 naming it, rather than a silent local server."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = _demo_env(tmp_path, PREFECT_API_URL=f"http://127.0.0.1:{port}/api")
    result = _procbots("demo", env=env, timeout_s=120)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"PREFECT_API_URL=http://127.0.0.1:{port}/api does not answer" in " ".join(result.stdout.split())


def test_flow_child_reports_a_flow_module_that_does_not_import(tmp_path: Path) -> None:
    """A broken flow module becomes an IMPORT ERROR result naming the error, not a hang."""
    result_path = tmp_path / "broken.result.json"
    code = run_flow_child("flows/no_such_flow.py:some_flow", {}, result_path, "demo-test")
    assert code == 1
    result = json.loads(result_path.read_text())
    assert result["state"] == "IMPORT ERROR"
    assert "ModuleNotFoundError" in result["message"]
    assert "flows.no_such_flow" in result["message"]


def test_a_flow_not_in_the_checkout_is_reported_as_not_there_yet() -> None:
    """Flows land one by one: a missing module is named, never imported, never a failure."""
    from flows.demo import DemoFlow, FlowOutcome

    missing = DemoFlow(
        "supplier_onboarding", "Supplier onboarding", "flows/supplier_onboarding.py:flow", None, lambda _: {}
    )
    assert not missing.exists()
    assert missing.module == "flows.supplier_onboarding"
    outcome = FlowOutcome(missing.key, missing.title, missing.entrypoint, state="NOT THERE YET")
    assert not outcome.ran
    assert not outcome.completed
    assert outcome.result_text() == "flows/supplier_onboarding.py:flow is not in this checkout yet"
    assert all(flow.exists() == flow.path.is_file() for flow in DEMO_FLOWS)


def test_flow_outcome_reads_links_and_counts_from_the_runs_final_state() -> None:
    """Report links in a run's state data become local paths; ledger states become the three columns."""
    from flows.demo import FlowOutcome

    outcome = FlowOutcome(
        "invoice_matching", "Invoice matching", "flows/invoice_matching.py:invoice_matching_flow",
        state="Completed", message="Invoice matching: 7 approve, 4 hold",
        counts={"done": 11, "business_exception": 2, "failed": 1, "needs_review": 1},
        data={"links": {"report": "file:///var/demo/outbox/invoice%20matching.xlsx", "ui": "https://x/y"}},
    )  # fmt: skip
    assert outcome.links == {"report": "/var/demo/outbox/invoice matching.xlsx", "ui": "https://x/y"}
    assert (outcome.done, outcome.business_exceptions, outcome.system_errors) == (11, 2, 2)
    assert outcome.result_text() == "7 approve, 4 hold"
    assert outcome.as_dict()["items"] == {"done": 11, "business_exceptions": 2, "system_errors": 2}
