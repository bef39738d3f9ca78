"""The invoice inbox bot against the real sandbox portal (real Chromium, real SQLite ledger).

The engine's decisions are computed independently, from the input files the sandbox
generator writes for the same seed, and compared with what ``/_sandbox/state`` says
really happened in the portal: every open document decided once, as the engine says.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from bots.domain.matching import Decision, Reason, normalise_vat
from bots.domain.models import Invoice
from bots.invoices import (
    BOT,
    DECIDED,
    FOUND_DECIDED,
    STATUS_OF,
    InboxRunResult,
    InboxSnapshot,
    InvoiceInboxBot,
    hold_note,
    idempotency_key,
    plan_tasks,
    run_inbox,
)
from bots.runtime.bot import RunContext
from bots.runtime.ids import new_run_id
from bots.runtime.ledger import ItemState, Ledger
from connectors.portal.pages.base import PortalCredentials, PortalSession
from connectors.portal.pages.invoices import InvoiceDetailPage
from sandbox.server import SandboxServer
from tests.oracle.matching import match_invoices
from tests.plugins.sandbox import SANDBOX_PASSWORD

SEED = 1
ORDERS = 12


# --- pure planning ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("vat", "number", "doc_type", "expected"),
    [
        pytest.param("GB980780684", "INV-00012", "invoice", "GB980780684/INV12", id="plain"),
        pytest.param("gb 980 7806 84", "inv 12", "invoice", "GB980780684/INV12", id="spaces-and-case"),
        pytest.param("GB980780684", "CN-7", "credit_note", "GB980780684/CN7/credit_note", id="credit-note"),
        pytest.param(None, "INV-1", "invoice", "NO-VAT/INV1", id="no-vat-number"),
    ],
)
def test_idempotency_key_is_normalised_supplier_vat_and_number(
    vat: str | None, number: str, doc_type: str, expected: str
) -> None:
    """The key survives the spellings a supplier uses for the same VAT number and invoice number."""
    assert idempotency_key(vat, number, doc_type) == expected


def _summary(portal_id: int, number: str = "INV-1", status: str = "received") -> Any:
    from connectors.portal.pages.invoices import InvoiceSummary

    return InvoiceSummary(
        portal_id, number, "invoice", "Acme", "PO-000001", "2026-05-01", Decimal("12"), status
    )


def _decision(number: str, kind: str, *reasons: Reason) -> Decision:
    return Decision(number, "GB980780684", "invoice", kind, reasons, po_number="PO-000001")  # type: ignore[arg-type]


def test_plan_tasks_keys_an_exact_duplicate_apart_and_carries_reason_and_note() -> None:
    """Two inbox entries of one supplier invoice both get a task; the later one's key names its portal id."""
    duplicate = Reason("DUPLICATE_INVOICE", None, "Same number as portal invoice 3")
    over = Reason("PRICE_OVER_TOLERANCE", 1, "£5.40 a unit against £4.50")
    planned = plan_tasks(
        [_summary(7, "INV-1"), _summary(3, "INV-1"), _summary(9, "INV-2")],
        {
            3: _decision("INV-1", "approve"),
            7: _decision("INV-1", "reject", duplicate),
            9: _decision("INV-2", "hold", over),
        },
    )
    assert [(key, task.portal_id, task.decision) for key, task in planned] == [
        ("GB980780684/INV1", 3, "approve"),
        ("GB980780684/INV1#7", 7, "reject"),
        ("GB980780684/INV2", 9, "hold"),
    ]
    assert planned[0][1].reason_code is None
    assert planned[0][1].note == ""
    assert planned[1][1].reason_code == "DUPLICATE_INVOICE"
    assert planned[2][1].reason_code == "PRICE_OVER_TOLERANCE"
    assert planned[2][1].note == "PRICE_OVER_TOLERANCE (line 1): £5.40 a unit against £4.50"


def test_plan_tasks_keeps_a_copys_key_when_the_original_was_decided_in_an_earlier_run() -> None:
    """Only open documents become tasks, but keys are given over the whole inbox: the copy
    still open keeps ``#<portal id>`` and never collides with the decided original's item."""
    duplicate = Reason("DUPLICATE_INVOICE", None, "Same number as portal invoice 3")
    planned = plan_tasks(
        [
            _summary(3, "INV-1", status="approved"),
            _summary(7, "INV-1"),
            _summary(8, "INV-3", status="on_hold"),
        ],
        {
            3: _decision("INV-1", "approve"),
            7: _decision("INV-1", "reject", duplicate),
            8: _decision("INV-3", "hold"),
        },
    )
    assert [(key, task.portal_id) for key, task in planned] == [("GB980780684/INV1#7", 7)]


