"""`procbots match` end to end, against a DuckDB process doing the core rules on the same files.

What a user waits for is the command: process start to exit, JSON written. This benchmark
writes the data of ``benchmarks.bench_matching.generate`` (N invoice lines against N PO
lines and 0.9N receipt lines; a third as many invoices; 5% short receipts, 3% over-priced
lines) as CSV files in the documented formats (docs/matching.md), then, in the same run
and alternating, best of ``--repeat``:

* ``procbots match --orders orders.csv --receipts receipts.csv --invoices invoices.csv --json``
  as a fresh process (``PROCBOTS_MATCH_TIMINGS`` asks it for its stage times on stderr),
  peak RSS of the process (``ru_maxrss`` of the child);
* a fresh Python process that imports duckdb, reads the same three CSVs (money as
  ``DECIMAL(18,4)``) and runs the core-rule query (PO/line found, price over the stricter
  of 2% and £5, cumulative quantity against received and ordered, not received), writing
  its decisions to a file.

The decisions are compared with the readable reference engine's (``tests/oracle``'s
``match_invoices`` on models of the same rows): SHA-256 of every decision's JSON shape, in
order. Results: ``benchmarks/results/match_command.json``.

    .venv/bin/python -m benchmarks.bench_match_command                  # 100k and 1M
    .venv/bin/python -m benchmarks.bench_match_command --sizes 100000 --repeat 1
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.bench_matching import generate

RESULTS = Path(__file__).parent / "results" / "match_command.json"
ORDERS = [
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
]
RECEIPTS = ["grn_number", "po_number", "line_no", "quantity_received", "received_date"]
INVOICES = [
    "document_type",
    "invoice_number",
    "supplier_vat",
    "invoice_date",
    "po_number",
    "line_no",
    "quantity",
    "unit_price",
    "net_amount",
    "vat_rate",
    "vat_amount",
    "billing_reference",
]


def write_files(lines: int, folder: Path) -> dict[str, Path]:
    """The generator's data as the three CSV files of ``procbots match``."""
    data = generate(lines)
    ol, rl, il, ih = data["order_lines"], data["receipt_lines"], data["invoice_lines"], data["invoices"]
    # The generator's supplier numbers with valid check digits (the orders file is checked).
    valid = {vat: _valid_vat(vat) for vat in set(ol["vat"])}
    ol["vat"] = [valid[v] for v in ol["vat"]]
    ih["vat"] = [valid[v] for v in ih["vat"]]
    paths = {name: folder / f"{name}.csv" for name in ("orders", "receipts", "invoices")}
    with paths["orders"].open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(ORDERS)
        for po, line, vat, qty, price, rate, receipt in zip(
            ol["po"], ol["line"], ol["vat"], ol["qty"], ol["price"], ol["rate"], ol["receipt"], strict=True
        ):
            writer.writerow(
                [
                    po,
                    line,
                    f"SUP-{vat[-4:]}",
                    vat,
                    f"ITEM-{line}",
                    "Gloves",
                    qty,
                    price,
                    rate,
                    "yes" if receipt else "no",
                ]
            )
    with paths["receipts"].open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(RECEIPTS)
        for grn, po, line, qty in zip(rl["grn"], rl["po"], rl["line"], rl["qty"], strict=True):
            writer.writerow([grn, po, line, qty, "2025-04-01"])
    headers = {number: (vat, day) for number, vat, day in zip(ih["inv"], ih["vat"], ih["date"], strict=True)}
    with paths["invoices"].open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(INVOICES)
        for number, po, line, qty, price, rate in zip(
            il["inv"], il["po"], il["line"], il["qty"], il["price"], il["rate"], strict=True
        ):
            vat, day = headers[number]
            writer.writerow(
                ["invoice", number, vat, day.isoformat(), po, line, qty, price, qty * price, rate, "", ""]
            )
    return paths


def _valid_vat(vat: str) -> str:
    from bots.domain.identifiers import check_gb_vat

    stem = vat[:-2]
    for last in range(100):
        candidate = f"{stem}{last:02d}"
        if check_gb_vat(candidate).valid:
            return candidate
    raise AssertionError(f"no valid VAT number near {vat}")


