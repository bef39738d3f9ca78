"""The ledger: idempotent adds, leases and fencing, checkpoints, history, schema."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from bots.domain.errors import LeaseLost
from bots.runtime.ledger import SCHEMA_VERSION, ItemState, Ledger


class Requisition(BaseModel):
    requisition_ref: str
    supplier_id: str
    quantity: int


class FakeClock:
    """A clock the test moves by hand, so leases expire without sleeping."""

    def __init__(self) -> None:
        self.now = datetime(2026, 4, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def audit_events() -> list[tuple[str, dict[str, Any]]]:
    return []


@pytest.fixture
def make_ledger(
    tmp_path: Path, clock: FakeClock, audit_events: list[tuple[str, dict[str, Any]]]
) -> Callable[..., Ledger]:
    def make(url: str | None = None, **kwargs: Any) -> Ledger:
        return Ledger(
            url or f"sqlite:///{tmp_path / 'ledger.db'}",
            clock=clock,
            audit=lambda event, **fields: audit_events.append((event, fields)),
            **kwargs,
        )

    return make


def test_adding_the_same_idempotency_key_twice_returns_the_first_item(
    make_ledger: Callable[..., Ledger],
) -> None:
    ledger = make_ledger()
    first = ledger.add(
        "purchase_orders",
        "REQ-0001",
        Requisition(requisition_ref="REQ-0001", supplier_id="SUP-1", quantity=3),
    )
    claimed = ledger.claim("purchase_orders", "w")
    assert claimed is not None
    ledger.complete(claimed)  # a done item keeps its payload (a pending one takes a corrected one)
    again = ledger.add(
        "purchase_orders", "REQ-0001", {"requisition_ref": "REQ-0001", "supplier_id": "SUP-2", "quantity": 9}
    )
    assert again.id == first.id
    assert again.payload_as(Requisition).supplier_id == "SUP-1"
    assert ledger.add_many("purchase_orders", [("REQ-0001", {}), ("REQ-0002", {}), ("REQ-0002", {})]) == 1
    assert ledger.counts("purchase_orders")["pending"] == 1
    assert ledger.counts("purchase_orders")["done"] == 1
    # The same key under another bot is another item.
    assert ledger.add("invoice_matching", "REQ-0001", {}).id != first.id


def test_an_empty_idempotency_key_is_refused_with_the_bot_named(make_ledger: Callable[..., Ledger]) -> None:
    with pytest.raises(ValueError, match=r"purchase_orders.*idempotency key"):
        make_ledger().add("purchase_orders", "", {})


def test_find_many_returns_each_bots_items_by_key_in_the_order_asked_across_chunks(
    make_ledger: Callable[..., Ledger],
) -> None:
    ledger = make_ledger()
    keys = [f"REQ-{n:04d}" for n in range(1_203)]  # three chunks of 500
    ledger.add_many("purchase_orders", [(key, {"n": n}) for n, key in enumerate(keys)])
    ledger.add("invoice_matching", "REQ-0007", {"other": True})
    asked = [*reversed(keys), "REQ-9999", keys[0]]
    found = ledger.find_many("purchase_orders", asked)
    assert list(found) == list(reversed(keys))  # unknown key left out, repeated key once
    assert all(item.idempotency_key == key and item.bot == "purchase_orders" for key, item in found.items())
    assert found["REQ-0007"].payload == {"n": 7}
    last = ledger.find("purchase_orders", "REQ-1202")
    assert last is not None
    assert found["REQ-1202"].id == last.id
    assert ledger.find_many("purchase_orders", []) == {}


def test_claim_leases_oldest_first_and_none_when_empty(make_ledger: Callable[..., Ledger]) -> None:
    ledger = make_ledger()
    ledger.add_many("po", [("A", {}), ("B", {})])
    a = ledger.claim("po", "worker-1", lease_s=30)
    b = ledger.claim("po", "worker-2", lease_s=30)
    assert a is not None
    assert b is not None
    assert (a.idempotency_key, b.idempotency_key) == ("A", "B")
    assert a.state is ItemState.IN_PROGRESS
    assert a.attempts == 1
    assert a.lease_owner == "worker-1"
    assert ledger.claim("po", "worker-3") is None


def test_expired_lease_returns_item_and_fences_the_old_worker(
    make_ledger: Callable[..., Ledger], clock: FakeClock
) -> None:
    ledger = make_ledger()
    ledger.add("po", "REQ-1", {})
    stale = ledger.claim("po", "crashed-worker", lease_s=30)
    assert stale is not None
    clock.advance(29)
    assert ledger.claim("po", "other", lease_s=30) is None  # still leased
    clock.advance(2)
    fresh = ledger.claim("po", "other", lease_s=30)
    assert fresh is not None
    assert fresh.id == stale.id
    assert fresh.attempts == 2
    assert fresh.lease_expiries == 1
    with pytest.raises(LeaseLost, match="no longer leased to crashed-worker"):
        ledger.complete(stale)
    with pytest.raises(LeaseLost):
        ledger.heartbeat(stale)
    ledger.complete(fresh, {"po_number": "PO-000001"})
    with pytest.raises(LeaseLost):
        ledger.complete(fresh)  # never done twice
    events = [t.event for t in ledger.history(fresh.id)]
    assert events == ["added", "claimed", "lease_expired", "claimed", "done"]


def test_heartbeat_keeps_the_lease(make_ledger: Callable[..., Ledger], clock: FakeClock) -> None:
    ledger = make_ledger()
    ledger.add("po", "REQ-1", {})
    item = ledger.claim("po", "w", lease_s=30)
    assert item is not None
    for _ in range(5):
        clock.advance(20)
        ledger.heartbeat(item, lease_s=30)
    assert ledger.claim("po", "thief") is None
    assert ledger.get(item.id).heartbeat_at == clock.now


def test_needs_review_after_max_lease_expiries(make_ledger: Callable[..., Ledger], clock: FakeClock) -> None:
    ledger = make_ledger(max_lease_expiries=2)
    ledger.add("po", "POISON", {})
    assert ledger.claim("po", "w1", lease_s=10) is not None
    clock.advance(11)
    assert ledger.claim("po", "w2", lease_s=10) is not None
    clock.advance(11)
    assert ledger.claim("po", "w3", lease_s=10) is None
    item = ledger.find("po", "POISON")
    assert item is not None
    assert item.state is ItemState.NEEDS_REVIEW
    assert item.reason_code == "LEASE_EXPIRED_TOO_OFTEN"
    # An operator retry gives it fresh counts.
    retried = ledger.retry(item.id)
    assert (retried.state, retried.attempts, retried.lease_expiries) == (ItemState.PENDING, 0, 0)


def test_max_attempts_bounds_claims_across_crashes(
    make_ledger: Callable[..., Ledger], clock: FakeClock
) -> None:
    ledger = make_ledger(max_lease_expiries=100, max_attempts=2)
    ledger.add("po", "REQ-1", {})
    for _ in range(2):
        assert ledger.claim("po", "w", lease_s=5) is not None
        clock.advance(6)
    assert ledger.claim("po", "w", lease_s=5) is None
    item = ledger.get(1)
    assert item.state is ItemState.FAILED
    assert item.reason_code == "ATTEMPTS_EXHAUSTED"


def test_checkpoints_persist_immediately_and_resume(
    make_ledger: Callable[..., Ledger], clock: FakeClock
) -> None:
    ledger = make_ledger()
    ledger.add("po", "REQ-1", {})
    first = ledger.claim("po", "w1", lease_s=5)
    assert first is not None
    assert first.done_step("po_created") is None
    first.checkpoint("po_created", "PO-000123")
    first.checkpoint("confirmation_printed")
    clock.advance(6)  # the worker died here
    second = ledger.claim("po", "w2", lease_s=5)
    assert second is not None
    assert second.done_step("po_created") == "PO-000123"
    assert second.done_step("confirmation_printed") == ""
    assert second.done_step("emailed") is None


def test_system_exception_retry_and_fail_transitions(make_ledger: Callable[..., Ledger]) -> None:
    ledger = make_ledger()
    ledger.add("po", "REQ-1", {})
    item = ledger.claim("po", "w", lease_s=5)
    assert item is not None
    ledger.system_exception(item, "PORTAL_UNAVAILABLE", "The portal answered HTTP 503")
    assert ledger.get(item.id).state is ItemState.SYSTEM_EXCEPTION
    ledger.reattempt(item)
    assert ledger.get(item.id).attempts == 2
    ledger.system_exception(item, "PORTAL_UNAVAILABLE", "The portal answered HTTP 503")
    failed = ledger.fail(item, "PORTAL_UNAVAILABLE", "The portal answered HTTP 503")
    assert failed.state is ItemState.FAILED
    assert [t.to_state for t in ledger.history(item.id)] == [
        "pending",
        "in_progress",
        "system_exception",
        "in_progress",
        "system_exception",
        "failed",
    ]
    requeued = ledger.retry(item.id)
    assert (requeued.state, requeued.attempts, requeued.reason_code) == (ItemState.PENDING, 0, None)


def test_business_exception_records_code_and_message(make_ledger: Callable[..., Ledger]) -> None:
    ledger = make_ledger()
    ledger.add("po", "REQ-9", {})
    item = ledger.claim("po", "w")
    assert item is not None
    ledger.business_exception(item, "UNKNOWN_SUPPLIER", "Supplier SUP-9 is not on the vendor master")
    stored = ledger.get(item.id)
    assert stored.state is ItemState.BUSINESS_EXCEPTION
    assert (stored.reason_code, stored.reason_message) == (
        "UNKNOWN_SUPPLIER",
        "Supplier SUP-9 is not on the vendor master",
    )
    assert stored.lease_owner is None
    assert ledger.list(state="business_exception", bot="po")[0].id == item.id


def test_release_by_operator_and_by_worker(make_ledger: Callable[..., Ledger]) -> None:
    ledger = make_ledger()
    ledger.add_many("po", [("A", {}), ("B", {})])
    a = ledger.claim("po", "w")
    b = ledger.claim("po", "w")
    assert a is not None
    assert b is not None
    ledger.release(a)  # a worker shutting down
    ledger.release(b.id, reason="stuck after a network outage")  # an operator
    assert ledger.counts("po")["pending"] == 2
    assert ledger.get(a.id).lease_expiries == 0
    with pytest.raises(ValueError, match="not leased"):
        ledger.release(a.id)
    with pytest.raises(LeaseLost):
        ledger.complete(b)


def test_operator_retry_refuses_done_and_in_progress(make_ledger: Callable[..., Ledger]) -> None:
    ledger = make_ledger()
    ledger.add_many("po", [("A", {}), ("B", {})])
    a = ledger.claim("po", "w")
    assert a is not None
    ledger.complete(a)
    b = ledger.claim("po", "w")
    assert b is not None
    with pytest.raises(ValueError, match="is done"):
        ledger.retry(a.id)
    with pytest.raises(ValueError, match="release it first"):
        ledger.retry(b.id)
    with pytest.raises(LookupError, match="no work item with id 99"):
        ledger.get(99)


def test_every_transition_is_audited_after_commit(
    make_ledger: Callable[..., Ledger], audit_events: list[tuple[str, dict[str, Any]]]
) -> None:
    ledger = make_ledger()
    item = ledger.add("po", "REQ-1", {})
    claimed = ledger.claim("po", "w")
    assert claimed is not None
    claimed.checkpoint("po_created", "PO-000007")
    ledger.complete(claimed)
    names = [name for name, _ in audit_events]
    assert names == ["workitem.added", "workitem.claimed", "workitem.checkpoint", "workitem.done"]
    assert all(fields.get("item_id") == item.id for _, fields in audit_events)
    assert audit_events[2][1]["value"] == "PO-000007"


def test_audit_goes_to_the_hash_chained_log(tmp_path: Path) -> None:
    from connectors.audit import AuditLog, verify_audit

    log = AuditLog(tmp_path / "audit.jsonl")
    ledger = Ledger(f"sqlite:///{tmp_path / 'l.db'}", audit=log.append)
    ledger.add("po", "REQ-1", {})
    item = ledger.claim("po", "w")
    assert item is not None
    ledger.complete(item)
    result = verify_audit(tmp_path / "audit.jsonl")
    assert result.ok
    assert result.records == 3


def test_secret_in_reason_message_is_redacted(make_ledger: Callable[..., Ledger]) -> None:
    from config.logging import register_secret

    register_secret("Pa55-Ledger-Secret!")
    ledger = make_ledger()
    ledger.add("po", "REQ-1", {})
    item = ledger.claim("po", "w")
    assert item is not None
    ledger.business_exception(item, "LOGIN_REFUSED", "login with Pa55-Ledger-Secret! refused")
    assert "Pa55-Ledger-Secret!" not in (ledger.get(item.id).reason_message or "")
    assert "Pa55-Ledger-Secret!" not in " ".join(t.detail or "" for t in ledger.history(item.id))


def test_schema_is_versioned_and_reopening_is_a_no_op(
    make_ledger: Callable[..., Ledger], tmp_path: Path
) -> None:
    ledger = make_ledger()
    ledger.add("po", "A", {})
    ledger.close()
    again = make_ledger()
    assert again.schema_version() == SCHEMA_VERSION
    assert again.counts()["pending"] == 1
    with again.engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO schema_version (version, applied_at) VALUES (99, '2026-01-01 00:00:00')"
        )
    with pytest.raises(RuntimeError, match="schema version 99, newer"):
        make_ledger()


def test_times_are_utc_aware(make_ledger: Callable[..., Ledger]) -> None:
    item = make_ledger().add("po", "A", {})
    assert item.created_at.tzinfo is not None
    assert item.created_at.utcoffset() == timedelta(0)


@pytest.mark.postgres
def test_ledger_on_postgresql(postgres_url: str, clock: FakeClock) -> None:
    ledger = Ledger(postgres_url, clock=clock, audit=False)
    assert ledger.dialect == "postgresql"
    ledger.add_many("po", [(f"REQ-{n}", {"n": n}) for n in range(3)])
    again_0 = ledger.add("po", "REQ-0", {"n": 0})  # the same key and data: the same item, unchanged
    assert again_0.payload == {"n": 0}
    assert again_0.retry_requested_at is None
    assert ledger.add("po", "REQ-1", {"n": 10}).payload == {"n": 10}  # pending: corrected data replaces
    first = ledger.claim("po", "w1", lease_s=10)
    assert first is not None
    first.checkpoint("po_created", "PO-1")
    clock.advance(11)
    again = ledger.claim("po", "w2", lease_s=10)
    assert again is not None
    assert again.id == first.id
    assert again.done_step("po_created") == "PO-1"
    with pytest.raises(LeaseLost):
        ledger.complete(first)
    ledger.complete(again)
    assert ledger.counts("po") | {} == {**ledger.counts("po"), "done": 1, "pending": 2}
    assert Ledger(postgres_url, audit=False).schema_version() == SCHEMA_VERSION
