"""The runner: outcomes, retries with a bound across crashes, heartbeats, async workers, audit."""

from __future__ import annotations

import asyncio
import json
import threading
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bots.domain.errors import BusinessError, PortalUnavailable, SessionExpired, as_bot_error, classify
from bots.runtime.ledger import Evidence, ItemState, Ledger, WorkItem
from bots.runtime.runner import Runner
from config.settings import Settings

BOT = "purchase_orders"


def fast_settings(tmp_path: Path, **ledger: Any) -> Settings:
    return Settings(
        paths={"root": tmp_path / "var"},
        retry={"max_attempts": 3, "initial_s": 0, "max_s": 0, "jitter_s": 0},
        ledger={"lease_s": 30, "heartbeat_s": 9, **ledger},
    )


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    return Ledger(f"sqlite:///{tmp_path / 'ledger.db'}", audit=False)


def test_classify_and_codes() -> None:
    assert (
        classify(BusinessError("UNKNOWN_SUPPLIER", "Supplier SUP-9 is not on the vendor master"))
        == "business"
    )
    assert classify(PortalUnavailable()) == "system"
    assert classify(KeyError("x")) == "system"
    from playwright.async_api import TimeoutError as PlaywrightTimeout

    assert as_bot_error(PlaywrightTimeout("Timeout 15000ms exceeded")).code == "PORTAL_TIMEOUT"
    assert as_bot_error(KeyError("unit_price")).code == "UNEXPECTED_ERROR"
    assert SessionExpired().code == "SESSION_EXPIRED"


def test_outcomes_are_recorded_and_only_system_errors_retried(ledger: Ledger, tmp_path: Path) -> None:
    ledger.add_many(BOT, [(key, {}) for key in ["OK", "BAD-SUPPLIER", "FLAKY", "DOWN"]])
    calls: Counter[str] = Counter()

    def process(item: WorkItem) -> dict[str, str]:
        key = item.idempotency_key
        calls[key] += 1
        if key == "BAD-SUPPLIER":
            raise BusinessError("UNKNOWN_SUPPLIER", "Supplier SUP-9 is not on the vendor master")
        if key == "FLAKY" and calls[key] < 3:
            raise PortalUnavailable("PORTAL_UNAVAILABLE", "The portal answered HTTP 503")
        if key == "DOWN":
            raise ConnectionResetError("connection reset by peer")
        return {"po_number": f"PO-{item.id:06d}"}

    summary = Runner(ledger, BOT, process, settings=fast_settings(tmp_path)).run()
    assert (summary.claimed, summary.done, summary.business_exception, summary.failed) == (4, 2, 1, 1)
    assert summary.retries == 2 + 2
    assert summary.exit_code == 1
    assert calls == {"OK": 1, "BAD-SUPPLIER": 1, "FLAKY": 3, "DOWN": 3}
    down = ledger.find(BOT, "DOWN")
    assert down is not None
    assert (down.state, down.reason_code, down.attempts) == (ItemState.FAILED, "UNEXPECTED_ERROR", 3)
    assert down.reason_message == "ConnectionResetError: connection reset by peer"
    flaky = ledger.find(BOT, "FLAKY")
    assert flaky is not None
    assert flaky.result == {"po_number": f"PO-{flaky.id:06d}"}
    assert [t.event for t in ledger.history(flaky.id)].count("system_exception") == 2


def test_attempt_bound_counts_attempts_of_crashed_workers(tmp_path: Path) -> None:
    now = [datetime(2026, 4, 1, tzinfo=UTC)]
    ledger = Ledger(
        f"sqlite:///{tmp_path / 'l.db'}", audit=False, clock=lambda: now[0], max_lease_expiries=10
    )
    ledger.add(BOT, "REQ-1", {})
    for _ in range(2):  # two workers died holding it
        assert ledger.claim(BOT, "dead", lease_s=1) is not None
        now[0] += timedelta(seconds=2)
    calls = 0

    def always_down(item: WorkItem) -> None:
        nonlocal calls
        calls += 1
        raise PortalUnavailable()

    summary = Runner(ledger, BOT, always_down, settings=fast_settings(tmp_path)).run()
    assert calls == 1  # attempt 3 of 3: no more retries in this process
    assert summary.failed == 1


def test_resume_after_checkpoint(ledger: Ledger, tmp_path: Path) -> None:
    ledger.add(BOT, "REQ-1", {})
    created: list[str] = []

    def create_then_fail_once(item: WorkItem) -> dict[str, str]:
        po = item.done_step("po_created")
        if not po:
            po = f"PO-{len(created) + 1:06d}"
            created.append(po)
            item.checkpoint("po_created", po)
        if item.attempts == 1:
            raise SessionExpired()
        return {"po_number": po}

    summary = Runner(ledger, BOT, create_then_fail_once, settings=fast_settings(tmp_path)).run()
    assert summary.done == 1
    assert created == ["PO-000001"]  # the retry resumed after the checkpoint


def test_heartbeats_keep_a_long_item_leased(ledger: Ledger, tmp_path: Path) -> None:
    ledger.add(BOT, "SLOW", {})
    beats = threading.Event()
    original = ledger.heartbeat

    def counting_heartbeat(item: WorkItem, lease_s: float | None = None) -> Any:
        result = original(item, lease_s)
        beats.set()
        return result

    ledger.heartbeat = counting_heartbeat  # type: ignore[method-assign]
    stolen: list[WorkItem | None] = []

    def slow(item: WorkItem) -> None:
        # Work until two heartbeats have passed, then check no one else could claim it.
        assert beats.wait(10)
        beats.clear()
        assert beats.wait(10)
        other = Ledger(ledger.url, audit=False)
        stolen.append(other.claim(BOT, "thief", lease_s=1))

    settings = fast_settings(tmp_path, lease_s=0.6, heartbeat_s=0.1)
    summary = Runner(ledger, BOT, slow, settings=settings).run()
    assert summary.done == 1
    assert stolen == [None]
    assert ledger.get(1).lease_expiries == 0


