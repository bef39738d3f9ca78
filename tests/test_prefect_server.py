"""Deployments on a real Prefect server: runs through a worker, logs, artifacts, schedules, UI.

One server, work pool and worker per session (``tests/plugins/prefect_server.py``);
the portal is the session's sandbox portal.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from flows.commands.serve import PREFECT_YAML, load_deployment_specs
from tests.plugins.prefect_server import PrefectServer, WebhookReceiver, wait_for

if TYPE_CHECKING:
    from prefect.client.schemas.objects import FlowRun

    from sandbox.server import SandboxServer

pytestmark = [pytest.mark.prefect, pytest.mark.slow]

HEALTHCHECK = "portal-healthcheck/portal-healthcheck"


@pytest.fixture(scope="module")
def portal_url(sandbox: SandboxServer) -> str:
    """The session's sandbox portal, which the healthcheck probes at /healthz."""
    return sandbox.url


@pytest.fixture(scope="module")
def healthcheck_run(prefect_server: PrefectServer, portal_url: str) -> FlowRun:
    """One run of the portal-healthcheck deployment, triggered through the API."""
    return prefect_server.run_deployment(HEALTHCHECK, {"params": {"portal_url": portal_url, "timeout_s": 5}})


def _run_logs(prefect_server: PrefectServer, flow_run_id: Any) -> list[Any]:
    """Every log line of a flow run, oldest first."""
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.client.schemas.sorting import LogSort

    with prefect_server.client() as client:
        return list(
            client.read_logs(
                LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])),
                limit=200,
                sort=LogSort.TIMESTAMP_ASC,
            )
        )


def _procbots_lines(prefect_server: PrefectServer, flow_run_id: Any) -> list[str]:
    """The run's procbots lines (sentences: ``event: key=value, ...``)."""
    return [log.message for log in _run_logs(prefect_server, flow_run_id) if log.name.startswith("procbots")]


def _is_traceback(message: str) -> bool:
    return "Traceback (most recent call last)" in message or message.startswith("Engine execution exited")


def test_healthcheck_deployment_run_through_worker_completes(healthcheck_run: FlowRun) -> None:
    """A run triggered through the API is picked up by the worker and ends Completed."""
    assert healthcheck_run.state is not None
    assert healthcheck_run.state.is_completed(), healthcheck_run.state
    assert healthcheck_run.state.message == "3 checks passed"


def test_run_logs_hold_procbots_sentences(prefect_server: PrefectServer, healthcheck_run: FlowRun) -> None:
    """The flow's lines reach the run's logs on the server once each, as sentences a person reads
    (the event and its fields), under the run's id."""

    def portal_lines() -> list[str] | None:
        lines = _procbots_lines(prefect_server, healthcheck_run.id)
        return [line for line in lines if line.startswith("healthcheck: check=portal")] or None

    lines = wait_for(portal_lines, timeout_s=20, what="procbots portal check line in run logs")
    assert len(lines) == 1  # Prefect's handler and the procbots bridge never both send it
    assert lines[0].startswith("healthcheck: check=portal, ok=True, detail=")
    assert not lines[0].startswith("{")  # not JSON
    logs = _run_logs(prefect_server, healthcheck_run.id)
    assert all(log.flow_run_id == healthcheck_run.id for log in logs)


def test_healthcheck_publishes_markdown_and_table_artifacts(
    prefect_server: PrefectServer, healthcheck_run: FlowRun
) -> None:
    """The run has the markdown summary and the table of checks."""
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with prefect_server.client() as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[healthcheck_run.id]))
        )
    by_key = {a.key: a for a in artifacts}
    assert by_key["portal-healthcheck"].type == "markdown"
    assert "| portal | OK |" in str(by_key["portal-healthcheck"].data)
    assert by_key["portal-healthcheck-checks"].type == "table"
    table = json.loads(str(by_key["portal-healthcheck-checks"].data))
    assert {row["check"] for row in table} == {"portal", "ledger", "audit folder"}
    assert all(row["ok"] for row in table)


def test_schedules_and_settings_on_server_equal_prefect_yaml(prefect_server: PrefectServer) -> None:
    """Every deployed deployment has prefect.yaml's schedules (Europe/London), tags, limit and pool."""
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

    specs = {spec.name: spec for spec in load_deployment_specs(PREFECT_YAML)}
    assert "portal-healthcheck" in prefect_server.deployed
    assert set(prefect_server.deployed) | {name for name, _ in prefect_server.skipped} == set(specs)
    for name, reason in prefect_server.skipped:
        assert specs[name].path in reason  # the printed reason names the missing flow file
    with prefect_server.client() as client:
        for name in prefect_server.deployed:
            spec = specs[name]
            [deployment] = client.read_deployments(
                deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[name]))
            )
            on_server = sorted(
                (s.schedule.cron, s.schedule.timezone, s.active)  # type: ignore[union-attr]
                for s in deployment.schedules
            )
            assert on_server == sorted((s.cron, s.timezone, s.active) for s in spec.schedules), name
            assert set(deployment.tags) == set(spec.tags), name
            assert deployment.work_pool_name == "procbots", name
            assert deployment.global_concurrency_limit is not None, name
            assert deployment.global_concurrency_limit.limit == spec.concurrency_limit, name
            assert deployment.parameters == spec.parameters, name
            # The pull step keeps its placeholder: each worker resolves its own checkout.
            assert deployment.pull_steps == [
                {"prefect.deployments.steps.set_working_directory": {"directory": "{{ $PROCBOTS_CHECKOUT }}"}}
            ], name