def test_plan_tasks_releases_a_document_held_for_a_receipt_once_matching_approves_it() -> None:
    """A document the bot held NOT_RECEIVED gets a release item when its goods have been
    receipted since; one held for another reason, or that matching still holds, does not."""
    summaries = [
        _summary(4, "INV-4", status="on_hold"),
        _summary(5, "INV-5", status="on_hold"),
        _summary(6, "INV-6", status="on_hold"),
    ]
    decisions = {
        4: _decision("INV-4", "approve"),
        5: _decision("INV-5", "approve"),
        6: _decision("INV-6", "hold", Reason("NOT_RECEIVED", 1, "Line 1: nothing received yet")),
    }
    held = {"GB980780684/INV4", "GB980780684/INV6"}  # INV-5 was held by a clerk, not for a receipt
    planned = plan_tasks(summaries, decisions, held)
    assert [(key, task.portal_id, task.decision, task.release) for key, task in planned] == [
        ("GB980780684/INV4/released", 4, "approve", True)
    ]
    assert plan_tasks(summaries, decisions) == []


def test_plan_files_open_documents_in_order_and_a_rerun_returns_the_same_items(
    settings_env: Path, tmp_path: Path
) -> None:
    """Matched open documents come by portal id, then the unreadable open ones; planning the
    same inbox again files nothing new and returns the items already in the ledger."""
    from config.settings import get_settings

    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}", audit=False)
    bot = InvoiceInboxBot(RunContext(get_settings(), ledger, new_run_id(), "http://127.0.0.1:9"))
    unreadable = _summary(5, "INV-5")
    snapshot = InboxSnapshot(
        tmp_path,
        documents=[(_summary(9, "INV-2"), None), (_summary(3, "INV-1"), None), (_summary(7, "INV-1"), None)],  # type: ignore[list-item]
        orders=[],
        receipts=[],
        unreadable={5: "INV-5.xml: not well-formed"},
        unreadable_open=[unreadable],
    )
    decisions = {
        3: _decision("INV-1", "approve"),
        7: _decision("INV-1", "reject", Reason("DUPLICATE_INVOICE", None, "Same number as portal invoice 3")),
        9: _decision("INV-2", "approve"),
    }
    try:
        first = bot.plan(snapshot, decisions)
        assert [(i.idempotency_key, i.payload["portal_id"]) for i in first] == [
            ("GB980780684/INV1", 3),
            ("GB980780684/INV1#7", 7),
            ("GB980780684/INV2", 9),
            ("portal-document/5", 5),
        ]
        assert first[3].payload["problem"] == "INV-5.xml: not well-formed"
        assert {i.state for i in first} == {ItemState.PENDING}
        ledger.complete(ledger.claim(BOT, "w1") or pytest.fail("nothing to claim"))

        again = bot.plan(snapshot, decisions)
        assert [i.id for i in again] == [i.id for i in first]
        assert again[0].state == ItemState.DONE  # the existing item, not a fresh one
        assert len(ledger.list(bot=BOT)) == 4
    finally:
        ledger.close()


def test_hold_note_names_every_reason_and_stays_within_the_limit() -> None:
    """A clerk reads every reason with its line; a long list is cut with an ellipsis, never overflows."""
    reasons = tuple(Reason("NOT_RECEIVED", n, f"Line {n}: nothing received yet") for n in range(1, 60))
    note = hold_note(_decision("INV-9", "hold", *reasons), limit=200)
    assert note.startswith("NOT_RECEIVED (line 1): Line 1: nothing received yet; NOT_RECEIVED (line 2)")
    assert len(note) == 200
    assert note.endswith("...")


# --- against the sandbox portal -------------------------------------------------------------------


