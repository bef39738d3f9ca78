"""How long seeding the sandbox portal takes, from 1,000 to 100,000 purchase orders.

Writes ``benchmarks/results/seed.json``. The reference measured in the same run is
the bare cost of inserting the same number of PO header rows with ``executemany``
(no generation, no lines, no invoices): ``ratio`` says how much the realistic seed
costs over that floor.

Run: ``uv run python -m benchmarks.bench_seed [--orders 100000]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def _reference(orders: int, folder: Path) -> float:
    started = time.perf_counter()
    conn = sqlite3.connect(folder / "reference.db")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("CREATE TABLE purchase_orders (id INTEGER PRIMARY KEY, po_number TEXT, supplier_id TEXT)")
    with conn:
        conn.executemany(
            "INSERT INTO purchase_orders VALUES (?, ?, ?)",
            ((i, f"PO-{i:06d}", "SUP-00001") for i in range(orders)),
        )
    conn.close()
    return time.perf_counter() - started


def measure(orders: int) -> dict[str, object]:
    from sandbox.seed import generate, write_database

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        data = generate(seed=1, orders=orders)
        generated = time.perf_counter()
        write_database(folder / "portal.db", data, orders)
        done = time.perf_counter()
        size = (folder / "portal.db").stat().st_size
        reference = _reference(orders, folder)
    total = done - started
    return {
        "orders": orders,
        "order_lines": sum(len(o.lines) for o in data.orders),
        "receipts": len(data.receipts),
        "invoices": len(data.invoices),
        "generate_s": round(generated - started, 3),
        "write_s": round(done - generated, 3),
        "total_s": round(total, 3),
        "orders_per_s": round(orders / total),
        "db_mb": round(size / 1e6, 1),
        "reference_header_insert_s": round(reference, 3),
        "ratio_vs_reference": round(total / reference, 1) if reference else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, nargs="*", default=[1_000, 10_000, 100_000])
    args = parser.parse_args(argv)
    runs = [measure(n) for n in args.orders]
    result = {
        "benchmark": "sandbox seed",
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        },
        "runs": runs,
        "goal": "100,000 orders well under a minute",
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "seed.json").write_text(json.dumps(result, indent=2) + "\n")
    for run in runs:
        print(
            f"{run['orders']:>7} orders: {run['total_s']:>6} s ({run['orders_per_s']} orders/s, {run['invoices']} invoices, "  # noqa: E501
            f"{run['db_mb']} MB; {run['ratio_vs_reference']}x bare header insert)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
