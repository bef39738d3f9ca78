"""Two worker processes share one ledger (SQLite file, then PostgreSQL): no item is claimed twice."""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from tests.test_crash_runner import BOT, start_worker, wait_ready

ITEMS = 1000


def _run_two_workers(url: str, tmp_path: Path) -> None:
    from bots.runtime.ledger import ItemState, Ledger

    ledger = Ledger(url, audit=False)
    ledger.add_many(BOT, [(f"REQ-{n:05d}", {"n": n}) for n in range(ITEMS)])
    target = tmp_path / "portal.db"
    go = tmp_path / "go"
    workers: list[subprocess.Popen[str]] = [
        start_worker(url, target, f"worker-{n}", "--plain", "--go", str(go), env={"LEASE_S": "30"})
        for n in range(2)
    ]
    for proc in workers:
        wait_ready(proc)
    go.touch()  # both start claiming at once
    reports = []
    for proc in workers:
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0
        reports.append(json.loads(out.strip().splitlines()[-1]))

    assert sum(r["claimed"] for r in reports) == ITEMS
    assert all(r["claimed"] > 0 for r in reports), f"one worker did all the work: {reports}"
    processed = Counter(item_id for r in reports for item_id in r["processed"])
    assert len(processed) == ITEMS
    assert max(processed.values()) == 1, "an item was processed twice"
    assert ledger.counts(BOT)[ItemState.DONE.value] == ITEMS
    with ledger.engine.connect() as db:
        claims = db.exec_driver_sql(
            "SELECT item_id, count(*) FROM item_transitions WHERE event = 'claimed' GROUP BY item_id"
        ).all()
    assert len(claims) == ITEMS
    assert {count for _, count in claims} == {1}, "an item was claimed twice"


@pytest.mark.slow
def test_two_workers_on_one_sqlite_ledger_claim_each_item_once(tmp_path: Path) -> None:
    _run_two_workers(f"sqlite:///{tmp_path / 'ledger.db'}", tmp_path)


@pytest.mark.slow
@pytest.mark.postgres
def test_two_workers_on_postgresql_claim_each_item_once(postgres_url: str, tmp_path: Path) -> None:
    _run_two_workers(postgres_url, tmp_path)
