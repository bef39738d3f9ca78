"""The purchase-order bot end to end: a requisition workbook in, POs in the sandbox portal, results out.

Real parts throughout: the sandbox portal in its own process, real Chromium driven
through the page objects, a SQLite ledger, the audit log, and the results workbook
read back with openpyxl. The truth about what the portal holds is ``/_sandbox/state``.

Acceptance (issue 6): 50 requisitions with 5 invalid ones give 45 POs with the right
lines and totals and 5 readable business exceptions; the same under chaos gives exactly
one PO per valid requisition and evidence for every system error; re-running creates
nothing; a run killed between the portal's "created" and the checkpoint does not raise
a second PO when run again.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import textwrap
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from bots.domain.models import POLine, PurchaseOrder
from bots.purchase_orders import (
    BOT,
    STATUS_BUSINESS,
    STATUS_EARLIER,
    STATUS_EXISTING,
    STATUS_RAISED,
    london_today,
    run_purchase_orders,
)
from sandbox.server import SandboxServer
from tests.plugins.sandbox import SANDBOX_PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SEED = 1
SEEDED_ORDERS = 20
FIRST_NEW_PO = f"PO-{SEEDED_ORDERS:06d}"  # state since this PO = what the bot raised
CHAOS = "error_rate=0.1,session_ttl_s=20,shuffle=1,latency_ms=100,seed=11"
HEADER = [
    "requisition_ref", "supplier_id", "supplier_vat", "cost_centre", "delivery_site", "need_by",
    "item_code", "description", "quantity", "unit_price", "vat_rate",
]  # fmt: skip

HEADER_FIELDS = ("supplier_id", "supplier_vat", "cost_centre", "delivery_site", "need_by")
# Five requisitions made invalid, each in its own way: ref -> (column, bad value, reason code).
INVALID = {
    "REQ-2026-000003": ("supplier_id", "SUP-99999", "UNKNOWN_SUPPLIER"),
    "REQ-2026-000011": ("supplier_vat", "GB123456789", "INVALID_VAT_NUMBER"),
    "REQ-2026-000019": ("item_code", "5012345678901", "INVALID_GTIN"),
    "REQ-2026-000027": ("quantity", 0, "INVALID_QUANTITY"),
    "REQ-2026-000035": ("need_by", "past", "NEED_BY_IN_PAST"),
}


def write_requisitions(
    path: Path, count: int, invalid: dict[str, tuple[str, Any, str]] | None = None, *, prefix: str = ""
) -> Path:
    """``count`` requisitions from the sandbox generator (seed 1), need-by 30 days ahead,
    with the ``invalid`` ones spoiled (order fields on every row, line fields on the first);
    refs start with ``prefix`` so tests sharing a portal do not see each other's orders."""
    from sandbox.seed import generate

    data = generate(SEED, SEEDED_ORDERS, new_requisitions=count)
    need_by = london_today() + dt.timedelta(days=30)
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Requisitions"
    ws.append(["Requisitions approved for ordering"])  # a title row above the header, as people do
    ws.append(HEADER)
    spoiled: set[str] = set()
    for line in data.new_requisitions:
        values: dict[str, Any] = {name: getattr(line, name) for name in HEADER}
        values["need_by"] = need_by
        values["requisition_ref"] = prefix + line.requisition_ref
        bad = (invalid or {}).get(line.requisition_ref)
        if bad and (line.requisition_ref not in spoiled or bad[0] in HEADER_FIELDS):
            column, value, _code = bad
            values[column] = need_by - dt.timedelta(days=40) if value == "past" else value
            spoiled.add(line.requisition_ref)
        ws.append([values[name] for name in HEADER])
    wb.save(path)
    return path


def expected_orders(path: Path) -> dict[str, PurchaseOrder | None]:
    """The purchase order each requisition of the file should become (by requisition ref)."""
    from bots.purchase_orders import read_requisitions, to_purchase_order

    orders = {}
    for requisition in read_requisitions(path).requisitions:
        try:
            orders[requisition.requisition_ref] = to_purchase_order(requisition)
        except ValueError:  # a spoiled requisition (quantity 0) is no order at all
            orders[requisition.requisition_ref] = None
    return orders


