"""Runs the goods-receipts bot once over a folder, as its own process; prints the run as JSON.

Used by ``tests/test_goods_receipts_e2e.py`` so a run can be killed with SIGKILL and
each run reads its settings (data root, leases) from the environment afresh.
Usage: ``python -m tests.goods_receipts_worker FOLDER PORTAL_URL``; exit code = the run's.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(folder: str, portal_url: str) -> int:
    from bots.goods_receipts import record_goods_receipts
    from bots.runtime.sync import run_sync

    run = run_sync(record_goods_receipts(Path(folder), portal_url=portal_url))
    results = [r.model_dump(mode="json") for r in run.results]
    print(json.dumps({"counts": run.counts, "results": results, "stopped": run.stopped}))
    return run.exit_code


if __name__ == "__main__":
    raise SystemExit(main(*sys.argv[1:3]))
