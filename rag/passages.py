"""Showing document text and answers to a person: inert HTML with the answer's words marked, and the page.

Document text (and a model's answer, which a document can steer) is always made inert before anything is
added to it: a contract that contains `<script>`, `<img src=...>`, `![logo](http://host/pixel.png)`,
a link or a bare URL shows those characters, and the browser loads nothing and links nowhere.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

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


def render_page(path: str | Path, page: int, width: int = 900, password: str | None = None,
                highlight: Sequence[str] = ()) -> bytes:
    """Page `page` (1-based) of a PDF as PNG bytes, `width` pixels wide (pypdfium2: PDFium, as Chrome uses),
    with the characters of each text in `highlight` (a quote) marked where they stand on the page."""
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
        scale = width / sheet.get_width()
        image = sheet.render(scale=scale).to_pil().convert("RGB")
        boxes = [box for text in highlight for box in _boxes(sheet, text)]
        if boxes:
            from PIL import Image, ImageDraw

            layer = Image.new("RGBA", image.size, (0, 0, 0, 0))
            draw, height = ImageDraw.Draw(layer), sheet.get_height()
            for left, bottom, right, top in boxes:
                draw.rectangle([left * scale, (height - top) * scale, right * scale, (height - bottom) * scale],
                               fill=(255, 214, 0, 110))
            image = Image.alpha_composite(image.convert("RGBA"), layer).convert("RGB")
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return buffer.getvalue()
    finally:
        pdf.close()


def _boxes(sheet, text: str) -> list[tuple[float, float, float, float]]:
    """The boxes of the page's characters that spell `text`, compared in letters and digits only (the stored
    text and PDFium's may differ in spaces, line breaks and punctuation); [] when the page does not hold it."""
    from rag.quotes import letters_at

    wanted = letters_at(text)[0]
    textpage = sheet.get_textpage()
    try:
        count = textpage.count_chars()
        chars = textpage.get_text_range(0, count)
        if not wanted or len(chars) != count:  # characters PDFium cannot index one by one: mark nothing
            return []
        spelled, at = letters_at(chars)
        found = spelled.find(wanted)
        if found < 0:
            return []
        lines: list[list[float]] = []  # consecutive characters on one line: one box, spaces between included
        for left, bottom, right, top in (textpage.get_charbox(i) for i in at[found:found + len(wanted)]):
            line = lines[-1] if lines else None
            if line and abs(line[3] - top) < 0.5 * (top - bottom) + 1 and left >= line[0]:
                line[:] = [line[0], min(line[1], bottom), max(line[2], right), max(line[3], top)]
            else:
                lines.append([left, bottom, right, top])
        return [tuple(line) for line in lines]
    finally:
        textpage.close()
