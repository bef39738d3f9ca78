"""Checks that a file really is a usable PDF before it goes anywhere: the contract register
keeps what we upload for years, and a renamed Word file or a password-protected PDF
published as a contract is a compliance problem, not a typo.

:func:`check_pdf` looks, cheapest first, at

1. the size (``max_bytes``; the sandbox portal, like most trust portals, refuses over 10 MB),
2. the magic bytes (a PDF starts with ``%PDF-1.x`` or ``%PDF-2.0``),
3. the end-of-file marker in the last kilobyte (a truncated copy has none),
4. encryption (any ``/Encrypt`` dictionary, even an empty user password: the register
   must publish an open document),
5. whether pypdf parses it and can count its pages (at least one, at most ``max_pages``).

Each problem raises :class:`PdfProblem` with a stable ``code`` and a message naming the
file; a good file gives a :class:`PdfInfo` with its SHA-256, read from the same bytes
that were checked.

Example:
    >>> info = check_pdf("inbox/CT-2026-0001.pdf")  # doctest: +SKIP
    >>> info.pages, info.sha256[:12]  # doctest: +SKIP
    (1, '5d41402abc4b')
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_PAGES",
    "PdfInfo",
    "PdfProblem",
    "PdfProblemCode",
    "check_pdf",
    "check_pdf_bytes",
]

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
"""10 MB: the upload limit of the sandbox portal and of most trust contract registers."""
DEFAULT_MAX_PAGES = 2_000
"""More pages than any contract we have seen; a larger count points at a damaged file."""

PdfProblemCode = Literal[
    "PDF_EMPTY", "PDF_TOO_LARGE", "NOT_A_PDF", "PDF_TRUNCATED", "PDF_ENCRYPTED", "PDF_DAMAGED"
]

_MAGIC = re.compile(rb"%PDF-[12]\.\d")
_EOF_WINDOW = 1024


class PdfProblem(ValueError):
    """The file is not a PDF the register can take; ``code`` says which check failed."""

    def __init__(self, file: str | Path, code: PdfProblemCode, message: str) -> None:
        self.file = str(file)
        self.code: PdfProblemCode = code
        self.message = message
        super().__init__(f"{Path(self.file).name}: {message}")


@dataclass(frozen=True, slots=True)
class PdfInfo:
    """A PDF that passed every check, with what the report and the upload need."""

    path: str
    size: int
    sha256: str
    pages: int
    version: str
    title: str | None = None


def check_pdf(
    path: str | Path, *, max_bytes: int = DEFAULT_MAX_BYTES, max_pages: int = DEFAULT_MAX_PAGES
) -> PdfInfo:
    """Check the PDF at ``path`` and return its facts, or raise :class:`PdfProblem`.

    The size is checked before the file is read, so a 2 GB file costs nothing.

    Raises:
        PdfProblem: the first check the file fails (code and message name the problem).
        FileNotFoundError: there is no file at ``path``.
    """
    path = Path(path)
    size = path.stat().st_size
    if size > max_bytes:
        raise PdfProblem(path, "PDF_TOO_LARGE", f"the file is {_mb(size)}; the limit is {_mb(max_bytes)}")
    with path.open("rb") as handle:
        data = handle.read(max_bytes + 1)
    return check_pdf_bytes(data, name=str(path), max_bytes=max_bytes, max_pages=max_pages)


def check_pdf_bytes(
    data: bytes,
    *,
    name: str = "<document>",
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pages: int = DEFAULT_MAX_PAGES,
) -> PdfInfo:
    """:func:`check_pdf` for bytes already in memory (a download, an e-mail attachment)."""
    if not data:
        raise PdfProblem(name, "PDF_EMPTY", "the file is empty")
    if len(data) > max_bytes:
        raise PdfProblem(
            name, "PDF_TOO_LARGE", f"the file is {_mb(len(data))}; the limit is {_mb(max_bytes)}"
        )
    head = _MAGIC.match(data[:16])
    if head is None:
        raise PdfProblem(name, "NOT_A_PDF", f"not a PDF file (it starts with {_describe_start(data)})")
    if b"%%EOF" not in data[-_EOF_WINDOW:]:
        raise PdfProblem(
            name, "PDF_TRUNCATED", "the PDF is incomplete (no end-of-file marker): copy it again"
        )
    pages, title, encrypted = _parse(data, name)
    if encrypted:
        raise PdfProblem(
            name, "PDF_ENCRYPTED", "the PDF is encrypted or password-protected; upload an unprotected copy"
        )
    if pages < 1:
        raise PdfProblem(name, "PDF_DAMAGED", "the PDF has no pages")
    if pages > max_pages:
        raise PdfProblem(name, "PDF_DAMAGED", f"the PDF claims {pages} pages; the limit is {max_pages}")
    version = head.group(0)[5:].decode("ascii")
    return PdfInfo(name, len(data), hashlib.sha256(data).hexdigest(), pages, version, title)


def _parse(data: bytes, name: str) -> tuple[int, str | None, bool]:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    # pypdf logs every repair it makes at WARNING; the verdict is ours to report.
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            return 0, None, True
        pages = len(reader.pages)
        title = _title(reader)
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError, RecursionError) as exc:
        # pypdf raises plain Python errors on some malformed structures, not only its own.
        detail = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise PdfProblem(name, "PDF_DAMAGED", f"the PDF cannot be read ({detail})") from None
    return pages, title, False


def _title(reader: object) -> str | None:
    try:
        metadata = reader.metadata  # type: ignore[attr-defined]
        title = metadata.title if metadata is not None else None
    except Exception:  # a broken info dictionary does not make the document unusable
        return None
    return str(title) if title else None


def _mb(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


def _describe_start(data: bytes) -> str:
    known = {
        b"PK\x03\x04": "a zip signature: a Word or Excel file?",
        b"\xd0\xcf\x11\xe0": "an Office 97-2003 signature",
        b"\x89PNG": "a PNG image signature",
        b"\xff\xd8\xff": "a JPEG image signature",
        b"{\\rtf": "an RTF signature",
    }
    for magic, what in known.items():
        if data.startswith(magic):
            return what
    shown = data[:8].decode("latin-1").encode("unicode_escape").decode("ascii")
    return repr(shown)
