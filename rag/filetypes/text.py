"""Plain text (.txt) and Markdown (.md): one page, UTF-8 (with or without BOM) or UTF-16 with a BOM;
anything else is reported, not guessed."""

from __future__ import annotations

import codecs
from rag.errors import FileError
from rag.filetypes import FileType, Options, Progress, register


def load_text(data: bytes, options: Options | None = None, progress: Progress | None = None) -> list[str]:
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"
    else:
        encoding = "utf-8-sig"
    try:
        return [data.decode(encoding)]
    except UnicodeDecodeError as e:
        raise FileError(
            f"not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start}): convert it to UTF-8, "
            "e.g. `iconv -f cp1252 -t utf-8`"
        ) from e


def check(data: bytes) -> str | None:
    """Why an upload named as text is not UTF-8 text, or None."""
    if b"\x00" in data and not data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "holds binary data, not text"
    try:
        load_text(data)
    except FileError as e:
        return f"is {e}"
    return None


register(FileType("text", (".txt",), load_text, check, no_text="no text (the file is blank)"))
register(FileType("Markdown", (".md",), load_text, check, no_text="no text (the file is blank)"))
