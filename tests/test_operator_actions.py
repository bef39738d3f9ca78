"""What people do to work items: retry, release, resolve, correct the data; each named and audited.

A retried item is claimed first by the next run of its bot; dropping a corrected file
replaces the payload of items that are not done; every operator action records the
person (the OS user, or the name the console passes) and their reason, never the
lease holder's id.
"""

from __future__ import annotations

import getpass
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bots.runtime.ledger import SCHEMA_VERSION, ItemState, Ledger, WorkItem, payload_sha256
from connectors.audit import AuditLog, verify_audit
from tests.test_workitems import FakeClock

Clock = FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def audit_path(tmp_path: Path) -> Path:
    return tmp_path / "audit" / "audit.jsonl"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def ledger(request: pytest.FixtureRequest, tmp_path: Path, clock: Clock, audit_path: Path) -> Ledger:
    """The ledger on SQLite, and on PostgreSQL (marked ``postgres``)."""
    url = (
        f"sqlite:///{tmp_path / 'ledger.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    return Ledger(url, clock=clock, audit=AuditLog(audit_path).append)


def _records(audit_path: Path, event: str) -> list[dict[str, object]]:
    lines = audit_path.read_text(encoding="utf-8").splitlines()
    return [r for r in map(json.loads, lines) if r["event"] == event]


def _business_exception(ledger: Ledger, key: str, code: str = "NEED_BY_IN_PAST") -> int:
    item = ledger.claim("purchase_orders", "worker-1")
    assert item is not None
    assert item.idempotency_key == key
    ledger.business_exception(item, code, f"{key}: need-by date is in the past")
    return item.id


def test_a_retried_item_is_claimed_before_older_pending_items(ledger: Ledger, clock: Clock) -> None:
    ledger.add("purchase_orders", "REQ-1", {"need_by": "2026-01-01"})
    failed = _business_exception(ledger, "REQ-1")
    ledger.add_many("purchase_orders", [(f"REQ-{n}", {"n": n}) for n in range(2, 6)])
    clock.advance(60)
    ledger.retry(failed, operator="a.clerk", reason="supplier confirmed the date")
    retried = ledger.get(failed)
    assert retried.retry_requested_at == clock.now
    first = ledger.claim("purchase_orders", "next-run")
    assert first is not None
    assert first.id == failed  # before REQ-2..5, although they waited longer in the queue
    second = ledger.claim("purchase_orders", "next-run")
    assert second is not None
    assert second.idempotency_key == "REQ-2"


def test_retried_since_lists_the_retried_items_a_run_claimed(ledger: Ledger, clock: Clock) -> None:
    ledger.add("purchase_orders", "REQ-1", {})
    failed = _business_exception(ledger, "REQ-1")
    ledger.retry(failed, operator="a.clerk")
    clock.advance(3600)
    run_started = clock.now
    assert ledger.retried_since("purchase_orders", run_started) == []  # not picked up yet
    ledger.add("purchase_orders", "REQ-OTHER-FILE", {})
    claimed = ledger.claim("purchase_orders", "run-2")
    assert claimed is not None
    ledger.complete(claimed)
    listed = ledger.retried_since("purchase_orders", run_started)
    assert [(i.id, i.state) for i in listed] == [(failed, ItemState.DONE)]
    assert ledger.retried_since("invoice_matching", run_started) == []
    assert ledger.retried_since("purchase_orders", clock.now + timedelta(seconds=1)) == []


def test_a_corrected_file_replaces_the_payload_of_items_not_done(
    ledger: Ledger, clock: Clock, audit_path: Path
) -> None:
    first_file = [(f"REQ-{n}", {"ref": f"REQ-{n}", "need_by": "2026-01-01"}) for n in range(1, 5)]
    ledger.add_many("purchase_orders", first_file)
    exception = _business_exception(ledger, "REQ-1")
    done = ledger.claim("purchase_orders", "worker-1")
    assert done is not None
    ledger.complete(done, result={"po_number": "PO-000001"})
    in_progress = ledger.claim("purchase_orders", "worker-2")
    assert in_progress is not None
    clock.advance(10)
    corrected = [(key, {**body, "need_by": "2026-05-01"}) for key, body in first_file]
    assert ledger.add_many("purchase_orders", corrected) == 0  # no new items, only new data
    after = {i.idempotency_key: i for i in ledger.list(bot="purchase_orders")}
    assert after["REQ-1"].payload["need_by"] == "2026-05-01"  # business exception: corrected...
    assert after["REQ-1"].state is ItemState.PENDING  # ...and back in the queue
    assert after["REQ-1"].reason_code is None
    assert after["REQ-4"].payload["need_by"] == "2026-05-01"  # pending: takes the new data
    assert after["REQ-2"].payload["need_by"] == "2026-01-01"  # done: what was done stays
    assert after["REQ-3"].payload["need_by"] == "2026-01-01"  # a worker holds it: not under its feet
    (record,) = _records(audit_path, "workitem.payload_replaced")
    assert record["count"] == 2
    items = {i["idempotency_key"]: i for i in record["items"]}  # type: ignore[attr-defined]
    assert items["REQ-1"]["old_payload"] == {"ref": "REQ-1", "need_by": "2026-01-01"}
    assert items["REQ-1"]["new_payload"] == {"ref": "REQ-1", "need_by": "2026-05-01"}
    assert items["REQ-1"]["old_payload_sha256"] == payload_sha256(items["REQ-1"]["old_payload"])
    assert items["REQ-1"]["new_payload_sha256"] == payload_sha256(items["REQ-1"]["new_payload"])
    assert items["REQ-1"]["from_state"] == "business_exception"
    assert any(t.event == "payload_replaced" for t in ledger.history(exception))
    first = ledger.claim("purchase_orders", "next-run")
    assert first is not None
    assert first.id == exception  # the corrected exception goes first
    assert ledger.add_many("purchase_orders", corrected) == 0
    assert len(_records(audit_path, "workitem.payload_replaced")) == 1  # the same data again: no change


def test_an_operator_release_names_the_operator_not_the_dead_worker(ledger: Ledger, audit_path: Path) -> None:
    ledger.add("purchase_orders", "REQ-1", {})
    stuck = ledger.claim("purchase_orders", "host-9:pid-4242")
    assert stuck is not None
    ledger.release(stuck.id, operator="j.bloggs", reason="worker host was rebooted")
    (record,) = _records(audit_path, "workitem.released")
    assert record["operator"] == "j.bloggs"
    assert record["owner"] == "j.bloggs"
    assert record["reason"] == "worker host was rebooted"
    assert record["lease_owner_was"] == "host-9:pid-4242"
    last = ledger.history(stuck.id)[-1]
    assert (last.event, last.owner, last.detail) == ("released", "j.bloggs", "worker host was rebooted")
    assert verify_audit(audit_path).ok


def test_without_an_operator_the_os_user_is_recorded(ledger: Ledger, audit_path: Path) -> None:
    ledger.add("purchase_orders", "REQ-1", {})
    failed = _business_exception(ledger, "REQ-1")
    ledger.retry(failed, reason="fixed in the portal")
    (record,) = _records(audit_path, "workitem.requeued")
    assert record["operator"] == getpass.getuser()
    assert record["reason"] == "fixed in the portal"
    assert "worker-1" not in json.dumps(record)


def test_resolve_with_a_note_marks_the_item_done_by_that_person(ledger: Ledger, audit_path: Path) -> None:
    ledger.add("purchase_orders", "REQ-1", {})
    failed = _business_exception(ledger, "REQ-1", "SUPPLIER_ON_HOLD")
    with pytest.raises(ValueError, match="needs a note"):
        ledger.resolve(failed, " ", operator="a.clerk")
    resolved = ledger.resolve(failed, "raised by hand as PO-000777", operator="a.clerk")
    assert resolved.state is ItemState.DONE
    assert resolved.result == {
        "resolved_by": "a.clerk",
        "note": "raised by hand as PO-000777",
        "reason_code": "SUPPLIER_ON_HOLD",
        "reason_message": "REQ-1: need-by date is in the past",
    }
    (record,) = _records(audit_path, "workitem.resolved")
    assert (record["operator"], record["reason"], record["reason_code"]) == (
        "a.clerk",
        "raised by hand as PO-000777",
        "SUPPLIER_ON_HOLD",
    )
    with pytest.raises(ValueError, match="is done"):
        ledger.resolve(failed, "again", operator="a.clerk")


def test_replace_payload_and_retry_keeps_both_payloads_in_the_audit(
    ledger: Ledger, clock: Clock, audit_path: Path
) -> None:
    ledger.add("purchase_orders", "REQ-1", {"ref": "REQ-1", "need_by": "2026-01-01"})
    ledger.add("purchase_orders", "REQ-2", {"ref": "REQ-2"})
    failed = _business_exception(ledger, "REQ-1")
    clock.advance(5)
    fixed = ledger.replace_payload_and_retry(
        failed, {"ref": "REQ-1", "need_by": "2026-06-30"}, operator="console:a.clerk", reason="date typo"
    )
    assert fixed.state is ItemState.PENDING
    assert fixed.payload == {"ref": "REQ-1", "need_by": "2026-06-30"}
    assert fixed.retry_requested_at == clock.now
    (record,) = _records(audit_path, "workitem.payload_replaced")
    assert record["operator"] == "console:a.clerk"
    assert record["reason"] == "date typo"
    assert record["old_payload"] == {"ref": "REQ-1", "need_by": "2026-01-01"}
    assert record["new_payload"] == {"ref": "REQ-1", "need_by": "2026-06-30"}
    assert record["new_payload_sha256"] == payload_sha256({"ref": "REQ-1", "need_by": "2026-06-30"})
    claimed = ledger.claim("purchase_orders", "next-run")
    assert claimed is not None
    assert claimed.id == failed
    ledger.complete(claimed)
    with pytest.raises(ValueError, match="is done"):
        ledger.replace_payload_and_retry(failed, {"ref": "REQ-1"}, operator="console:a.clerk")


def test_a_large_replaced_payload_goes_to_the_audit_by_reference(ledger: Ledger, audit_path: Path) -> None:
    big = {"lines": [{"line_no": n, "description": "Gloves, nitrile, size M" * 4} for n in range(2000)]}
    ledger.add("purchase_orders", "REQ-1", big)
    failed = _business_exception(ledger, "REQ-1")
    ledger.replace_payload_and_retry(failed, {**big, "need_by": "2026-06-30"}, operator="a.clerk")
    (record,) = _records(audit_path, "workitem.payload_replaced")
    stored = record["old_payload"]
    assert isinstance(stored, dict)
    assert json.loads((audit_path.parent / stored["audit_ref"]).read_text()) == big
    assert verify_audit(audit_path).ok


def test_a_schema_1_ledger_is_migrated_in_place(tmp_path: Path, clock: Clock) -> None:
    path = tmp_path / "old.db"
    Ledger(f"sqlite:///{path}", audit=False).add("purchase_orders", "REQ-OLD", {"x": 1})
    with sqlite3.connect(path) as db:  # make it look as schema 1 left it
        db.execute("DROP INDEX ix_work_items_claim_rank")
        db.execute("ALTER TABLE work_items DROP COLUMN claim_rank")
        db.execute("ALTER TABLE work_items DROP COLUMN retry_requested_at")
        db.execute("CREATE INDEX ix_work_items_claim ON work_items (bot, state, id)")
        db.execute("DELETE FROM schema_version WHERE version > 1")
    ledger = Ledger(f"sqlite:///{path}", audit=False, clock=clock)
    assert ledger.schema_version() == SCHEMA_VERSION == 2
    ledger.add("purchase_orders", "REQ-NEW", {})
    old = ledger.claim("purchase_orders", "w")
    assert old is not None
    assert old.idempotency_key == "REQ-OLD"
    assert old.retry_requested_at is None
    with sqlite3.connect(path) as db:
        names = {row[1] for row in db.execute("PRAGMA index_list(work_items)")}
    assert "ix_work_items_claim_rank" in names
    assert "ix_work_items_claim" not in names


def test_the_next_run_of_the_bot_processes_a_retried_item_first_with_its_corrected_data(
    tmp_path: Path, audit_path: Path
) -> None:
    """A run started for another file: the runner takes the corrected item before the file's own."""
    from bots.domain.errors import BusinessError
    from bots.runtime.runner import Runner
    from tests.test_runner import fast_settings

    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}", audit=AuditLog(audit_path).append)
    seen: list[tuple[str, str]] = []

    def raise_po(item: WorkItem) -> dict[str, str]:
        seen.append((item.idempotency_key, item.payload["need_by"]))
        if item.payload["need_by"] < "2026-04-01":
            raise BusinessError("NEED_BY_IN_PAST", f"{item.idempotency_key}: need-by date is in the past")
        return {"po_number": f"PO-{item.id:06d}"}

    ledger.add("purchase_orders", "REQ-MONDAY", {"need_by": "2026-01-01"})
    monday = Runner(ledger, "purchase_orders", raise_po, settings=fast_settings(tmp_path)).run()
    assert monday.business_exception == 1
    item_id = ledger.find("purchase_orders", "REQ-MONDAY").id  # type: ignore[union-attr]
    ledger.replace_payload_and_retry(item_id, {"need_by": "2026-06-30"}, "typo", operator="a.clerk")
    tuesday_started = datetime.now(UTC)
    ledger.add_many("purchase_orders", [(f"REQ-TUESDAY-{n}", {"need_by": "2026-07-01"}) for n in range(3)])
    seen.clear()
    tuesday = Runner(ledger, "purchase_orders", raise_po, settings=fast_settings(tmp_path)).run()
    assert tuesday.done == 4
    assert seen[0] == ("REQ-MONDAY", "2026-06-30")  # first, and with the corrected data
    assert [i.idempotency_key for i in ledger.retried_since("purchase_orders", tuesday_started)] == [
        "REQ-MONDAY"
    ]
    assert ledger.get(item_id).state is ItemState.DONE