def test_setup_created_work_pool_and_browser_session_limit(prefect_server: PrefectServer) -> None:
    """The process work pool and the portal-browser-sessions limit exist with the portal's max sessions."""
    from config.settings import Settings
    from flows.common import PORTAL_BROWSER_SESSIONS

    with prefect_server.client() as client:
        pool = client.read_work_pool("procbots")
        limit = client.read_global_concurrency_limit_by_name(PORTAL_BROWSER_SESSIONS)
    assert pool.type == "process"
    assert limit.limit == Settings().portal.max_sessions


def test_failed_healthcheck_is_failed_and_alerts_the_webhook(
    prefect_server: PrefectServer, healthcheck_run: FlowRun
) -> None:
    """A dead portal makes the run Failed, and the worker's on_failure hook posts to the webhook
    (retrying the first 503), with the run's UI link and without the webhook URL in the logs."""
    receiver = WebhookReceiver(statuses=[503])
    try:
        run = prefect_server.run_deployment(
            HEALTHCHECK,
            {"params": {"portal_url": "http://127.0.0.1:9", "timeout_s": 2}},
            job_variables={
                "env": {"PROCBOTS_ALERTS__WEBHOOK_URL": receiver.url, "PROCBOTS_ALERTS__KIND": "teams"}
            },
        )
        assert run.state is not None
        assert run.state.is_failed(), run.state
        assert "portal" in (run.state.message or "")
        delivered = wait_for(receiver.delivered, timeout_s=30, what="alert delivered to the webhook")
        assert len(receiver.requests) == 2  # the 503, then the retry
        card = delivered[0].json()["attachments"][0]["content"]
        texts = json.dumps(card)
        assert "portal-healthcheck failed" in texts
        assert f"/runs/flow-run/{run.id}" in texts

        from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

        with prefect_server.client() as client:
            logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run.id])), limit=200)
        assert logs, "the failed run has logs"
        assert all(receiver.token not in log.message for log in logs)
        closing = wait_for(
            lambda: [log for log in _run_logs(prefect_server, run.id) if "ended Failed" in log.message],
            timeout_s=30,
            what="the failed run's closing line",
        )
        assert closing[0].message.startswith("The run ended Failed: ")
        last = _run_logs(prefect_server, run.id)[-1]
        assert not _is_traceback(last.message), last.message
    finally:
        receiver.close()


def test_invoice_matching_deployment_runs_through_worker_in_file_mode(
    prefect_server: PrefectServer, tmp_path: Path
) -> None:
    """The invoice-matching deployment (when its flow exists) runs on the worker in file mode:
    Completed, its summary artifact published, its structured lines in the run logs."""
    if "invoice-matching" not in prefect_server.deployed:
        pytest.skip(f"invoice-matching not deployed: {dict(prefect_server.skipped).get('invoice-matching')}")
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    from sandbox.datafiles import write_input_files

    write_input_files(tmp_path, seed=1, orders=10)
    params = {
        "orders": str(tmp_path / "orders.csv"),
        "receipts": str(tmp_path / "receipts.csv"),
        "invoices": [str(tmp_path / "invoices")],
    }
    run = prefect_server.run_deployment("invoice-matching/invoice-matching", {"params": params})
    assert run.state is not None
    assert run.state.is_completed(), run.state
    with prefect_server.client() as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id]))
        )
    assert "invoice-matching-summary" in {a.key for a in artifacts}
    lines = wait_for(
        lambda: [
            x for x in _procbots_lines(prefect_server, run.id) if x.startswith("invoice matching finished")
        ],
        timeout_s=20,
        what="invoice-matching procbots lines in the run logs",
    )
    assert "approve=" in lines[0]


@pytest.mark.browser
def test_prefect_ui_shows_the_flow_run_with_its_logs(
    prefect_server: PrefectServer, healthcheck_run: FlowRun, test_output: Path
) -> None:
    """The UI served by `prefect server start` opens the run page; the screenshot goes to test-output/."""
    from playwright.sync_api import expect, sync_playwright

    from connectors.portal.browser import launch_chromium

    url = f"{prefect_server.ui_url}/runs/flow-run/{healthcheck_run.id}"
    shot = test_output / "prefect-flow-run.png"
    with sync_playwright() as pw:
        browser = launch_chromium(pw)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1300})
            page.goto(url, wait_until="domcontentloaded")
            try:
                expect(page.get_by_text(healthcheck_run.name).first).to_be_visible(timeout=45_000)
                # The Logs tab is the run page's default: a procbots line is on screen.
                procbots_line = page.get_by_text("healthcheck: check=portal").first
                expect(procbots_line).to_be_visible(timeout=20_000)
                # The screenshot shows the run header and, below it, the structured lines.
                procbots_line.scroll_into_view_if_needed()
            finally:
                page.screenshot(path=str(shot))
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000