def portal_orders(server: SandboxServer, prefix: str) -> list[dict[str, Any]]:
    """The POs the bot raised for requisitions starting with ``prefix``, as the portal holds them."""
    orders: list[dict[str, Any]] = server.state(sections="purchase_orders", since_po=FIRST_NEW_PO)[
        "purchase_orders"
    ]
    return [o for o in orders if o["requisition_ref"].startswith(prefix)]


def as_order(state: dict[str, Any]) -> PurchaseOrder:
    return PurchaseOrder(
        po_number=state["po_number"],
        requisition_ref=state["requisition_ref"],
        supplier_id=state["supplier_id"],
        cost_centre=state["cost_centre"],
        delivery_site=state["delivery_site"],
        need_by=dt.date.fromisoformat(state["need_by"]),
        lines=[
            POLine(
                line_no=ln["line_no"],
                item_code=ln["item_code"],
                description=ln["description"],
                quantity=Decimal(ln["quantity"]),
                unit_price=Decimal(ln["unit_price"]),
                vat_rate=Decimal(ln["vat_rate"]),
            )
            for ln in state["lines"]
        ],
    )


def assert_portal_matches(
    server: SandboxServer, expected: dict[str, PurchaseOrder | None], prefix: str
) -> dict[str, str]:
    """Exactly one PO per valid requisition, with its lines and totals; returns ref -> PO number."""
    orders = portal_orders(server, prefix)
    per_ref = Counter(o["requisition_ref"] for o in orders)
    valid = {
        ref: order
        for ref, order in expected.items()
        if ref.removeprefix(prefix) not in INVALID and order is not None
    }
    assert per_ref == Counter(dict.fromkeys(valid, 1)), "not exactly one PO per valid requisition"
    for state in orders:
        meant = valid[state["requisition_ref"]]
        found = as_order(state)
        assert found.supplier_id == meant.supplier_id
        assert (found.cost_centre, found.delivery_site, found.need_by) == (
            meant.cost_centre,
            meant.delivery_site,
            meant.need_by,
        )
        assert [(ln.item_code, ln.quantity, ln.unit_price, ln.vat_rate) for ln in found.lines] == [
            (ln.item_code, ln.quantity, ln.unit_price, ln.vat_rate) for ln in meant.lines
        ]
        assert Decimal(state["net_total"]) == meant.net_total
        assert Decimal(state["vat_total"]) == meant.vat_total
        assert Decimal(state["gross_total"]) == meant.gross_total
    return {o["requisition_ref"]: o["po_number"] for o in orders}


def read_results(path: Path) -> list[dict[str, Any]]:
    """The "Requisitions" sheet of a results workbook as dicts by header."""
    wb = openpyxl.load_workbook(path)
    ws = wb["Requisitions"]
    rows = list(ws.iter_rows(values_only=True))
    header = rows[0]
    out = []
    for number, row in enumerate(rows[1:], start=2):
        record = dict(zip(header, row, strict=True))
        link_cell = ws.cell(number, header.index("PO in portal") + 1)
        record["_link"] = link_cell.hyperlink.target if link_cell.hyperlink else None
        out.append(record)
    return out


@pytest.fixture(scope="module")
def po_portal() -> Any:
    """One well-behaved portal shared by this module's tests (each uses its own requisition refs)."""
    with SandboxServer(seed=SEED, orders=SEEDED_ORDERS) as server:
        yield server


