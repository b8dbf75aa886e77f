"""Showing document text and answers to a person: inert HTML with the answer's words marked, and the page.

Document text (and a model's answer, which a document can steer) is always made inert before anything is
added to it: a contract that contains `<script>`, `<img src=...>`, `![logo](http://host/pixel.png)`,
a link, a bare URL, a `www.` host or an e-mail address shows those characters, and the browser loads
nothing and links nowhere.

A page is shown as an image at most MAX_PAGE_PIXELS and MAX_PAGE_SIDE pixels: a page of an absurd shape
(10 x 14,400 points: 1.2 billion pixels at 900 wide, 18 GB and 109 s to render) is shown scaled down.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from rag.errors import FileError
from rag.paths import shown
from rag.text import COMMON

PAGE_WIDTH = 900  # pixels: a page as wide as the app's column
MAX_PAGE_PIXELS = 4_000_000  # a letter page at 900 wide is 1.2M; a taller one is shown smaller (as ocr.MAX_PIXELS)
MAX_PAGE_SIDE = 8_192  # a strip's length, in pixels: about five screens
# what Markdown's autolink literals (GFM, as Streamlit's remark-gfm applies them to text it has decoded) make
# links of: http:// and https:// URLs, www. hosts, e-mail addresses; a word joiner after each of these
# keeps it from being one, and shows nothing
_AUTOLINK = re.compile(r"(?i)https?(?=://)|www(?=\.)|@")
_WORD_JOINER = "\u2060"

_WORD = re.compile(r"[^\W_]{3,}", re.UNICODE)


def answer_words(answer: str) -> set[str]:
    """The words of an answer worth marking in its sources (three letters or more, not the commonest)."""
    return {w.lower() for w in _WORD.findall(answer)} - COMMON


def inert(text: str) -> str:
    """HTML that shows exactly `text`, read as HTML or as Markdown (Streamlit reads it as both).

    Every character but letters, digits and spaces becomes a numeric character reference, so no tag,
    image, link, `<autolink>`, emphasis or directive can form, and the text is one line: a blank line
    would end an HTML block, and what came after it would be read as Markdown. A Markdown parser decodes
    the references before it looks for autolink literals (`http://host`, `www.host`, `name@host.cc`),
    so an invisible word joiner (U+2060) breaks each: `http⁠://`, `www⁠.`, `name@⁠host.cc`.
    """
    text = _AUTOLINK.sub(lambda m: m.group() + _WORD_JOINER, text)
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


@dataclass(frozen=True)
class PageImage:
    """A page as a PNG image, and how large it is shown: `scale` pixels a point, where `asked` were asked."""

    png: bytes
    page: int
    size: tuple[float, float]  # the page's width and height, in points
    scale: float
    asked: float

    @property
    def note(self) -> str | None:
        """What a reader should know when the page is shown smaller than asked (it would not fit a screen)."""
        if self.scale >= self.asked * 0.999:
            return None
        percent = 100 * self.scale / self.asked
        width, height = (f"{round(side, 1):,g}" for side in self.size)
        return (f"page {self.page} is {width} × {height} points: shown at "
                f"{min(99, round(percent)) if percent >= 10 else f'{percent:.2g}'}% size")


def render_page(path: str | Path, page: int, width: int = PAGE_WIDTH, password: str | None = None,
                highlight: Sequence[str] = ()) -> bytes:
    """Page `page` (1-based) of a PDF as PNG bytes: `page_image`'s image."""
    return page_image(path, page, width, password, highlight).png


def page_image(path: str | Path, page: int, width: int = PAGE_WIDTH, password: str | None = None,
               highlight: Sequence[str] = ()) -> PageImage:
    """Page `page` (1-based) of a PDF as a PNG image `width` pixels wide (pypdfium2: PDFium, as Chrome uses), or
    smaller where that would be over MAX_PAGE_PIXELS or MAX_PAGE_SIDE, with the characters of each text in
    `highlight` (a quote) marked where they stand on the page. Whatever reading or drawing the page raises is a
    FileError that names the file and the page."""
    import pypdfium2

    try:
        pdf = pypdfium2.PdfDocument(Path(path).read_bytes(), password=password)  # bytes: any file name opens
    except (pypdfium2.PdfiumError, OSError) as e:
        raise FileError(f"{shown(str(path))}: cannot open it to show page {page} ({e})") from e
    try:
        if not 1 <= page <= len(pdf):
            raise FileError(f"{shown(str(path))} has {len(pdf)} pages: there is no page {page}")
        return _draw(pdf, page, width, highlight)
    except (pypdfium2.PdfiumError, MemoryError, ValueError, OSError) as e:  # a page PDFium or Pillow cannot draw
        raise FileError(f"{shown(str(path))}: cannot show page {page} ({e or type(e).__name__})") from e
    finally:
        pdf.close()


def _fit(size: tuple[float, float], width: int) -> float:
    """Pixels a point for a page of `size` points shown `width` pixels wide, within MAX_PAGE_PIXELS and
    MAX_PAGE_SIDE (PDFium's bitmap is each side times the scale, rounded up)."""
    w, h = size
    scale = min(width / w, MAX_PAGE_SIDE / max(w, h), math.sqrt(MAX_PAGE_PIXELS / (w * h))) * (1 - 1e-9)
    while math.ceil(w * scale) * math.ceil(h * scale) > MAX_PAGE_PIXELS:  # the rounding's extra rows
        scale *= 0.999
    return scale


def _draw(pdf, page: int, width: int, highlight: Sequence[str]) -> PageImage:
    import io

    sheet = pdf[page - 1]
    size = sheet.get_size()
    if min(size) <= 0:
        raise ValueError(f"it is {size[0]:g} × {size[1]:g} points")
    scale = _fit(size, width)
    image = sheet.render(scale=scale).to_pil().convert("RGB")
    boxes = [box for text in highlight for box in _boxes(sheet, text)]
    if boxes:
        from PIL import Image, ImageDraw

        layer = Image.new("RGBA", image.size, (0, 0, 0, 0))
        draw, height = ImageDraw.Draw(layer), size[1]
        for left, bottom, right, top in boxes:  # in points from the bottom left; ordered, as Pillow needs
            x0, x1 = sorted((left * scale, right * scale))
            y0, y1 = sorted(((height - top) * scale, (height - bottom) * scale))
            draw.rectangle([x0, y0, x1, y1], fill=(255, 214, 0, 110))
        image = Image.alpha_composite(image.convert("RGBA"), layer).convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return PageImage(buffer.getvalue(), page, size, scale, width / size[0])


def _boxes(sheet, text: str) -> list[tuple[float, float, float, float]]:
    """The boxes of the page's characters that spell `text`, compared in letters and digits only (the stored
    text and PDFium's may differ in spaces, line breaks and punctuation); [] when the page does not hold it."""
    from rag.text import letters_at

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