def test_a_worker_that_lost_its_lease_does_not_complete(ledger: Ledger, tmp_path: Path) -> None:
    ledger.add(BOT, "REQ-1", {})

    def hung(item: WorkItem) -> None:
        # Meanwhile an operator released the item and another worker took it.
        ledger.release(item.id, reason="worker looked hung")
        assert ledger.claim(BOT, "other") is not None

    summary = Runner(ledger, BOT, hung, settings=fast_settings(tmp_path)).run()
    assert (summary.done, summary.lease_lost) == (0, 1)
    assert ledger.get(1).lease_owner == "other"


def test_async_workers_share_the_queue_and_keep_evidence(ledger: Ledger, tmp_path: Path) -> None:
    ledger.add_many(BOT, [(f"REQ-{n}", {"n": n}) for n in range(12)])
    entered: list[int] = []
    handled: Counter[int] = Counter()
    hooked: list[tuple[int, str]] = []

    @asynccontextmanager
    async def worker_setup() -> AsyncIterator[dict[str, int]]:
        entered.append(len(entered))
        yield {"worker": len(entered)}

    async def process(item: WorkItem, state: dict[str, int]) -> dict[str, int]:
        handled[item.id] += 1
        await asyncio.sleep(0)
        if item.payload["n"] == 5:
            raise BusinessError("PRICE_OVER_TOLERANCE", "Unit price £12.40 is over the PO price £10.00")
        return {"worker": state["worker"]}

    async def on_error(item: WorkItem, exc: BaseException, state: dict[str, int]) -> list[Evidence]:
        hooked.append((item.id, type(exc).__name__))
        path = tmp_path / f"evidence-{item.id}.txt"
        path.write_text("screenshot stand-in")
        return [Evidence(path=str(path), sha256="0" * 64)]

    runner = Runner(ledger, BOT, settings=fast_settings(tmp_path), on_error=on_error)
    summary = asyncio.run(runner.run_async(workers=3, process=process, worker_setup=worker_setup))
    assert entered == [0, 1, 2]
    assert (summary.claimed, summary.done, summary.business_exception) == (12, 11, 1)
    assert set(handled.values()) == {1}
    assert len({i.result["worker"] for i in ledger.list(state="done") if i.result}) >= 2
    bad = ledger.find(BOT, "REQ-5")
    assert bad is not None
    assert hooked == [(bad.id, "BusinessError")]
    assert [e.path for e in bad.evidence] == [str(tmp_path / f"evidence-{bad.id}.txt")]


def test_async_max_items_is_respected(ledger: Ledger, tmp_path: Path) -> None:
    ledger.add_many(BOT, [(f"REQ-{n}", {}) for n in range(10)])

    async def process(item: WorkItem, state: None) -> None:
        await asyncio.sleep(0)

    runner = Runner(ledger, BOT, settings=fast_settings(tmp_path))
    summary = asyncio.run(runner.run_async(workers=4, process=process, max_items=6))
    assert summary.claimed == 6
    assert ledger.counts(BOT)["pending"] == 4


def test_runner_audits_every_transition(tmp_path: Path) -> None:
    from connectors.audit import AuditLog, verify_audit

    log_path = tmp_path / "audit.jsonl"
    ledger = Ledger(f"sqlite:///{tmp_path / 'l.db'}", audit=AuditLog(log_path).append)
    ledger.add(BOT, "REQ-1", {})

    def flaky_once(item: WorkItem) -> None:
        if item.attempts == 1:
            raise PortalUnavailable()

    Runner(ledger, BOT, flaky_once, settings=fast_settings(tmp_path)).run()
    events = [json.loads(line)["event"] for line in log_path.read_text().splitlines()]
    assert events == [
        "workitem.added",
        "workitem.claimed",
        "workitem.system_exception",
        "workitem.retry",
        "workitem.done",
    ]
    assert verify_audit(log_path).ok
    assert len(ledger.history(1)) == len(events)


def test_a_failure_while_preparing_an_attempt_is_recorded_and_retried(ledger: Ledger, tmp_path: Path) -> None:
    """An exception in the worker state's begin_item is that attempt's system exception, then retried."""
    ledger.add_many(BOT, [("REQ-1", {})])
    begun: list[int] = []

    class State:
        async def begin_item(self, item: WorkItem) -> None:
            begun.append(item.id)
            if len(begun) == 1:
                raise PortalUnavailable("PORTAL_UNAVAILABLE", "trace restart failed")

    @asynccontextmanager
    async def worker_setup() -> AsyncIterator[State]:
        yield State()

    async def process(item: WorkItem, state: State) -> None:
        await asyncio.sleep(0)

    runner = Runner(ledger, BOT, settings=fast_settings(tmp_path))
    summary = asyncio.run(runner.run_async(workers=1, process=process, worker_setup=worker_setup))
    assert summary.done == 1
    item = ledger.find(BOT, "REQ-1")
    assert item is not None
    assert item.state == ItemState.DONE
    assert item.attempts == 2
    assert "system_exception" in [t.to_state for t in ledger.history(item.id)]
