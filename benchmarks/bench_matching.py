"""Benchmark: the invoice matching engine against a DuckDB SQL implementation of the
same core rules (price tolerance, cumulative quantity vs ordered, receipt / quantity
received), on the same generated data.

For each size N (default 10k, 100k and 1M invoice lines) it generates N order lines
(4 per PO), their goods receipts and N invoice lines (most POs billed by one invoice,
one in ten by two partial invoices; a few percent of lines priced over tolerance,
over-billed or not received), deterministically from a seed. Each side runs in its
own fresh process so peak memory is its own:

* engine: the data as columns loaded into ``MatchTables`` (``from_columns``: amounts
  to exact integers, strings to dictionary codes; timed apart as *load*), then
  ``match_tables``: every rule, duplicate detection and the sequential cases through
  the reference engine. Time and RSS growth; then ``MatchResult.decisions()`` (every
  decision with its messages) timed apart.
* reference engine: the same data as domain models (``model_construct``), then
  ``match_invoices``, the rule-by-rule engine ``match_tables`` must equal. A SHA-256
  over both decision lists (messages included) shows they are identical.
* duckdb: the same rows written to CSV and loaded into tables (timed apart), then one
  SQL statement applying the core rules and deciding per invoice. Time and max RSS
  growth, with DuckDB's default threads and with one thread (the engine uses one).

The counts of core-rule exceptions from both sides are compared (they must agree), and
``benchmarks/results/matching.json`` gets times, memory, the ratio engine / DuckDB
(goal: no slower than 1.5x) and the growth from 10k to 100k to 1M (goal: linear).

Run: ``.venv/bin/python -m benchmarks.bench_matching [--sizes 10000,100000,1000000]``
(``--quick`` runs 10k and 100k only; ``--no-reference`` skips the reference engine).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import hashlib
import itertools
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results" / "matching.json"
ROOT = Path(__file__).resolve().parents[1]
CORE_CODES = (
    "PRICE_OVER_TOLERANCE",
    "QTY_OVER_ORDERED",
    "QTY_OVER_RECEIVED",
    "NOT_RECEIVED",
    "LINE_NOT_ON_PO",
)
START = dt.date(2025, 4, 1)
KINDS = ("approve", "hold", "reject")


# --- data -----------------------------------------------------------------------------------


def generate(lines: int, seed: int = 7) -> dict[str, dict[str, list[Any]]]:
    """Columnar data: order lines, receipt lines and invoice lines (plus invoice headers)."""
    rng = random.Random(seed)
    pos = max(1, lines // 4)
    ol: dict[str, list[Any]] = {k: [] for k in ("po", "line", "vat", "qty", "price", "rate", "receipt")}
    rl: dict[str, list[Any]] = {k: [] for k in ("grn", "po", "line", "qty")}
    il: dict[str, list[Any]] = {k: [] for k in ("inv", "po", "line", "qty", "price", "rate")}
    ih: dict[str, list[Any]] = {k: [] for k in ("inv", "vat", "date", "po")}
    cents = [Decimal(c) / 100 for c in range(10, 50_001)]
    for p in range(pos):
        po = f"PO-{p:07d}"
        vat = f"GB{100000000 + (p % 500) * 1009:09d}"
        split = p % 10 == 9
        day = START + dt.timedelta(days=p % 300)
        specs = []
        for n in range(1, 5):
            qty = rng.randint(2, 50)
            price = cents[rng.randrange(len(cents))]
            rate = Decimal(20) if n != 4 else Decimal(0)
            receipt = n != 2
            ol["po"].append(po)
            ol["line"].append(n)
            ol["vat"].append(vat)
            ol["qty"].append(Decimal(qty))
            ol["price"].append(price)
            ol["rate"].append(rate)
            ol["receipt"].append(receipt)
            received = qty
            inv_qty, inv_price = qty, price
            roll = rng.random()
            # Exceptions only on POs billed once, so no held invoice changes what a
            # later one may bill (the engine counts approved quantity only).
            if not split:
                if roll < 0.02:
                    inv_price = (price * Decimal("1.05") + Decimal("0.50")).quantize(Decimal("0.01"))
                elif roll < 0.04:
                    inv_price = (price * Decimal("1.01")).quantize(Decimal("0.01"))
                elif roll < 0.06:
                    inv_price = (price * Decimal("0.9")).quantize(Decimal("0.01"))
                elif roll < 0.07:
                    inv_qty = qty + 1
                elif roll < 0.08 and receipt:
                    received = qty - 1
                elif roll < 0.085 and receipt:
                    received = 0
            if receipt and received:
                rl["grn"].append(f"GRN-{p:07d}")
                rl["po"].append(po)
                rl["line"].append(n)
                rl["qty"].append(Decimal(received))
            specs.append((n, inv_qty, inv_price, rate))
        bills = [(f"INV-{p:07d}", day, specs)]
        if split:
            first = [(n, q - 1, pr, r) for n, q, pr, r in specs]
            second = [(n, 1, pr, r) for n, _q, pr, r in specs]
            bills = [(f"INV-{p:07d}", day, first), (f"SPL-{p:07d}", day + dt.timedelta(days=20), second)]
        for number, when, bill in bills:
            ih["inv"].append(number)
            ih["vat"].append(vat)
            ih["date"].append(when)
            ih["po"].append(po)
            for n, q, pr, r in bill:
                il["inv"].append(number)
                il["po"].append(po)
                il["line"].append(n)
                il["qty"].append(Decimal(q))
                il["price"].append(pr)
                il["rate"].append(r)
    return {"order_lines": ol, "receipt_lines": rl, "invoice_lines": il, "invoices": ih}


def to_models(data: dict[str, dict[str, list[Any]]]) -> tuple[list[Any], list[Any], list[Any]]:
    """Domain models without re-validation (``model_construct``)."""
    from bots.domain.models import (
        DocumentTotals,
        Invoice,
        InvoiceLine,
        Party,
        POLine,
        PurchaseOrder,
        ReceiptLine,
        money,
    )

    ol = data["order_lines"]
    orders = []
    lines: list[POLine] = []
    for i in range(len(ol["po"])):
        lines.append(
            POLine.model_construct(
                line_no=ol["line"][i],
                quantity=ol["qty"][i],
                unit_price=ol["price"][i],
                vat_rate=ol["rate"][i],
                receipt_required=ol["receipt"][i],
            )
        )
        if i + 1 == len(ol["po"]) or ol["po"][i + 1] != ol["po"][i]:
            orders.append(
                PurchaseOrder.model_construct(po_number=ol["po"][i], supplier_vat=ol["vat"][i], lines=lines)
            )
            lines = []
    rl = data["receipt_lines"]
    receipts = [
        ReceiptLine.model_construct(
            po_number=rl["po"][i], line_no=rl["line"][i], quantity_received=rl["qty"][i]
        )
        for i in range(len(rl["po"]))
    ]
    il, ih = data["invoice_lines"], data["invoices"]
    invoices = []
    j = 0
    count = len(il["inv"])
    for k in range(len(ih["inv"])):
        number = ih["inv"][k]
        inv_lines = []
        groups: dict[Decimal, Decimal] = {}
        while j < count and il["inv"][j] == number:
            net = il["qty"][j] * il["price"][j]
            rate = il["rate"][j]
            groups[rate] = groups.get(rate, Decimal(0)) + net
            inv_lines.append(
                InvoiceLine.model_construct(
                    line_id=str(len(inv_lines) + 1),
                    quantity=il["qty"][j],
                    unit_price=il["price"][j],
                    net_amount=net,
                    vat_rate=rate,
                    vat_category="S" if rate else "Z",
                    order_line_reference=str(il["line"][j]),
                )
            )
            j += 1
        net_total = sum(groups.values(), Decimal(0))
        tax = sum((money(n * r / 100) for r, n in groups.items()), Decimal(0))
        invoices.append(
            Invoice.model_construct(
                invoice_number=number,
                issue_date=ih["date"][k],
                supplier=Party.model_construct(vat_number=ih["vat"][k]),
                po_number=ih["po"][k],
                lines=inv_lines,
                totals=DocumentTotals.model_construct(
                    line_extension=net_total,
                    tax_exclusive=net_total,
                    tax=tax,
                    tax_inclusive=net_total + tax,
                    payable=net_total + tax,
                ),
            )
        )
    return orders, receipts, invoices


def match_columns(data: dict[str, dict[str, list[Any]]]) -> dict[str, dict[str, list[Any]]]:
    """The same data as ``to_models``, as the columns of ``MatchTables.from_columns``."""
    from bots.domain.models import money

    ol, rl, il, ih = data["order_lines"], data["receipt_lines"], data["invoice_lines"], data["invoices"]
    n_orders = len(ol["po"])
    order_lines = {
        "po_number": ol["po"],
        "line_no": ol["line"],
        "quantity": ol["qty"],
        "unit_price": ol["price"],
        "vat_rate": ol["rate"],
        "receipt_required": ol["receipt"],
        "supplier_vat": ol["vat"],
        "currency": ["GBP"] * n_orders,
    }
    receipt_lines = {"po_number": rl["po"], "line_no": rl["line"], "quantity_received": rl["qty"]}
    index = {number: k for k, number in enumerate(ih["inv"])}
    net = [q * p for q, p in zip(il["qty"], il["price"], strict=True)]
    invoice_lines = {
        "document": [index[number] for number in il["inv"]],
        "order_line_reference": [str(n) for n in il["line"]],
        "quantity": il["qty"],
        "unit_price": il["price"],
        "net_amount": net,
        "vat_rate": il["rate"],
        "vat_category": ["S" if r else "Z" for r in il["rate"]],
    }
    groups: list[dict[Decimal, Decimal]] = [{} for _ in ih["inv"]]
    for doc, rate, amount in zip(invoice_lines["document"], il["rate"], net, strict=True):
        groups[doc][rate] = groups[doc].get(rate, Decimal(0)) + amount
    net_totals = [sum(g.values(), Decimal(0)) for g in groups]
    taxes = [sum((money(n * r / 100) for r, n in g.items()), Decimal(0)) for g in groups]
    count = len(ih["inv"])
    zero = [Decimal(0)] * count
    documents = {
        "invoice_number": ih["inv"],
        "document_type": ["invoice"] * count,
        "issue_date": ih["date"],
        "supplier_vat": ih["vat"],
        "po_number": ih["po"],
        "currency": ["GBP"] * count,
        "billing_reference": [None] * count,
        "line_extension": net_totals,
        "tax_exclusive": net_totals,
        "tax": taxes,
        "tax_inclusive": [n + t for n, t in zip(net_totals, taxes, strict=True)],
        "payable": [n + t for n, t in zip(net_totals, taxes, strict=True)],
        "allowances": zero,
        "charges": zero,
        "source": [None] * count,
    }
    return {
        "order_lines": order_lines,
        "receipt_lines": receipt_lines,
        "documents": documents,
        "invoice_lines": invoice_lines,
    }


# --- workers (each in its own process) --------------------------------------------------------


def _repeats(lines: int) -> int:
    # Best of several runs on both sides (at least 5, up to 100 on small sizes): the machine
    # is shared, and the best run is the one least disturbed by others (CPU time is
    # reported too for the same reason). The first, cold run is reported apart.
    return max(5, min(100, 1_000_000 // lines))


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def numpy_baseline(lines: int) -> float:
    """Best time of a fixed column pipeline over ``lines`` int64 values (multiply, compare,
    gather, scatter-count: the kinds of pass the engine makes), in the engine's process.
    Its growth with size is the machine's (caches, memory), not any algorithm's: the
    engine's growth is read against it."""
    import numpy as np

    rng = np.random.default_rng(7)
    a, b = rng.integers(0, 1000, lines), rng.integers(0, 1000, lines)
    index = np.sort(rng.integers(0, lines, lines))
    best = float("inf")
    for _ in range(_repeats(lines)):
        t0 = time.perf_counter()
        c = a * b + a
        mask = (c > 5000) & (a < b)
        a[index].sum()
        np.bincount(index[mask], minlength=lines)
        best = min(best, time.perf_counter() - t0)
    return best