@pytest.fixture
def bot_env(settings_env: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Settings for a bot run: the sandbox password, quick retries; returns the data root."""
    from config.settings import get_settings

    monkeypatch.setenv("PROCBOTS_PORTAL__PASSWORD", SANDBOX_PASSWORD)
    monkeypatch.setenv("PROCBOTS_RETRY__MAX_ATTEMPTS", "8")
    monkeypatch.setenv("PROCBOTS_RETRY__INITIAL_S", "0.05")
    monkeypatch.setenv("PROCBOTS_RETRY__MAX_S", "0.5")
    monkeypatch.setenv("PROCBOTS_RETRY__JITTER_S", "0.05")
    get_settings.cache_clear()
    yield settings_env
    get_settings.cache_clear()


def _engine_statuses(folder: Path) -> Counter[tuple[str, str, str, str]]:
    """The portal status each document should end in, by the engine on the generator's own files."""
    from connectors.formats import load_orders, load_receipts
    from connectors.peppol import read_document
    from sandbox.datafiles import write_input_files

    write_input_files(folder, seed=SEED, orders=ORDERS)
    orders, order_errors = load_orders(folder / "orders.csv")
    receipts, receipt_errors = load_receipts(folder / "receipts.csv")
    assert not order_errors
    assert not receipt_errors
    documents = [read_document(p).model for p in sorted((folder / "invoices").glob("*.xml"))]
    assert all(isinstance(d, Invoice) for d in documents)
    decisions = match_invoices(orders, receipts, documents)  # type: ignore[arg-type]
    return Counter(
        (normalise_vat(d.supplier_vat), d.invoice_number, d.document_type, STATUS_OF[d.decision])
        for d in decisions
    )


def _key(invoice: dict[str, Any]) -> tuple[str, str, str]:
    return (normalise_vat(invoice["supplier_vat"]), invoice["invoice_number"], invoice["document_type"])


def _portal_statuses(invoices: list[dict[str, Any]]) -> Counter[tuple[str, str, str, str]]:
    return Counter((*_key(i), i["status"]) for i in invoices)


def _decision_entries(invoice: dict[str, Any]) -> list[dict[str, Any]]:
    return [h for h in invoice["history"] if h["status"] != "received"]


class _ClerkActsMeanwhile(InvoiceInboxBot):
    """The bot, with a clerk holding one invoice by hand after the bot read the inbox and
    before it acts: the bot must find it decided and record that, not decide it again."""

    target: int = 0

    async def collect(self, session: PortalSession) -> InboxSnapshot:
        snapshot = await super().collect(session)
        detail = await InvoiceDetailPage(session).open(self.target)
        before = await detail.read()
        assert before.status == "received"
        assert not before.decided
        # A code the portal does not offer goes in as OTHER, the code kept in the note.
        assert await detail.hold("SUPPLIER_PHONED", "Held by hand: supplier phoned") == "on_hold"
        history = await detail.history()
        assert [(h.status, h.reason_code, h.by) for h in history] == [
            ("received", "", history[0].by),
            ("on_hold", "OTHER", "buyer1"),
        ]
        return snapshot


def _run_with_clerk(portal: SandboxServer, target: int) -> InboxRunResult:
    _ClerkActsMeanwhile.target = target
    return run_inbox(
        portal.url,
        workers=2,
        credentials=PortalCredentials("buyer1", SecretStr(SANDBOX_PASSWORD)),
        bot_type=_ClerkActsMeanwhile,
    )


def _check_run(
    portal: SandboxServer, tmp_path: Path, hand_held: frozenset[int] = frozenset()
) -> list[dict[str, Any]]:
    """Statuses equal the engine's decisions, one decision entry each, reasons as the engine said."""
    invoices: list[dict[str, Any]] = portal.state(sections="invoices")["invoices"]
    expected = _engine_statuses(tmp_path / "data")
    found = _portal_statuses([i for i in invoices if i["id"] not in hand_held])
    for invoice in invoices:
        if invoice["id"] in hand_held:  # the clerk's decision stands, whatever the engine says
            same = [k for k in expected if k[:3] == _key(invoice)]
            assert len(same) == 1
            assert expected[same[0]] == 1
            expected -= Counter({same[0]: 1})
    assert found == expected
    for invoice in invoices:
        entries = _decision_entries(invoice)
        assert len(entries) == 1, (
            f"invoice {invoice['invoice_number']} decided {len(entries)} times: {entries}"
        )
        entry = entries[0]
        if invoice["id"] in hand_held:
            assert entry["reason_code"] == "OTHER"
            assert entry["note"] == "SUPPLIER_PHONED: Held by hand: supplier phoned"
        elif entry["status"] == "on_hold":
            assert entry["reason_code"]
            assert entry["reason_code"] in entry["note"]
        elif entry["status"] == "rejected":
            assert entry["reason_code"] == "DUPLICATE_INVOICE"
    ledger = Ledger.from_settings()
    try:
        items = ledger.list(bot=BOT)
        assert len(items) == len(invoices)
        assert {i.state for i in items} == {ItemState.DONE}
        assert all(i.checkpoints.get(DECIDED) for i in items)
    finally:
        ledger.close()
    return invoices


@pytest.mark.browser
@pytest.mark.slow
def test_inbox_bot_decides_every_open_invoice_once_as_the_engine_says(
    sandbox_factory: Callable[..., SandboxServer], bot_env: Path, tmp_path: Path
) -> None:
    """End to end: portal statuses equal the engine's decisions, one decision entry per invoice;
    an invoice a clerk held while the bot worked is recorded, not decided again; a rerun
    changes nothing."""
    portal = sandbox_factory(seed=SEED, orders=ORDERS)
    first = portal.state(sections="invoices")["invoices"]
    assert {i["status"] for i in first} == {"received"}
    assert len(first) >= 8
    keys = Counter(_key(i) for i in first)
    by_hand = next(i["id"] for i in first if keys[_key(i)] == 1)

    result = _run_with_clerk(portal, by_hand)

    invoices = _check_run(portal, tmp_path, hand_held=frozenset({by_hand}))
    counts = result.counts
    assert counts["already_decided"] == 1
    assert counts["approve"] + counts["hold"] + counts["reject"] == len(invoices)
    assert counts["hold"] >= 1
    assert counts["reject"] >= 1
    assert counts["approve"] >= 1
    assert counts["failed"] == counts["business_exception"] == 0
    assert result.exit_code == 1  # some held
    found = [o for o in result.outcomes if o.get("found_decided")]
    assert [(o["portal_id"], o["status"]) for o in found] == [(by_hand, "on_hold")]
    ledger = Ledger.from_settings()
    try:
        item = next(i for i in ledger.list(bot=BOT) if i.result and i.result["portal_id"] == by_hand)
        assert item.checkpoints[FOUND_DECIDED] == "on_hold"
    finally:
        ledger.close()
    # The run's inputs are kept for a replay and the report is written.
    assert (result.folder / "orders.csv").is_file()
    assert (result.folder / "receipts.csv").is_file()
    assert len(list((result.folder / "invoices").glob("*.xml"))) == len(invoices)
    assert result.report is not None
    assert result.report.is_file()

    assert result.downloaded == len(invoices)

    again = run_inbox(portal.url, workers=2)
    assert portal.state(sections="invoices")["invoices"] == invoices
    assert again.downloaded == 0  # every UBL came from the cache, checked against the inbox row
    assert again.outcomes == []
    assert again.runner is None
    assert again.counts == dict.fromkeys(again.counts, 0)


@pytest.mark.browser
@pytest.mark.slow
def test_inbox_bot_under_chaos_still_decides_each_invoice_exactly_once(
    sandbox_factory: Callable[..., SandboxServer], bot_env: Path, tmp_path: Path
) -> None:
    """With 5xx answers (some after saving), sessions ending every 20 s and shuffled pages,
    every invoice still ends as the engine says with exactly one decision entry."""
    portal = sandbox_factory(
        seed=SEED, orders=ORDERS, chaos="error_rate=0.1,session_ttl_s=20,shuffle=1,seed=7"
    )

    result = run_inbox(portal.url, workers=2)

    _check_run(portal, tmp_path)
    assert result.counts["failed"] == 0
    # Nobody else decides here: a post saved whose answer was lost is still the bot's own decision.
    assert result.counts["already_decided"] == 0
    # Every attempt that failed on a system error kept a screenshot and the page, on disk.
    ledger = Ledger.from_settings()
    try:
        for item in ledger.list(bot=BOT):
            failed_attempts = [t for t in ledger.history(item.id) if t.to_state == "system_exception"]
            if failed_attempts:
                kept = [Path(e.path) for e in item.evidence]
                assert any(p.name == "page.png" for p in kept), item.idempotency_key
                assert all(p.is_file() for p in kept)
    finally:
        ledger.close()
    before = portal.state(sections="invoices")["invoices"]
    again = run_inbox(portal.url, workers=2)
    assert again.outcomes == []
    assert portal.state(sections="invoices")["invoices"] == before
