"""Hostile and odd files, made by the tests themselves: real bytes on disk, no mocks."""

from __future__ import annotations

import zlib
from pathlib import Path


def pdf(objects: list[bytes]) -> bytes:
    """A PDF whose objects are numbered from 1 in the order given; object 1 is the catalog."""
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def stream(data: bytes) -> bytes:
    packed = zlib.compress(data, 9)
    return b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(packed) + packed + b"\nendstream"


def slow_pdf(path: Path, pages: int = 300, operators: int = 200_000) -> Path:
    """A small PDF whose pages all draw one content stream of `operators` text operators: a few KB on
    disk, and seconds (or, at 1M operators, a minute) of text extraction per page."""
    content = b"BT /F1 12 Tf 72 720 Td " + b"(a) Tj " * operators + b"ET"
    first_page = 5
    kids = b" ".join(b"%d 0 R" % (first_page + i) for i in range(pages))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, pages),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        stream(content),
    ] + [b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
         b"/Contents 4 0 R >>"] * pages
    path.write_bytes(pdf(objects))
    return path


def text_pdf(path: Path, lines: list[str]) -> Path:
    """A one-page PDF that shows `lines` of plain ASCII text."""
    ops = b"BT /F1 11 Tf 14 TL 72 740 Td " + b" ".join(
        b"(" + line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)").encode("latin-1") + b") '"
        for line in lines) + b" ET"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [5 0 R] /Count 1 >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        stream(ops),
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
        b"/Contents 4 0 R >>",
    ]
    path.write_bytes(pdf(objects))
    return path


def escape_in_error_pdf(path: Path) -> Path:
    """A two-page PDF whose second page names a filter made of terminal escape codes: the parser's
    warning about it quotes them (setting a terminal's title and colours, if printed raw)."""
    evil = b"".join(b"#%02x" % c for c in b"X\x1b]0;PWNED\x07\x1b[41mRED\x1b[0m")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [5 0 R 6 0 R] /Count 2 >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        stream(b"BT /F1 12 Tf 72 720 Td (The governing law is the law of Delaware.) Tj ET"),
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
        b"/Contents 4 0 R >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
        b"/Contents 7 0 R >>",
        b"<< /Length 4 /Filter /" + evil + b" >>\nstream\nabcd\nendstream",
    ]
    path.write_bytes(pdf(objects))
    return path


def tall_pdf(path: Path, width: float = 10, height: float = 14_400, lines: tuple[str, ...] = (
        "Payment terms. The Distributor shall pay each invoice within thirty days of receipt.",
        "Late payments bear interest at one percent per month.")) -> Path:
    """A one-page PDF of an absurd shape (by default 10 x 14,400 points: a strip the largest size PDF allows,
    1/72 as wide as it is tall) that shows `lines` of text near its top, in 1-point Helvetica: rendered
    900 pixels wide, as a page is shown, it would be 1.3 million pixels tall."""
    ops = b"BT /F1 1 Tf 1.2 TL 0.5 %d Td " % int(height - 4) + b" ".join(
        b"(" + line.encode("latin-1") + b") '" for line in lines) + b" ET"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [5 0 R] /Count 1 >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        stream(ops),
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %s %s] /Resources << /Font << /F1 3 0 R >> >> "
        b"/Contents 4 0 R >>" % (repr(width).encode(), repr(height).encode()),
    ]
    path.write_bytes(pdf(objects))
    return path


def unloadable_page_pdf(path: Path) -> Path:
    """A PDF that opens and says it has one page, whose page is not a page object (a number): PDFium fails
    to load it."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"42",
    ]
    path.write_bytes(pdf(objects))
    return path


def notices_docx(path: Path, url: str) -> Path:
    """A Word contract whose notices clause has a heading and text that hold a bare URL (`url`), a `www.`
    host and an e-mail address: what Markdown's autolink literals would make links of."""
    import docx

    document = docx.Document()
    document.add_heading("1. Term", level=1)
    document.add_paragraph("This Agreement starts on the Effective Date and lasts three years.")
    document.add_heading(f"12. Notices: legal@acme.test www.acme.test {url}/x.png", level=1)  # a whole label
    document.add_paragraph(f"Notices under this Agreement shall be sent by e-mail to legal@acme.test, with a copy "
                           f"posted at {url}/notice.png and at www.acme.test/notices.")
    document.add_heading("13. Governing Law", level=1)
    document.add_paragraph("This Agreement is governed by the laws of the State of Delaware.")
    document.save(path)
    return path
