"""Showing document text and answers to a person: inert HTML with the answer's words marked, and the page.

Document text (and a model's answer, which a document can steer) is always made inert before anything is
added to it: a contract that contains `<script>`, `<img src=...>`, `![logo](http://host/pixel.png)`,
a link or a bare URL shows those characters, and the browser loads nothing and links nowhere.
"""

from __future__ import annotations

import re
from pathlib import Path

from rag.errors import FileError
from rag.paths import shown

_WORD = re.compile(r"[^\W_]{3,}", re.UNICODE)
_PLAIN = frozenset("""the and for that this with are was were from have has not any shall will which such its
into upon than then there their them they been being also may must can could would should under other said
documents does""".split())


def answer_words(answer: str) -> set[str]:
    """The words of an answer worth marking in its sources (three letters or more, not the commonest)."""
    return {w.lower() for w in _WORD.findall(answer)} - _PLAIN


def inert(text: str) -> str:
    """HTML that shows exactly `text`, read as HTML or as Markdown (Streamlit reads it as both).

    Every character but letters, digits and spaces becomes a numeric character reference, so no tag,
    image, link, autolink (`http&#58;&#47;&#47;` is not a URL to a Markdown parser), emphasis or
    directive can form, and the text is one line: a blank line would end an HTML block, and what came
    after it would be read as Markdown.
    """
    return "".join(ch if ch.isalnum() or ch == " " else f"&#{ord(ch)};" for ch in text)


def highlight_html(passage: str, words: set[str]) -> str:
    """The passage as inert HTML, each of `words` (case-insensitive) inside <mark>."""
    out, at = [], 0
    for m in _WORD.finditer(passage):
        if m.group().lower() in words:
            out += [inert(passage[at:m.start()]), "<mark>", inert(m.group()), "</mark>"]
            at = m.end()
    out.append(inert(passage[at:]))
    return "".join(out)


def render_page(path: str | Path, page: int, width: int = 900, password: str | None = None) -> bytes:
    """Page `page` (1-based) of a PDF as PNG bytes, `width` pixels wide (pypdfium2: PDFium, as Chrome uses)."""
    import io

    import pypdfium2

    try:
        pdf = pypdfium2.PdfDocument(Path(path).read_bytes(), password=password)  # bytes: any file name opens
    except (pypdfium2.PdfiumError, OSError) as e:
        raise FileError(f"{shown(str(path))}: cannot open it to show page {page} ({e})") from e
    try:
        if not 1 <= page <= len(pdf):
            raise FileError(f"{shown(str(path))} has {len(pdf)} pages: there is no page {page}")
        sheet = pdf[page - 1]
        image = sheet.render(scale=width / sheet.get_width()).to_pil()
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return buffer.getvalue()
    finally:
        pdf.close()
