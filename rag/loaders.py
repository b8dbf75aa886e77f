"""File bytes -> text per page (1-based page numbers). PDF through pypdf; .txt and .md as one page.

A loader gets the bytes already read (and hashed) by the caller, so what is indexed is exactly what
was hashed. Problems that make the file unusable raise `FileError` / `NoTextError` with the reason the
ingest report shows; a page that fails alone is logged and left empty.
"""

from __future__ import annotations

import codecs
import io
import logging
from pathlib import Path
from typing import Callable, Sequence

from rag.errors import FileError, NoTextError
from rag.paths import valid_text

log = logging.getLogger(__name__)

NO_TEXT_REASON = "no extractable text (scanned? OCR is not enabled)"


Progress = Callable[[int, int], None]  # (pages read, pages in all): called after each page


def _no_progress(done: int, total: int) -> None:
    pass


def load_pdf(data: bytes, passwords: Sequence[str] = (), progress: Progress = _no_progress) -> list[str]:
    import pypdf
    from pypdf.errors import DependencyError, FileNotDecryptedError, PdfReadError

    if not data.startswith(b"%PDF") and b"%PDF" not in data[:1024]:
        raise FileError("not a PDF (no %PDF header): the file is damaged or has the wrong extension")
    try:
        reader = pypdf.PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            _decrypt(reader, passwords)
        pages = reader.pages
        count = len(pages)
    except FileError:
        raise
    except FileNotDecryptedError as e:
        raise FileError(_encrypted_reason(passwords)) from e
    except DependencyError as e:
        raise FileError(f"encrypted: {e} (pip install 'pypdf[crypto]')") from e
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, IndexError,
            RecursionError, NotImplementedError) as e:
        raise FileError(f"broken PDF: {_describe(e)}") from e

    texts, failures = [], []
    progress(0, count)
    for number in range(count):
        if number:
            progress(number, count)
        try:
            texts.append(pages[number].extract_text() or "")
        except FileNotDecryptedError as e:
            raise FileError(_encrypted_reason(passwords)) from e
        except MemoryError:  # the parsing process's memory limit: the file fails, not just this page
            raise
        except Exception as e:  # pypdf raises many kinds on damaged content streams
            log.warning("page %d: text could not be extracted (%s); indexed as empty", number + 1, _describe(e))
            texts.append("")
            failures.append(e)
    if count and len(failures) == count:
        raise FileError(f"broken PDF: text extraction failed on every page ({_describe(failures[-1])})")
    return texts


def _decrypt(reader, passwords: Sequence[str]) -> None:
    from pypdf import PasswordType

    for password in ("", *passwords):
        try:
            if reader.decrypt(password) != PasswordType.NOT_DECRYPTED:
                return
        except NotImplementedError as e:  # an encryption pypdf cannot handle
            raise FileError(f"encrypted with an unsupported method: {e}") from e
    raise FileError(_encrypted_reason(passwords))


def _encrypted_reason(passwords: Sequence[str]) -> str:
    if passwords:
        return f"encrypted (password required: none of the {len(passwords)} configured passwords opened it)"
    return "encrypted (password required: set RAG_PDF_PASSWORDS or pdf_passwords in rag.toml)"


def load_text(data: bytes) -> list[str]:
    """UTF-8 (with or without BOM) or UTF-16 with a BOM; anything else is reported, not guessed."""
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


LOADERS: dict[str, Callable[..., list[str]]] = {
    ".pdf": lambda data, passwords, progress: load_pdf(data, passwords, progress),
    ".txt": lambda data, passwords, progress: load_text(data),
    ".md": lambda data, passwords, progress: load_text(data),
}


def supported(path: Path) -> bool:
    return path.suffix.lower() in LOADERS


def load_pages(path: Path, data: bytes, passwords: Sequence[str] = (), progress: Progress = _no_progress) -> list[str]:
    """Text of each page of the file whose bytes are `data`; raises FileError / NoTextError."""
    if not data:
        raise FileError("empty file (0 bytes)")
    pages = [valid_text(p) for p in LOADERS[path.suffix.lower()](data, passwords, progress)]
    if not any(p.strip() for p in pages):
        raise NoTextError(NO_TEXT_REASON if path.suffix.lower() == ".pdf" else "no text (the file is blank)")
    return pages


def read_error_reason(e: OSError) -> str:
    """Why a file could not be read, as the ingest report says it."""
    if isinstance(e, FileNotFoundError):
        return "vanished during ingest (deleted or moved while reading)"
    return f"cannot read: {e.strerror or e}"


def _describe(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text if len(text) < 200 else text[:197] + "..."