def engine_worker(lines: int) -> dict[str, Any]:
    """The engine as it runs on bulk data: columns loaded into ``MatchTables`` (timed
    apart, like DuckDB's load), then ``match_tables``; then the full decisions with
    their messages (``MatchResult.decisions()``), timed apart too."""
    from bots.domain.match_tables import CORE_CODES as TABLE_CODES
    from bots.domain.match_tables import MatchTables, match_tables
    from bots.domain.matching import MatchingPolicy

    # A small warm-up loads the modules the engine imports on first use (as DuckDB's
    # are loaded by connect); the first run on the real data is still reported apart.
    match_tables(MatchTables.from_columns(**match_columns(generate(1000, seed=1))))
    data = generate(lines)
    columns = match_columns(data)
    del data
    rss_before = _rss_mb()
    t0 = time.perf_counter()
    tables = MatchTables.from_columns(**columns)
    load_s = time.perf_counter() - t0
    del columns
    rss_inputs = _rss_mb()
    walls, cpus = [], []
    for _ in range(_repeats(lines)):
        t0, c0 = time.perf_counter(), time.process_time()
        result = match_tables(tables)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    engine_s, engine_cpu_s = min(walls), min(cpus)
    first_s = walls[0]
    rss_engine = _rss_mb()
    # The part of a run spent in the reference engine on the documents that depend on
    # others (shared POs, possible duplicates): its share grows with the data, as
    # same-amount pairs per supplier do.
    sequential = sorted(result.sequential)
    reference_walls = []
    for _ in range(min(5, len(walls))):
        t0 = time.perf_counter()
        tables.sequential_match(sequential, MatchingPolicy())
        reference_walls.append(time.perf_counter() - t0)
    reference_part_s = min(reference_walls)
    t0 = time.perf_counter()
    decisions = result.decisions()
    materialise_s = time.perf_counter() - t0
    codes = Counter(r.code for d in decisions for r in d.reasons)
    kinds = Counter(d.decision for d in decisions)
    assert set(TABLE_CODES) == set(CORE_CODES)
    return {
        "load_s": round(load_s, 3),
        "engine_s": round(engine_s, 5),
        "engine_cpu_s": round(engine_cpu_s, 5),
        "runs": len(walls),
        "first_run_s": round(first_s, 5),
        "reference_part_s": round(reference_part_s, 5),
        "column_wise_s": round(max(engine_s - reference_part_s, 0.0), 5),
        "decisions_with_messages_s": round(materialise_s, 3),
        "rss_load_growth_mb": round(rss_inputs - rss_before, 1),
        "engine_rss_growth_mb": round(rss_engine - rss_inputs, 1),
        "rss_peak_mb": round(_rss_mb(), 1),
        "invoices": len(decisions),
        "documents_by_sequential_pass": result.sequential_documents,
        "decisions": dict(Counter(d.decision for d in decisions)),
        "decision_column_agrees": result.counts()
        == {k: kinds.get(k, 0) for k in ("approve", "hold", "reject")},
        "decisions_sha256": _digest(decisions),
        "reason_codes": dict(codes),
        "numpy_baseline_s": round(numpy_baseline(lines), 5),
        "us_per_invoice_line": round(engine_s / lines * 1e6, 3),
        "column_wise_us_per_invoice_line": round(max(engine_s - reference_part_s, 0.0) / lines * 1e6, 3),
    }


