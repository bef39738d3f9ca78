"""Benchmark: read + validate a 100,000-row order sheet through ``load_orders``.

Reports the time as a ratio to a raw python-calamine read of the same file in the same
run (goal: within 2x), the openpyxl read-only raw read for comparison (why the reader
uses calamine), and peak memory of the load (tracemalloc, Python allocations only, and
the process's max RSS). Writes ``benchmarks/results/excel.json``.

Run: ``.venv/bin/python -m benchmarks.bench_excel [--rows N] [--skip-openpyxl]``.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
import tracemalloc
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "excel.json"
HEADER = [
    "po_number",
    "line_no",
    "supplier_id",
    "supplier_vat",
    "item_code",
    "description",
    "quantity",
    "unit_price",
    "vat_rate",
    "receipt_required",
    "cost_centre",
    "need_by",
]


def make_sheet(path: Path, rows: int) -> None:
    """A realistic order sheet: 12 columns, 4 lines per PO, written in write-only mode."""
    import datetime as dt

    from openpyxl import Workbook

    wb = Workbook(write_only=True)
    ws = wb.create_sheet("Orders")
    ws.append(HEADER)
    start = dt.date(2025, 1, 1)
    for i in range(rows):
        po, line = divmod(i, 4)
        ws.append(
            [
                f"PO-{po:07d}",
                line + 1,
                f"SUP-{po % 500:04d}",
                "GB980780684",
                f"50{i:011d}",
                f"Item {i % 997} nitrile gloves",
                (i % 50) + 1,
                round(0.05 * (i % 400) + 0.1, 2),
                (20, 5, 0)[i % 3],
                ("yes", "no")[i % 2],
                f"CC{i % 40:03d}",
                start + dt.timedelta(days=i % 365),
            ]
        )
    wb.save(path)


def _best(fn, repeat: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--skip-openpyxl", action="store_true")
    args = parser.parse_args(argv)

    from python_calamine import CalamineWorkbook

    from connectors.formats import load_orders

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "orders.xlsx"
        make_sheet(path, args.rows)

        def raw_calamine() -> None:
            wb = CalamineWorkbook.from_path(str(path))
            for _row in wb.get_sheet_by_name("Orders").iter_rows():
                pass
            wb.close()

        def raw_openpyxl() -> None:
            from openpyxl import load_workbook

            wb = load_workbook(path, read_only=True, data_only=True)
            for _row in wb["Orders"].iter_rows(values_only=True):
                pass
            wb.close()

        loaded: dict[str, int] = {}

        def load() -> None:
            orders, errors = load_orders(path)
            loaded["orders"], loaded["errors"] = len(orders), len(errors)
            loaded["lines"] = sum(len(o.lines) for o in orders)

        calamine_s = _best(raw_calamine, args.repeat)
        load_s = _best(load, args.repeat)
        openpyxl_s = None if args.skip_openpyxl else _best(raw_openpyxl, 1)
        tracemalloc.start()
        load()
        _current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        result: dict[str, object] = {
            "rows": args.rows,
            "columns": len(HEADER),
            "file_bytes": path.stat().st_size,
            "raw_calamine_s": round(calamine_s, 3),
            "raw_openpyxl_readonly_s": None if openpyxl_s is None else round(openpyxl_s, 3),
            "load_orders_s": round(load_s, 3),
            "ratio_to_calamine": round(load_s / calamine_s, 2),
            "goal_ratio": 2.0,
            "openpyxl_to_calamine": None if openpyxl_s is None else round(openpyxl_s / calamine_s, 1),
            "peak_python_alloc_mb": round(peak / 1e6, 1),
            "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "orders": loaded["orders"],
            "lines": loaded["lines"],
            "errors": loaded["errors"],
        }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