DUCKDB_SCRIPT = r"""
import sys, time
t0 = time.perf_counter()
import duckdb
folder, out = sys.argv[1], sys.argv[2]
con = duckdb.connect()
money = "DECIMAL(18,4)"
con.execute(f"CREATE TABLE order_lines AS SELECT po_number AS po, line_no AS line, quantity::{money} AS qty, "
            f"unit_price::{money} AS price, receipt_required = 'yes' AS receipt "
            f"FROM read_csv('{folder}/orders.csv', header=true, all_varchar=true)")
con.execute(f"CREATE TABLE receipt_lines AS SELECT po_number AS po, line_no AS line, "
            f"quantity_received::{money} AS qty "
            f"FROM read_csv('{folder}/receipts.csv', header=true, all_varchar=true)")
con.execute(f"CREATE TABLE invoice_lines AS SELECT invoice_number AS inv, supplier_vat AS vat, "
            f"invoice_date::DATE AS date, po_number AS po, line_no AS line, quantity::{money} AS qty, "
            f"unit_price::{money} AS price, row_number() OVER () AS seq "
            f"FROM read_csv('{folder}/invoices.csv', header=true, all_varchar=true)")
con.execute('''
COPY (
WITH received AS (
    SELECT po, line, SUM(qty) AS received FROM receipt_lines GROUP BY po, line
), billed AS (
    SELECT il.*, SUM(il.qty) OVER (PARTITION BY il.po, il.line ORDER BY il.date, il.vat, il.inv
                                   ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS cum_qty
    FROM invoice_lines il
), checked AS (
    SELECT b.inv, b.vat,
           ol.po IS NULL AS line_not_on_po,
           b.price - ol.price > LEAST(ol.price * 0.02, 5.00) AS price_over,
           b.cum_qty > ol.qty AS qty_over_ordered,
           ol.receipt AND COALESCE(r.received, 0) <= 0 AS not_received,
           ol.receipt AND COALESCE(r.received, 0) > 0 AND b.cum_qty > r.received AS qty_over_received
    FROM billed b
    LEFT JOIN order_lines ol ON ol.po = b.po AND ol.line = b.line
    LEFT JOIN received r ON r.po = b.po AND r.line = b.line
)
SELECT inv, vat,
       CASE WHEN BOOL_OR(price_over OR qty_over_ordered OR qty_over_received OR not_received
                         OR line_not_on_po) THEN 'hold' ELSE 'approve' END AS decision,
       COUNT_IF(price_over) AS price_over, COUNT_IF(qty_over_ordered) AS qty_over_ordered,
       COUNT_IF(qty_over_received) AS qty_over_received, COUNT_IF(not_received) AS not_received,
       COUNT_IF(line_not_on_po) AS line_not_on_po
FROM checked GROUP BY inv, vat ORDER BY inv
) TO '__OUT__' (FORMAT json)
'''.replace('__OUT__', out))
print(time.perf_counter() - t0)
"""


def _run(command: list[str], env: dict[str, str] | None = None, stdout: Path | None = None) -> dict[str, Any]:
    """Run a process to exit; wall time and its peak RSS (MB)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    with stdout.open("wb") if stdout else open(os.devnull, "wb") as out:
        done = subprocess.run(command, stdout=out, stderr=subprocess.PIPE, env=env, check=False)
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if done.returncode not in (0, 1):
        raise RuntimeError(f"{command[:3]} exited {done.returncode}: {done.stderr.decode()[-2000:]}")
    return {
        "wall_s": wall,
        "max_rss_mb_at_least": round(max(peak, before) / 1024, 1),
        "stderr": done.stderr.decode(),
    }


def _peak_rss(command: list[str], env: dict[str, str], stdout: Path) -> float:
    """Peak RSS (MB) of one run, measured alone (``ru_maxrss`` of children is a maximum over all)."""
    script = (
        "import resource, subprocess, sys\n"
        f"with open({str(stdout)!r}, 'wb') as out:\n"
        f"    subprocess.run({command!r}, stdout=out, stderr=subprocess.DEVNULL)\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, env=env, check=True, text=True)
    return round(int(done.stdout.strip()) / 1024, 1)


def _stages(stderr: str) -> dict[str, float]:
    for line in reversed(stderr.splitlines()):
        if line.startswith("procbots match timings: "):
            return {
                k: round(v, 3) for k, v in json.loads(line.removeprefix("procbots match timings: ")).items()
            }
    return {}


def _digest_of_json(path: Path) -> tuple[str, int, dict[str, int]]:
    """SHA-256 of every decision of ``procbots match --json`` output, as ``_digest`` hashes
    the reference engine's decisions."""
    import orjson

    document = orjson.loads(path.read_bytes())
    digest = hashlib.sha256()
    for decision in document["invoices"]:
        digest.update(json.dumps(decision, sort_keys=True).encode())
    return digest.hexdigest(), len(document["invoices"]), document["summary"]["counts"]


