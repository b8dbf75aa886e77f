"""The file types the knowledge base reads, in one registry: each says its extensions, how to check
that a file's content is what its name says (uploads), and how to turn its bytes into pages of text.

A type is a module that calls `register(FileType(...))`: one of this package, imported at the bottom of
this file, or any importable module of the user's that is imported before an ingest (the parsing worker
imports it too). Walking, ingesting, the upload check, `rag ingest --help` and the app's uploader all
read the registry, so a new type touches nothing else.

A loader gets the bytes already read (and hashed) by the caller, so what is indexed is exactly what
was hashed, and the reading options; it returns the text of each page, or a `Read` that also names the
pages whose text came from OCR, or, for a document without pages (Word, HTML), gives each "page" (a
section) its label (rag.reading.filetypes.sections). Problems that make the file unusable raise `FileError` /
`NoTextError` with the reason the ingest report shows; a page that fails alone is logged and left empty.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from rag.errors import FileError, NoTextError
from rag.paths import valid_text

Progress = Callable[..., None]  # (pages done, pages in all[, what is being done]): called as it reads each page


@dataclass(frozen=True)
class Options:
    """How to read: passwords for encrypted files, and whether pages without text are OCR'd."""
    passwords: tuple[str, ...] = ()
    ocr: bool = True


@dataclass(frozen=True)
class Read:
    pages: list[str]  # the text of each page
    ocr: tuple[int, ...] = ()  # the (1-based) pages whose text came from OCR
    sections: tuple[str, ...] = ()  # a document without pages: each "page" is a section, and this its label


Loader = Callable[[bytes, Options, Progress], "list[str] | Read"]


def no_progress(done: int, total: int, doing: str = "page") -> None:
    pass


@dataclass(frozen=True)
class FileType:
    name: str  # as people say it: "PDF", "Markdown"
    extensions: tuple[str, ...]  # lowercase, with the dot
    load: Loader
    check: Callable[[bytes], str | None]  # why the bytes are not this type (said after the file name), or None
    no_text: str | Callable[[Options], str] = "no text"  # the reason when the file holds no text at all
    paged: bool = False  # has pages that citations can name
    reader: Callable[[Options], str] = lambda options: ""  # its extractors and their versions (in doc signatures)


_TYPES: dict[str, FileType] = {}


def register(kind: FileType) -> None:
    for extension in kind.extensions:
        _TYPES[extension] = kind


def for_path(path: str | Path) -> FileType | None:
    return _TYPES.get(Path(path).suffix.lower())


def supported(path: str | Path) -> bool:
    return for_path(path) is not None


def modules() -> tuple[str, ...]:
    """The modules outside this package that registered types (the parsing worker imports them)."""
    return tuple(sorted({k.load.__module__ for k in _TYPES.values()
                         if not k.load.__module__.startswith(__name__ + ".")}))


def extensions() -> list[str]:
    return sorted(_TYPES)


def described() -> str:
    """'PDF, Markdown (.md) and text (.txt)' style, for messages and help."""
    kinds = sorted({kind.name: kind for kind in _TYPES.values()}.values(), key=lambda k: k.name.lower())
    names = [k.name if k.name.isupper() else f"{k.name} ({', '.join(k.extensions)})" for k in kinds]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def load_pages(path: Path, data: bytes, options: Options = Options(), progress: Progress = no_progress) -> Read:
    """Text of each page of the file whose bytes are `data`; raises FileError / NoTextError."""
    kind = for_path(path)
    if kind is None:
        raise FileError(f"unsupported file type: {described()} are read")
    if not data:
        raise FileError("empty file (0 bytes)")
    read = kind.load(data, options, progress)
    if not isinstance(read, Read):
        read = Read(list(read))
    pages = [valid_text(p) for p in read.pages]
    if not any(p.strip() for p in pages):
        raise NoTextError(kind.no_text(options) if callable(kind.no_text) else kind.no_text)
    return Read(pages, read.ocr, read.sections)


from rag.reading.filetypes import docx, html, pdf, text  # noqa: E402,F401  (the types: each registers itself)
