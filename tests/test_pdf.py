"""connectors.pdf: only real, complete, unencrypted PDFs within the limits pass."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest
from pypdf import PdfWriter

from connectors.pdf import PdfProblem, check_pdf, check_pdf_bytes


def make_pdf(pages: int = 1, *, title: str | None = "CT-2026-0001", password: str | None = None) -> bytes:
    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(595, 842)
    if title:
        writer.add_metadata({"/Title": title})
    if password is not None:
        writer.encrypt(user_password=password, owner_password="owner-secret", algorithm="AES-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_a_good_pdf_gives_its_pages_version_title_and_sha256(tmp_path: Path) -> None:
    data = make_pdf(3)
    path = tmp_path / "CT-2026-0001.pdf"
    path.write_bytes(data)

    info = check_pdf(path)

    assert info.pages == 3
    assert info.size == len(data)
    assert info.sha256 == hashlib.sha256(data).hexdigest()
    assert info.version.startswith(("1.", "2."))
    assert info.title == "CT-2026-0001"


GOOD = make_pdf()


@pytest.mark.parametrize(
    ("data", "code", "words"),
    [
        pytest.param(b"", "PDF_EMPTY", "empty", id="empty"),
        pytest.param(b"PK\x03\x04\x14\x00" + b"\x00" * 100, "NOT_A_PDF", "Word or Excel", id="docx-renamed"),
        pytest.param(b"Dear supplier, please find attached", "NOT_A_PDF", "not a PDF", id="plain-text"),
        pytest.param(b"\x89PNG\r\n\x1a\n" + b"\x00" * 50, "NOT_A_PDF", "PNG", id="png"),
        pytest.param(GOOD[: len(GOOD) // 2], "PDF_TRUNCATED", "incomplete", id="truncated"),
        pytest.param(make_pdf(password=""), "PDF_ENCRYPTED", "encrypted", id="encrypted-empty-user-password"),
        pytest.param(make_pdf(password="let-me-in"), "PDF_ENCRYPTED", "password", id="password-protected"),
        pytest.param(
            b"%PDF-1.7\n" + b"\x00garbage" * 40 + b"\n%%EOF\n", "PDF_DAMAGED", "cannot be read", id="garbage"
        ),
    ],
)
def test_a_bad_file_is_refused_with_a_code_and_a_message_naming_it(
    data: bytes, code: str, words: str
) -> None:
    with pytest.raises(PdfProblem) as caught:
        check_pdf_bytes(data, name="inbox/CT-2026-0009.pdf")

    assert caught.value.code == code
    assert words in caught.value.message
    assert str(caught.value).startswith("CT-2026-0009.pdf: ")


def test_a_pdf_with_no_pages_is_refused() -> None:
    writer = PdfWriter()
    out = io.BytesIO()
    writer.write(out)

    with pytest.raises(PdfProblem) as caught:
        check_pdf_bytes(out.getvalue())

    assert caught.value.code == "PDF_DAMAGED"
    assert "no pages" in caught.value.message


def test_a_file_over_the_size_limit_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "huge.pdf"
    with path.open("wb") as handle:  # sparse: 3 GB on disk costs nothing
        handle.write(GOOD)
        handle.seek(3 * 1024**3)
        handle.write(b"\n%%EOF\n")

    with pytest.raises(PdfProblem) as caught:
        check_pdf(path)

    assert caught.value.code == "PDF_TOO_LARGE"
    assert "3072.0 MB" in caught.value.message
    assert "10.0 MB" in caught.value.message


def test_the_size_and_page_limits_are_parameters() -> None:
    with pytest.raises(PdfProblem, match=r"limit is 0\.0 MB"):
        check_pdf_bytes(GOOD, max_bytes=100)
    with pytest.raises(PdfProblem, match="claims 3 pages; the limit is 2"):
        check_pdf_bytes(make_pdf(3), max_pages=2)
    assert check_pdf_bytes(GOOD, max_bytes=len(GOOD)).pages == 1


def test_a_missing_file_is_not_mistaken_for_a_bad_pdf(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        check_pdf(tmp_path / "nowhere.pdf")
