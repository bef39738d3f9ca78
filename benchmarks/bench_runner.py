"""Benchmark: what the work-item runner costs per item, against a bare loop.

The same no-op ``process`` function is called for N items (default 10,000):

* bare loop: ``for payload in payloads: process(payload)``;
* runner: ``Runner(...).run()`` over a SQLite ledger file (claim with lease,
  complete, a transition row each, tenacity wrapper, heartbeat thread) with the
  hash-chained audit log (fsync per record) -- the full production path;
* runner without audit: the same with ``audit=False``, to show the audit share.

``benchmarks/results/runner.json`` gets items/s of each, the overhead per item
in milliseconds and the ratio runner / bare loop (how many times slower), plus
the machine's load average (the numbers depend heavily on shared CPUs and disk).

Run: ``.venv/bin/python -m benchmarks.bench_runner [--items 10000]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results" / "runner.json"
BOT = "benchmark"


def _no_op(payload: dict[str, Any]) -> None:
    return None


def _bare(payloads: list[dict[str, Any]]) -> float:
    start = time.perf_counter()
    for payload in payloads:
        _no_op(payload)
    return time.perf_counter() - start


def _runner(items: int, folder: Path, *, audit: bool) -> tuple[float, int]:
    from bots.runtime.ledger import Ledger, WorkItem
    from bots.runtime.runner import Runner
    from config.logging import configure_logging
    from config.settings import Settings
    from connectors.audit import AuditLog

    settings = Settings(paths={"root": folder}, log_level="WARNING")
    configure_logging(settings)  # per-item log lines are not the runner's cost
    hook: Any = AuditLog(folder / "audit.jsonl").append if audit else False
    ledger = Ledger(f"sqlite:///{folder / 'ledger.db'}", audit=hook)
    ledger.add_many(BOT, [(f"REQ-{n:06d}", {"n": n}) for n in range(items)])

    def process(item: WorkItem) -> None:
        _no_op(item.payload)

    runner = Runner(ledger, BOT, process, settings=settings)
    start = time.perf_counter()
    summary = runner.run()
    elapsed = time.perf_counter() - start
    ledger.close()
    return elapsed, summary.done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--before",
        type=Path,
        help="an earlier result file (e.g. of the previous ledger) to embed under 'before'",
    )
    args = parser.parse_args(argv)
    payloads = [{"n": n} for n in range(args.items)]
    bare_s = min(_bare(payloads) for _ in range(5))
    with tempfile.TemporaryDirectory(prefix="procbots-bench-runner-") as tmp:
        full_s, done_full = _runner(args.items, Path(tmp) / "audit", audit=True)
        lean_s, done_lean = _runner(args.items, Path(tmp) / "lean", audit=False)
    assert done_full == done_lean == args.items, (done_full, done_lean)
    result = {
        "benchmark": "runner",
        "items": args.items,
        "bare_loop": {"seconds": bare_s, "items_per_s": args.items / bare_s},
        "runner": {
            "seconds": full_s,
            "items_per_s": args.items / full_s,
            "overhead_ms_per_item": (full_s - bare_s) / args.items * 1000,
            "ratio_to_bare_loop": full_s / bare_s,
        },
        "runner_without_audit": {
            "seconds": lean_s,
            "items_per_s": args.items / lean_s,
            "overhead_ms_per_item": (lean_s - bare_s) / args.items * 1000,
            "ratio_to_bare_loop": lean_s / bare_s,
        },
        "notes": "SQLite ledger (WAL, synchronous=NORMAL); audit log fsyncs every record; "
        "per item: claim transaction (lease-expiry probe, UPDATE ... RETURNING, transition row) "
        "+ complete transaction (fenced UPDATE ... RETURNING, transition row), 2 audit records",
        "machine": {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average": os.getloadavg(),
        },
    }
    if args.before is not None:
        result["before"] = json.loads(args.before.read_text())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
