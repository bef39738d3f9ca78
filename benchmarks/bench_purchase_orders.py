"""The purchase-order bot's cost per PO, side by side with a bare Playwright script.

Writes ``benchmarks/results/purchase_orders.json``. Everything runs in one go against one
sandbox portal (seed 1), on fresh requisition references per measurement:

* ``bare_script``: a hand-written async Playwright script that signs in and fills the
  New purchase order form for each requisition (label locators, one context, no trace,
  no ledger, no search before keying, no check after). The floor.
* ``bot_1_context``: ``run_purchase_orders`` with one context: reading the file, the
  ledger, audit, traced context, search before keying, the form, the checkpoint and the
  detail-page check. ``overhead_ratio`` = bot seconds per PO / bare seconds per PO.
* ``throughput``: the bot with 1, 2 and 4 contexts (POs per minute).
* ``rpa_challenge``: 10 forms with shuffled fields and ids (``shuffle=1``), 10 fields
  each (5 order fields, 5 line fields), keyed through the page objects, timed from the
  first fill to the last submit.

Both sides include browser start and sign-in. The machine is shared, so figures move
between runs; the ratio, measured in the same run, is the number to watch.

Run: ``uv run python -m benchmarks.bench_purchase_orders [--orders 12]``
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
PASSWORD = "Sandbox-Buyer-2026!"  # the sandbox's documented credential


def _requisitions(count: int, prefix: str, folder: Path) -> Path:
    """A requisition workbook of ``count`` generated requisitions with refs ``<prefix>REQ-...``."""
    from openpyxl import Workbook

    from bots.purchase_orders import REQUISITION_ALIASES, london_today
    from sandbox.seed import generate

    columns = list(REQUISITION_ALIASES)
    data = generate(1, 20, new_requisitions=count)
    wb = Workbook()
    ws = wb.active
    ws.append(columns)
    need_by = london_today() + dt.timedelta(days=30)
    for line in data.new_requisitions:
        values = {name: getattr(line, name) for name in columns}
        values.update(requisition_ref=prefix + line.requisition_ref, need_by=need_by)
        ws.append([values[name] for name in columns])
    path = folder / f"{prefix}requisitions.xlsx"
    wb.save(path)
    return path


async def _bare_script(url: str, source: Path) -> tuple[float, int]:
    """The floor: sign in and key every order with plain Playwright calls."""
    from playwright.async_api import async_playwright

    from bots.purchase_orders import read_requisitions, to_purchase_order
    from connectors.portal.browser import launch_chromium_async

    orders = [to_purchase_order(r) for r in read_requisitions(source).requisitions]
    started = time.perf_counter()
    async with async_playwright() as pw:
        browser = await launch_chromium_async(pw)
        page = await browser.new_page()
        await page.goto(f"{url}/login")
        await page.get_by_label("Username", exact=True).fill("buyer1")
        await page.get_by_label("Password", exact=True).fill(PASSWORD)
        await page.get_by_role("button", name="Sign in").click()
        await page.get_by_role("navigation", name="Main").wait_for()
        for order in orders:
            await page.goto(f"{url}/purchase-orders/new")
            supplier = page.get_by_label("Supplier", exact=True)
            await supplier.fill(order.supplier_id)
            await page.get_by_role("option", name=f"({order.supplier_id})").click()
            await page.get_by_label("Cost centre", exact=True).fill(order.cost_centre)
            await page.get_by_label("Delivery site (ODS code)", exact=True).fill(order.delivery_site)
            assert order.need_by is not None
            assert order.requisition_ref is not None
            await page.get_by_label("Need-by date", exact=True).fill(order.need_by.isoformat())
            await page.get_by_label("Requisition reference", exact=True).fill(order.requisition_ref)
            for n, line in enumerate(order.lines, start=1):
                if n > 1:
                    await page.get_by_role("button", name="Add line", exact=True).click()
                await page.get_by_label(f"Line {n} item code", exact=True).fill(line.item_code)
                await page.get_by_label(f"Line {n} description", exact=True).fill(line.description)
                await page.get_by_label(f"Line {n} quantity", exact=True).fill(format(line.quantity, "f"))
                await page.get_by_label(f"Line {n} unit price", exact=True).fill(format(line.unit_price, "f"))
                await page.get_by_label(f"Line {n} VAT rate", exact=True).select_option(
                    format(line.vat_rate.normalize(), "f")
                )
            await page.get_by_role("button", name="Create purchase order").click()
            await page.get_by_role("heading", name="Purchase order created").wait_for()
        await browser.close()
    return time.perf_counter() - started, len(orders)


def _bot(url: str, source: Path, contexts: int) -> tuple[float, int]:
    from bots.purchase_orders import STATUS_RAISED, run_purchase_orders

    started = time.perf_counter()
    run = run_purchase_orders(source, portal_url=url, contexts=contexts)
    elapsed = time.perf_counter() - started
    raised = run.counts.get(STATUS_RAISED, 0)
    if raised != len(run.results):
        raise RuntimeError(f"the bot did not raise every requisition: {run.counts}")
    return elapsed, raised


async def _rpa_challenge(url: str, source: Path) -> tuple[float, int]:
    """10 single-line orders on the shuffled form through the page objects: first fill to last submit."""
    from playwright.async_api import async_playwright
    from pydantic import SecretStr

    from bots.purchase_orders import read_requisitions, to_purchase_order
    from connectors.portal.browser import launch_chromium_async
    from connectors.portal.pages.base import PortalCredentials, PortalSession
    from connectors.portal.pages.login import LoginPage
    from connectors.portal.pages.new_po import NewPurchaseOrderPage

    orders = [to_purchase_order(r) for r in read_requisitions(source).requisitions]
    forms = [o.model_copy(update={"lines": o.lines[:1]}) for o in orders][:10]
    async with async_playwright() as pw:
        browser = await launch_chromium_async(pw)
        page = await browser.new_page()
        session = PortalSession(page, url, PortalCredentials("buyer1", SecretStr(PASSWORD)))
        await LoginPage(session).sign_in()
        started = time.perf_counter()
        for order in forms:
            await NewPurchaseOrderPage(session).create(order)
        elapsed = time.perf_counter() - started
        await browser.close()
    return elapsed, len(forms)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=12, help="requisitions per measurement")
    args = parser.parse_args(argv)
    from sandbox.server import SandboxServer

    with tempfile.TemporaryDirectory(prefix="procbots-bench-po-") as tmp:
        folder = Path(tmp)
        os.environ["PROCBOTS_PATHS__ROOT"] = str(folder / "var")
        os.environ["PROCBOTS_PORTAL__PASSWORD"] = PASSWORD
        from config.settings import get_settings

        get_settings.cache_clear()
        runs: dict[str, Any] = {}
        with SandboxServer(seed=1, orders=20) as portal:
            bare_s, bare_n = asyncio.run(
                _bare_script(portal.url, _requisitions(args.orders, "BARE-", folder))
            )
            bot_s, bot_n = _bot(portal.url, _requisitions(args.orders, "BOT1-", folder), 1)
            runs["bare_script"] = {
                "orders": bare_n,
                "seconds": round(bare_s, 2),
                "s_per_po": round(bare_s / bare_n, 3),
            }
            runs["bot_1_context"] = {
                "orders": bot_n,
                "seconds": round(bot_s, 2),
                "s_per_po": round(bot_s / bot_n, 3),
            }
            runs["overhead_ratio"] = round((bot_s / bot_n) / (bare_s / bare_n), 2)
            throughput = []
            for contexts in (1, 2, 4):
                elapsed, raised = _bot(
                    portal.url, _requisitions(args.orders, f"T{contexts}-", folder), contexts
                )
                throughput.append(
                    {"contexts": contexts, "orders": raised, "seconds": round(elapsed, 2),
                     "po_per_min": round(raised / elapsed * 60, 1)}
                )  # fmt: skip
            runs["throughput"] = throughput
        with SandboxServer(seed=1, orders=20, chaos="shuffle=1") as shuffled:
            rpa_s, forms = asyncio.run(_rpa_challenge(shuffled.url, _requisitions(10, "RPA-", folder)))
            runs["rpa_challenge"] = {"forms": forms, "fields_per_form": 10, "seconds": round(rpa_s, 2)}
    result = {
        "benchmark": "purchase orders",
        "goal": "overhead_ratio <= 1.3",
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "platform": platform.platform(), "load_avg_1m": round(os.getloadavg()[0], 1)},
        **runs,
    }  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "purchase_orders.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
