"""HTML (.html, .htm): the text a browser shows, in reading order (lxml), as sections that open at each heading
(h1-h6) and each numbered clause (rag.filetypes.sections); a table row is one line, its cells joined by " | ".

Scripts, styles, forms' hidden parts and elements hidden with `display:none` (the XBRL header of an SEC
filing) are left out. Nothing the page refers to is fetched: no images, no stylesheets, no links.
"""

from __future__ import annotations

import re
from typing import Iterator

from rag.errors import FileError
from rag.filetypes import FileType, Options, Progress, Read, no_progress, register
from rag.filetypes.sections import Block, read_sections

HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
SKIPPED = {"script", "style", "noscript", "template", "head", "title", "iframe", "object", "svg", "math", "button",
           "select", "option", "textarea", "input"}
BLOCK = {"p", "div", "li", "ul", "ol", "table", "tbody", "thead", "tfoot", "section", "article", "header", "footer",
         "main", "nav", "aside", "blockquote", "pre", "dl", "dt", "dd", "form", "fieldset", "figure", "figcaption",
         "address", "center", "body", "html", "br", "hr", "caption", "details", "summary", "td", "th"}
_HIDDEN = re.compile(r"display\s*:\s*none", re.IGNORECASE)
_CHARSET = re.compile(rb"<meta[^>]+charset", re.IGNORECASE)
_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>")


def load_html(data: bytes, options: Options | None = None, progress: Progress = no_progress) -> Read:
    import lxml.etree
    import lxml.html

    parser = lxml.html.HTMLParser(huge_tree=True)  # no silent stop at 256 levels of nesting: ours says why it stops
    try:
        if _CHARSET.search(data[:4096]):  # the page says its encoding: lxml reads it
            root = lxml.html.document_fromstring(data, parser=parser)
        else:
            root = lxml.html.document_fromstring(_XML_DECLARATION.sub("", _decode(data)), parser=parser)
    except (lxml.etree.ParserError, ValueError) as e:
        raise FileError(f"broken HTML: {str(e)[:200] or type(e).__name__}") from e
    progress(0, 1)
    body = root.find("body")
    try:
        return read_sections(list(_blocks(root if body is None else body)))
    except RecursionError as e:
        raise FileError("HTML nested too deeply to read") from e


def _decode(data: bytes) -> str:
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


def _blocks(root) -> Iterator[Block]:
    line: list[str] = []

    def flush() -> Iterator[Block]:
        text = " ".join("".join(line).split())
        line.clear()
        if text:
            yield Block("paragraph", text)

    def visit(element) -> Iterator[Block]:
        tag = element.tag.lower() if isinstance(element.tag, str) else ""  # "" for comments and the like
        hidden = tag in SKIPPED or _HIDDEN.search(element.get("style") or "") if tag else True
        if not hidden and tag in HEADINGS:
            yield from flush()
            yield Block("heading", _shown(element))
        elif not hidden and tag == "tr":
            yield from flush()
            cells = [" ".join(_shown(c).split()) for c in element if _visible(c) and c.tag.lower() in ("td", "th")]
            yield Block("row", " | ".join(c for c in cells if c))
        elif not hidden:
            block = tag in BLOCK
            if block:
                yield from flush()
            line.append(element.text or "")
            for child in element:
                yield from visit(child)
            if block:
                yield from flush()
        if element.tail:
            line.append(element.tail)

    yield from visit(root)
    yield from flush()


def _visible(element) -> bool:
    tag = element.tag.lower() if isinstance(element.tag, str) else ""
    return bool(tag) and tag not in SKIPPED and not _HIDDEN.search(element.get("style") or "")


def _shown(element) -> str:
    """The text of a heading or a cell as a browser shows it (no script, style or hidden parts inside)."""
    return (element.text or "") + "".join((_shown(c) if _visible(c) else "") + (c.tail or "") for c in element)


def check(data: bytes) -> str | None:
    head = data[:2048].removeprefix(b"\xef\xbb\xbf").lstrip().lower()
    if b"\x00" in data[:4096]:
        return "is named .html but holds binary data"
    return None if head.startswith(b"<") else "is named .html but does not start with markup"


register(FileType("HTML", (".html", ".htm"), load_html, check, no_text="no text (the page shows none)"))
