"""HTML (.html, .htm): the text a browser shows, in reading order (lxml), as sections that open at each heading
(h1-h6) and each numbered clause (rag.reading.filetypes.sections); a table row is one line, its cells joined by " | ".

Scripts, styles, forms' hidden parts, elements with the `hidden` attribute, elements hidden with `display:none`
(the XBRL header of an SEC filing) and text under `visibility:hidden` (unless a part inside shows itself again
with `visibility:visible`, as a browser does) are left out; `aria-hidden` text is shown, so it is read. Nothing
the page refers to is fetched: no images, no stylesheets, no links.

The encoding is decided as a browser decides it: a byte-order mark (UTF-8, UTF-16LE, UTF-16BE) wins over
everything, a `<meta charset>` included; then the page's own `<meta charset>` (one that says UTF-16 without a
BOM means UTF-8); then UTF-8, else Windows-1252. A file that is not text (gzip, a zip, an image, random bytes)
fails with what it is and what to do (rag.reading.filetypes.sniff).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Iterator

from rag.errors import FileError, NoTextError
from rag.reading.filetypes import FileType, Options, Progress, Read, no_progress, register
from rag.reading.filetypes.sections import Block, read_sections
from rag.reading.filetypes.sniff import BINARY, binary_text, bom, not_text

RULES = 2  # bump when what is read from a page changes (2: BOMs decide; `hidden`, visibility:hidden left out)
NO_TEXT = "no text (the page shows none)"
HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
SKIPPED = {"script", "style", "noscript", "template", "head", "title", "iframe", "object", "svg", "math", "button",
           "select", "option", "textarea", "input"}
BLOCK = {"p", "div", "li", "ul", "ol", "table", "tbody", "thead", "tfoot", "section", "article", "header", "footer",
         "main", "nav", "aside", "blockquote", "pre", "dl", "dt", "dd", "form", "fieldset", "figure", "figcaption",
         "address", "center", "body", "html", "br", "hr", "caption", "details", "summary", "td", "th"}
_DISPLAY_NONE = re.compile(r"display\s*:\s*none", re.IGNORECASE)
_VISIBILITY = re.compile(r"visibility\s*:\s*(hidden|collapse|visible)", re.IGNORECASE)
_CHARSET = re.compile(rb"<meta[^>]+charset\s*=\s*[\"']?\s*([-\w.:]*)", re.IGNORECASE)
_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>")


@lru_cache(maxsize=4)
def reader(options: Options | None = None) -> str:
    """The extractor, its version and our rules: a change re-reads each page once (its documents' signature)."""
    from importlib.metadata import version

    return f"lxml={version('lxml')}+{RULES}"


def load_html(data: bytes, options: Options | None = None, progress: Progress = no_progress) -> Read:
    import lxml.etree
    import lxml.html

    parser = lxml.html.HTMLParser(huge_tree=True)  # no silent stop at 256 levels of nesting: ours says why it stops
    markup = _markup(data)
    try:
        root = lxml.html.document_fromstring(markup, parser=parser)
    except lxml.etree.ParserError as e:  # lxml's "Document is empty": nothing but blanks or comments
        raise NoTextError(NO_TEXT) from e
    except (lxml.etree.LxmlError, ValueError, LookupError) as e:
        raise FileError(f"broken HTML ({str(e)[:200] or type(e).__name__}): open it in a browser and save it again "
                        "(Save Page As, HTML only)") from e
    progress(0, 1)
    body = root.find("body")
    try:
        return read_sections(list(_blocks(root if body is None else body)))
    except RecursionError as e:
        raise FileError("HTML nested too deeply to read") from e


def _markup(data: bytes) -> str | bytes:
    """What lxml parses: text decoded here (by its BOM, or as UTF-8 else Windows-1252), or the bytes when the
    page declares its encoding and lxml should honour it. Raises FileError when the bytes are not text."""
    marked = bom(data)
    if marked is not None:  # wins over everything: decoded here, so lxml never sees a <meta charset>'s say
        codec, start = marked
        text = str(memoryview(data)[start:], codec, "replace")  # as a browser: a bad sequence shows as U+FFFD
        if binary_text(text):
            raise FileError(f"is named .html but holds {BINARY}")
        return _XML_DECLARATION.sub("", text)
    what = not_text(data)
    if what:
        raise FileError(f"is named .html but holds {what}")
    declared = _CHARSET.search(data[:4096])
    if declared and not declared.group(1).lower().startswith((b"utf-16", b"utf16")):
        return data  # lxml reads the encoding the page declares
    return _XML_DECLARATION.sub("", _decode(data))  # a declared UTF-16 without a BOM: UTF-8, as browsers do


def _decode(data: bytes) -> str:
    for encoding in ("utf-8", "cp1252"):
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

    def visit(element, shown: bool) -> Iterator[Block]:  # shown: whether its parent's text shows (visibility)
        tag, visible = _tag(element), _visibility(element, shown)
        if tag in HEADINGS:
            yield from flush()
            yield Block("heading", _shown(element, shown))
        elif tag == "tr":
            yield from flush()
            cells = [" ".join(_shown(c, visible).split()) for c in element
                     if not _removed(c) and _tag(c) in ("td", "th")]
            yield Block("row", " | ".join(c for c in cells if c))
        else:
            block = tag in BLOCK
            if block:
                yield from flush()
            if visible:
                line.append(element.text or "")
            for child in element:
                if not _removed(child):
                    yield from visit(child, visible)
                if visible and child.tail:  # the text after a child is its parent's
                    line.append(child.tail)
            if block:
                yield from flush()

    if not _removed(root):
        yield from visit(root, True)
    yield from flush()


def _tag(element) -> str:
    return element.tag.lower() if isinstance(element.tag, str) else ""  # "" for comments and the like


def _removed(element) -> bool:
    """Not rendered, nor anything inside it: comments, scripts and the like, the `hidden` attribute (but
    `hidden="until-found"`, which find-in-page reveals), `display:none`."""
    tag = _tag(element)
    if not tag or tag in SKIPPED:
        return True
    hidden = element.get("hidden")
    if hidden is not None and hidden.strip().lower() != "until-found":
        return True
    return bool(_DISPLAY_NONE.search(element.get("style") or ""))


def _visibility(element, inherited: bool) -> bool:
    """Whether the element's own text shows: `visibility:hidden` is inherited, and a part inside can show itself
    again with `visibility:visible`."""
    said = _VISIBILITY.findall(element.get("style") or "")
    return said[-1].lower() == "visible" if said else inherited


def _shown(element, inherited: bool = True) -> str:
    """The text of a heading or a cell as a browser shows it (no script, style or hidden parts inside)."""
    visible = _visibility(element, inherited)
    parts = [element.text or ""] if visible else []
    for child in element:
        if not _removed(child):
            parts.append(_shown(child, visible))
        if visible:
            parts.append(child.tail or "")
    return "".join(parts)


def check(data: bytes) -> str | None:
    """Why an upload named .html is not a web page (said after its name), or None."""
    try:
        markup = _markup(data)
    except FileError as e:
        return str(e)
    head = (markup[:2048] if isinstance(markup, str) else markup[:2048].decode("latin-1")).lstrip().lower()
    return None if head.startswith("<") else "is named .html but does not start with markup"


register(FileType("HTML", (".html", ".htm"), load_html, check, no_text=NO_TEXT, reader=reader))
