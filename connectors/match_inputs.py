"""The inputs of invoice matching: orders, receipts, invoices, policy.

``procbots match`` and the ``invoice-matching`` flow's file mode read the same files
the same way through these functions. Each returns models ready for
:func:`bots.domain.match_tables.match_documents`, or raises :class:`MatchInputError` whose message
names every bad file, row and field (the first 50 of them). Nothing is returned half
read: a half-read order book would turn good invoices into ``PO_NOT_FOUND`` holds.

* :func:`load_orders`: orders CSV/XLSX (every row needs a ``po_number``).
* :func:`load_receipts`: goods receipts CSV/XLSX.
* :func:`load_invoices`: invoices and credit notes, PEPPOL UBL 2.1 XML or CSV/XLSX
  rows; a folder means every such file in it. :func:`read_invoice_files` reads the same
  file by file, naming the files that cannot be read instead of refusing the batch.
* :func:`load_policy`: the configured matching policy, with a TOML file layered over it.

Column layouts are those of :mod:`connectors.formats`. Messages name the command-line
option a file came in by (``--orders``, ``--invoices``, ...), as both callers take these
files through options of those names.

Example:
    >>> from bots.domain.match_tables import match_documents
    >>> from connectors.match_inputs import load_invoices, load_orders, load_policy, load_receipts
    >>> decisions = match_documents(  # doctest: +SKIP
    ...     load_orders(Path("orders.csv")),
    ...     load_receipts(Path("receipts.csv")),
    ...     load_invoices([Path("inbox/")]),
    ...     load_policy(Path("policy.toml")),
    ... )
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from bots.domain.matching import MatchingPolicy
    from bots.domain.models import GoodsReceipt, Invoice, PurchaseOrder

__all__ = [
    "InvoiceFiles",
    "MatchInputError",
    "load_invoices",
    "load_orders",
    "load_policy",
    "load_receipts",
    "read_invoice_files",
]

_INVOICE_SUFFIXES = {".xml", ".csv", ".xlsx", ".xlsm"}
_TABLE_SUFFIXES = {".csv", ".xlsx", ".xlsm"}
_Document = TypeVar("_Document")
_SHOWN = 50
"""Problems listed in one message; a file with thousands of bad rows says how many more."""


class MatchInputError(Exception):
    """Bad matching input: the message names the file (and row, column or element)."""


def load_policy(path: Path | None) -> MatchingPolicy:
    """The configured matching policy (settings), with a policy TOML file layered over it.

    The file holds :class:`~bots.domain.matching.MatchingPolicy` fields, with per-supplier
    overrides in ``[suppliers."GB..."]`` tables (added to the configured ones); a whole
    procbots config with just a ``[matching]`` table is accepted too.

    Raises:
        MatchInputError: the file is missing, not TOML, or names an unknown setting or a
            bad value (each named with its path, e.g. ``suppliers.GB980780684.price_tolerance_pct``).

    Example:
        >>> load_policy(None).price_tolerance_pct  # doctest: +SKIP
        Decimal('2')
    """
    from pydantic import ValidationError

    from bots.domain.matching import MatchingPolicy
    from config.settings import get_settings

    base = MatchingPolicy.from_settings(get_settings().matching)
    if path is None:
        return base
    if not path.is_file():
        raise MatchInputError(f"--policy {path}: no such file")
    try:
        data: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise MatchInputError(f"--policy {path}: not valid TOML: {exc}") from None
    # A policy file may be a whole procbots config with a [matching] table.
    if set(data) == {"matching"} and isinstance(data["matching"], dict):
        data = data["matching"]
    merged = base.model_dump()
    suppliers = {**merged.pop("suppliers"), **data.pop("suppliers", {})}
    try:
        return MatchingPolicy.model_validate({**merged, **data, "suppliers": suppliers})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'policy'}={err.get('input')!r}: {err['msg']}"
            for err in exc.errors(include_url=False)
        )
        raise MatchInputError(f"--policy {path}: {problems}") from None


def load_orders(path: Path) -> list[PurchaseOrder]:
    """The purchase orders of an orders CSV/XLSX file, every row read or none.

    Raises:
        MatchInputError: the file is missing or not CSV/XLSX, rows are bad (each named
            with its row and column), or a row has no ``po_number`` (a requisition not
            yet raised as an order cannot be matched against).

    Example:
        >>> orders = load_orders(Path("orders.xlsx"))  # doctest: +SKIP
    """
    from connectors import formats

    orders = _load_table(path, "--orders", formats.load_orders)
    missing = [o.requisition_ref for o in orders if not o.po_number]
    if missing:
        raise MatchInputError(
            f"--orders {path}: rows without a po_number (requisition {missing[0]}); raise them first"
        )
    return orders


def load_receipts(path: Path) -> list[GoodsReceipt]:
    """The goods receipts of a receipts CSV/XLSX file, every row read or none.

    Raises:
        MatchInputError: the file is missing or not CSV/XLSX, or rows are bad (each
            named with its row and column).

    Example:
        >>> receipts = load_receipts(Path("receipts.csv"))  # doctest: +SKIP
    """
    from connectors import formats

    return _load_table(path, "--receipts", formats.load_receipts)


def load_invoices(paths: Iterable[Path]) -> list[Invoice]:
    """The invoices and credit notes of UBL XML and CSV/XLSX files and folders, all or none.

    A folder stands for its ``.xml``, ``.csv``, ``.xlsx`` and ``.xlsm`` files, in name
    order. Credit notes come back as :class:`~bots.domain.models.CreditNote`.

    Raises:
        MatchInputError: no file given, a file or folder missing or of another kind, a UBL
            document unreadable or not an invoice or credit note (an order, say), or bad
            rows; every problem across all the files is named in one message.

    Example:
        >>> documents = load_invoices([Path("inbox/"), Path("extra/INV-1001.xml")])  # doctest: +SKIP
    """
    files = read_invoice_files(paths)
    _raise_problems([*files.unreadable, *files.row_errors])
    return files.documents


@dataclass(slots=True)
class InvoiceFiles:
    """The invoice files of a batch, each read on its own (:func:`read_invoice_files`)."""

    documents: list[Invoice] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    """One message per file that could not be read at all, naming it and why."""
    row_errors: list[Any] = field(default_factory=list)
    """Bad rows of CSV/XLSX invoice files, each naming its file, row and column."""

    def decidable(self) -> list[Invoice]:
        """The documents to decide, when the batch can be decided without the unreadable files.

        Raises:
            MatchInputError: naming every problem, when rows are bad (as for the order book,
                a half-read file is not decided) or no file could be read at all.
        """
        if self.row_errors or not self.documents:
            _raise_problems([*self.unreadable, *self.row_errors])
        return self.documents


def read_invoice_files(paths: Iterable[Path]) -> InvoiceFiles:
    """The invoices and credit notes of UBL XML and CSV/XLSX files and folders, file by file.

    A file that cannot be read at all (malformed or unsafe XML, an encoding the reader
    does not know, not an invoice or credit note, not a readable spreadsheet) is named in
    ``unreadable`` and the other files are still read, so a batch can be decided without
    it; bad rows are collected in ``row_errors``. What to do with either is the caller's.

    Raises:
        MatchInputError: no file given, or a file or folder missing or of another kind
            (bad usage, not a bad document).

    Example:
        >>> files = read_invoice_files([Path("inbox/")])  # doctest: +SKIP
        >>> [str(p) for p in files.unreadable]  # doctest: +SKIP
        ["inbox/INV-7.xml: declares encoding 'UTF-7', which is not supported by the XML reader; ..."]
    """
    from bots.domain.models import Invoice
    from connectors.formats import load_invoice_rows
    from connectors.peppol import PeppolError, read_document
    from connectors.rows import SpreadsheetError

    files = InvoiceFiles()
    for path in _invoice_files(paths):
        if path.suffix.lower() == ".xml":
            try:
                doc = read_document(path, name=str(path))
            except PeppolError as exc:
                files.unreadable.append(str(exc))
                continue
            if not isinstance(doc.model, Invoice):
                files.unreadable.append(
                    f"{path}: is a {doc.document_type.replace('_', ' ')}, not an invoice or credit note"
                )
                continue
            files.documents.append(doc.model)
        else:
            try:
                loaded, row_errors = load_invoice_rows(path)
            except SpreadsheetError as exc:
                files.unreadable.append(str(exc))
                continue
            files.row_errors += row_errors
            files.documents += loaded
    return files


def _load_table(
    path: Path, option: str, load: Callable[[Path], tuple[list[_Document], list[Any]]]
) -> list[_Document]:
    """The documents ``load`` reads from one CSV/XLSX file, or the error naming what is wrong."""
    documents, errors = read_table_file(path, option, load)
    _raise_problems(errors)
    return documents


_Read = TypeVar("_Read")


def read_table_file(path: Path, option: str, read: Callable[[Path], _Read]) -> _Read:
    """What ``read`` makes of one CSV/XLSX input file, after checking it is one.

    Raises:
        MatchInputError: the file is missing, a folder, not .csv/.xlsx, or unreadable
            (named with the command-line ``option`` it came in by).
    """
    from connectors.rows import SpreadsheetError

    if not path.exists():
        raise MatchInputError(f"{option} {path}: no such file")
    if not path.is_file():
        raise MatchInputError(f"{option} {path}: not a file")
    if path.suffix.lower() not in _TABLE_SUFFIXES:
        raise MatchInputError(f"{option} {path}: expected a .csv or .xlsx file")
    try:
        return read(path)
    except SpreadsheetError as exc:
        raise MatchInputError(str(exc)) from None


def _raise_problems(errors: list[Any]) -> None:
    if errors:
        shown = "\n  ".join(str(e) for e in errors[:_SHOWN])
        more = f"\n  ... and {len(errors) - _SHOWN} more" if len(errors) > _SHOWN else ""
        raise MatchInputError(f"{len(errors)} problem(s) in the input:\n  {shown}{more}")


def _invoice_files(paths: Iterable[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in _INVOICE_SUFFIXES)
            if not found:
                raise MatchInputError(f"--invoices {path}: the folder holds no .xml, .csv or .xlsx files")
            files += found
        elif not path.exists():
            raise MatchInputError(f"--invoices {path}: no such file")
        elif path.suffix.lower() not in _INVOICE_SUFFIXES:
            raise MatchInputError(f"--invoices {path}: expected UBL .xml, .csv or .xlsx")
        else:
            files.append(path)
    if not files:
        raise MatchInputError("--invoices: give at least one invoice file or folder")
    return files
