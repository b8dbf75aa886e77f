"""Showing a cited passage to a person: escaped HTML with the answer's words marked, and the page itself.

Document text is always escaped before anything is added to it: a contract that contains `<script>`
shows those characters, never runs them.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

from rag.errors import FileError

_WORD = re.compile(r"[^\W_]{3,}", re.UNICODE)
_PLAIN = frozenset("""the and for that this with are was were from have has not any shall will which such its
into upon than then there their them they been being also may must can could would should under other said
documents does""".split())


def answer_words(answer: str) -> set[str]:
    """The words of an answer worth marking in its sources (three letters or more, not the commonest)."""
    return {w.lower() for w in _WORD.findall(answer)} - _PLAIN


def highlight_html(passage: str, words: set[str]) -> str:
    """The passage as escaped HTML, each of `words` (case-insensitive) inside <mark>."""
    out, at = [], 0
    for m in _WORD.finditer(passage):
        if m.group().lower() in words:
            out += [html.escape(passage[at:m.start()]), "<mark>", html.escape(m.group()), "</mark>"]
            at = m.end()
    out.append(html.escape(passage[at:]))
    return "".join(out)


def render_page(path: str | Path, page: int, width: int = 900, password: str | None = None) -> bytes:
    """Page `page` (1-based) of a PDF as PNG bytes, `width` pixels wide (pypdfium2: PDFium, as Chrome uses)."""
    import io

    import pypdfium2

    try:
        pdf = pypdfium2.PdfDocument(str(path), password=password)
    except (pypdfium2.PdfiumError, OSError) as e:
        raise FileError(f"{path}: cannot open it to show page {page} ({e})") from e
    try:
        if not 1 <= page <= len(pdf):
            raise FileError(f"{path} has {len(pdf)} pages: there is no page {page}")
        sheet = pdf[page - 1]
        image = sheet.render(scale=width / sheet.get_width()).to_pil()
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return buffer.getvalue()
    finally:
        pdf.close()
