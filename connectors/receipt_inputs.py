"""The goods-receipts bot's inputs: despatch advices and scan exports become receipt drafts.

A PEPPOL DespatchAdvice (``.xml``) is one receipt; a scan export (``.csv``/``.xlsx``)
is one receipt per purchase order and London day (:func:`bots.domain.receipts.from_scans`).
Files are taken in name order, so a repeated despatch advice is always the later file.
A file that cannot be read, or an XML document that is not a despatch advice, is one
error naming the file (and the element or row); the other files are read.

Example:
    >>> drafts, errors = receipt_drafts(sorted(Path("inbox/receipts").iterdir()))  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from bots.domain.models import DespatchAdvice
from bots.domain.receipts import ReceiptDraft, from_despatch, from_scans, with_duplicates_marked
from connectors.peppol import PeppolError, read_document
from connectors.rows import RowError, SpreadsheetError
from connectors.scans import load_scans

__all__ = ["RECEIPT_SUFFIXES", "receipt_drafts"]

RECEIPT_SUFFIXES = (".xml", ".csv", ".xlsx")


def _file_error(path: Path, message: str) -> RowError:
    return RowError(str(path), None, None, None, None, message)


def receipt_drafts(paths: Iterable[Path]) -> tuple[list[ReceiptDraft], list[RowError]]:
    """The receipts the files ask for, and one error per unreadable file or row."""
    drafts: list[ReceiptDraft] = []
    errors: list[RowError] = []
    for path in sorted(paths, key=lambda p: p.name):
        suffix = path.suffix.lower()
        if suffix == ".xml":
            try:
                doc = read_document(path)
            except PeppolError as exc:
                errors.append(_file_error(path, f"{exc.path}: {exc.reason}" if exc.path else exc.reason))
                continue
            if not isinstance(doc.model, DespatchAdvice):
                kind = doc.document_type.replace("_", " ")
                errors.append(_file_error(path, f"is a PEPPOL {kind}, not a despatch advice"))
                continue
            drafts.append(from_despatch(doc.model, path.name))
        elif suffix in (".csv", ".xlsx"):
            try:
                scans, row_errors = load_scans(path)
            except SpreadsheetError as exc:
                errors.append(exc.error)
                continue
            errors += row_errors
            drafts += from_scans(scans, path.name)
        else:
            errors.append(_file_error(path, "is not a despatch advice (.xml) or scan export (.csv, .xlsx)"))
    return with_duplicates_marked(drafts), errors
