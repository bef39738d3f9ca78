"""`procbots items list|show|retry|release` against a real ledger file."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bots.runtime.ledger import ItemState, Ledger
from flows.cli import app


@pytest.fixture
def ledger(settings_env: Path) -> Iterator[Ledger]:
    from config.settings import get_settings
    from connectors.audit import reset_default_audit_log

    reset_default_audit_log()
    ledger = Ledger.from_settings(get_settings())
    ledger.add_many("purchase_orders", [("REQ-1", {}), ("REQ-2", {}), ("REQ-3", {})])
    done = ledger.claim("purchase_orders", "host:1")
    assert done is not None
    done.checkpoint("po_created", "PO-000123")
    ledger.add_evidence(done, [{"path": "evidence/run/1/page.png", "sha256": "ab" * 32}])
    ledger.complete(done, {"po_number": "PO-000123"})
    refused = ledger.claim("purchase_orders", "host:1")
    assert refused is not None
    ledger.business_exception(refused, "UNKNOWN_SUPPLIER", "Supplier SUP-9 is not on the vendor master")
    stuck = ledger.claim("purchase_orders", "host:2")
    assert stuck is not None
    yield ledger
    reset_default_audit_log()


def test_items_list_filters_by_state_and_bot(ledger: Ledger) -> None:
    result = CliRunner().invoke(app, ["items", "list", "--state", "business_exception", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [(r["idempotency_key"], r["reason_code"]) for r in rows] == [("REQ-2", "UNKNOWN_SUPPLIER")]
    table = CliRunner().invoke(app, ["items", "list", "--bot", "purchase_orders"])
    assert table.exit_code == 0
    assert "REQ-3" in table.output
    assert "in_progress" in table.output
    assert (
        CliRunner()
        .invoke(app, ["items", "list", "--bot", "nobody"])
        .output.strip()
        .endswith("no work items match")
    )


def test_items_list_rejects_an_unknown_state(ledger: Ledger) -> None:
    result = CliRunner().invoke(app, ["items", "list", "--state", "finished"])
    assert result.exit_code == 2
    assert "'finished' is not a state" in result.output


def test_items_show_has_history_checkpoints_and_evidence(ledger: Ledger) -> None:
    result = CliRunner().invoke(app, ["items", "show", "1"])
    assert result.exit_code == 0, result.output
    assert "po_created: PO-000123" in result.output
    assert "evidence/run/1/page.png" in result.output
    assert "claimed" in result.output
    assert "in_progress -> done" in result.output
    data = json.loads(CliRunner().invoke(app, ["items", "show", "1", "--json"]).output)
    assert [h["event"] for h in data["history"]] == ["added", "claimed", "checkpoint", "evidence", "done"]
    assert "lease_token" not in data
    missing = CliRunner().invoke(app, ["items", "show", "42"])
    assert missing.exit_code == 2
    assert "no work item with id 42" in missing.output


def test_items_retry_and_release(ledger: Ledger) -> None:
    retried = CliRunner().invoke(app, ["items", "retry", "2", "--reason", "supplier added to vendor master"])
    assert retried.exit_code == 0, retried.output
    assert ledger.get(2).state is ItemState.PENDING
    refused = CliRunner().invoke(app, ["items", "retry", "1"])
    assert refused.exit_code == 2
    assert "is done" in refused.output
    released = CliRunner().invoke(app, ["items", "release", "3"])
    assert released.exit_code == 0, released.output
    assert ledger.get(3).state is ItemState.PENDING
    assert ledger.history(3)[-1].event == "released"
