"""Plain text (.txt) and Markdown (.md): one page, UTF-8 (with or without BOM) or UTF-16 with a BOM;
anything else is reported, not guessed: binary data by what it is (rag.reading.filetypes.sniff: "holds gzip-compressed
data: unpack it (gunzip) first"), other encodings with how to convert them."""

from __future__ import annotations

from rag.errors import FileError
from rag.reading.filetypes import FileType, Options, Progress, register
from rag.reading.filetypes.sniff import BINARY, binary_text, bom, not_text


def load_text(data: bytes, options: Options | None = None, progress: Progress | None = None) -> list[str]:
    marked = bom(data)
    if marked is None and (what := not_text(data)):
        raise FileError(f"holds {what}")
    codec, start = marked or ("utf-8", 0)
    try:
        text = str(memoryview(data)[start:], codec)  # no copy of the bytes
    except UnicodeDecodeError as e:
        at = start + e.start
        if codec.startswith("utf-16"):
            raise FileError(f"not valid UTF-16 text (at byte offset {at}) although it starts with a UTF-16 "
                            "byte-order mark: the file is damaged; save it again as UTF-8") from e
        raise FileError(
            f"not UTF-8 text (byte 0x{data[at]:02x} at offset {at}): convert it to UTF-8, "
            "e.g. `iconv -f cp1252 -t utf-8`"
        ) from e
    if binary_text(text):
        raise FileError(f"holds {BINARY}")
    return [text]


def check(data: bytes) -> str | None:
    """Why an upload named as text is not UTF-8 (or UTF-16 with a BOM) text, or None."""
    try:
        load_text(data)
    except FileError as e:
        return str(e) if str(e).startswith("holds ") else f"is {e}"
    return None


register(FileType("text", (".txt",), load_text, check, no_text="no text (the file is blank)"))
register(FileType("Markdown", (".md",), load_text, check, no_text="no text (the file is blank)"))
