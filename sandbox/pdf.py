"""Small, real, one-page PDF documents with text, written by hand (no dependency).

Contract documents in the sandbox are generated many at a time, so a direct
writer is used instead of building each through a PDF library; pypdf reads them.

Example:
    >>> data = text_pdf(["Contract C-2026-0001", "Supply of examination gloves"], title="C-2026-0001")
    >>> data[:5]
    b'%PDF-'
"""

from __future__ import annotations

__all__ = ["text_pdf"]


def _pdf_string(text: str) -> str:
    # Latin-1 is what the standard Helvetica font encodes; anything else becomes '?'.
    safe = text.encode("latin-1", "replace").decode("latin-1")
    return "(" + safe.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ")"


def text_pdf(lines: list[str], title: str = "", author: str = "procbots sandbox") -> bytes:
    """An A4 PDF with ``lines`` of text in Helvetica and a document information dictionary."""
    stream_lines = ["BT", "/F1 16 Tf", "56 780 Td", "18 TL"]
    for i, line in enumerate(lines):
        if i == 1:
            stream_lines.append("/F1 11 Tf")
        stream_lines.append(f"{_pdf_string(line)} Tj T*")
    stream_lines.append("ET")
    content = "\n".join(stream_lines).encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
        b"/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Length " + str(len(content)).encode() + b" >>\nstream\n" + content + b"\nendstream",
        (
            f"<< /Title {_pdf_string(title)} /Author {_pdf_string(author)} /Producer (procbots sandbox) >>"
        ).encode("latin-1", "replace"),
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R /Info {len(objects)} 0 R >>\n"
        f"startxref\n{xref}\n%%EOF\n"
    ).encode()
    return bytes(out)