def test_the_items_a_flow_run_left_failed_are_found_by_the_run_that_last_claimed_them(
    ledger: Ledger,
) -> None:
    """A retried Prefect flow run retries what its earlier attempt left failed or needing review:
    not its business exceptions, not items another run (or a later one) claimed last."""
    for key in ("A", "B", "C", "D"):
        ledger.add("purchase_orders", key, {})
    first, other, later = (
        "20261207T120000Z-aaaa1111",
        "20261207T120000Z-bbbb2222",
        "20261207T121000Z-cccc3333",
    )
    claims = {
        key: ledger.claim("purchase_orders", "w", run_id=run)
        for key, run in zip("ABCD", (first, first, other, first), strict=True)
    }
    for key in "ACD":
        item = claims[key]
        assert item is not None
        assert item.idempotency_key == key
        ledger.fail(item, "PORTAL_UNAVAILABLE", "HTTP 503")
    business = claims["B"]
    assert business is not None
    ledger.business_exception(business, "INVALID_GTIN", "bad GTIN")
    ledger.retry(claims["D"].id, "portal is back", operator="Jane Smith")  # type: ignore[union-attr]
    again = ledger.claim("purchase_orders", "w", run_id=later)
    assert again is not None
    assert again.idempotency_key == "D"
    ledger.fail(again, "PORTAL_UNAVAILABLE", "HTTP 503")

    assert [i.idempotency_key for i in ledger.left_failed_by_run("purchase_orders", "aaaa1111")] == ["A"]
    assert [i.idempotency_key for i in ledger.left_failed_by_run("purchase_orders", "cccc3333")] == ["D"]
    assert ledger.left_failed_by_run("invoice_matching", "aaaa1111") == []
    claimed = [t for t in ledger.history(claims["A"].id) if t.event == "claimed"]  # type: ignore[union-attr]
    assert [t.detail for t in claimed] == [f"run {first}"]
    with pytest.raises(ValueError, match="letters and digits"):
        ledger.left_failed_by_run("purchase_orders", "%")
