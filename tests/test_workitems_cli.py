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


def _audit_records(event: str) -> list[dict[str, object]]:
    from config.settings import get_settings

    lines = get_settings().audit_path.read_text(encoding="utf-8").splitlines()
    return [r for r in map(json.loads, lines) if r["event"] == event]


def test_items_list_shows_by_default_only_what_needs_attention(ledger: Ledger) -> None:
    result = CliRunner().invoke(app, ["items", "list"])
    assert result.exit_code == 0, result.output
    assert "REQ-2" in result.output  # business exception
    assert "REQ-3" in result.output  # in progress
    assert "REQ-1" not in result.output  # done
    assert "--all shows them" in result.output
    everything = CliRunner().invoke(app, ["items", "list", "--all"])
    assert "REQ-1" in everything.output
    keys = [
        r["idempotency_key"] for r in json.loads(CliRunner().invoke(app, ["items", "list", "--json"]).output)
    ]
    assert keys == ["REQ-2", "REQ-3"]


def test_items_list_shows_long_keys_whole_and_the_lease_holder(ledger: Ledger) -> None:
    long_key = "GB980780684/INV-" + "2026-04-TRUST-WIDE-CONSOLIDATED-STATEMENT-" * 3 + "000123"
    assert len(long_key) > 120
    ledger.add("invoice_matching", long_key, {})
    result = CliRunner().invoke(app, ["items", "list"])
    assert result.exit_code == 0, result.output
    assert long_key in result.output  # not cut at 80 columns
    assert "host:2 until" in result.output  # who holds REQ-3, and until when (London time)
    assert " GMT" in result.output or " BST" in result.output


def test_items_retry_prints_a_sentence_and_audits_the_os_user_and_reason(ledger: Ledger) -> None:
    import getpass

    result = CliRunner().invoke(app, ["items", "retry", "2", "--reason", "supplier added to vendor master"])
    assert result.exit_code == 0, result.output
    user = getpass.getuser()
    assert result.output.strip() == (
        f"Item 2 (purchase_orders REQ-2) is back in the queue; the next purchase_orders run processes it "
        f"first. Recorded as retried by {user}: supplier added to vendor master"
    )
    assert "{" not in result.output  # no audit JSON
    (record,) = _audit_records("workitem.requeued")
    assert (record["operator"], record["reason"]) == (user, "supplier added to vendor master")


def test_items_release_names_the_operator_not_the_dead_worker(ledger: Ledger) -> None:
    import getpass

    result = CliRunner().invoke(app, ["items", "release", "3", "--reason", "host:2 was rebooted"])
    assert result.exit_code == 0, result.output
    assert "Item 3 (purchase_orders REQ-3) was taken from host:2 and is pending again." in result.output
    assert "{" not in result.output
    (record,) = _audit_records("workitem.released")
    assert record["operator"] == record["owner"] == getpass.getuser()
    assert record["lease_owner_was"] == "host:2"
    assert record["reason"] == "host:2 was rebooted"


def test_items_resolve_marks_an_exception_done_with_the_note(ledger: Ledger) -> None:
    result = CliRunner().invoke(app, ["items", "resolve", "2", "--note", "PO raised by hand: PO-000900"])
    assert result.exit_code == 0, result.output
    assert "Item 2 (purchase_orders REQ-2) is done, resolved by" in result.output
    assert ledger.get(2).state is ItemState.DONE
    (record,) = _audit_records("workitem.resolved")
    assert record["reason"] == "PO raised by hand: PO-000900"
    again = CliRunner().invoke(app, ["items", "resolve", "2", "--note", "twice"])
    assert again.exit_code == 2
    assert "is done" in again.output
