"""Shared flow helpers: keys, London times, summaries, final states, parameter forms, prefect.yaml."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from config.logging import register_secret
from flows.commands.serve import (
    PREFECT_YAML,
    PROJECT_ROOT,
    ProjectFileError,
    load_deployment_specs,
    runner_deployments,
    split_available,
)
from flows.common import (
    RunFailed,
    RunSummary,
    artifact_key,
    capped_task_runner,
    london,
    render_summary_markdown,
)
from flows.outcome import finish


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        pytest.param(("purchase-orders",), "purchase-orders", id="already-valid"),
        pytest.param(("Purchase_Orders", "Summary"), "purchase-orders-summary", id="case-and-underscore"),
        pytest.param(
            ("invoice matching", "link", "Report (xlsx)"), "invoice-matching-link-report-xlsx", id="spaces"
        ),
        pytest.param(("--a--", "", "b"), "a-b", id="empty-parts-dropped"),
    ],
)
def test_artifact_key_keeps_only_lowercase_digits_dashes(parts: tuple[str, ...], expected: str) -> None:
    """Prefect refuses keys with other characters, so every key is made safe."""
    assert artifact_key(*parts) == expected


def test_artifact_key_refuses_text_with_nothing_left() -> None:
    """A key made only of punctuation is an error, not an empty key."""
    with pytest.raises(ValueError, match="empty"):
        artifact_key("__", "!!")


@pytest.mark.parametrize(
    ("utc", "shown"),
    [
        pytest.param(datetime(2026, 1, 15, 7, 0, tzinfo=UTC), "2026-01-15 07:00:00 GMT", id="winter-gmt"),
        pytest.param(datetime(2026, 7, 15, 6, 0, tzinfo=UTC), "2026-07-15 07:00:00 BST", id="summer-bst"),
        pytest.param(
            datetime(2026, 3, 29, 1, 0, tzinfo=UTC), "2026-03-29 02:00:00 BST", id="clocks-go-forward"
        ),
    ],
)
def test_london_shows_office_clock_time(utc: datetime, shown: str) -> None:
    """UTC moments are shown as Europe/London wall time with the right GMT/BST label."""
    assert london(utc) == shown


def test_london_refuses_naive_datetimes() -> None:
    """A naive datetime is a bug upstream: refuse rather than guess."""
    with pytest.raises(ValueError, match="naive"):
        london(datetime(2026, 1, 1))


def test_summary_markdown_has_counts_rows_links_and_no_secret(tmp_path: Path) -> None:
    """The markdown summary: counts, exception rows (Decimals, London times, escaped pipes), links."""
    register_secret("portal-pa55word")
    report = tmp_path / "matching report.xlsx"
    text = render_summary_markdown(
        "Invoice matching",
        {"approve": 12, "hold": 2},
        [
            {
                "invoice_number": "INV|001",
                "amount": Decimal("1200.50"),
                "received": datetime(2026, 7, 1, 8, 30, tzinfo=UTC),
                "note": "login portal-pa55word failed",
            }
        ],
        {"report": report, "prefect": "http://127.0.0.1:4200/runs"},
        at=datetime(2026, 7, 1, 9, 0, tzinfo=UTC),
        message="2 held",
    )
    assert "# Invoice matching" in text
    assert "_Finished 2026-07-01 10:00:00 BST_" in text
    assert "| approve | 12 |" in text
    assert "| INV\\|001 | 1200.50 | 2026-07-01 09:30:00 BST |" in text
    assert f"- [report]({report.resolve().as_uri()})" in text
    assert "portal-pa55word" not in text


def test_capped_task_runner_caps_threads() -> None:
    """The task runner has a fixed pool size; zero is refused."""
    assert capped_task_runner(3)._max_workers == 3  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="at least 1"):
        capped_task_runner(0)


@pytest.mark.parametrize(
    ("counts", "completed", "message"),
    [
        pytest.param({"done": 5}, True, "Bot: 5 done", id="all-done"),
        pytest.param(
            {"done": 5, "business_exception": 2}, True, "Bot: 5 done, 2 business_exception", id="flagged"
        ),
        pytest.param({"done": 5, "failed": 1}, False, "Bot: 5 done, 1 failed", id="system-failures"),
        pytest.param({"done": 0}, True, "Bot: nothing to do", id="empty"),
    ],
)
def test_finish_state_follows_outcomes(counts: dict[str, int], completed: bool, message: str) -> None:
    """Completed unless items failed after every retry; the message counts the outcomes."""
    state = finish(RunSummary(bot="bot", title="Bot", counts=counts), publish=False, alert=False)
    assert state.is_completed() is completed
    assert state.is_failed() is not completed
    assert state.message == message
    if not completed:  # Prefect resolves a failed state's data into the exception it raises
        assert isinstance(state.data, RunFailed)
        assert str(state.data) == message
        assert state.data.summary["counts"] == counts


def test_load_deployment_specs_reads_prefect_yaml() -> None:
    """prefect.yaml holds one deployment per registry entry, Europe/London crons, one run at a time."""
    from bots import registry

    specs = {spec.name: spec for spec in load_deployment_specs(PREFECT_YAML)}
    assert {name: [(s.cron, s.timezone) for s in spec.schedules] for name, spec in specs.items()} == {
        bot.name: [(bot.schedule, "Europe/London")] for bot in registry.bots() if bot.schedule
    }
    assert {"purchase-orders", "invoice-matching", "contract-uploads", "portal-healthcheck"} <= set(specs)
    assert all(spec.concurrency_limit == 1 for spec in specs.values())
    assert all(spec.work_pool == "procbots" for spec in specs.values())
    assert all(
        spec.job_variables["env"]["PREFECT_LOGGING_EXTRA_LOGGERS"] == "procbots" for spec in specs.values()
    )
    assert specs["purchase-orders"].entrypoint == "flows/bot_flows.py:purchase_orders_flow"


def test_prefect_yaml_is_exactly_what_the_registry_generates() -> None:
    """prefect.yaml is generated from the bot registry; a hand edit or a new entry without
    regenerating fails here (run `procbots serve --write-prefect-yaml`)."""
    from flows.commands.serve import registry_specs, render_prefect_yaml

    assert PREFECT_YAML.read_text(encoding="utf-8") == render_prefect_yaml(), (
        "prefect.yaml differs from the registry: run `procbots serve --write-prefect-yaml`"
    )
    assert load_deployment_specs(PREFECT_YAML) == registry_specs()


def test_write_prefect_yaml_writes_what_the_registry_gives(tmp_path: Path) -> None:
    """`procbots serve --write-prefect-yaml --prefect-file F` writes the registry's deployments to F."""
    from flows.cli import app
    from flows.commands.serve import registry_specs

    target = tmp_path / "prefect.yaml"
    result = CliRunner().invoke(app, ["serve", "--prefect-file", str(target), "--write-prefect-yaml"])
    assert result.exit_code == 0, result.output
    assert load_deployment_specs(target) == registry_specs()
    assert "purchase-orders" in result.output


