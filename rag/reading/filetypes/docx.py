"""Word (.docx): paragraphs and tables in reading order (python-docx), as sections that open at each heading
(Word's Heading and Title styles) and each numbered clause (rag.reading.filetypes.sections); a table row is one line.

Word's automatic list numbers are not in the text python-docx gives: a clause numbered that way is found
by its heading style, not its number. Block content controls (w:sdt: a template's fields, a cover page)
are read like the body; a table nested in a cell is read into that cell, its rows joined by " / ". Headers,
footers, comments and tracked deletions are left out.
"""

from __future__ import annotations

import io
import re
import zipfile
from typing import Iterator

from rag.errors import FileError
from rag.reading.filetypes import FileType, Options, Progress, Read, no_progress, register
from rag.reading.filetypes.sections import Block, read_sections

ZIP = b"PK\x03\x04"


def load_docx(data: bytes, options: Options | None = None, progress: Progress = no_progress) -> Read:
    import docx

    if not data.startswith(ZIP):
        raise FileError("not a Word .docx file (it is not a zip package): an old .doc? save it as .docx")
    try:
        document = docx.Document(io.BytesIO(data))
        progress(0, 1)
        return read_sections(_blocks(document))
    except RecursionError as e:
        raise FileError("the Word file is nested too deeply to read (tables in tables ...)") from e
    except Exception as e:  # mapped by type below; anything else is not ours to explain
        problem = _damaged(data, e)
        if problem is None:
            raise
        raise FileError(problem) from e


def _damaged(data: bytes, e: Exception) -> str | None:
    """What python-docx's, zipfile's and lxml's exceptions mean for the person who has the file, or None."""
    import zlib

    import lxml.etree
    from docx.opc.exceptions import PackageNotFoundError

    again = "open it in Word (which offers to recover its text) and save it again"
    if isinstance(e, lxml.etree.XMLSyntaxError):
        part, line = _malformed_part(data) or ("", e.lineno)
        where = f"its {part}" if part else "a part of it"
        return f"the Word file is damaged ({where} is not well-formed XML at line {line}): {again}"
    if isinstance(e, (zipfile.BadZipFile, zlib.error, EOFError, PackageNotFoundError)):
        return (f"the Word file is damaged (its zip package cannot be unpacked: {_said(e)}): {again}; if it was "
                "cut short by a download or a copy, copy it again")
    if isinstance(e, NotImplementedError):  # a zip compression method Python does not have
        return f"the Word file cannot be unpacked ({_said(e)}): {again}"
    if isinstance(e, KeyError):
        missing = re.search(r"no item named '([^']+)'", str(e))
        what = f"its package has no {missing.group(1)}" if missing else f"a part it refers to is missing: {_said(e)}"
        return f"the Word file is damaged ({what}): {again}"
    if isinstance(e, ValueError):
        kind = re.search(r"content type is '([^']+)'", str(e))
        if kind is None:
            return f"the Word file is damaged ({_said(e)}): {again}"
        if "macroEnabled" in kind.group(1) or "template" in kind.group(1):
            return "a macro-enabled Word document or a Word template, not a .docx: save it in Word as a Word Document"
        return (f"not a Word document (its main part is {kind.group(1)}): an Excel or PowerPoint file named .docx? "
                "give it its own extension")
    return None


def _malformed_part(data: bytes) -> tuple[str, int] | None:
    """The first XML part of the package that is not well-formed, and the line where it breaks."""
    import lxml.etree

    parser = lxml.etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)
    with zipfile.ZipFile(io.BytesIO(data)) as package:
        for name in package.namelist():
            if name.endswith((".xml", ".rels")):
                try:
                    lxml.etree.fromstring(package.read(name), parser)
                except lxml.etree.XMLSyntaxError as e:
                    return name, e.lineno
                except Exception:  # a part that cannot be unpacked: another diagnosis's business
                    continue
    return None


def _said(e: BaseException) -> str:
    text = str(e).strip().strip("\"'") or type(e).__name__
    return text if len(text) < 200 else text[:197] + "..."


def _blocks(document) -> Iterator[Block]:
    from docx.table import Table

    for item in _content(document.element.body, document._body):
        if isinstance(item, Table):
            yield from _rows(item)
            continue
        style = (item.style.name if item.style is not None else "") or ""
        heading = style.startswith(("Heading", "Title"))
        yield Block("heading" if heading else "paragraph", item.text)


def _content(element, parent) -> Iterator:
    """Paragraphs and tables in order, those inside block content controls included (python-docx skips them)."""
    from docx.oxml.ns import qn
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    for child in element.iterchildren():
        if child.tag == qn("w:p"):
            yield Paragraph(child, parent)
        elif child.tag == qn("w:tbl"):
            yield Table(child, parent)
        elif child.tag == qn("w:sdt") and (inner := child.find(qn("w:sdtContent"))) is not None:
            yield from _content(inner, parent)


def _cell_text(cell) -> str:
    """A cell's paragraphs and the rows of any table nested in it, on one line."""
    parts = [" ".join(item.text.split()) if not hasattr(item, "rows") else
             " / ".join(block.text for block in _rows(item)) for item in _content(cell._tc, cell)]
    return " ".join(part for part in parts if part)


def _rows(table) -> Iterator[Block]:
    for row in table.rows:
        cells: list[str] = []
        seen = None
        for cell in row.cells:
            if cell._tc is seen:  # a merged cell comes back once per column it spans
                continue
            seen = cell._tc
            text = _cell_text(cell)
            if text:
                cells.append(text)
        if cells:
            yield Block("row", " | ".join(cells))


def check(data: bytes) -> str | None:
    return None if data.startswith(ZIP) else "is named .docx but is not a Word document (not a zip package)"


register(FileType("Word", (".docx",), load_docx, check, no_text="no text (the document is empty)"))
