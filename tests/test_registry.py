"""The bot registry is the one list: commands, flows, deployments, demo and docs tables follow it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bots import registry
from bots.registry import BotInputError, BotParameters, Cli, InputPath, resolve_inputs

ROOT = Path(__file__).resolve().parents[1]


def test_every_bot_has_a_unique_name_a_model_with_defaults_and_an_existing_docs_page() -> None:
    """Each entry names its parameters (instantiable with no argument: every field has a
    default), its run callable, an existing docs page; names are unique."""
    names = [bot.name for bot in registry.bots()]
    assert len(names) == len(set(names))
    for bot in registry.bots(kind="bots"):
        model = bot.parameter_model()
        assert model is not None, bot.name
        assert issubclass(model, BotParameters), bot.name
        model()  # plain defaults
        assert callable(bot.run_callable()), bot.name
        assert (ROOT / bot.docs).is_file(), f"{bot.name}: {bot.docs} does not exist"
        assert bot.entrypoint == f"flows/bot_flows.py:{bot.key}_flow"
    assert {b.name for b in registry.bots(kind="operations")} == {"portal-healthcheck"}


def test_get_finds_a_bot_by_name_and_names_the_others_when_it_cannot() -> None:
    assert registry.get("invoice_matching").name == "invoice-matching"
    with pytest.raises(KeyError, match="no bot 'supplier-onboarding'; there are: portal-healthcheck, "):
        registry.get("supplier-onboarding")


def test_the_flow_factory_makes_one_flow_per_bot_named_after_it() -> None:
    """flows/bot_flows.py holds <bot>_flow for every registered bot, each a Prefect flow whose
    only parameter is the bot's model (the run form)."""
    import flows.bot_flows as bot_flows

    for bot in registry.bots(kind="bots"):
        made = getattr(bot_flows, bot.flow_function)
        assert made.name == bot.name
        assert made.description == bot.description
        schema = made.parameters.model_dump()
        assert list(schema["properties"]) == ["params"]
        model = bot.parameter_model()
        assert model is not None
        assert model.__name__ in schema["definitions"]


def test_each_bot_is_a_procbots_run_command_with_its_fields_as_options() -> None:
    """`procbots run <bot> --help` lists every parameter field under its CLI flag."""
    from flows.cli import app

    runner = CliRunner()
    listing = runner.invoke(app, ["run", "--help"], terminal_width=200)
    assert listing.exit_code == 0, listing.output
    for bot in registry.bots(kind="bots"):
        assert bot.name in listing.output
        model = bot.parameter_model()
        assert model is not None
        shown = runner.invoke(app, ["run", bot.name, "--help"], terminal_width=200)
        assert shown.exit_code == 0, shown.output
        for name in model.model_fields:
            assert registry.cli_flag(model, name).flag in shown.output, (bot.name, name)
    assert runner.invoke(app, ["run", "portal-healthcheck"]).exit_code == 2  # no such command


def test_the_demo_runs_the_registry_bots_that_have_demo_parameters() -> None:
    from flows.demo import DEMO_FLOWS, HEALTHCHECK

    assert HEALTHCHECK.entrypoint == registry.get("portal-healthcheck").entrypoint
    assert [flow.key for flow in DEMO_FLOWS] == [b.key for b in registry.bots(kind="bots") if b.demo]
    assert {flow.key for flow in DEMO_FLOWS} >= {"purchase_orders", "invoice_matching", "contract_uploads"}


@pytest.mark.parametrize(("name", "kind"), [("README.md", "readme"), ("docs/operations.md", "deployments")])
def test_the_docs_bot_tables_are_what_the_registry_gives(name: str, kind: str) -> None:
    """README's "What is inside" and operations' deployments tables are generated from the
    registry (`procbots serve --write-prefect-yaml`): a new or changed entry fails here until
    they are regenerated."""
    from flows.commands.serve import with_docs_table

    text = (ROOT / name).read_text(encoding="utf-8")
    assert with_docs_table(text, kind) == text, f"{name}: run `procbots serve --write-prefect-yaml`"
    for bot in registry.bots():
        assert f"| `{bot.name}` |" in text


def test_a_docs_table_without_its_markers_is_named() -> None:
    from flows.commands.serve import ProjectFileError, with_docs_table

    with pytest.raises(ProjectFileError, match="registry:readme"):
        with_docs_table("# no table here\n", "readme")


def _model() -> type[BotParameters]:
    from typing import Annotated

    from pydantic import Field

    class Params(BotParameters):
        source: Annotated[str, Cli("--source"), InputPath("file")] = Field("", description="a file")
        folders: Annotated[list[str], InputPath("folder")] = Field(default_factory=list, description="x")
        out: Annotated[str, InputPath("file", must_exist=False)] = Field("", description="where to write")

    return Params


def test_relative_input_paths_resolve_against_the_root_and_a_missing_one_names_the_full_path(
    tmp_path: Path,
) -> None:
    """Relative paths are read from the data root; a missing one is refused before any work with
    the field and the full path it looked at; outputs need not exist."""
    model = _model()
    (tmp_path / "inbox").mkdir()
    (tmp_path / "inbox" / "reqs.csv").write_text("x")
    resolved: Any = resolve_inputs(
        model(source="inbox/reqs.csv", folders=["inbox"], out="out/r.xlsx"), tmp_path
    )
    assert resolved.source == str(tmp_path / "inbox" / "reqs.csv")
    assert resolved.folders == [str(tmp_path / "inbox")]
    assert resolved.out == str(tmp_path / "out" / "r.xlsx")
    with pytest.raises(BotInputError) as missing:
        resolve_inputs(model(source="inbox/nope.csv"), tmp_path)
    assert str(missing.value) == f"source: {tmp_path / 'inbox' / 'nope.csv'}: no such file"
    with pytest.raises(BotInputError, match=r"--source /abs/nope.csv: no such file"):
        resolve_inputs(model(source="/abs/nope.csv"), tmp_path, label=lambda name: "--source")


def test_run_ids_have_one_format_tied_to_the_flow_run() -> None:
    import re

    flow_run_id = "7fa8512a-0e90-4cd8-b9f0-74643fcd5de5"
    assert re.fullmatch(r"\d{8}T\d{6}Z-7fa8512a", registry.new_run_id(flow_run_id))
    assert registry.new_run_id(flow_run_id).endswith("-" + registry.flow_run_suffix(flow_run_id))
    assert re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]{6}", registry.new_run_id())


def test_hold_reasons_count_every_held_or_rejected_document_under_each_code() -> None:
    """The hold-reasons table (titled "held or rejected") counts rejections too: a duplicate
    invoice rejected is DUPLICATE_INVOICE x1, and the counts cover every document not approved."""
    from bots.bot_runs import hold_reasons
    from bots.domain.match_tables import match_documents
    from tests.matching_builders import invoice, order, receipt

    decisions = match_documents(
        [order("PO-1", lines=((1, "20", "10.00", "20", True),))],
        [receipt("PO-1", qty="20")],
        [invoice("INV-1", po="PO-1"), invoice("INV-1", po="PO-1"), invoice("INV-2", po="PO-9")],
    )
    not_approved = [d for d in decisions if d.decision != "approve"]
    assert sorted(d.decision for d in not_approved) == ["hold", "reject"]
    reasons = {r["code"]: r["count"] for r in hold_reasons(decisions)}
    assert reasons["DUPLICATE_INVOICE"] == 1
    expected: dict[str, int] = {}
    for d in not_approved:
        for code in dict.fromkeys(d.codes):
            expected[code] = expected.get(code, 0) + 1
    assert reasons == expected
    assert json.dumps(reasons)