def test_procbots_serve_serves_prefect_yaml_deployments(
    prefect_server: PrefectServer, portal_url: str, tmp_path: Path
) -> None:
    """`procbots serve --prefect-file F` registers F's deployments with their schedules and runs
    them in its own process (no worker), until stopped."""
    import os
    import signal
    import subprocess
    import sys

    project = tmp_path / "prefect.yaml"
    project.write_text(
        "deployments:\n"
        "  - name: portal-healthcheck-served\n"
        f"    entrypoint: {Path(prefect_server.checkout) / 'flows/healthcheck.py'}:portal_healthcheck_flow\n"
        "    parameters: {params: {timeout_s: 5.0}}\n"
        "    tags: [procbots, operations]\n"
        "    schedules:\n"
        "      - cron: '*/5 * * * *'\n"
        "        timezone: Europe/London\n"
        "    concurrency_limit: 1\n"
    )
    log_path = tmp_path / "serve.log"
    env = {**prefect_server.env, "PREFECT_RUNNER_POLL_FREQUENCY": "1"}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(Path(sys.executable).with_name("procbots")), "serve", "--prefect-file", str(project)],
            env=env,
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        name = "portal-healthcheck/portal-healthcheck-served"

        def served() -> Any:
            assert process.poll() is None, log_path.read_text()
            with prefect_server.client() as client:
                return client.read_deployment_by_name(name)

        deployment = wait_for(served, timeout_s=90, interval_s=0.5, what="served deployment registered")
        assert deployment.work_pool_name is None  # served from the process, not through the pool
        assert [(s.schedule.cron, s.schedule.timezone) for s in deployment.schedules] == [  # type: ignore[union-attr]
            ("*/5 * * * *", "Europe/London")
        ]
        run = prefect_server.run_deployment(name, {"params": {"portal_url": portal_url}}, timeout_s=90)
        assert run.state is not None
        assert run.state.is_completed(), f"{run.state}\n{log_path.read_text()}"
        assert "serving portal-healthcheck-served" in log_path.read_text()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)


def test_a_failed_bot_run_ends_failed_with_a_sentence_not_a_traceback(prefect_server: PrefectServer) -> None:
    """A bot run that fails (here: its input is not there) ends Failed with one sentence naming the
    full path it looked at under the data root; no TypeError anywhere, and its last log line, read
    from the API, is not a traceback."""
    root = Path(prefect_server.env["PROCBOTS_PATHS__ROOT"])
    params = {"orders": "no-such/orders.csv", "invoices": ["no-such/invoices"]}
    run = prefect_server.run_deployment("invoice-matching/invoice-matching", {"params": params})
    assert run.state is not None
    assert run.state.is_failed(), run.state
    assert f"{root / 'no-such' / 'orders.csv'}: no such file" in str(run.state.message)

    def closed() -> list[Any] | None:
        logs = _run_logs(prefect_server, run.id)
        return logs if any("ended Failed" in log.message for log in logs) else None

    logs = wait_for(closed, timeout_s=30, what="the failed run's closing line")
    messages = [log.message for log in logs]
    assert not [m for m in messages if "Unexpected result for failed state" in m or "TypeError" in m]
    assert not _is_traceback(messages[-1]), messages[-1]
    assert any(m.startswith("run refused: problem=orders: ") for m in messages), messages


def test_relative_input_paths_are_read_from_the_data_root(prefect_server: PrefectServer) -> None:
    """Relative paths in the run form are read from the data root (paths.root), not from the
    worker's working directory."""
    from sandbox.datafiles import write_input_files

    root = Path(prefect_server.env["PROCBOTS_PATHS__ROOT"])
    write_input_files(root / "inbox-relative", seed=2, orders=8)
    params = {
        "orders": "inbox-relative/orders.csv",
        "receipts": "inbox-relative/receipts.csv",
        "invoices": ["inbox-relative/invoices"],
    }
    run = prefect_server.run_deployment("invoice-matching/invoice-matching", {"params": params})
    assert run.state is not None
    assert run.state.is_completed(), run.state


def test_invoice_matching_with_orders_but_no_invoices_is_refused_before_a_run(
    prefect_server: PrefectServer,
) -> None:
    """Inconsistent parameters (file mode with orders but no invoices) are refused by the API when
    the run is asked for, naming the missing field: no run, so no Failed run and no alert."""
    from prefect.exceptions import PrefectHTTPStatusError

    with prefect_server.client() as client:
        deployment = client.read_deployment_by_name("invoice-matching/invoice-matching")
        before = client.read_flow_runs()
        with pytest.raises(PrefectHTTPStatusError) as refused:
            client.create_flow_run_from_deployment(deployment.id, parameters={"params": {"orders": "o.csv"}})
        after = client.read_flow_runs()
    assert refused.value.response.status_code in (409, 422)
    assert "invoices" in refused.value.response.text
    assert len(after) == len(before)
