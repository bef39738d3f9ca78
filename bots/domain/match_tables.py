"""The product's invoice matching engine: every document decided, computed column-wise
with numpy so a region's month (a million invoice lines) is decided in about a fifth
of a second (messages for the holds take longer; see docs/matching.md).

Pure domain logic, no I/O. :class:`MatchTables` holds orders, receipts and documents
as columns (money as exact integers of 1/10,000 of a pound, strings as dictionary
codes); :func:`match_tables` decides every document and returns a
:class:`MatchResult`, whose :meth:`MatchResult.decisions` gives the full
:class:`~bots.domain.matching.Decision` list, messages included
(:mod:`bots.domain.match_messages` words them).

How it decides:

- Documents are split into *independent* ones, whose decision does not depend on any
  other document, and the rest. A document is independent when it is an invoice (not a
  credit note), every line quotes a plain PO line number, its amounts fit the integer
  columns exactly, its totals add up, its supplier has no policy override, no other
  document shares its duplicate keys, and either it is the only document on its PO or
  every document on that PO is clean and together they stay within what was ordered
  and received (then the order in which they were processed cannot matter).
- Independent documents are decided by vectorised rules: PO header checks, VAT rate and
  category, line on PO, price tolerance (the stricter of % and absolute), quantity
  against ordered and received. Integers make every comparison exact.
- Everything else (and everything sharing a PO, a duplicate key or a credited invoice
  with it, closed transitively) is decided by the sequential pass,
  :func:`bots.domain.match_sequential.decide_in_order`, one document at a time in the
  fixed processing order: approved-only cumulative quantities, credit notes,
  duplicates (about 230 of 333k documents at a million lines).
- Messages are built on demand: :meth:`MatchResult.decisions` words the reasons of the
  independent documents column-wise and builds the clean approvals directly.

The readable reference engine is the tests' oracle (``tests/oracle/matching.py``):
``tests/test_match_tables.py``, ``tests/test_match_tables_adversarial.py`` and
``tests/test_match_tables_edges.py`` check that this engine gives its very decisions
and messages on every named scenario, on generated order books and on adversarial
runs; ``benchmarks/bench_matching.py`` measures it against DuckDB.

Example:
    >>> tables = MatchTables.from_models(orders, receipts, invoices)  # doctest: +SKIP
    >>> result = match_tables(tables)  # doctest: +SKIP
    >>> result.counts()  # doctest: +SKIP
    {'approve': 239668, 'hold': 35332, 'reject': 0}
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Context, Decimal, Inexact, InvalidOperation, localcontext
from itertools import repeat
from operator import attrgetter
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from bots.domain import match_messages as messages
from bots.domain.match_sequential import content_key, decide_in_order
from bots.domain.matching import (
    ZERO_CATEGORIES,
    Decision,
    MatchingPolicy,
    Reason,
    normalise_invoice_number,
    normalise_vat,
)
from bots.domain.models import (
    DocumentTotals,
    GoodsReceipt,
    Invoice,
    InvoiceLine,
    Party,
    POLine,
    PurchaseOrder,
    ReceiptLine,
)

__all__ = ["CORE_CODES", "MatchResult", "MatchTables", "ModelSource", "match_documents", "match_tables"]

Int64Array = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

CORE_CODES = (
    "PRICE_OVER_TOLERANCE",
    "QTY_OVER_ORDERED",
    "QTY_OVER_RECEIVED",
    "NOT_RECEIVED",
    "LINE_NOT_ON_PO",
)
"""The line rules decided column-wise (the ones a SQL implementation can state)."""

_SCALE = 4
"""Amounts are held as integers of 10^-4: pence and fractions of a penny exactly."""
_EXACT = Context(prec=60, traps=[Inexact, InvalidOperation])
_TEN_THOUSAND = Decimal(10**_SCALE)
# Bounds that keep every product below 2^63: quantity × price, amount × rate.
_UNIT_LIMIT = 2**31
_AMOUNT_LIMIT = 2**42
_LINE_LIMIT = 2**20
_APPROVE, _HOLD, _REJECT = 0, 1, 2


class ModelSource(Protocol):
    """Where :class:`MatchTables` built from arrays gets the models of the few documents,
    orders and receipts the sequential rules need (a connector keeps the rows)."""

    def invoice_models(self, indices: Sequence[int]) -> list[Invoice]:
        """The documents at ``indices`` (rows of the document columns), as models."""
        ...

    def order_models(self, po_numbers: Sequence[str]) -> list[PurchaseOrder]:
        """The purchase orders with these numbers, as models."""
        ...

    def receipt_models(self, po_numbers: Sequence[str]) -> list[ReceiptLine]:
        """The receipt lines of these purchase orders, as models."""
        ...


_KINDS = ("approve", "hold", "reject")


def _scaled(values: Sequence[Decimal], limit: int) -> tuple[Int64Array, BoolArray]:
    """``values`` × 10^4 as int64, and a mask of the values that are not exactly
    representable within ``limit`` (those documents go to the sequential pass)."""
    count = len(values)
    try:
        # Fast path, exact: the products in a context that traps any rounding, truncated
        # to ints; truncation moves every value towards zero, so the sums of magnitudes
        # agree only when no product had a fraction.
        with localcontext(_EXACT):
            products = list(map(_TEN_THOUSAND.__mul__, values))
            magnitude = sum(map(abs, products), Decimal(0))
        ints = list(map(int, products))
        if magnitude == sum(map(abs, ints)):
            array = np.fromiter(ints, dtype=np.int64, count=count)
            bad = (array <= -limit) | (array >= limit)
            if bad.any():
                array = np.where(bad, 0, array)
            return array, bad
    except (ArithmeticError, ValueError, TypeError, OverflowError, AttributeError):
        pass
    numbers, flags = [], []
    for value in values:
        try:
            number = int(value.scaleb(_SCALE, _EXACT).to_integral_exact(context=_EXACT))
            ok = -limit < number < limit
        except (ArithmeticError, ValueError, TypeError, AttributeError):
            number, ok = 0, False
        numbers.append(number if ok else 0)
        flags.append(not ok)
    return np.array(numbers, dtype=np.int64), np.array(flags, dtype=np.bool_)


def _codes(values: Iterable[Any], book: dict[Any, int]) -> Int64Array:
    """Dictionary codes of ``values`` (new values get the next code, in first-seen
    order). The distinct values are found by ``dict.fromkeys`` and the codes looked up
    by ``map``: both loops run in C."""
    values = values if isinstance(values, list) else list(values)
    for value in dict.fromkeys(values):
        if value not in book:
            book[value] = len(book)
    return np.fromiter(map(book.__getitem__, values), dtype=np.int64, count=len(values))


def _segment_any(mask: BoolArray, owner: Int64Array, size: int) -> BoolArray:
    """Per owner (e.g. per document): is ``mask`` true on any of its rows."""
    return np.bincount(owner[mask], minlength=size).astype(np.bool_) if size else np.zeros(0, np.bool_)


def _group_sizes(*keys: Int64Array, exact: bool = False) -> Int64Array:
    """For each row, how many rows share all of ``keys`` with it.

    The keys are packed into one int64 and counted (:func:`_sizes`). When their ranges do
    not fit in 63 bits they are mixed like a hash instead (wrapping), unless ``exact``:
    a collision can only make a group look larger, which for the engine's groups means
    "ask the sequential pass", never a different decision.
    """
    count = len(keys[0])
    if not count:
        return np.zeros(0, dtype=np.int64)
    packed = np.zeros(count, dtype=np.int64)
    span = 1
    for key in keys:
        low, high = int(key.min()), int(key.max())
        width = high - low + 1
        if span * width >= 2**62:
            break
        packed = packed * width + (key - low)
        span *= width
    else:
        return _sizes(packed, span)
    if not exact:
        mixed = np.zeros(count, dtype=np.int64)
        with np.errstate(over="ignore"):
            for key in keys:
                mixed = mixed * np.int64(1_000_003) + key
        return _sizes(mixed, None)
    order = np.lexsort(keys[::-1])
    change = np.zeros(count, dtype=np.bool_)
    change[0] = True
    for key in keys:
        ordered = key[order]
        change[1:] |= ordered[1:] != ordered[:-1]
    group = np.cumsum(change) - 1
    out = np.empty(count, dtype=np.int64)
    out[order] = np.bincount(group)[group]
    return out


_DIRECT_SLACK = 1024
"""Direct tables (one slot per possible key) are used while they hold at most a few slots
per row plus this many; beyond that, sorting. Tests set it negative to check the sorted
paths give the same decisions."""


def _direct(slots: int, rows: int, per_row: int = 4) -> bool:
    """Whether a direct table of ``slots`` is small enough for ``rows`` rows."""
    return slots <= per_row * rows + _DIRECT_SLACK


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _sizes(key: Int64Array, span: int | None) -> Int64Array:
    """How many rows share ``key`` with each row, in time linear in the rows.

    A key in ``0..span-1`` with ``span`` at most a few times the rows is counted
    directly. Otherwise keys are spread over two to four buckets per row by a
    multiplicative hash; a row alone in its bucket is alone in its group, and only the
    crowded rows (a fifth to a third, plus the real groups) are counted exactly by
    sorting.
    """
    count = len(key)
    if span is not None and _direct(span, count):
        return np.bincount(key, minlength=span)[key]
    bits = max(10, (2 * count).bit_length())
    bucket = ((key.view(np.uint64) * _GOLDEN) >> np.uint64(64 - bits)).astype(np.int64)
    crowded = np.bincount(bucket, minlength=1 << bits)[bucket] > 1
    sizes = np.ones(count, dtype=np.int64)
    if crowded.any():
        _, inverse, found = np.unique(key[crowded], return_inverse=True, return_counts=True)
        sizes[crowded] = found[inverse]
    return sizes


def _round_half_up(numerator: Int64Array, denominator: int) -> Int64Array:
    """``numerator / denominator`` rounded half away from zero (Decimal's ROUND_HALF_UP)."""
    magnitude = (np.abs(numerator) + denominator // 2) // denominator
    return np.where(numerator < 0, -magnitude, magnitude)


# --- the tables ------------------------------------------------------------------------


@dataclass(eq=False)
class MatchTables:
    """Orders, receipts, invoices and credit notes as columns, ready for :func:`match_tables`.

    Build with :meth:`from_models` (from connector output) or :meth:`from_columns`
    (from bulk extracts). Construction is the *load*: it parses amounts into exact
    integers and strings into dictionary codes, and raises ``ValueError`` for a PO
    number that appears on two orders, as the oracle (tests/oracle/matching.py) does.
    """

    # order lines
    ol_po: Int64Array
    ol_line: Int64Array
    ol_qty: Int64Array
    ol_price: Int64Array
    ol_rate: Int64Array
    ol_receipt: BoolArray
    ol_bad: BoolArray
    # per PO code: supplier VAT code (raw), currency code
    po_vat: Int64Array
    po_currency: Int64Array
    # receipt lines
    rc_po: Int64Array
    rc_line: Int64Array
    rc_qty: Int64Array
    rc_bad: BoolArray
    # documents
    doc_credit: BoolArray
    doc_po: Int64Array  # PO code; -1 no PO number; -2 not on the order book
    doc_vat: Int64Array
    doc_currency: Int64Array
    doc_date: Int64Array
    doc_net: Int64Array  # stated net: line extension, or tax exclusive when that is zero
    doc_tax_exclusive: Int64Array
    doc_tax: Int64Array
    doc_inclusive: Int64Array
    doc_payable: Int64Array
    doc_adjusted: BoolArray  # document-level allowances or charges
    doc_bad: BoolArray
    # invoice lines
    ln_doc: Int64Array
    ln_line: Int64Array  # the PO line number quoted; -1 when not a plain number
    ln_qty: Int64Array
    ln_price: Int64Array
    ln_net: Int64Array
    ln_rate: Int64Array
    ln_zero_category: BoolArray
    ln_bad: BoolArray
    ln_label: Int64Array  # the line label of messages (UBL line ID when numeric, else position); -1 odd
    ln_category: Int64Array  # code into ``categories``
    categories: list[str]
    # dictionaries and raw values (for keys, messages and the sequential pass)
    po_numbers: list[str]
    vat_numbers: list[str | None]
    currencies: list[str]
    doc_numbers: list[str]
    doc_types: list[str]
    doc_dates: list[dt.date]
    doc_po_numbers: list[str | None]
    doc_billing: list[str | None]
    doc_payables: list[Decimal]
    doc_sources: list[str | None]
    doc_line_counts: Int64Array
    doc_number_key: Int64Array  # hash of the normalised invoice number (duplicate keys)
    _orders: dict[str, PurchaseOrder] | None = None
    _receipts: dict[str, list[GoodsReceipt | ReceiptLine]] | None = None
    _invoices: list[Invoice] | None = None
    _columns: dict[str, dict[str, list[Any]]] | None = field(default=None, repr=False)
    _source: ModelSource | None = field(default=None, repr=False)

    @property
    def documents(self) -> int:
        """How many invoices and credit notes the tables hold."""
        return len(self.doc_numbers)

    # -- construction ---------------------------------------------------------------------

    @classmethod
    def from_models(
        cls,
        orders: Iterable[PurchaseOrder],
        receipts: Iterable[GoodsReceipt | ReceiptLine],
        invoices: Iterable[Invoice],
    ) -> MatchTables:
        """Tables of domain models (what the connectors return)."""
        orders = [o for o in orders if o.po_number]
        numbers: set[str | None] = set()
        for o in orders:
            if o.po_number in numbers:
                raise ValueError(f"purchase order {o.po_number} appears more than once in the orders")
            numbers.add(o.po_number)
        receipts = list(receipts)
        invoices = list(invoices)
        # Column by column (attrgetter loops run in C): a row-by-row append was most of it.
        order_lines = [line for o in orders for line in o.lines]
        ol: dict[str, list[Any]] = {
            "po_number": [o.po_number for o in orders for _ in o.lines],
            "supplier_vat": [o.supplier_vat for o in orders for _ in o.lines],
            "currency": [o.currency for o in orders for _ in o.lines],
        }
        for name in ("line_no", "quantity", "unit_price", "vat_rate", "receipt_required"):
            ol[name] = list(map(attrgetter(name), order_lines))
        receipt_lines = [
            rline
            for receipt in receipts
            for rline in (receipt.lines if isinstance(receipt, GoodsReceipt) else [receipt])
        ]
        rl: dict[str, list[Any]] = {
            name: list(map(attrgetter(name), receipt_lines)) for name in _RECEIPT_COLUMNS
        }
        by_po: dict[str, list[GoodsReceipt | ReceiptLine]] = {}
        for rline in receipt_lines:
            by_po.setdefault(rline.po_number, []).append(rline)
        docs: dict[str, list[Any]] = {
            name: list(map(attrgetter(name), invoices))
            for name in ("invoice_number", "document_type", "issue_date", "po_number", "currency")
        }
        docs["billing_reference"] = list(map(attrgetter("billing_reference"), invoices))
        docs["source"] = list(map(attrgetter("source"), invoices))
        docs["supplier_vat"] = list(map(attrgetter("supplier.vat_number"), invoices))
        totals = list(map(attrgetter("totals"), invoices))
        for name in _TOTAL_COLUMNS:
            docs[name] = list(map(attrgetter(name), totals))
        invoice_lines = [line for doc in invoices for line in doc.lines]
        il: dict[str, list[Any]] = {
            "document": [index for index, doc in enumerate(invoices) for _ in doc.lines],
        }
        for name in _LINE_COLUMNS[1:]:  # all but "document"
            il[name] = list(map(attrgetter(name), invoice_lines))
        il["line_id"] = list(map(attrgetter("line_id"), invoice_lines))
        tables = cls._encode(ol, rl, docs, il)
        tables._orders = {str(o.po_number): o for o in orders}
        tables._receipts = by_po
        tables._invoices = invoices
        return tables

    @classmethod
    def from_columns(
        cls,
        order_lines: dict[str, list[Any]],
        receipt_lines: dict[str, list[Any]],
        documents: dict[str, list[Any]],
        invoice_lines: dict[str, list[Any]],
    ) -> MatchTables:
        """Tables of column lists (a bulk extract), without building a model per row.

        Columns (lists of equal length; amounts as ``Decimal``):

        - ``order_lines``: po_number, line_no, quantity, unit_price, vat_rate,
          receipt_required, supplier_vat, currency (grouped by PO);
        - ``receipt_lines``: po_number, line_no, quantity_received;
        - ``documents``: invoice_number, document_type, issue_date, supplier_vat,
          po_number, currency, billing_reference, line_extension, tax_exclusive, tax,
          tax_inclusive, payable, allowances, charges, source;
        - ``invoice_lines``: document (row index into documents), order_line_reference,
          quantity, unit_price, net_amount, vat_rate, vat_category.

        Models are built only for the documents the sequential pass must see.
        """
        given = {
            "order_lines": order_lines,
            "receipt_lines": receipt_lines,
            "documents": documents,
            "invoice_lines": invoice_lines,
        }
        for (name, columns), wanted in zip(
            given.items(), (_ORDER_COLUMNS, _RECEIPT_COLUMNS, _DOCUMENT_COLUMNS, _LINE_COLUMNS), strict=True
        ):
            missing = [c for c in wanted if c not in columns]
            if missing:
                raise ValueError(f"{name}: missing column(s) {missing}")
            lengths = {len(columns[c]) for c in wanted}
            if len(lengths) > 1:
                raise ValueError(f"{name}: columns differ in length {sorted(lengths)}")
        tables = cls._encode(order_lines, receipt_lines, documents, invoice_lines)
        tables._columns = given
        return tables

    @classmethod
    def from_arrays(
        cls,
        orders: Mapping[str, Any],
        receipts: Mapping[str, Any],
        documents: Mapping[str, Any],
        lines: Mapping[str, Any],
        source: ModelSource,
    ) -> MatchTables:
        """Tables of columns already typed by a columnar reader (no value per row in Python
        but the per-document strings). Amounts are int64 in 1/10,000; ``bad`` marks rows
        with a value the integers cannot hold exactly (their documents are decided by the
        sequential rules, on models from ``source``).

        - ``orders``: ``po`` (code per order line, each PO's lines consecutive),
          ``po_numbers``, ``po_vat``, ``po_currency`` (per PO code), ``line_no``,
          ``quantity``, ``unit_price``, ``vat_rate``, ``receipt_required``, ``bad``;
        - ``receipts``: ``po`` (code, -1 not on the order book), ``line_no``, ``quantity``, ``bad``;
        - ``documents`` (lists): ``invoice_number``, ``document_type``, ``issue_date``,
          ``supplier_vat``, ``po_number``, ``currency``, ``billing_reference``, ``source``;
          (arrays) ``line_extension``, ``tax_exclusive``, ``tax``, ``tax_inclusive``,
          ``payable``, ``allowances``, ``charges``, ``bad``;
        - ``lines``: ``document`` (index, lines of a document in order), ``line`` (the PO
          line quoted, -1 when not a plain number), ``label``, ``quantity``,
          ``unit_price``, ``net_amount``, ``vat_rate``, ``category`` (code into
          ``categories``), ``bad``.
        """
        po_numbers: list[str] = list(orders["po_numbers"])
        po_book = {number: code for code, number in enumerate(po_numbers)}
        vat_book: dict[str | None, int] = {}
        currency_book: dict[str, int] = {}
        po_vat = _codes(orders["po_vat"], vat_book)
        po_currency = _codes(orders["po_currency"], currency_book)
        ol_line = np.asarray(orders["line_no"], dtype=np.int64)
        ol_bad = np.asarray(orders["bad"], dtype=np.bool_) | (ol_line < 0) | (ol_line >= _LINE_LIMIT)
        ol_qty, ol_price, ol_rate = (
            np.asarray(orders[k], dtype=np.int64) for k in ("quantity", "unit_price", "vat_rate")
        )
        ol_bad |= (
            (np.abs(ol_qty) >= _UNIT_LIMIT)
            | (np.abs(ol_price) >= _UNIT_LIMIT)
            | (np.abs(ol_rate) >= _UNIT_LIMIT)
        )
        rc_line = np.asarray(receipts["line_no"], dtype=np.int64)
        rc_qty = np.asarray(receipts["quantity"], dtype=np.int64)
        rc_bad = np.asarray(receipts["bad"], dtype=np.bool_) | (np.abs(rc_qty) >= _UNIT_LIMIT)
        count = len(documents["invoice_number"])
        doc_po = np.fromiter(
            (-1 if not p else po_book.get(p, -2) for p in documents["po_number"]), dtype=np.int64, count=count
        )
        amounts = {
            k: np.asarray(documents[k], dtype=np.int64)
            for k in (
                "line_extension",
                "tax_exclusive",
                "tax",
                "tax_inclusive",
                "payable",
                "allowances",
                "charges",
            )
        }
        doc_bad = np.asarray(documents["bad"], dtype=np.bool_)
        for values in amounts.values():
            doc_bad |= np.abs(values) >= _AMOUNT_LIMIT
        dates: list[dt.date] = list(documents["issue_date"])
        ln_doc = np.asarray(lines["document"], dtype=np.int64)
        ln_qty, ln_price, ln_net, ln_rate = (
            np.asarray(lines[k], dtype=np.int64) for k in ("quantity", "unit_price", "net_amount", "vat_rate")
        )
        ln_line = np.asarray(lines["line"], dtype=np.int64)
        ln_bad = (
            np.asarray(lines["bad"], dtype=np.bool_)
            | (ln_line >= _LINE_LIMIT)
            | (np.abs(ln_net) >= _AMOUNT_LIMIT)
        )
        for values in (ln_qty, ln_price, ln_rate):
            ln_bad |= np.abs(values) >= _UNIT_LIMIT
        categories = list(lines["categories"])
        zero = np.array([c in ZERO_CATEGORIES for c in categories], dtype=np.bool_)
        ln_category = np.asarray(lines["category"], dtype=np.int64)
        tables = cls(
            ol_po=np.asarray(orders["po"], dtype=np.int64),
            ol_line=np.where(ol_bad, -1, ol_line),
            ol_qty=np.where(ol_bad, 0, ol_qty),
            ol_price=np.where(ol_bad, 0, ol_price),
            ol_rate=np.where(ol_bad, 0, ol_rate),
            ol_receipt=np.asarray(orders["receipt_required"], dtype=np.bool_),
            ol_bad=ol_bad,
            po_vat=po_vat,
            po_currency=po_currency,
            rc_po=np.asarray(receipts["po"], dtype=np.int64),
            rc_line=np.where((rc_line < 0) | (rc_line >= _LINE_LIMIT), -1, rc_line),
            rc_qty=np.where(rc_bad, 0, rc_qty),
            rc_bad=rc_bad,
            doc_credit=np.array([t == "credit_note" for t in documents["document_type"]], dtype=np.bool_),
            doc_po=doc_po,
            doc_vat=_codes(documents["supplier_vat"], vat_book),
            doc_currency=_codes(documents["currency"], currency_book),
            doc_date=np.asarray(documents["issue_ordinal"], dtype=np.int64),
            doc_net=np.where(
                amounts["line_extension"] != 0, amounts["line_extension"], amounts["tax_exclusive"]
            ),
            doc_tax_exclusive=amounts["tax_exclusive"],
            doc_tax=amounts["tax"],
            doc_inclusive=amounts["tax_inclusive"],
            doc_payable=amounts["payable"],
            doc_adjusted=(amounts["allowances"] != 0) | (amounts["charges"] != 0),
            doc_bad=doc_bad,
            ln_doc=ln_doc,
            ln_line=ln_line,
            ln_qty=np.where(ln_bad, 0, ln_qty),
            ln_price=np.where(ln_bad, 0, ln_price),
            ln_net=np.where(ln_bad, 0, ln_net),
            ln_rate=np.where(ln_bad, 0, ln_rate),
            ln_zero_category=zero[ln_category] if len(ln_category) else np.zeros(0, dtype=np.bool_),
            ln_bad=ln_bad,
            ln_label=np.asarray(lines["label"], dtype=np.int64),
            ln_category=ln_category,
            categories=categories,
            po_numbers=po_numbers,
            vat_numbers=list(vat_book),
            currencies=list(currency_book),
            doc_numbers=list(documents["invoice_number"]),
            doc_types=list(documents["document_type"]),
            doc_dates=dates,
            doc_po_numbers=list(documents["po_number"]),
            doc_billing=list(documents["billing_reference"]),
            doc_payables=[],  # from the columns, or models where they are bad: _payables
            doc_sources=list(documents["source"]),
            doc_line_counts=np.bincount(ln_doc, minlength=count) if count else np.zeros(0, np.int64),
            doc_number_key=np.fromiter(
                map(hash, _number_keys(documents["invoice_number"])), dtype=np.int64, count=count
            ),
        )
        tables._source = source
        return tables

    @classmethod
    def _encode(
        cls,
        ol: dict[str, list[Any]],
        rl: dict[str, list[Any]],
        docs: dict[str, list[Any]],
        il: dict[str, list[Any]],
    ) -> MatchTables:
        po_book: dict[str, int] = {}
        ol_po = _codes(ol["po_number"], po_book)
        po_count = len(po_book)
        # Each PO number once, on consecutive rows: a number that comes back later is a
        # second order with the same number.
        if len(ol_po):
            starts = np.flatnonzero(np.r_[True, ol_po[1:] != ol_po[:-1]])
            if len(starts) != po_count:
                seen: set[int] = set()
                for code in ol_po[starts].tolist():
                    if code in seen:
                        number = next(p for p, c in po_book.items() if c == code)
                        raise ValueError(f"purchase order {number} appears more than once in the orders")
                    seen.add(code)
        else:
            starts = np.zeros(0, dtype=np.int64)
        vat_book: dict[str | None, int] = {}
        currency_book: dict[str, int] = {}
        po_vat = np.full(po_count, -1, dtype=np.int64)
        po_currency = np.full(po_count, -1, dtype=np.int64)
        if po_count:
            first = starts.tolist()
            po_vat[ol_po[starts]] = _codes((ol["supplier_vat"][i] for i in first), vat_book)
            po_currency[ol_po[starts]] = _codes((ol["currency"][i] for i in first), currency_book)
        ol_line = _line_numbers(ol["line_no"])
        ol_qty, bad_q = _scaled(ol["quantity"], _UNIT_LIMIT)
        ol_price, bad_p = _scaled(ol["unit_price"], _UNIT_LIMIT)
        ol_rate, bad_r = _scaled(ol["vat_rate"], _UNIT_LIMIT)
        ol_bad = bad_q | bad_p | bad_r | (ol_line < 0) | (ol_line >= _LINE_LIMIT)
        # One order per PO number: a (PO, line) twice is a second order with that number
        # (``from_models`` checks the numbers themselves before this).
        ol_valid = ~ol_bad
        sizes = _group_sizes(ol_po[ol_valid], ol_line[ol_valid], exact=True) if ol_valid.any() else None
        if sizes is not None and sizes.max() > 1:
            code = int(ol_po[ol_valid][np.argmax(sizes > 1)])
            raise ValueError(f"purchase order {list(po_book)[code]} appears more than once in the orders")

        rc_po = np.fromiter(
            map(po_book.get, rl["po_number"], repeat(-1)), dtype=np.int64, count=len(rl["po_number"])
        )
        rc_line = _line_numbers(rl["line_no"])
        rc_qty, rc_bad = _scaled(rl["quantity_received"], _UNIT_LIMIT)

        count = len(docs["invoice_number"])
        doc_po = np.array([-1 if not p else po_book.get(p, -2) for p in docs["po_number"]], dtype=np.int64)
        doc_vat = _codes(docs["supplier_vat"], vat_book)
        doc_currency = _codes(docs["currency"], currency_book)
        dates: list[dt.date] = docs["issue_date"]
        doc_date = np.array([d.toordinal() for d in dates], dtype=np.int64)
        line_extension, b1 = _scaled(docs["line_extension"], _AMOUNT_LIMIT)
        tax_exclusive, b2 = _scaled(docs["tax_exclusive"], _AMOUNT_LIMIT)
        tax, b3 = _scaled(docs["tax"], _AMOUNT_LIMIT)
        inclusive, b4 = _scaled(docs["tax_inclusive"], _AMOUNT_LIMIT)
        payable, b5 = _scaled(docs["payable"], _AMOUNT_LIMIT)
        allowances, b6 = _scaled(docs["allowances"], _AMOUNT_LIMIT)
        charges, b7 = _scaled(docs["charges"], _AMOUNT_LIMIT)
        doc_bad = b1 | b2 | b3 | b4 | b5 | b6 | b7
        doc_credit = np.array([t == "credit_note" for t in docs["document_type"]], dtype=np.bool_)

        ln_doc = np.array(il["document"], dtype=np.int64)
        refs: list[str | None] = il["order_line_reference"]
        # Few distinct references (usually "1", "2", ...): each is read once.
        known = {ref: _line_number(ref) for ref in dict.fromkeys(refs)}
        ln_line = np.fromiter(map(known.__getitem__, refs), dtype=np.int64, count=len(refs))
        ln_qty, c1 = _scaled(il["quantity"], _UNIT_LIMIT)
        ln_price, c2 = _scaled(il["unit_price"], _UNIT_LIMIT)
        ln_net, c3 = _scaled(il["net_amount"], _AMOUNT_LIMIT)
        ln_rate, c4 = _scaled(il["vat_rate"], _UNIT_LIMIT)
        category_book: dict[str, int] = {}
        category_codes = _codes(il["vat_category"], category_book)
        zero = np.array([c in ZERO_CATEGORIES for c in category_book], dtype=np.bool_)
        ln_zero = zero[category_codes] if len(category_codes) else np.zeros(0, dtype=np.bool_)
        ln_label = _line_labels(ln_doc, count, il.get("line_id"))
        return cls(
            ol_po=ol_po,
            ol_line=ol_line,
            ol_qty=ol_qty,
            ol_price=ol_price,
            ol_rate=ol_rate,
            ol_receipt=np.array(ol["receipt_required"], dtype=np.bool_),
            ol_bad=ol_bad,
            po_vat=po_vat,
            po_currency=po_currency,
            rc_po=rc_po,
            rc_line=rc_line,
            rc_qty=rc_qty,
            rc_bad=rc_bad,
            doc_credit=doc_credit,
            doc_po=doc_po,
            doc_vat=doc_vat,
            doc_currency=doc_currency,
            doc_date=doc_date,
            doc_net=np.where(line_extension != 0, line_extension, tax_exclusive),
            doc_tax_exclusive=tax_exclusive,
            doc_tax=tax,
            doc_inclusive=inclusive,
            doc_payable=payable,
            doc_adjusted=(allowances != 0) | (charges != 0),
            doc_bad=doc_bad,
            ln_doc=ln_doc,
            ln_line=ln_line,
            ln_qty=ln_qty,
            ln_price=ln_price,
            ln_net=ln_net,
            ln_rate=ln_rate,
            ln_zero_category=ln_zero,
            ln_bad=c1 | c2 | c3 | c4 | (ln_line >= _LINE_LIMIT),
            ln_label=ln_label,
            ln_category=category_codes,
            categories=list(category_book),
            po_numbers=list(po_book),
            vat_numbers=list(vat_book),
            currencies=list(currency_book),
            doc_numbers=list(docs["invoice_number"]),
            doc_types=list(docs["document_type"]),
            doc_dates=list(dates),
            doc_po_numbers=list(docs["po_number"]),
            doc_billing=list(docs["billing_reference"]),
            doc_payables=list(docs["payable"]),
            doc_sources=list(docs["source"]),
            doc_line_counts=np.bincount(ln_doc, minlength=count) if count else np.zeros(0, np.int64),
            doc_number_key=np.fromiter(
                map(hash, _number_keys(docs["invoice_number"])), dtype=np.int64, count=count
            ),
        )

    # -- models for the sequential pass -------------------------------------------------

    def invoice_models(self, indices: Sequence[int]) -> list[Invoice]:
        """The documents at ``indices`` as models (built from columns when need be)."""
        if self._invoices is not None:
            return [self._invoices[i] for i in indices]
        if self._source is not None:
            return self._source.invoice_models(indices)
        assert self._columns is not None
        docs, il = self._columns["documents"], self._columns["invoice_lines"]
        wanted = set(indices)
        lines: dict[int, list[InvoiceLine]] = {i: [] for i in indices}
        for row in np.flatnonzero(_member(self.ln_doc, sorted(wanted), self.documents)).tolist():
            owner = il["document"][row]
            net = il["net_amount"][row]
            lines[owner].append(
                InvoiceLine.model_construct(
                    line_id=str(len(lines[owner]) + 1),
                    quantity=il["quantity"][row],
                    unit_price=il["unit_price"][row],
                    net_amount=net,
                    vat_rate=il["vat_rate"][row],
                    vat_category=il["vat_category"][row],
                    order_line_reference=il["order_line_reference"][row],
                    gtin=None,
                    seller_item_id=None,
                )
            )
        models = []
        for i in indices:
            totals = DocumentTotals.model_construct(
                **{k: docs[k][i] for k in _TOTAL_COLUMNS},
                prepaid=Decimal(0),
                rounding=Decimal(0),
            )
            models.append(
                Invoice.model_construct(
                    document_type=docs["document_type"][i],
                    invoice_number=docs["invoice_number"][i],
                    issue_date=docs["issue_date"][i],
                    currency=docs["currency"][i],
                    supplier=Party.model_construct(vat_number=docs["supplier_vat"][i]),
                    po_number=docs["po_number"][i],
                    billing_reference=docs["billing_reference"][i],
                    lines=lines[i],
                    totals=totals,
                    source=docs["source"][i],
                )
            )
        return models

    def order_models(self, po_codes: Iterable[int]) -> list[PurchaseOrder]:
        """The purchase orders with these PO codes as models."""
        numbers = [self.po_numbers[c] for c in sorted(set(po_codes))]
        if self._orders is not None:
            return [self._orders[n] for n in numbers]
        if self._source is not None:
            return self._source.order_models(numbers)
        assert self._columns is not None
        ol = self._columns["order_lines"]
        rows = np.flatnonzero(_member(self.ol_po, sorted(set(po_codes)), len(self.po_numbers)))
        by_po: dict[str, list[int]] = {}
        for row in rows.tolist():
            by_po.setdefault(ol["po_number"][row], []).append(row)
        return [
            PurchaseOrder.model_construct(
                po_number=n,
                supplier_vat=ol["supplier_vat"][by_po[n][0]],
                currency=ol["currency"][by_po[n][0]],
                lines=[
                    POLine.model_construct(
                        line_no=ol["line_no"][r],
                        item_code="",
                        quantity=ol["quantity"][r],
                        unit_price=ol["unit_price"][r],
                        vat_rate=ol["vat_rate"][r],
                        receipt_required=ol["receipt_required"][r],
                    )
                    for r in by_po[n]
                ],
            )
            for n in numbers
        ]

    def receipt_models(self, po_codes: Iterable[int]) -> list[GoodsReceipt | ReceiptLine]:
        """The receipt lines of the POs with these codes as models."""
        codes = sorted(set(po_codes))
        if self._receipts is not None:
            return [r for c in codes for r in self._receipts.get(self.po_numbers[c], [])]
        if self._source is not None:
            return list(self._source.receipt_models([self.po_numbers[c] for c in codes]))
        assert self._columns is not None
        rl = self._columns["receipt_lines"]
        rows = np.flatnonzero(_member(self.rc_po, codes, len(self.po_numbers)))
        return [
            ReceiptLine.model_construct(
                po_number=rl["po_number"][r],
                line_no=rl["line_no"][r],
                quantity_received=rl["quantity_received"][r],
            )
            for r in rows.tolist()
        ]

    def sequential_match(self, indices: Sequence[int], policy: MatchingPolicy) -> dict[int, Decision]:
        """The sequential pass's decisions for the documents at ``indices``, which must
        be closed under shared state (POs, duplicate keys, credited invoices)."""
        if not len(indices):
            return {}
        models = self.invoice_models(indices)
        # By identity, in input order: the same model passed twice is two documents
        # (the second an exact duplicate), and the engine keeps their input order.
        positions: dict[int, list[int]] = {}
        for model, index in zip(models, indices, strict=True):
            positions.setdefault(id(model), []).append(index)
        codes = {int(c) for c in self.doc_po[np.array(indices, dtype=np.int64)] if c >= 0}
        # A credit note may take its PO from the invoice it credits: that invoice is in
        # ``indices`` (closure), so its PO is among the codes already.
        orders = self.order_models(codes)
        receipts = self.receipt_models(codes)
        return {
            positions[id(doc)].pop(0): decision
            for doc, decision in decide_in_order(orders, receipts, models, policy)
        }


_ORDER_COLUMNS = (
    "po_number",
    "line_no",
    "quantity",
    "unit_price",
    "vat_rate",
    "receipt_required",
    "supplier_vat",
    "currency",
)
_RECEIPT_COLUMNS = ("po_number", "line_no", "quantity_received")
_DOCUMENT_COLUMNS = (
    "invoice_number",
    "document_type",
    "issue_date",
    "supplier_vat",
    "po_number",
    "currency",
    "billing_reference",
    "line_extension",
    "tax_exclusive",
    "tax",
    "tax_inclusive",
    "payable",
    "allowances",
    "charges",
    "source",
)
_TOTAL_COLUMNS = _DOCUMENT_COLUMNS[7:14]
"""line_extension, tax_exclusive, tax, tax_inclusive, payable, allowances, charges."""
_LINE_COLUMNS = (
    "document",
    "order_line_reference",
    "quantity",
    "unit_price",
    "net_amount",
    "vat_rate",
    "vat_category",
)


def _line_number(reference: str | None) -> int:
    # The sequential pass reads a plain digit string as the PO line; anything else it
    # resolves by item code or pattern, which only it does (-1 sends the document there).
    if reference is None or not reference.isdigit():
        return -1
    try:
        number = int(reference)
    except ValueError:  # e.g. superscript digits: isdigit() but not int()
        return -1
    # Only the canonical spelling: a message names the line as written ("01" would not be "1").
    return number if number < _LINE_LIMIT and str(number) == reference else -1


def _line_labels(ln_doc: Int64Array, docs: int, line_ids: Sequence[str] | None) -> Int64Array:
    """The label of each invoice line in messages: its line ID when that is a number
    (as the sequential pass shows it), else its position in the document (1-based,
    in line order). -1 marks a label the columns cannot show (its document goes to
    the sequential pass)."""
    count = len(ln_doc)
    if not count:
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(ln_doc, kind="stable")
    ordered = ln_doc[order]
    starts = np.r_[0, np.flatnonzero(ordered[1:] != ordered[:-1]) + 1]
    first = np.zeros(count, dtype=np.int64)
    first[starts] = starts
    np.maximum.accumulate(first, out=first)
    position = np.empty(count, dtype=np.int64)
    position[order] = np.arange(count, dtype=np.int64) - first + 1
    if line_ids is None:
        return position
    known: dict[str, int] = {}
    for line_id in dict.fromkeys(line_ids):
        label = -2  # not a number: the position
        if line_id.isdigit():
            try:
                label = int(line_id)
            except ValueError:
                label = -1
            if label >= _LINE_LIMIT:
                label = -1
        known[line_id] = label
    labels = np.fromiter(map(known.__getitem__, line_ids), dtype=np.int64, count=count)
    return np.where(labels == -2, position, labels)


def _line_numbers(values: Sequence[int]) -> Int64Array:
    """Line numbers as int64; any outside ``0 .. 2^20`` becomes -1 (such lines are
    ``bad``: their documents go to the sequential pass, and they match no key)."""
    try:
        array = np.array(values, dtype=np.int64)
    except (OverflowError, TypeError, ValueError):
        array = np.array(
            [v if isinstance(v, int) and 0 <= v < _LINE_LIMIT else -1 for v in values], dtype=np.int64
        )
    return np.where((array < 0) | (array >= _LINE_LIMIT), -1, array)


# --- the result ------------------------------------------------------------------------


@dataclass(eq=False)
class MatchResult:
    """Decisions of :func:`match_tables`: a code per document (in input order), the
    core rule counts, and the full decisions (reasons worded) of every document that has
    a reason or a note."""

    tables: MatchTables
    policy: MatchingPolicy
    decision: npt.NDArray[np.int8]
    explain: BoolArray
    sequential: dict[int, Decision]
    gross: Int64Array
    core_counts: dict[str, int]
    header: npt.NDArray[np.int8] = field(default_factory=lambda: np.zeros(0, np.int8))
    found: BoolArray = field(default_factory=lambda: np.zeros(0, np.bool_))
    row: Int64Array = field(default_factory=lambda: np.zeros(0, np.int64))
    received: Int64Array = field(default_factory=lambda: np.zeros(0, np.int64))
    _decided: dict[int, Decision] | None = field(default=None, repr=False)
    _order: Int64Array | None = field(default=None, repr=False)

    def counts(self) -> dict[str, int]:
        """Documents by decision."""
        found = np.bincount(self.decision, minlength=3)
        return {kind: int(found[i]) for i, kind in enumerate(_KINDS)}

    @property
    def sequential_documents(self) -> int:
        """How many documents the sequential rules decided (not independent)."""
        return len(self.sequential)

    def decided(self) -> dict[int, Decision]:
        """The full decision of every document with a reason or a note, by input index;
        every other document is a clean approval (:meth:`clean_approval`)."""
        if self._decided is None:
            self._decided = {**self._explained(), **self.sequential}
        return self._decided

    def order(self) -> Int64Array:
        """Input indices in processing order (issue date, normalised supplier VAT,
        normalised number, raw number, type, PO, amount, lines; ties by content)."""
        if self._order is None:
            self._order = _processing_order(self.tables)
        return self._order

    def decisions(self) -> list[Decision]:
        """Every decision with its reasons and messages, in processing order."""
        decided = self.decided()
        return [decided.get(i) or self.clean_approval(i) for i in self.order().tolist()]

    def clean_approval(self, i: int) -> Decision:
        """The decision of document ``i`` when it has no reason and no note."""
        t = self.tables
        return Decision(
            invoice_number=t.doc_numbers[i],
            supplier_vat=t.vat_numbers[int(t.doc_vat[i])],
            document_type=t.doc_types[i],
            decision="approve",
            po_number=t.doc_po_numbers[i],
            gross_amount=_money(int(self.gross[i])),
            issue_date=t.doc_dates[i],
            currency=t.currencies[int(t.doc_currency[i])],
            source=t.doc_sources[i],
        )

    def pennies(self) -> Int64Array:
        """Each document's gross amount in pennies (rounded half up, as its decision shows it)."""
        return _pennies(self.gross)

    def summary(self) -> dict[str, Any]:
        """:func:`~bots.domain.matching.summarise` of :meth:`decisions`, column-wise."""
        t = self.tables
        decided = self.decided()
        order = self.order()
        pennies = _pennies(self.gross)
        signed = np.where(t.doc_credit, -pennies, pennies)
        # Amounts the columns could not hold are the sequential rules' (exact, as Python ints).
        exact: dict[int, int] = {}
        for i, found in self.sequential.items():
            amount = int(found.gross_amount.scaleb(2))
            exact[i] = -amount if t.doc_credit[i] else amount
            signed[i] = 0
        kinds = self.decision.astype(np.int64)
        reason_counts: Counter[str] = Counter()
        for i in order[np.isin(order, np.fromiter(decided, dtype=np.int64, count=len(decided)))].tolist():
            for reason in decided[i].reasons:
                reason_counts[reason.code] += 1
        suppliers: dict[str, dict[str, Any]] = {}
        vat_count = len(t.vat_numbers)
        by_vat = [np.bincount(t.doc_vat, minlength=vat_count)]
        by_vat += [np.bincount(t.doc_vat[kinds == k], minlength=vat_count) for k in range(3)]
        values = np.zeros(vat_count, dtype=np.int64)  # pennies: exact far beyond any ledger
        np.add.at(values, t.doc_vat, signed)
        for code in np.flatnonzero(by_vat[0]).tolist():
            row = suppliers.setdefault(
                t.vat_numbers[code] or "",
                {"documents": 0, "approve": 0, "hold": 0, "reject": 0, "value": 0},
            )
            row["documents"] += int(by_vat[0][code])
            for k, kind in enumerate(_KINDS):
                row[kind] += int(by_vat[k + 1][code])
            row["value"] += int(values[code])
        totals = [int(signed[kinds == k].sum()) for k in range(3)]
        for i, amount in exact.items():
            suppliers[t.vat_numbers[int(t.doc_vat[i])] or ""]["value"] += amount
            totals[int(kinds[i])] += amount
        return {
            "documents": t.documents,
            "counts": self.counts(),
            "values": {kind: str(_cents(totals[k])) for k, kind in enumerate(_KINDS)},
            "top_reasons": [{"code": code, "count": n} for code, n in reason_counts.most_common(10)],
            "by_supplier": [
                {
                    "supplier_vat": vat or None,
                    **{k: str(_cents(v)) if k == "value" else v for k, v in row.items()},
                }
                for vat, row in sorted(suppliers.items())
            ],
        }

    def reason_counts(self) -> Counter[str]:
        """Reason codes over all documents."""
        counts: Counter[str] = Counter()
        for decision in self.decided().values():
            counts.update(decision.codes)
        return +counts

    # -- wording, column-wise ---------------------------------------------------------------

    def _explained(self) -> dict[int, Decision]:
        """Decisions of the independent documents with a reason or a note, worded from the
        columns (the sequential ones are in :attr:`sequential`)."""
        t, policy = self.tables, self.policy
        wanted = np.flatnonzero(self.explain)
        if not len(wanted):
            return {}
        lines = np.flatnonzero(_member(t.ln_doc, wanted.tolist(), t.documents))
        doc = t.ln_doc[lines]
        qty, price, rate = t.ln_qty[lines], t.ln_price[lines], t.ln_rate[lines]
        allowed = np.isin(rate, [int(r.scaleb(_SCALE)) for r in policy.vat_rates])
        vat_bad = ~allowed | ((rate == 0) != t.ln_zero_category[lines])
        found = self.found[lines]
        check = self.header[doc] == 0
        not_on_po = check & ~found
        if len(t.ol_po):
            row = self.row[lines]
            po_price, po_rate, ordered = t.ol_price[row], t.ol_rate[row], t.ol_qty[row]
            got, needs_receipt = self.received[row], found & t.ol_receipt[row]
        else:
            row = np.zeros(len(lines), dtype=np.int64)
            po_price = po_rate = ordered = got = row
            needs_receipt = np.zeros(len(lines), dtype=np.bool_)
        factor = 10**6 + int(policy.qty_tolerance_pct.scaleb(_SCALE))
        price_differs = found & (price != po_price)
        rate_differs = found & (rate != po_rate)
        over_ordered = found & (qty * 10**6 > ordered * factor)
        not_received = needs_receipt & (got <= 0)
        over_received = needs_receipt & (got > 0) & (qty * 10**6 > got * factor)
        flagged = vat_bad | not_on_po | price_differs | rate_differs | over_ordered | not_received
        flagged |= over_received

        reasons: defaultdict[int, list[Reason]] = defaultdict(list)
        notes: defaultdict[int, list[Reason]] = defaultdict(list)
        for i in wanted[self.header[wanted] != 0].tolist():
            reasons[i].append(self._header_reason(i))
        accepted = list(policy.vat_rates)
        tolerance = {
            c: messages.tolerance_text(policy.price_tolerance_pct, policy.price_tolerance_abs, c)
            for c in t.currencies
        }
        columns = (
            doc.tolist(),
            lines.tolist(),
            vat_bad.tolist(),
            check.tolist(),
            not_on_po.tolist(),
            price_differs.tolist(),
            rate_differs.tolist(),
            over_ordered.tolist(),
            not_received.tolist(),
            over_received.tolist(),
            row.tolist(),
            qty.tolist(),
            price.tolist(),
            po_price.tolist(),
            rate.tolist(),
            po_rate.tolist(),
            ordered.tolist(),
            got.tolist(),
            price_over_mask(price, po_price, policy).tolist(),
        )
        labels, categories, ln_line = t.ln_label, t.ln_category, t.ln_line
        for k in np.flatnonzero(flagged).tolist():
            i, line = columns[0][k], columns[1][k]
            label = int(labels[line])
            currency = t.currencies[int(t.doc_currency[i])]
            if columns[2][k]:
                category = t.categories[int(categories[line])]
                text = messages.vat_category(label, columns[14][k], category, accepted)
                reasons[i].append(Reason("VAT_RATE_MISMATCH", label, text))
            if not columns[3][k]:
                continue
            po = t.po_numbers[int(t.doc_po[i])]
            if columns[4][k]:
                text = messages.line_not_on_po(label, po, str(int(ln_line[line])))
                reasons[i].append(Reason("LINE_NOT_ON_PO", label, text))
                continue
            po_line_no = int(t.ol_line[columns[10][k]])
            if columns[5][k]:
                invoiced, po_unit = columns[12][k], columns[13][k]
                text = messages.price(label, po_line_no, invoiced, po_unit, tolerance[currency], currency)
                if columns[18][k]:
                    reasons[i].append(Reason("PRICE_OVER_TOLERANCE", label, text))
                elif invoiced < po_unit:
                    notes[i].append(Reason("PRICE_UNDER_PO", label, text))
                else:
                    notes[i].append(Reason("PRICE_WITHIN_TOLERANCE", label, text + messages.WITHIN_TOLERANCE))
            if columns[6][k]:
                text = messages.vat_rate_differs(label, columns[14][k], columns[15][k])
                reasons[i].append(Reason("VAT_RATE_MISMATCH", label, text))
            # An independent invoice is the only one billing its PO lines: its own
            # quantity is the running total, nothing billed before.
            total = columns[11][k]
            for code, hit, limit in (
                ("QTY_OVER_ORDERED", columns[7][k], columns[16][k]),
                ("NOT_RECEIVED", columns[8][k], 0),
                ("QTY_OVER_RECEIVED", columns[9][k], columns[17][k]),
            ):
                if hit:
                    text = messages.quantity(code, label, po_line_no, "invoice", total, 0, limit)
                    reasons[i].append(Reason(code, label, text))
        out: dict[int, Decision] = {}
        pennies = _pennies(self.gross)
        for i in wanted.tolist():
            found_reasons = reasons[i]
            out[i] = Decision(
                invoice_number=t.doc_numbers[i],
                supplier_vat=t.vat_numbers[int(t.doc_vat[i])],
                document_type=t.doc_types[i],
                decision="hold" if found_reasons else "approve",
                reasons=tuple(found_reasons),
                po_number=t.doc_po_numbers[i],
                gross_amount=Decimal(int(pennies[i])).scaleb(-2),
                notes=tuple(notes[i]),
                issue_date=t.doc_dates[i],
                currency=t.currencies[int(t.doc_currency[i])],
                source=t.doc_sources[i],
            )
        return out

    def _header_reason(self, i: int) -> Reason:
        t = self.tables
        code = int(self.header[i])
        kind = "credit note" if t.doc_credit[i] else "invoice"
        if code == _NO_PO:
            return Reason("NO_PO", None, messages.no_po(kind))
        po = str(t.doc_po_numbers[i])
        if code == _PO_NOT_FOUND:
            return Reason("PO_NOT_FOUND", None, messages.po_not_found(po))
        po_code = int(t.doc_po[i])
        if code == _SUPPLIER_MISMATCH:
            text = messages.supplier_mismatch(
                t.vat_numbers[int(t.doc_vat[i])], po, t.vat_numbers[int(t.po_vat[po_code])]
            )
            return Reason("SUPPLIER_MISMATCH", None, text)
        if code == _CURRENCY_MISMATCH:
            text = messages.currency_mismatch(
                kind, t.currencies[int(t.doc_currency[i])], po, t.currencies[int(t.po_currency[po_code])]
            )
            return Reason("CURRENCY_MISMATCH", None, text)
        return Reason("LINE_NOT_ON_PO", None, messages.no_lines(kind, po))


_NO_PO, _PO_NOT_FOUND, _SUPPLIER_MISMATCH, _CURRENCY_MISMATCH, _NO_LINES = 1, 2, 3, 4, 5


def price_over_mask(price: Int64Array, po_price: Int64Array, policy: MatchingPolicy) -> BoolArray:
    """Over the PO price by more than the stricter of the % and the absolute tolerance
    (prices in 1/10,000; as in the line rules)."""
    pct = int(policy.price_tolerance_pct.scaleb(_SCALE))
    absolute = int(policy.price_tolerance_abs.scaleb(_SCALE))
    over = price - po_price
    return (over > 0) & ((over * 10**6 > po_price * pct) | (over > absolute))


_ZERO = Decimal(0)


def _decimal(scaled: int) -> Decimal:
    """An exact column value (10^-4 units) as a Decimal."""
    return Decimal(scaled).scaleb(-_SCALE)


def _pennies(scaled: Int64Array) -> Int64Array:
    """Amounts in 10^-4 units to pennies, rounded half away from zero (as ``_money``)."""
    return _round_half_up(scaled, 100)


def _cents(pennies: int) -> Decimal:
    return Decimal(pennies).scaleb(-2)


def _ranks(values: Sequence[Any]) -> Int64Array:
    """Each value's rank among the distinct values, sorted (equal values, equal ranks).

    Strings are sorted by numpy as fixed-width unicode (code point order, as Python
    compares them), unless one holds a NUL, which numpy's strings cannot keep."""
    if values and all(type(v) is str for v in values):
        joined = "".join(values)
        if "\x00" not in joined:
            _, inverse = np.unique(np.array(values, dtype=str), return_inverse=True)
            return inverse.astype(np.int64).reshape(-1)
    book = {value: rank for rank, value in enumerate(sorted(set(values)))}
    return np.fromiter(map(book.__getitem__, values), dtype=np.int64, count=len(values))


def _payables(t: MatchTables) -> list[Decimal]:
    """Every document's payable amount, exactly (from models where the columns cannot hold it)."""
    if t.doc_payables:
        return t.doc_payables
    payables = [_decimal(v) for v in t.doc_payable.tolist()]
    bad = np.flatnonzero(t.doc_bad).tolist()
    for i, model in zip(bad, t.invoice_models(bad), strict=True):
        payables[i] = model.totals.payable
    return payables


def _processing_order(t: MatchTables) -> Int64Array:
    """Input indices in the order the sequential pass processes documents, by sorting
    rank columns; runs of equal coarse keys are ordered by full content, from models."""
    docs = t.documents
    if not docs:
        return np.zeros(0, dtype=np.int64)
    vat_rank = _ranks([normalise_vat(v) for v in t.vat_numbers])[t.doc_vat]
    keys = [
        t.doc_date,
        vat_rank,
        _ranks(_number_keys(t.doc_numbers)),
        _ranks(t.doc_numbers),
        _ranks(t.doc_types),
        _ranks([p or "" for p in t.doc_po_numbers]),
        t.doc_payable if not t.doc_bad.any() else _ranks(_payables(t)),
        t.doc_line_counts,
    ]
    order = np.lexsort(keys[::-1])
    same = np.ones(docs - 1, dtype=np.bool_)
    for key in keys:
        ordered = key[order]
        same &= ordered[1:] == ordered[:-1]
    if same.any():
        # Ties are broken on full content, as the sequential pass does (rare).
        starts = np.flatnonzero(np.r_[True, ~same])
        ends = np.r_[starts[1:], docs]
        for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
            if end - start > 1:
                run = order[start:end].tolist()
                models = t.invoice_models(run)
                ranked = sorted(range(len(run)), key=lambda k: content_key(models[k]))
                order[start:end] = [run[k] for k in ranked]
    return order


def _money(scaled: int) -> Decimal:
    # Gross is quantized to pennies on decisions (ROUND_HALF_UP), as the engine does.
    pennies = (abs(scaled) + 50) // 100
    return (Decimal(-pennies if scaled < 0 else pennies) / 100).quantize(Decimal("0.01"))


# --- the engine ------------------------------------------------------------------------


def match_tables(tables: MatchTables, policy: MatchingPolicy | None = None) -> MatchResult:
    """Decide every document of ``tables``; see the module docstring for how.

    Returns:
        A :class:`MatchResult`: ``decision`` per document in input order (0 approve,
        1 hold, 2 reject), counts, and :meth:`MatchResult.decisions` for the full list.
    """
    policy = policy or MatchingPolicy()
    t = tables
    docs = t.documents
    po_count = len(t.po_numbers)

    # -- 1. documents only the sequential pass may decide (structural) -------------------
    vat_keys = [normalise_vat(v) for v in t.vat_numbers]
    overridden = np.array([bool(k) and k in policy.suppliers for k in vat_keys], dtype=np.bool_)
    line_odd = t.ln_bad | (t.ln_line < 0) | (t.ln_qty <= 0) | (np.abs(t.ln_rate) >= _LINE_LIMIT)
    line_odd |= t.ln_label < 0
    sequential = (
        t.doc_credit
        | t.doc_bad
        | t.doc_adjusted
        | (overridden[t.doc_vat] if docs else np.zeros(0, np.bool_))
        | _segment_any(line_odd, t.ln_doc, docs)
    )

    # -- 2. PO header checks ----------------------------------------------------------------
    has_po = t.doc_po >= 0
    po_index = np.where(has_po, t.doc_po, 0)
    header_hold = ~has_po
    # Suppliers compared by normalised VAT number: codes of the normalised keys.
    key_book: dict[str, int] = {}
    vat_key_code = _codes(vat_keys, key_book)
    empty_code = key_book.setdefault("", len(key_book))
    doc_key_code = vat_key_code[t.doc_vat] if docs else np.zeros(0, np.int64)
    if po_count:
        po_key = vat_key_code[t.po_vat][po_index]
        supplier_bad = has_po & (po_key != empty_code) & (po_key != doc_key_code)
        currency_bad = has_po & ~supplier_bad & (t.po_currency[po_index] != t.doc_currency)
        header_hold |= supplier_bad | currency_bad
    header_hold |= t.doc_line_counts == 0
    check_doc = ~header_hold
    # Which document-level reason, for the wording (first that applies, as the rules read).
    header = np.zeros(docs, dtype=np.int8)
    header[t.doc_line_counts == 0] = _NO_LINES
    if po_count:
        header[currency_bad] = _CURRENCY_MISMATCH
        header[supplier_bad] = _SUPPLIER_MISMATCH
    header[t.doc_po == -2] = _PO_NOT_FOUND
    header[t.doc_po == -1] = _NO_PO

    # -- 3. line rules ----------------------------------------------------------------------
    ln_doc = t.ln_doc
    rate_set = np.array(sorted({int(r.scaleb(_SCALE)) for r in policy.vat_rates}), dtype=np.int64)
    if any(r.scaleb(_SCALE) != int(r.scaleb(_SCALE)) for r in policy.vat_rates):
        sequential[:] = True
    # PO line of each invoice line (order lines the columns cannot hold are never found),
    # block by block (see _line_rules) ...
    lookup = _LineLookup(t.ol_po, t.ol_line, t.ol_bad, po_count)
    # ... and, in the same blocks, the total quantity billed per PO line and how many
    # invoice lines bill it.
    found = np.zeros(len(ln_doc), dtype=np.bool_)
    row = np.zeros(len(ln_doc), dtype=np.int64)
    total_qty = np.zeros(len(t.ol_po), dtype=np.int64)
    billed = np.zeros(len(t.ol_po), dtype=np.int64)
    for start, end in _blocks(len(ln_doc)):
        doc = ln_doc[start:end]
        block_found, block_row = lookup.rows(po_index[doc], t.ln_line[start:end])
        block_found &= check_doc[doc]
        found[start:end], row[start:end] = block_found, block_row
        hit = block_row[block_found]
        np.add.at(total_qty, hit, t.ln_qty[start:end][block_found])
        np.add.at(billed, hit, 1)
    # A PO with a line the columns cannot hold exactly: its documents go to the
    # sequential pass (their lines would not find that PO line here).
    if po_count:
        po_has_bad = np.bincount(t.ol_po[t.ol_bad], minlength=po_count) > 0
        sequential |= has_po & po_has_bad[po_index]

    pct = int(policy.price_tolerance_pct.scaleb(_SCALE))
    absolute = int(policy.price_tolerance_abs.scaleb(_SCALE))
    if max(pct, absolute) >= _UNIT_LIMIT or policy.price_tolerance_abs.scaleb(_SCALE) != absolute:
        sequential[:] = True  # tolerances beyond the integer columns: all by the sequential pass
    qty_pct = int(policy.qty_tolerance_pct.scaleb(_SCALE))
    if qty_pct >= _UNIT_LIMIT or policy.qty_tolerance_pct.scaleb(_SCALE) != qty_pct:
        sequential[:] = True
    if policy.price_tolerance_pct.scaleb(_SCALE) != pct:
        sequential[:] = True

    received = np.zeros(len(t.ol_po), dtype=np.int64)
    receipt_bad = np.zeros(len(t.ol_po), dtype=np.bool_)
    if len(t.rc_po):
        rc_found, rc_row = lookup.rows(t.rc_po, t.rc_line)
        np.add.at(received, rc_row[rc_found], t.rc_qty[rc_found])
        # A receipt too large for the columns: those PO lines go to the sequential pass.
        receipt_bad[rc_row[rc_found & t.rc_bad]] = True
    line_docs, shared_lines = _line_rules(
        t,
        found,
        row,
        check_doc,
        total_qty,
        billed,
        received,
        receipt_bad,
        rate_set,
        pct,
        absolute,
        10**6 + qty_pct,
    )
    # One PO line billed twice by one document: only lines of PO lines billed more than
    # once at all (a split delivery, a second invoice) can be, so only they are grouped.
    if len(shared_lines):
        twice = _group_sizes(ln_doc[shared_lines], row[shared_lines]) > 1
        sequential |= _docs_with(ln_doc[shared_lines[twice]], docs)
    sequential |= _docs_with(line_docs["sequential"], docs)

    # -- 4. totals and gross ----------------------------------------------------------------
    net_sum = np.zeros(docs, dtype=np.int64)
    np.add.at(net_sum, ln_doc, t.ln_net)
    sequential |= np.abs(net_sum) >= _AMOUNT_LIMIT
    # VAT per (document, rate) group, rounded half up to the penny per group.
    vat_computed = np.zeros(docs, dtype=np.int64)
    gross_inexact = np.zeros(docs, dtype=np.bool_)
    if len(ln_doc):
        _vat_per_document(ln_doc, t.ln_rate, t.ln_net, vat_computed, gross_inexact)
    stated = (t.doc_net != 0) | (t.doc_tax != 0) | (t.doc_inclusive != 0) | (t.doc_payable != 0)
    consistent = (
        (t.doc_net == net_sum)
        & (t.doc_tax == vat_computed)
        & (
            (t.doc_inclusive == 0)
            | (t.doc_tax_exclusive == 0)
            | (t.doc_inclusive == t.doc_tax_exclusive + t.doc_tax)
        )
    )
    sequential |= stated & ~consistent
    stated_gross = np.where(
        t.doc_payable != 0,
        t.doc_payable,
        np.where(
            t.doc_inclusive != 0,
            t.doc_inclusive,
            np.where(t.doc_tax_exclusive != 0, t.doc_tax_exclusive, net_sum) + t.doc_tax,
        ),
    )
    gross = np.where(stated, stated_gross, net_sum + vat_computed)
    # Where a gross amount could not be computed exactly, the possible-duplicate buckets
    # of that supplier are unknown: all its documents go to the sequential pass.
    gross_unknown = (
        gross_inexact | t.doc_bad | _segment_any(t.ln_bad, ln_doc, docs) | (np.abs(net_sum) >= _AMOUNT_LIMIT)
    )
    sequential |= gross_unknown
    if gross_unknown.any():
        sequential |= np.isin(doc_key_code, np.unique(doc_key_code[gross_unknown]))

    # -- 5. duplicates: shared keys are the sequential pass's business -----
    # Normalised numbers by their hash: equal numbers share it; a rare collision only
    # makes a group look larger (sequential pass), never changes a decision.
    number_code = t.doc_number_key
    fy = _financial_years(t.doc_date)
    kind = t.doc_credit.astype(np.int64)
    sequential |= _group_sizes(doc_key_code, kind, number_code, fy) > 1
    sequential |= _group_sizes(doc_key_code, kind, gross) > 1

    # -- 6. per document: reasons and notes --------------------------------------------------
    reason = header_hold | _docs_with(line_docs["reason"], docs)
    note = _docs_with(line_docs["note"], docs)
    # A PO with several documents is independent only when all of them are clean and
    # their totals stay within what was ordered and received: any order then approves all.
    docs_on_po = np.bincount(t.doc_po[has_po], minlength=po_count) if po_count else np.zeros(0, np.int64)
    shared = has_po & (docs_on_po[po_index] > 1) if po_count else np.zeros(docs, np.bool_)
    busy = _docs_with(line_docs["busy"], docs)
    sequential |= shared & (reason | note | busy)

    # -- 7. close over shared state: credited invoices, then POs --------------------------
    # Credit notes are all decided by the sequential pass; the invoices they may credit
    # (same supplier, same number key) share their state, and so does every document on
    # the POs of any of these.
    credit_notes = [i for i in np.flatnonzero(t.doc_credit).tolist() if t.doc_billing[i]]
    if credit_notes:
        referenced = np.array(
            [hash(normalise_invoice_number(str(t.doc_billing[i]))) for i in credit_notes], dtype=np.int64
        )
        with np.errstate(over="ignore"):
            credited = referenced * np.int64(1_000_003) + doc_key_code[np.array(credit_notes)]
            pair = number_code * np.int64(1_000_003) + doc_key_code
        sequential |= np.isin(pair, credited)
    if po_count:
        # Each document has one PO, so one pass reaches the closure.
        po_sequential = np.bincount(t.doc_po[sequential & has_po], minlength=po_count) > 0
        sequential |= has_po & po_sequential[po_index]

    # -- 8. decide -------------------------------------------------------------------------
    decision = np.where(reason, _HOLD, _APPROVE).astype(np.int8)
    # Lines with each core exception, counted on the documents decided column-wise.
    core_counts = {code: int((~sequential[line_docs[code]]).sum()) for code in CORE_CODES}
    sequential_decisions = t.sequential_match(np.flatnonzero(sequential).tolist(), policy)
    for i, found_decision in sequential_decisions.items():
        decision[i] = _KINDS.index(found_decision.decision)
    return MatchResult(
        tables=t,
        policy=policy,
        decision=decision,
        explain=~sequential & (reason | note),
        sequential=sequential_decisions,
        gross=gross,
        core_counts=core_counts,
        header=header,
        found=found,
        row=row,
        received=received,
    )


_CHUNK_LINES = 1 << 15
"""Invoice lines per block in :func:`_line_rules`: a block's columns stay in the CPU
cache through the two dozen passes the rules make over them."""


def _member(values: Int64Array, wanted: Sequence[int], size: int) -> BoolArray:
    """``np.isin(values, wanted)`` for codes in ``0..size-1`` (negative codes are never
    wanted), by one lookup table: linear, where ``isin`` sorts or tables per call."""
    table = np.zeros(size + 1, dtype=np.bool_)
    table[np.array(wanted, dtype=np.int64)] = True
    return table[np.where(values >= 0, values, size)]


def _docs_with(documents: Int64Array, docs: int) -> BoolArray:
    """A per-document mask: true for the documents listed (repeats allowed)."""
    mask = np.zeros(docs, dtype=np.bool_)
    mask[documents] = True
    return mask


def _blocks(lines: int) -> Iterable[tuple[int, int]]:
    """(start, end) of each block of :data:`_CHUNK_LINES` invoice lines."""
    for start in range(0, lines, _CHUNK_LINES):
        yield start, min(start + _CHUNK_LINES, lines)


def _line_rules(
    t: MatchTables,
    found: BoolArray,
    row: Int64Array,
    check_doc: BoolArray,
    total_qty: Int64Array,
    billed: Int64Array,
    received: Int64Array,
    receipt_bad: BoolArray,
    rate_set: Int64Array,
    pct: int,
    absolute: int,
    factor: int,
) -> tuple[dict[str, Int64Array], Int64Array]:
    """The line rules, block by block over the invoice lines.

    Each block of :data:`_CHUNK_LINES` lines is checked against its PO lines (price
    tolerance, VAT rate and category, arithmetic, quantity against ordered, received and
    the total billed). Done whole-column, a million lines made every pass a trip to
    memory; in blocks the passes stay in cache.

    Returns:
        What comes out is sparse. Per key, the documents (repeats allowed) with a
        ``reason``, a ``note``, a ``busy`` PO line (over what was ordered or received
        all together), or a line only the sequential pass may decide (``sequential``),
        and per core code the documents of the lines that have it; and the lines whose
        PO line is billed by more than one invoice line.
    """
    parts: dict[str, list[Int64Array]] = {
        key: [] for key in ("reason", "note", "busy", "sequential", *CORE_CODES)
    }
    shared_parts: list[Int64Array] = []
    has_orders = len(t.ol_po) > 0
    for start, end in _blocks(len(t.ln_doc)):
        doc = t.ln_doc[start:end]
        block_found, block_row = found[start:end], row[start:end]
        qty, price, rate = t.ln_qty[start:end], t.ln_price[start:end], t.ln_rate[start:end]
        allowed = np.zeros(len(rate), dtype=np.bool_)
        for allowed_rate in rate_set.tolist():  # a handful of rates: a pass each
            allowed |= rate == allowed_rate
        vat_bad = ~allowed | ((rate == 0) != t.ln_zero_category[start:end])
        arithmetic_off = t.ln_net[start:end] * 10**_SCALE != qty * price
        not_on_po = check_doc[doc] & ~block_found
        if has_orders:
            po_price, po_rate = t.ol_price[block_row], t.ol_rate[block_row]
            ordered, got, line_total = t.ol_qty[block_row], received[block_row], total_qty[block_row]
            needs_receipt = block_found & t.ol_receipt[block_row]
            bad_receipt, shared = receipt_bad[block_row], billed[block_row] > 1
        else:  # nothing found: every value below is masked by ``block_found``
            po_price = po_rate = ordered = got = line_total = np.zeros(len(doc), dtype=np.int64)
            needs_receipt = bad_receipt = shared = np.zeros(len(doc), dtype=np.bool_)
        over = price - po_price
        price_differs = block_found & (over != 0)
        price_over = price_differs & (over > 0) & ((over * 10**6 > po_price * pct) | (over > absolute))
        rate_differs = block_found & (rate != po_rate)
        # For a document alone on its PO line, its own quantity is the running total.
        over_ordered = block_found & (qty * 10**6 > ordered * factor)
        not_received = needs_receipt & (got <= 0)
        over_received = needs_receipt & (got > 0) & (qty * 10**6 > got * factor)
        busy = block_found & (
            (line_total * 10**6 > ordered * factor) | (needs_receipt & (line_total * 10**6 > got * factor))
        )
        sequential = arithmetic_off | (
            block_found & (bad_receipt | (line_total >= _UNIT_LIMIT) | (np.abs(got) >= _UNIT_LIMIT))
        )
        reason = vat_bad | not_on_po | price_over | rate_differs | over_ordered | not_received | over_received
        note = arithmetic_off | (price_differs & ~price_over)
        for key, mask in (
            ("reason", reason),
            ("note", note),
            ("busy", busy),
            ("sequential", sequential),
            ("PRICE_OVER_TOLERANCE", price_over),
            ("QTY_OVER_ORDERED", over_ordered),
            ("QTY_OVER_RECEIVED", over_received),
            ("NOT_RECEIVED", not_received),
            ("LINE_NOT_ON_PO", not_on_po),
        ):
            parts[key].append(doc[mask])
        shared_parts.append(np.flatnonzero(block_found & shared) + start)
    empty = np.zeros(0, dtype=np.int64)
    return (
        {key: np.concatenate(found_parts) if found_parts else empty for key, found_parts in parts.items()},
        np.concatenate(shared_parts) if shared_parts else empty,
    )


def _vat_per_document(
    ln_doc: Int64Array, rate: Int64Array, net: Int64Array, vat: Int64Array, inexact: BoolArray
) -> None:
    """Add to ``vat`` each document's VAT: per (document, rate) group, net × rate rounded
    half up to the penny (in 10^-4 units). Groups too large for int64 products mark the
    document ``inexact`` instead.

    With few distinct rates (the usual case) the groups are cells of a document × rate
    grid filled in one pass; otherwise they are found by sorting.
    """
    docs = len(vat)
    rates = np.unique(rate[: 1 << 12])
    slot = np.minimum(np.searchsorted(rates, rate), len(rates) - 1)
    missing = rates[slot] != rate
    if missing.any():
        rates = np.union1d(rates, rate[missing])
        slot = np.searchsorted(rates, rate)
    if _direct(len(rates) * docs, len(rate), per_row=8):
        grid = np.zeros(docs * len(rates), dtype=np.int64)
        np.add.at(grid, ln_doc * len(rates) + slot, net)
        cells = grid.reshape(docs, len(rates))
        too_big = (np.abs(cells) >= _AMOUNT_LIMIT) | (np.abs(rates) >= _LINE_LIMIT)[None, :]
        # Only groups that have lines count (an empty cell is not a group).
        present = np.zeros(docs * len(rates), dtype=np.bool_)
        present[ln_doc * len(rates) + slot] = True
        too_big &= present.reshape(docs, len(rates))
        if too_big.any():
            inexact[np.flatnonzero(too_big.any(axis=1))] = True
            cells = np.where(too_big, 0, cells)
        # net (10^-4) × rate (10^-4) / 100 = VAT in 10^-10; pennies are 10^-2.
        safe_rates = np.where(np.abs(rates) >= _LINE_LIMIT, 0, rates)
        vat += _round_half_up(cells * safe_rates[None, :], 10**8).sum(axis=1) * 100
        return
    order = np.lexsort((rate, ln_doc))
    d_sorted, r_sorted = ln_doc[order], rate[order]
    starts = np.flatnonzero(np.r_[True, (d_sorted[1:] != d_sorted[:-1]) | (r_sorted[1:] != r_sorted[:-1])])
    group_net = np.add.reduceat(net[order], starts)
    too_big = (np.abs(group_net) >= _AMOUNT_LIMIT) | (np.abs(r_sorted[starts]) >= _LINE_LIMIT)
    if too_big.any():
        inexact[d_sorted[starts[too_big]]] = True
        group_net = np.where(too_big, 0, group_net)
    pennies = _round_half_up(group_net * r_sorted[starts], 10**8)
    np.add.at(vat, d_sorted[starts], pennies * 100)


class _LineLookup:
    """The order-book row of a (PO code, line number), for many at once.

    Order lines the columns cannot hold exactly (``bad``) are never found. A direct table
    (one slot per PO and line number) when that is at most a few slots per order line,
    which makes each lookup constant time; otherwise a sorted key search.
    """

    def __init__(self, po: Int64Array, line: Int64Array, bad: BoolArray, po_count: int) -> None:
        valid = ~bad
        self.rows_valid = np.flatnonzero(valid)
        self.width = int(line[valid].max()) + 1 if len(self.rows_valid) else 1
        self.direct = _direct(po_count * self.width, len(po))
        if self.direct:
            self.table = np.full(po_count * self.width, -1, dtype=np.int64)
            self.table[po[valid] * self.width + line[valid]] = self.rows_valid
        else:
            keys = po[valid] * _LINE_LIMIT + line[valid]
            order = np.argsort(keys, kind="stable")
            self.sorted_keys, self.sorted_rows = keys[order], self.rows_valid[order]

    def rows(self, po: Int64Array, line: Int64Array) -> tuple[BoolArray, Int64Array]:
        """Per query: found, and the row (0 where not found)."""
        if self.direct:
            inside = (po >= 0) & (line >= 0) & (line < self.width) & (po * self.width < len(self.table))
            if not len(self.table):
                return inside, np.zeros(len(po), dtype=np.int64)
            row = self.table[np.where(inside, po * self.width + line, 0)]
            found = inside & (row >= 0)
            return found, np.where(found, row, 0)
        inside = (po >= 0) & (line >= 0) & (line < _LINE_LIMIT)
        if not len(self.sorted_keys):
            return inside & False, np.zeros(len(po), dtype=np.int64)
        key = po * _LINE_LIMIT + np.where(inside, line, 0)
        where = np.minimum(np.searchsorted(self.sorted_keys, key), len(self.sorted_keys) - 1)
        found = inside & (self.sorted_keys[where] == key)
        return found, np.where(found, self.sorted_rows[where], 0)


def match_documents(
    orders: Iterable[PurchaseOrder],
    receipts: Iterable[GoodsReceipt | ReceiptLine],
    invoices: Iterable[Invoice],
    policy: MatchingPolicy | None = None,
) -> list[Decision]:
    """Decide every document: :class:`MatchTables` of the models, :func:`match_tables`,
    then :meth:`MatchResult.decisions` (the oracle's very list, in processing order).
    What ``procbots match``, the invoice-matching flow and the inbox bot call: one path
    at every size, the sequential pass deciding the documents that depend on others.

    Raises:
        ValueError: a PO number appears on more than one order (as the oracle does).
    """
    return match_tables(MatchTables.from_models(orders, receipts, invoices), policy).decisions()


_EPOCH = dt.date(1970, 1, 1).toordinal()


def _financial_years(ordinals: Int64Array) -> Int64Array:
    """``financial_year`` of each date (given as ``date.toordinal()``), column-wise."""
    months = (ordinals - _EPOCH).astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)
    year, month = 1970 + months // 12, months % 12 + 1
    return year - (month < 4)


_KEEP = frozenset(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz\x00")
_DELETE = bytes(c for c in range(256) if c not in _KEEP)
_LEADING_ZEROS_BYTES = re.compile(rb"(?<![0-9])0+(?=[0-9])")


def _number_keys(numbers: Sequence[str]) -> list[str]:
    """``normalise_invoice_number`` of every number, in one pass over their bytes when
    they are all ASCII (the usual case; a hundred times fewer calls)."""
    joined = "\x00".join(numbers)
    if not numbers or not joined.isascii() or joined.count("\x00") != len(numbers) - 1:
        return [normalise_invoice_number(n) for n in numbers]
    data = _LEADING_ZEROS_BYTES.sub(b"", b"\x00" + joined.encode("ascii"))
    return data.translate(None, _DELETE).upper().decode("ascii").split("\x00")[1:]