def reference_worker(folder: Path) -> dict[str, Any]:
    """The reference engine on models of the same rows (the oracle under tests/)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from connectors.formats import load_invoice_rows, load_orders, load_receipts
    from tests.oracle.matching import match_invoices

    t0 = time.perf_counter()
    orders, errors = load_orders(folder / "orders.csv")
    receipts, errors2 = load_receipts(folder / "receipts.csv")
    invoices, errors3 = load_invoice_rows(folder / "invoices.csv")
    assert not errors
    assert not errors2
    assert not errors3
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    decisions = match_invoices(orders, receipts, invoices)
    match_s = time.perf_counter() - t0
    digest = hashlib.sha256()
    for decision in decisions:
        digest.update(json.dumps(decision.to_dict(), sort_keys=True).encode())
    return {"load_s": round(load_s, 2), "match_s": round(match_s, 2), "sha256": digest.hexdigest()}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-reference", action="store_true", help="skip the reference engine's digest")
    parser.add_argument("--worker", nargs=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(reference_worker(Path(args.worker[0]))))
        return {}
    procbots = str(Path(sys.executable).with_name("procbots"))
    runs = []
    load = os.getloadavg()
    for lines in [int(s) for s in args.sizes.split(",")]:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            paths = write_files(lines, folder)
            # Both processes as a user runs them: bytecode cached (this workspace sets
            # PYTHONDONTWRITEBYTECODE, which would make every start compile its imports),
            # one untimed warm-up each.
            base_env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
            env = {**base_env, "PROCBOTS_MATCH_TIMINGS": "1"}
            command = [
                procbots,
                "match",
                "--orders",
                str(paths["orders"]),
                "--receipts",
                str(paths["receipts"]),
                "--invoices",
                str(paths["invoices"]),
                "--json",
            ]
            duck_command = [sys.executable, "-c", DUCKDB_SCRIPT, str(folder), str(folder / "duck.json")]
            ours, duck = [], []
            _run(command, env=env, stdout=folder / "out.json")
            _run(duck_command, env=base_env)
            for _ in range(args.repeat):
                run = _run(command, env=env, stdout=folder / "out.json")
                ours.append({"wall_s": run["wall_s"], "stages": _stages(run["stderr"])})
                duck.append(_run(duck_command, env=base_env)["wall_s"])
            best = min(ours, key=lambda r: r["wall_s"])
            peak = _peak_rss(command, env, folder / "out.json")
            duck_peak = _peak_rss(duck_command, base_env, folder / "duck-peak.json")
            digest, documents, counts = _digest_of_json(folder / "out.json")
            holds = sum(1 for row in _json_lines(folder / "duck.json") if row["decision"] == "hold")
            reference: dict[str, Any] = {}
            if not args.no_reference:
                done = subprocess.run(
                    [sys.executable, "-m", "benchmarks.bench_match_command", "--worker", str(folder)],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                reference = json.loads(done.stdout.strip().splitlines()[-1])
            run_result = {
                "invoice_lines": lines,
                "documents": documents,
                "procbots_process_s": round(best["wall_s"], 3),
                "procbots_runs_s": [round(r["wall_s"], 3) for r in ours],
                "procbots_stages_s": best["stages"],
                "procbots_peak_rss_mb": peak,
                "duckdb_process_s": round(min(duck), 3),
                "duckdb_runs_s": [round(d, 3) for d in duck],
                "duckdb_peak_rss_mb": duck_peak,
                "ratio_process_to_process": round(best["wall_s"] / min(duck), 2),
                "counts": counts,
                "duckdb_holds": holds,
                "decisions_sha256": digest,
                "reference": reference,
                "sha256_equal_to_reference": (reference.get("sha256") == digest) if reference else None,
            }
            print(json.dumps(run_result), flush=True)
            runs.append(run_result)
    result: dict[str, Any] = {
        "benchmark": "procbots match end to end vs a DuckDB process (core rules), same CSV files",
        "load_average_at_start": [round(x, 2) for x in load],
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
        "repeat": args.repeat,
        "runs": runs,
    }
    if len(runs) >= 2:
        result["growth_procbots"] = round(runs[-1]["procbots_process_s"] / runs[0]["procbots_process_s"], 2)
        result["growth_duckdb"] = round(runs[-1]["duckdb_process_s"] / runs[0]["duckdb_process_s"], 2)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    return result


def _json_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


if __name__ == "__main__":
    main()