def reference_worker(lines: int) -> dict[str, Any]:
    """The reference engine (``match_invoices``) on domain models: the readable
    statement of every rule, and what ``match_tables`` must equal."""
    from bots.domain.matching import MatchingPolicy, match_invoices

    t0 = time.perf_counter()
    data = generate(lines)
    orders, receipts, invoices = to_models(data)
    del data
    build_s = time.perf_counter() - t0
    rss_inputs = _rss_mb()
    t0, c0 = time.perf_counter(), time.process_time()
    decisions = match_invoices(orders, receipts, invoices, MatchingPolicy())
    engine_s, engine_cpu_s = time.perf_counter() - t0, time.process_time() - c0
    codes = Counter(r.code for d in decisions for r in d.reasons)
    # What procbots match, the flow and the inbox bot run on the same models:
    # match_documents (tables of the models, match_tables, then every decision with its
    # messages). Its list must be the reference engine's.
    from bots.domain.match_tables import match_documents

    t0 = time.perf_counter()
    product = match_documents(orders, receipts, invoices, MatchingPolicy())
    product_s = time.perf_counter() - t0
    return {
        "build_models_s": round(build_s, 3),
        "product_path_s": round(product_s, 3),
        "product_path_identical": _digest(product) == _digest(decisions),
        "engine_s": round(engine_s, 3),
        "engine_cpu_s": round(engine_cpu_s, 3),
        "rss_after_inputs_mb": round(rss_inputs, 1),
        "rss_peak_mb": round(_rss_mb(), 1),
        "invoices": len(decisions),
        "decisions": dict(Counter(d.decision for d in decisions)),
        "reason_codes": dict(codes),
        "decisions_sha256": _digest(decisions),
        "us_per_invoice_line": round(engine_s / lines * 1e6, 2),
    }


