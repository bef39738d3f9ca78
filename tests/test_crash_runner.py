"""Crash test: a real worker process SIGKILLed mid-item still yields exactly-once side effects.

The bot's side effect goes into an external SQLite "target" (standing in for
the portal). Like our portal bots, the process function searches the target by
idempotency key before creating, then records a checkpoint; so a kill between
the side effect and its checkpoint is detected on retry and not repeated.

The worker is this file run as a script (``python tests/test_crash_runner.py``);
``tests/test_runner_workers.py`` uses it too, for two workers sharing a ledger.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BOT = "purchase_orders"


# -- the worker (runs in a child process) -------------------------------------


def _target(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=60, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    # No UNIQUE constraint on purpose: a duplicate must be visible, not refused.
    conn.execute(
        "CREATE TABLE IF NOT EXISTS purchase_orders "
        "(id INTEGER PRIMARY KEY AUTOINCREMENT, requisition_ref TEXT, po_number TEXT, owner TEXT)"
    )
    conn.execute("CREATE TABLE IF NOT EXISTS resumed (requisition_ref TEXT, owner TEXT)")
    conn.execute("CREATE TABLE IF NOT EXISTS processed (item_id INTEGER, owner TEXT)")
    return conn


def worker_main(argv: list[str]) -> int:
    """``worker LEDGER_URL TARGET_DB OWNER [--until-drained] [--plain] [--go FILE]``; crash point from env.

    ``--plain`` processes without side effects (it only notes which items it got).
    """
    from bots.runtime.ledger import Ledger, WorkItem
    from bots.runtime.runner import Runner
    from config.settings import Settings

    ledger_url, target_path, owner = argv[:3]
    until_drained = "--until-drained" in argv
    go_file = argv[argv.index("--go") + 1] if "--go" in argv else None
    crash_at = os.environ.get("CRASH_AT")  # "<point>:<nth item>"
    lease_s = float(os.environ.get("LEASE_S", "1.0"))
    settings = Settings(
        retry={"max_attempts": 50, "initial_s": 0, "max_s": 0, "jitter_s": 0},
        ledger={"lease_s": lease_s, "heartbeat_s": lease_s / 4},
    )
    ledger = Ledger(ledger_url, max_lease_expiries=10_000, audit=False, lease_s=lease_s)
    target = _target(target_path)
    seen = 0

    def crash_point(name: str) -> None:
        if crash_at == f"{name}:{seen}":
            os.kill(os.getpid(), signal.SIGKILL)

    def create_purchase_order(item: WorkItem) -> dict[str, str]:
        nonlocal seen
        seen += 1
        ref = item.idempotency_key
        target.execute("INSERT INTO processed VALUES (?, ?)", (item.id, owner))
        crash_point("before_side_effect")
        po = item.done_step("po_created")
        if not po:
            # Search before create, as the portal bots do.
            row = target.execute(
                "SELECT po_number FROM purchase_orders WHERE requisition_ref = ?", (ref,)
            ).fetchone()
            if row is None:
                po = f"PO-{item.id:06d}"
                target.execute("INSERT INTO purchase_orders VALUES (NULL, ?, ?, ?)", (ref, po, owner))
                crash_point("after_side_effect")
            else:
                po = row[0]
                target.execute("INSERT INTO resumed VALUES (?, ?)", (ref, owner))
            item.checkpoint("po_created", po)
            crash_point("after_checkpoint")
        return {"po_number": po}

    processed: list[int] = []

    def record_only(item: WorkItem) -> None:
        processed.append(item.id)
        # Stands for the side effect's duration (not synchronisation): with a zero-cost
        # item, SQLite's busy handler lets the lock holder claim everything alone.
        time.sleep(0.002)

    print("ready", flush=True)
    if go_file:
        deadline = time.monotonic() + 60
        while not Path(go_file).exists() and time.monotonic() < deadline:
            time.sleep(0.01)
    process = record_only if "--plain" in argv else create_purchase_order
    runner = Runner(ledger, BOT, process, settings=settings, owner=owner)
    total = 0
    while True:
        total += runner.run().claimed
        counts = ledger.counts(BOT)
        if not until_drained or counts["pending"] + counts["in_progress"] + counts["system_exception"] == 0:
            break
        time.sleep(lease_s / 5)  # leases of killed workers run out; poll for them
    print(json.dumps({"owner": owner, "claimed": total, "processed": processed}), flush=True)
    return 0


# -- the test ---------------------------------------------------------------------


def start_worker(
    ledger_url: str, target: Path, owner: str, *extra: str, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), ledger_url, str(target), owner, *extra],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def wait_ready(proc: subprocess.Popen[str]) -> None:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == "ready", f"worker did not start: {line!r}, exit {proc.poll()}"


def done_count(ledger_path: Path) -> int:
    with sqlite3.connect(ledger_path, timeout=60) as conn:
        return int(conn.execute("SELECT count(*) FROM work_items WHERE state = 'done'").fetchone()[0])


@pytest.mark.slow
def test_sigkilled_worker_leaves_every_purchase_order_created_exactly_once(tmp_path: Path) -> None:
    from bots.runtime.ledger import ItemState, Ledger

    ledger_path = tmp_path / "ledger.db"
    url = f"sqlite:///{ledger_path}"
    target = tmp_path / "portal.db"
    ledger = Ledger(url, audit=False)
    ledger.add_many(BOT, [(f"REQ-{n:05d}", {"requisition_ref": f"REQ-{n:05d}"}) for n in range(200)])
    rng = random.Random(int(os.environ.get("CRASH_SEED", "5")))

    # Kills at each dangerous point, from inside: deterministic, so every point is hit.
    for n, point in enumerate(["after_side_effect", "after_checkpoint", "before_side_effect"]):
        proc = start_worker(url, target, f"crash-{n}", env={"CRASH_AT": f"{point}:{rng.randint(1, 8)}"})
        wait_ready(proc)
        assert proc.wait(timeout=120) == -signal.SIGKILL

    # Kills from outside at random moments of the item cycle.
    kills = 0
    for n in range(3):
        before = done_count(ledger_path)
        proc = start_worker(url, target, f"random-{n}")
        wait_ready(proc)
        goal = before + rng.randint(3, 15)
        deadline = time.monotonic() + 60
        while done_count(ledger_path) < goal and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        time.sleep(rng.uniform(0, 0.01))  # land anywhere in the next item's cycle
        proc.send_signal(signal.SIGKILL)
        kills += proc.wait(timeout=60) == -signal.SIGKILL

    final = start_worker(url, target, "final", "--until-drained")
    wait_ready(final)
    assert final.wait(timeout=120) == 0

    assert kills >= 2
    conn = sqlite3.connect(target)
    created = conn.execute(
        "SELECT requisition_ref, count(*), min(po_number) FROM purchase_orders GROUP BY 1"
    ).fetchall()
    assert len(created) == 200
    duplicates = [ref for ref, count, _ in created if count != 1]
    assert duplicates == [], f"created more than once: {duplicates}"
    # A kill between side effect and checkpoint was detected and not repeated.
    assert conn.execute("SELECT count(*) FROM resumed").fetchone()[0] >= 1

    items = ledger.list(bot=BOT)
    assert {i.state for i in items} == {ItemState.DONE}
    po_by_ref = {ref: po for ref, _, po in created}
    for item in items:
        assert item.result == {"po_number": po_by_ref[item.idempotency_key]}
        assert item.checkpoints == {"po_created": po_by_ref[item.idempotency_key]}
        assert sum(t.event == "done" for t in ledger.history(item.id)) == 1
    assert sum(i.lease_expiries for i in items) >= 3  # the items of the self-killed workers came back


if __name__ == "__main__":
    raise SystemExit(worker_main(sys.argv[1:]))