def test_malformed_prefect_yaml_names_file_and_deployment(tmp_path: Path) -> None:
    """A deployment without an entrypoint is reported with the file and its index."""
    bad = tmp_path / "prefect.yaml"
    bad.write_text("deployments:\n  - name: purchase-orders\n")
    with pytest.raises(
        ProjectFileError, match=r"prefect\.yaml: deployments\[0\]: needs a name and an entrypoint"
    ):
        load_deployment_specs(bad)


def _undescribed(schema: dict[str, Any]) -> list[str]:
    """Fields of the parameter models (definitions) that have no description."""
    missing = []
    for model, definition in schema.get("definitions", {}).items():
        for field_name, prop in definition.get("properties", {}).items():
            if not prop.get("description"):
                missing.append(f"{model}.{field_name}")
    return missing


def _toggles_and_jargon(schema: dict[str, Any]) -> list[str]:
    """Fields that would show a None toggle, or help text written for developers."""
    found = []
    for model, definition in schema.get("definitions", {}).items():
        for field_name, prop in definition.get("properties", {}).items():
            if any(option.get("type") == "null" for option in prop.get("anyOf", [])):
                found.append(f"{model}.{field_name}: None toggle")
            if "rendered as" in str(prop.get("description", "")):
                found.append(f"{model}.{field_name}: {prop['description']}")
        if "rendered as" in str(definition.get("description", "")):
            found.append(f"{model}: {definition['description']}")
    return found


