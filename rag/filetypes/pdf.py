"""PDF: text per page through pypdf (pages numbered from 1); encrypted files opened with the empty
password, then the configured ones."""

from __future__ import annotations

import io
import logging
from typing import Sequence

from rag.errors import FileError
from rag.filetypes import FileType, Progress, no_progress, register

log = logging.getLogger(__name__)


def load_pdf(data: bytes, passwords: Sequence[str] = (), progress: Progress = no_progress) -> list[str]:
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


def check(data: bytes) -> str | None:
    """Why an upload named .pdf is not one, or None."""
    return None if b"%PDF-" in data[:1024] else "is named .pdf but is not a PDF (it does not start with %PDF-)"


def _describe(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text if len(text) < 200 else text[:197] + "..."


register(FileType("PDF", (".pdf",), lambda data, passwords, progress: load_pdf(data, passwords, progress), check,
                  no_text="no extractable text (scanned? OCR is not enabled)", paged=True))