def _digest(decisions: list[Any]) -> str:
    """SHA-256 of every decision's JSON shape, messages included, in order."""
    digest = hashlib.sha256()
    for decision in decisions:
        digest.update(json.dumps(decision.to_dict(), sort_keys=True).encode())
    return digest.hexdigest()


CORE_SQL = """
CREATE OR REPLACE TABLE decisions AS
WITH received AS (
    SELECT po, line, SUM(qty) AS received FROM receipt_lines GROUP BY po, line
), billed AS (
    SELECT il.*, ih.date, ih.vat,
           SUM(il.qty) OVER (PARTITION BY il.po, il.line ORDER BY ih.date, ih.vat, il.inv
                             ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS cum_qty
    FROM invoice_lines il JOIN invoices ih USING (inv)
), checked AS (
    SELECT b.inv, b.seq,
           ol.po IS NULL AS line_not_on_po,
           b.price - ol.price > LEAST(ol.price * 0.02, 5.00) AS price_over,
           b.cum_qty > ol.qty AS qty_over_ordered,
           ol.receipt AND COALESCE(r.received, 0) <= 0 AS not_received,
           ol.receipt AND COALESCE(r.received, 0) > 0 AND b.cum_qty > r.received AS qty_over_received
    FROM billed b
    LEFT JOIN order_lines ol ON ol.po = b.po AND ol.line = b.line
    LEFT JOIN received r ON r.po = b.po AND r.line = b.line
)
SELECT inv,
       COUNT_IF(price_over) AS price_over,
       COUNT_IF(qty_over_ordered) AS qty_over_ordered,
       COUNT_IF(qty_over_received) AS qty_over_received,
       COUNT_IF(not_received) AS not_received,
       COUNT_IF(line_not_on_po) AS line_not_on_po,
       CASE WHEN BOOL_OR(price_over OR qty_over_ordered OR qty_over_received OR not_received
                         OR line_not_on_po) THEN 'hold' ELSE 'approve' END AS decision
FROM checked GROUP BY inv
"""