def test_every_existing_flow_has_a_described_parameter_form() -> None:
    """Each deployable flow takes a pydantic model whose fields all have descriptions (the UI form),
    with plain defaults (no None toggles) and plain-language help, and prefect.yaml's parameters
    for it validate against the flow."""
    ready, _ = split_available(load_deployment_specs(PREFECT_YAML), PROJECT_ROOT)
    assert "portal-healthcheck" in {spec.name for spec in ready}
    for deployment, spec in zip(runner_deployments(ready, PROJECT_ROOT), ready, strict=True):
        schema = deployment._parameter_openapi_schema.model_dump()
        properties = schema["properties"]
        assert properties, f"{spec.name}: flow takes no parameters"
        for name, prop in properties.items():
            assert "$ref" in prop or "allOf" in prop, (
                f"{spec.name}: parameter {name} is not a pydantic model "
                "(is its type hint importable at run time?)"
            )
        assert _undescribed(schema) == [], spec.name
        assert _toggles_and_jargon(schema) == [], spec.name
        from prefect.flows import load_flow_from_entrypoint

        flow = load_flow_from_entrypoint(f"{PROJECT_ROOT / spec.path}:{spec.function}")
        flow.validate_parameters(spec.parameters)


def test_runner_deployments_carry_prefect_yaml_schedules_tags_and_limits() -> None:
    """procbots serve builds its deployments from prefect.yaml (one source of truth)."""
    specs = [spec for spec in load_deployment_specs(PREFECT_YAML) if spec.name == "portal-healthcheck"]
    [deployment] = runner_deployments(specs, PROJECT_ROOT)
    assert deployment.name == "portal-healthcheck"
    assert [(s.schedule.cron, s.schedule.timezone) for s in deployment.schedules] == [  # type: ignore[union-attr]
        ("*/5 * * * *", "Europe/London")
    ]
    assert set(deployment.tags) == {"procbots", "operations", "healthcheck"}
    assert deployment.concurrency_limit == 1
    assert deployment.concurrency_options is not None
    assert deployment.concurrency_options.collision_strategy == "CANCEL_NEW"
    assert deployment.parameters == {"params": {"timeout_s": 5.0, "check_ledger": True, "check_audit": True}}


def test_serve_list_prints_what_it_would_serve_and_why_it_skips() -> None:
    """`procbots serve --list` names each deployment: served, or skipped with the missing file."""
    from flows.cli import app

    result = CliRunner().invoke(app, ["serve", "--list"])
    assert result.exit_code == 0, result.output
    assert "would serve portal-healthcheck: flows/healthcheck.py:portal_healthcheck_flow, */5 * * * *" in (
        result.output
    )
    for spec in load_deployment_specs(PREFECT_YAML):
        if not (PROJECT_ROOT / spec.path).exists():
            assert f"skipped {spec.name}: {spec.path} does not exist yet" in result.output


def test_serve_refuses_a_missing_prefect_yaml(tmp_path: Path) -> None:
    """A wrong --prefect-file is exit 2 with the path in the message."""
    from flows.cli import app

    missing = tmp_path / "nope.yaml"
    result = CliRunner().invoke(app, ["serve", "--prefect-file", str(missing)])
    assert result.exit_code == 2
    assert str(missing) in result.output


@pytest.mark.prefect
def test_flow_publishes_artifacts_and_logs_to_the_run(prefect_api: None, settings_env: Path) -> None:
    """Inside a real flow run: procbots lines land in the run logs as sentences (bridge path),
    audit records do not (they are in the audit file), and publish_summary creates the markdown,
    table and link artifacts under safe keys."""
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        LogFilter,
        LogFilterFlowRunId,
    )

    from config.settings import get_settings
    from connectors.audit import reset_default_audit_log
    from flows.common import flow_logging
    from tests.plugins.prefect_server import wait_for

    evidence = settings_env / "evidence"
    reset_default_audit_log()  # the audit file of this test's data root

    @flow(name="common-helpers-check")
    def demo_flow() -> Any:
        log = flow_logging("contract_uploads")
        log.info("contract uploaded", contract_id="C-0001", items=[f"wi-{n}" for n in range(94)])
        from connectors.audit import audit_event

        audit_event("contract_uploaded", contract_id="C-0001")
        return finish(
            RunSummary(
                bot="contract_uploads",
                title="Contract uploads",
                counts={"done": 1, "business_exception": 1},
                rows=[{"contract_id": "C-0002", "reason": "MISSING_CPV", "amount": Decimal("10.00")}],
                links={"evidence": evidence},
            ),
            alert=False,
        )

    state = demo_flow(return_state=True)
    assert state.is_completed()
    flow_run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
        by_key = {a.key: a for a in artifacts}
        assert set(by_key) == {
            "contract-uploads-summary",
            "contract-uploads-items",
            "contract-uploads-link-evidence",
        }
        assert json.loads(str(by_key["contract-uploads-items"].data)) == [
            {"contract_id": "C-0002", "reason": "MISSING_CPV", "amount": "10.00"}
        ]
        assert "1 business_exception" in str(by_key["contract-uploads-summary"].data)
        assert (
            by_key["contract-uploads-link-evidence"].type == "markdown"
        )  # link artifacts render as markdown
        assert evidence.resolve().as_uri() in str(by_key["contract-uploads-link-evidence"].data)

        def run_logs() -> list[Any]:
            return client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])), limit=200)

        def uploaded_line() -> Any:
            return next((log for log in run_logs() if log.message.startswith("contract uploaded")), None)

        line = wait_for(uploaded_line, timeout_s=20, what="procbots line in the run logs")
        # "run completed" is logged after the audit record: once it is in, the audit record would be.
        wait_for(
            lambda: any(log.message.startswith("run completed") for log in run_logs()),
            timeout_s=20,
            what="the run's last procbots line",
        )
        messages = [log.message for log in run_logs()]
    items = "[wi-0, wi-1, wi-2, wi-3, wi-4 and 89 more]"
    assert line.message == f"contract uploaded: contract_id=C-0001, items={items}"
    assert line.flow_run_id == flow_run_id
    assert line.name == "procbots.contract_uploads"
    assert not [m for m in messages if "prev_hash" in m or "contract_uploaded" in m]
    audit_lines = get_settings().audit_path.read_text().splitlines()
    assert any('"contract_uploaded"' in entry for entry in audit_lines)


