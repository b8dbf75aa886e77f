"""Word (.docx): paragraphs and tables in reading order (python-docx), as sections that open at each heading
(Word's Heading and Title styles) and each numbered clause (rag.filetypes.sections); a table row is one line.

Word's automatic list numbers are not in the text python-docx gives: a clause numbered that way is found
by its heading style, not its number. Block content controls (w:sdt: a template's fields, a cover page)
are read like the body; a table nested in a cell is read into that cell, its rows joined by " / ". Headers,
footers, comments and tracked deletions are left out.
"""

from __future__ import annotations

import io
import zipfile
from typing import Iterator

from rag.errors import FileError
from rag.filetypes import FileType, Options, Progress, Read, no_progress, register
from rag.filetypes.sections import Block, read_sections

ZIP = b"PK\x03\x04"


def load_docx(data: bytes, options: Options | None = None, progress: Progress = no_progress) -> Read:
    import docx
    from docx.opc.exceptions import PackageNotFoundError

    if not data.startswith(ZIP):
        raise FileError("not a Word .docx file (it is not a zip package): an old .doc? save it as .docx")
    try:
        document = docx.Document(io.BytesIO(data))
        progress(0, 1)
        return read_sections(_blocks(document))
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError) as e:
        raise FileError(f"broken .docx: {str(e)[:200] or type(e).__name__}") from e


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
