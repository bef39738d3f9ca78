"""Screenshots of the main sandbox pages for docs/sandbox.md, taken from the real app.

Run: ``uv run python -m sandbox.screenshots [--out docs/img]``
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sandbox.server import SandboxServer

PAGES = (
    ("login", "/login", None),
    ("dashboard", "/", None),
    ("po-list", "/purchase-orders", None),
    ("po-new", "/purchase-orders/new", "form"),
    ("po-detail", "/purchase-orders/PO-000003", None),
    ("invoices", "/invoices?status=received", None),
    ("invoice-detail", "/invoices/3", None),
    ("contract-upload", "/contracts/new", None),
    ("receipts", "/receipts", None),
    ("receipt-new", "/receipts/new?po_number=PO-000001", "receipt"),
    ("receipt-refused", "/receipts/new?po_number=PO-000001", "receipt-refused"),
)


def take(out: Path) -> list[Path]:
    """Start a portal, sign in and save one PNG per main page into ``out``."""
    from playwright.sync_api import sync_playwright

    from connectors.portal.browser import launch_chromium

    out.mkdir(parents=True, exist_ok=True)
    written = []
    with SandboxServer(seed=1, orders=200) as portal, sync_playwright() as pw:
        browser = launch_chromium(pw)
        page = browser.new_page(viewport={"width": 1100, "height": 720})
        for name, path, action in PAGES:
            if name == "dashboard":
                page.get_by_label("Username").fill("buyer1")
                page.get_by_label("Password").fill("Sandbox-Buyer-2026!")
                page.get_by_role("button", name="Sign in").click()
                page.get_by_role("heading", name="Dashboard").wait_for()
            else:
                page.goto(portal.url + path)
            if action == "form":
                page.get_by_label("Supplier", exact=True).press_sequentially("Barnes")
                page.get_by_role("option").first.wait_for()
                page.get_by_role("option").first.click()
                page.get_by_label("Cost centre").fill("CC4107")
                page.get_by_label("Delivery site (ODS code)").fill("RX1AB")
                page.get_by_label("Need-by date").fill("2026-12-15")
                page.get_by_label("Requisition reference").fill("REQ-2026-000001")
                page.get_by_label("Line 1 item code").fill("5012345678900")
                page.get_by_label("Line 1 description").fill("Nitrile examination gloves, medium, box of 100")
                page.get_by_label("Line 1 quantity").fill("10")
                page.get_by_label("Line 1 unit price").fill("4.50")
                page.get_by_role("button", name="Add line").click()
            if action in ("receipt", "receipt-refused"):
                page.get_by_label("GRN number").fill("GRN-2026-0001")
                page.get_by_label("Received date").fill("2026-12-01")
                page.get_by_label("Line 1 PO line").fill("1")
                page.get_by_label("Line 1 quantity received").fill("36" if action == "receipt" else "40")
                if action == "receipt":
                    page.get_by_role("button", name="Add line").click()
                    page.get_by_label("Line 2 PO line").fill("3")
                    page.get_by_label("Line 2 quantity received").fill("54")
                else:
                    page.get_by_role("button", name="Record goods receipt").click()
                    page.get_by_role("alert").wait_for()
            target = out / f"sandbox-{name}.png"
            page.evaluate("window.scrollTo(0, 0)")
            page.screenshot(path=str(target), full_page=action is not None)
            written.append(target)
        browser.close()
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "img")
    args = parser.parse_args(argv)
    for path in take(args.out):
        print(f"{path} ({path.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