def test_no_flow_module_is_named_like_a_product_package() -> None:
    """Prefect loads a deployment's flow file as a script, with its folder first on sys.path:
    a flows/bots.py would shadow the bots package (ImportError in every run)."""
    flows = PROJECT_ROOT / "flows"
    names = {path.stem for path in flows.iterdir() if path.suffix == ".py" or path.is_dir()}
    assert names & {"bots", "config", "connectors", "flows", "sandbox", "prefect"} == set()


@pytest.mark.prefect
def test_a_bot_run_that_cannot_start_ends_failed_with_one_sentence(
    prefect_api: None, settings_env: Path
) -> None:
    """A missing input (relative paths are read from the data root) and a missing setting each end
    the run Failed with one sentence naming what to fix; the state's data is a RunFailed (Prefect
    resolves it into the exception it raises), never a dict."""
    from flows.bot_flows import contract_uploads_flow

    missing = contract_uploads_flow(params={"folder": "no-such-folder"}, return_state=True)
    assert missing.is_failed()
    assert missing.message == f"Contract uploads: folder: {settings_env / 'no-such-folder'}: no such folder"
    failure = missing.result(raise_on_failure=False)
    assert isinstance(failure, RunFailed)
    assert str(failure) == missing.message

    (settings_env / "contracts").mkdir(parents=True)
    (settings_env / "contracts" / "CT-1.pdf").write_bytes(b"%PDF-1.4\n")
    no_password = contract_uploads_flow(params={"folder": "contracts"}, return_state=True)
    assert no_password.is_failed()
    assert "portal.password is not set" in str(no_password.message)
    assert (settings_env / "contracts" / "CT-1.pdf").is_file()  # nothing was touched


@pytest.mark.prefect
@pytest.mark.parametrize(
    ("outcome", "final", "message"),
    [
        pytest.param("done", "Completed", "Example: 1 done", id="done"),
        pytest.param("business", "Completed", "Example: 1 business_exception", id="business-exception"),
        pytest.param("failed", "Failed", "Example: 1 failed", id="items-failed"),
        pytest.param(
            "stopped",
            "Failed",
            "Example: PORTAL_UNAVAILABLE: the portal refused the connection (Example: 1 not_processed)",
            id="stopped-by-the-breaker",
        ),
    ],
)
def test_the_flow_factory_makes_a_flow_from_any_registry_entry(
    prefect_api: None, settings_env: Path, outcome: str, final: str, message: str
) -> None:
    """An entry with only a parameter model and a run callable becomes a Prefect flow whose final
    state follows the run: Completed, Completed with business exceptions, Failed when items failed
    or the breaker stopped the run (with its reason), the data a RunFailed, never a dict."""
    from bots.registry import Bot
    from flows.bot_flows import bot_flow

    entry = Bot(
        name="example-bot",
        title="Example",
        description="An example bot for the factory.",
        parameters="tests.registry_example_bot:ExampleParameters",
        run="tests.registry_example_bot:run_example",
    )
    state = bot_flow(entry)(params={"outcome": outcome}, return_state=True)
    assert state.name == final
    assert state.message == message
    if final == "Failed":
        assert isinstance(state.result(raise_on_failure=False), RunFailed)