@pytest.fixture
def portal_env(settings_env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh data root with the sandbox password as the portal password; quick retries."""
    from config.settings import get_settings
    from connectors.audit import reset_default_audit_log

    monkeypatch.setenv("PROCBOTS_PORTAL__PASSWORD", SANDBOX_PASSWORD)
    monkeypatch.setenv("PROCBOTS_RETRY__INITIAL_S", "0.2")
    monkeypatch.setenv("PROCBOTS_RETRY__MAX_S", "2")
    get_settings.cache_clear()
    reset_default_audit_log()
    yield settings_env
    reset_default_audit_log()


def test_fifty_requisitions_raise_45_pos_and_report_5_business_exceptions(
    po_portal: SandboxServer, portal_env: Path, tmp_path: Path
) -> None:
    """The main job: 45 POs with the right lines and totals, 5 readable business exceptions,
    a results workbook that says so, and a second run that creates nothing."""
    server, prefix = po_portal, "A-"
    source = write_requisitions(tmp_path / "requisitions.xlsx", 50, INVALID, prefix=prefix)
    expected = expected_orders(source)
    assert len(expected) == 50

    run = run_purchase_orders(source, portal_url=server.url, contexts=2, peppol=True)

    assert run.counts == {STATUS_RAISED: 45, STATUS_BUSINESS: 5}, [
        (r.requisition_ref, r.reason) for r in run.results
    ]
    assert run.exit_code == 1
    po_numbers = assert_portal_matches(server, expected, prefix)
    by_ref = {r.requisition_ref: r for r in run.results}
    for base, (column, _value, code) in INVALID.items():
        result = by_ref[prefix + base]
        assert result.status == STATUS_BUSINESS
        assert result.reason_code == code
        assert result.reason is not None
        assert result.reason.startswith(f"Requisition {prefix}{base}: row ")
        assert f", {column}" in result.reason  # the field is named next to its row
    assert "supplier SUP-99999 is not known to the portal" in str(by_ref[f"{prefix}REQ-2026-000003"].reason)

    assert run.workbook is not None
    rows = read_results(run.workbook)
    assert len(rows) == 50
    for row in rows:
        ref = row["Requisition reference"]
        if ref.removeprefix(prefix) in INVALID:
            code = INVALID[ref.removeprefix(prefix)][2]
            assert (row["Status"], row["Reason code"], row["PO number"]) == (STATUS_BUSINESS, code, None)
        else:
            assert row["Status"] == STATUS_RAISED
            assert row["PO number"] == po_numbers[ref]
            assert row["_link"] == f"{server.url}/purchase-orders/{po_numbers[ref]}"
            assert Decimal(str(row["Gross total"])) == expected[ref].gross_total  # type: ignore[union-attr]
    assert sorted(p.stem for p in run.orders_xml) == sorted(po_numbers.values())

    from connectors.peppol import read_document

    order_xml = read_document(run.orders_xml[0])
    assert order_xml.document_type == "order"

    again = run_purchase_orders(source, portal_url=server.url, contexts=2)
    assert again.counts == {STATUS_EARLIER: 45, STATUS_BUSINESS: 5}
    assert {r.requisition_ref: r.po_number for r in again.results if r.po_number} == po_numbers
    assert len(portal_orders(server, prefix)) == 45


def test_a_fresh_ledger_finds_the_existing_pos_instead_of_raising_them_again(
    po_portal: SandboxServer, portal_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another machine (its own ledger) given the same requisitions: the portal search finds
    the POs, so the rerun reports their numbers and the portal holds no second copy."""
    from config.settings import get_settings

    server, prefix = po_portal, "B-"
    source = write_requisitions(tmp_path / "requisitions.xlsx", 4, prefix=prefix)
    first = run_purchase_orders(source, portal_url=server.url, contexts=2)
    assert first.counts == {STATUS_RAISED: 4}

    monkeypatch.setenv("PROCBOTS_PATHS__ROOT", str(tmp_path / "other-machine"))
    get_settings.cache_clear()
    second = run_purchase_orders(source, portal_url=server.url, contexts=2)
    assert second.counts == {STATUS_EXISTING: 4}
    assert [r.po_number for r in second.results] == [r.po_number for r in first.results]
    assert len(portal_orders(server, prefix)) == 4


def test_under_chaos_every_valid_requisition_gets_exactly_one_po_and_errors_keep_evidence(
    sandbox_factory: Any, portal_env: Path, tmp_path: Path
) -> None:
    """error_rate=0.1, 20 s sessions, shuffled forms, 100 ms latency: still one PO per valid
    requisition with the right lines, and every system error recorded with evidence files."""
    from bots.runtime.ledger import Ledger

    server = sandbox_factory(seed=SEED, orders=SEEDED_ORDERS, chaos=CHAOS)
    source = write_requisitions(tmp_path / "requisitions.xlsx", 50, INVALID)
    expected = expected_orders(source)

    run = run_purchase_orders(source, portal_url=server.url, contexts=4)

    counts = run.counts
    assert counts[STATUS_BUSINESS] == 5, [(r.requisition_ref, r.reason) for r in run.exceptions]
    assert counts.get(STATUS_RAISED, 0) + counts.get(STATUS_EXISTING, 0) == 45, counts
    assert_portal_matches(server, expected, "")

    ledger = Ledger.from_settings()
    system_errors = 0
    for item in ledger.list(bot=BOT):
        errors = [t for t in ledger.history(item.id) if t.event == "system_exception"]
        system_errors += len(errors)
        if errors:
            assert item.evidence, f"{item.idempotency_key}: {len(errors)} system errors, no evidence"
            assert len({Path(e.path).parent for e in item.evidence}) >= len(errors)
            for evidence in item.evidence:
                assert Path(evidence.path).is_file()
    print(f"chaos run: {counts}, {run.retries} runner retries, {system_errors} system errors with evidence")


CRASHING_RUN = textwrap.dedent(
    """
    import os, signal, sys
    from connectors.portal.pages.new_po import NewPurchaseOrderPage
    from bots.purchase_orders import run_purchase_orders

    original = NewPurchaseOrderPage.create

    async def create_then_die(self, order):
        po_number = await original(self, order)
        # The portal holds the PO now; the process dies before the bot can checkpoint it.
        print("created", po_number, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)

    NewPurchaseOrderPage.create = create_then_die
    run_purchase_orders(sys.argv[1], portal_url=sys.argv[2], contexts=1)
    """
)


def test_a_run_killed_after_the_portal_created_the_po_does_not_raise_it_twice(
    po_portal: SandboxServer, portal_env: Path, tmp_path: Path
) -> None:
    """SIGKILL between the portal's confirmation and the checkpoint; the rerun takes the
    item back when its lease expires, finds the PO by requisition reference, and records it."""
    from bots.runtime.ledger import Ledger

    server, prefix = po_portal, "C-"
    source = write_requisitions(tmp_path / "requisitions.xlsx", 2, prefix=prefix)
    script = tmp_path / "crashing_run.py"
    script.write_text(CRASHING_RUN)
    env = {
        **os.environ,
        "PROCBOTS_LEDGER__LEASE_S": "2",
        "PROCBOTS_LEDGER__HEARTBEAT_S": "0.5",
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
    }
    crashed = subprocess.run(
        [sys.executable, str(script), str(source), server.url],
        env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert crashed.returncode == -9, crashed.stderr[-2000:]
    created = crashed.stdout.split()[1]
    (orphan,) = portal_orders(server, prefix)
    assert orphan["po_number"] == created
    ref = orphan["requisition_ref"]

    ledger = Ledger.from_settings()
    item = ledger.find(BOT, ref)
    assert item is not None
    assert str(item.state) == "in_progress"
    assert "po_created" not in item.checkpoints  # the crash came before the checkpoint
    deadline = time.monotonic() + 30
    while ledger.get(item.id).lease_expires_at > dt.datetime.now(dt.UTC):  # type: ignore[operator]
        assert time.monotonic() < deadline, "the crashed run's lease never expired"
        time.sleep(0.1)

    rerun = run_purchase_orders(source, portal_url=server.url, contexts=1)
    by_ref = {r.requisition_ref: r for r in rerun.results}
    assert by_ref[ref].status == STATUS_EXISTING
    assert by_ref[ref].po_number == created
    orders = portal_orders(server, prefix)
    assert Counter(o["requisition_ref"] for o in orders) == Counter(dict.fromkeys(by_ref, 1))
    assert ledger.get(item.id).checkpoints["po_created"] == created


def test_cli_exit_codes_dry_run_and_bad_input(
    po_portal: SandboxServer, portal_env: Path, tmp_path: Path
) -> None:
    """``procbots run purchase-orders``: 2 for a missing file (no traceback), 0 for a dry run
    that creates nothing, 1 when a requisition is a business exception."""
    from typer.testing import CliRunner

    from flows.cli import app

    server, prefix = po_portal, "D-"
    cli = CliRunner()
    missing = cli.invoke(app, ["run", "purchase-orders", "--input", str(tmp_path / "nope.xlsx")])
    assert missing.exit_code == 2
    assert "nope.xlsx: no such file" in missing.output
    assert "Traceback" not in missing.output

    zero_quantity = {"REQ-2026-000002": INVALID["REQ-2026-000027"]}
    source = write_requisitions(tmp_path / "requisitions.xlsx", 2, zero_quantity, prefix=prefix)
    dry = cli.invoke(
        app, ["run", "purchase-orders", "--input", str(source), "--portal", server.url, "--dry-run"]
    )
    assert dry.exit_code == 1, dry.output
    assert "Purchase orders (dry run): 1 would raise (dry run), 1 business exception" in dry.output
    assert portal_orders(server, prefix) == []

    real = cli.invoke(
        app, ["run", "purchase-orders", "--input", str(source), "--portal", server.url, "--json"]
    )
    assert real.exit_code == 1, real.output
    import json

    payload = json.loads(real.output[real.output.index('{\n  "run_id"') :])  # after the log lines
    assert payload["counts"] == {STATUS_RAISED: 1, STATUS_BUSINESS: 1}
    assert "quantity must be more than 0" in payload["results"][1]["reason"]
    assert len(portal_orders(server, prefix)) == 1


@pytest.mark.prefect
def test_flow_completes_with_a_results_table_artifact_and_bot_logs(
    prefect_api: None, po_portal: SandboxServer, portal_env: Path, tmp_path: Path
) -> None:
    """The ``purchase-orders`` flow through the Prefect API: Completed (business exceptions
    do not fail it), a table artifact with a row per requisition, the bot's lines in the logs."""
    import json

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        LogFilter,
        LogFilterFlowRunId,
    )

    from bots.bot_parameters import PurchaseOrdersParameters
    from flows.bot_flows import purchase_orders_flow
    from tests.plugins.prefect_server import wait_for

    server, prefix = po_portal, "E-"
    bad_gtin = {"REQ-2026-000003": INVALID["REQ-2026-000019"]}
    source = write_requisitions(tmp_path / "requisitions.xlsx", 3, bad_gtin, prefix=prefix)
    params = PurchaseOrdersParameters(input=str(source), portal_url=server.url, contexts=1)
    state = purchase_orders_flow(params, return_state=True)
    assert state.is_completed(), state.message
    assert "2 raised, 1 business_exception" in str(state.message)

    flow_run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
        by_key = {a.key: a for a in artifacts}
        table = json.loads(str(by_key["purchase-orders-items"].data))
        assert [(row["requisition_ref"], row["status"]) for row in table] == [
            (f"{prefix}REQ-2026-000001", STATUS_RAISED),
            (f"{prefix}REQ-2026-000002", STATUS_RAISED),
            (f"{prefix}REQ-2026-000003", STATUS_BUSINESS),
        ]
        assert table[0]["po_number"].startswith("PO-")
        assert table[2]["reason_code"] == "INVALID_GTIN"
        assert "| raised | 2 |" in str(by_key["purchase-orders-summary"].data)

        def created_lines() -> list[str] | None:
            found, offset = [], 0
            while True:
                logs = client.read_logs(
                    LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])), limit=200, offset=offset
                )
                found += [log.message for log in logs if log.message.startswith("po created: ")]
                if len(logs) < 200:
                    return found if len(found) == 2 else None
                offset += 200

        wait_for(created_lines, timeout_s=20, what="the bot's 'po created' lines in the run logs")


@pytest.mark.prefect
def test_flow_quarantines_an_unreadable_file_from_the_drop_folder(
    prefect_api: None, portal_env: Path
) -> None:
    """Without an input file the flow takes the drop folder's files; one that is not a
    requisition spreadsheet goes to quarantine/ with its reason, and the run completes."""
    from bots.bot_parameters import PurchaseOrdersParameters
    from connectors.dropfolder import DropFolder
    from flows.bot_flows import purchase_orders_flow

    folder = DropFolder(portal_env / "requisitions", stable_for_s=0)
    folder.deposit(b"requisition_ref;this is not a workbook", "requisitions.xlsx")
    state = purchase_orders_flow(PurchaseOrdersParameters(), return_state=True)
    assert state.is_completed(), state.message
    quarantined = sorted(p.name for p in (portal_env / "requisitions" / "quarantine").iterdir())
    assert quarantined == ["requisitions.xlsx", "requisitions.xlsx.reason.json"]
    reason = (portal_env / "requisitions" / "quarantine" / "requisitions.xlsx.reason.json").read_text()
    assert "UNREADABLE_REQUISITIONS" in reason
    assert not list((portal_env / "requisitions" / "inbox").iterdir())