def _write_csv(path: Path, columns: dict[str, list[Any]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(list(columns))
        writer.writerows(zip(*columns.values(), strict=True))


def duckdb_worker(lines: int, threads: int | None) -> dict[str, Any]:
    import duckdb

    data = generate(lines)
    # Invoice line sequence within the invoice, so each row is identifiable.
    seq: list[int] = []
    previous = None
    for inv in data["invoice_lines"]["inv"]:
        seq.append(seq[-1] + 1 if inv == previous and seq else 1)
        previous = inv
    data["invoice_lines"]["seq"] = seq
    with tempfile.TemporaryDirectory() as tmp:
        for name, columns in data.items():
            _write_csv(Path(tmp) / f"{name}.csv", columns)
        del data
        rss_before = _rss_mb()
        con = duckdb.connect()
        if threads:
            con.execute(f"SET threads = {threads}")
        used_threads = con.execute("SELECT current_setting('threads')").fetchone()[0]  # type: ignore[index]
        money = "DECIMAL(18,4)"
        schemas = {
            "order_lines": f"po VARCHAR, line INTEGER, vat VARCHAR, qty {money}, price {money}, "
            f"rate {money}, receipt BOOLEAN",
            "receipt_lines": f"grn VARCHAR, po VARCHAR, line INTEGER, qty {money}",
            "invoice_lines": f"inv VARCHAR, po VARCHAR, line INTEGER, qty {money}, price {money}, "
            f"rate {money}, seq INTEGER",
            "invoices": "inv VARCHAR, vat VARCHAR, date DATE, po VARCHAR",
        }
        t0 = time.perf_counter()
        for name, schema in schemas.items():
            con.execute(f"CREATE TABLE {name} ({schema})")
            con.execute(f"INSERT INTO {name} SELECT * FROM read_csv('{Path(tmp) / name}.csv', header=true)")
        load_s = time.perf_counter() - t0
        walls, cpus = [], []
        for _ in range(_repeats(lines)):
            t0, c0 = time.perf_counter(), time.process_time()
            con.execute(CORE_SQL)
            walls.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
        query_s, query_cpu_s = min(walls), min(cpus)
        row = con.execute(
            "SELECT SUM(price_over), SUM(qty_over_ordered), SUM(qty_over_received), SUM(not_received), "
            "SUM(line_not_on_po), COUNT_IF(decision = 'hold'), COUNT(*) FROM decisions"
        ).fetchone()
        assert row is not None
        con.close()
    return {
        "threads": int(used_threads),
        "load_s": round(load_s, 3),
        "query_s": round(query_s, 5),
        "first_query_s": round(walls[0], 5),
        "runs": len(walls),
        "query_cpu_s": round(query_cpu_s, 5),
        "rss_growth_mb": round(_rss_mb() - rss_before, 1),
        "reason_codes": dict(zip(CORE_CODES, map(int, row[:5]), strict=True)),
        "holds": int(row[5]),
        "invoices": int(row[6]),
    }


def _run_worker(*args: str) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_matching", "--worker", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    if result.returncode != 0:
        raise RuntimeError(f"worker {args} failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sizes", default="10000,100000,1000000", help="invoice-line counts, comma-separated"
    )
    parser.add_argument("--quick", action="store_true", help="10k and 100k only")
    parser.add_argument(
        "--no-reference",
        action="store_true",
        help="skip the reference engine on models (minutes at 1M lines)",
    )
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        kind, lines = args.worker[0], int(args.worker[1])
        if kind == "engine":
            out = engine_worker(lines)
        elif kind == "reference":
            out = reference_worker(lines)
        else:
            out = duckdb_worker(lines, int(args.worker[2]) if len(args.worker) > 2 else None)
        print(json.dumps(out))
        return out

    sizes = [10_000, 100_000] if args.quick else [int(s) for s in args.sizes.split(",")]
    runs: list[dict[str, Any]] = []
    for lines in sizes:
        engine = _run_worker("engine", str(lines))
        reference = None if args.no_reference else _run_worker("reference", str(lines))
        duck = _run_worker("duckdb", str(lines))
        duck1 = _run_worker("duckdb", str(lines), "1")
        core_engine = {code: engine["reason_codes"].get(code, 0) for code in CORE_CODES}
        run = {
            "invoice_lines": lines,
            "order_lines": lines,
            "engine": engine,
            "reference_engine": reference,
            "duckdb": duck,
            "duckdb_1_thread": duck1,
            "core_rule_counts_agree": core_engine == duck["reason_codes"] == duck1["reason_codes"],
            "decisions_identical_to_reference": (
                None if reference is None else engine["decisions_sha256"] == reference["decisions_sha256"]
            ),
            "ratio_engine_to_duckdb_query": round(engine["engine_s"] / duck["query_s"], 2),
            "ratio_engine_to_duckdb_query_1_thread": round(engine["engine_s"] / duck1["query_s"], 2),
            "ratio_engine_first_run_to_duckdb_first_query": round(
                engine["first_run_s"] / duck["first_query_s"], 2
            ),
            "ratio_cpu_engine_to_duckdb_query": round(engine["engine_cpu_s"] / duck["query_cpu_s"], 2),
            "ratio_engine_load_and_query_to_duckdb_load_and_query": round(
                (engine["load_s"] + engine["engine_s"]) / (duck["load_s"] + duck["query_s"]), 2
            ),
            "ratio_reference_engine_to_duckdb_query": (
                None if reference is None else round(reference["engine_s"] / duck["query_s"], 2)
            ),
        }
        runs.append(run)
        print(
            f"{lines:>9,} lines: engine {engine['engine_s']:.2f}s "
            f"(+{engine['engine_rss_growth_mb']:.0f} MB, load {engine['load_s']:.2f}s), "
            f"reference {reference['engine_s'] if reference else '-'}s "
            f"(procbots path {reference['product_path_s'] if reference else '-'}s), "
            f"duckdb query {duck['query_s']:.2f}s / 1 thread {duck1['query_s']:.2f}s "
            f"(load {duck['load_s']:.2f}s), ratio {run['ratio_engine_to_duckdb_query']}x, "
            f"counts agree: {run['core_rule_counts_agree']}, "
            f"identical to reference: {run['decisions_identical_to_reference']}",
            file=sys.stderr,
        )
    growth = [
        {
            "from": a["invoice_lines"],
            "to": b["invoice_lines"],
            "size_factor": round(b["invoice_lines"] / a["invoice_lines"], 1),
            "engine_time_factor": round(b["engine"]["engine_s"] / a["engine"]["engine_s"], 2),
            "engine_cpu_factor": round(b["engine"]["engine_cpu_s"] / a["engine"]["engine_cpu_s"], 2),
            "engine_column_wise_factor": round(
                b["engine"]["column_wise_s"] / a["engine"]["column_wise_s"], 2
            ),
            "numpy_baseline_factor": round(
                b["engine"]["numpy_baseline_s"] / a["engine"]["numpy_baseline_s"], 2
            ),
            "engine_column_wise_factor_over_numpy_baseline_factor": round(
                (b["engine"]["column_wise_s"] / a["engine"]["column_wise_s"])
                / (b["engine"]["numpy_baseline_s"] / a["engine"]["numpy_baseline_s"]),
                2,
            ),
            "engine_first_run_factor": round(b["engine"]["first_run_s"] / a["engine"]["first_run_s"], 2),
            "documents_by_reference_engine": [
                a["engine"]["documents_by_reference_engine"],
                b["engine"]["documents_by_reference_engine"],
            ],
            "duckdb_time_factor": round(b["duckdb"]["query_s"] / a["duckdb"]["query_s"], 2),
            "product_path_factor": (
                round(b["reference_engine"]["product_path_s"] / a["reference_engine"]["product_path_s"], 2)
                if a["reference_engine"] and b["reference_engine"]
                else None
            ),
            "reference_engine_time_factor": (
                round(b["reference_engine"]["engine_s"] / a["reference_engine"]["engine_s"], 2)
                if a["reference_engine"] and b["reference_engine"]
                else None
            ),
        }
        for a, b in itertools.pairwise(runs)
    ]
    result = {
        "benchmark": "invoice matching engine vs DuckDB SQL of the core rules",
        "machine": {
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        },
        "goal_ratio": 1.5,
        "runs": runs,
        "growth": growth,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
