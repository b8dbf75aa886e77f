"""PDF: text per page (pages numbered from 1) through PDFium (pypdfium2, the engine Chrome uses), with pypdf
for what PDFium cannot open, and OCR (rag.reading.ocr) for pages that hold an image and almost no text: scans.
Encrypted files are opened with the empty password, then the configured ones.

Why PDFium first (measured, DESIGN.md): on a 10-K it reads ~30x faster than pypdf, keeps a table's row on
one line where pypdf puts each cell on its own, and reads filings on which pypdf stops at its array limits;
PDFium also repairs files with a broken cross-reference table that pypdf refuses. pypdf stays the fallback:
a file PDFium rejects as malformed may still give pypdf text. The libraries' versions and the OCR engine's
are part of each document's signature (`reader()`), so an upgrade re-ingests each document once.
"""

from __future__ import annotations

import io
import logging
import re
from functools import lru_cache
from typing import Sequence

from rag.reading import ocr as _ocr
from rag.errors import FileError
from rag.reading.filetypes import FileType, Options, Progress, Read, no_progress, register

log = logging.getLogger(__name__)

PASSWORD_ERROR = 4  # PDFium's FPDF_ERR_PASSWORD
SCANNED_LETTERS = 20  # a page with fewer letters than this, and an image, is OCR'd (a scan with a stamped page number)
_LINE_ENDS = re.compile(r"\r\n?")  # PDFium ends lines with \r\n
# PDFium gives U+FFFE (a noncharacter, which XML and other tools refuse) for a hyphen it took for a soft one:
# "Commercial Computer Software\ufffeRestricted Rights" in a contract (up to 115 in one FinanceBench filing);
# and some filings set every space as a no-break space, which costs the model's tokenizer twice the tokens
_PDFIUM_CHARS = str.maketrans({"\ufffe": "-", "\xa0": " "})
TEXT_RULES = 2  # bump when the mapping above changes: it is part of each PDF's signature


@lru_cache(maxsize=4)
def reader(options: Options) -> str:
    """The text extractors and their versions: a new version may read a page differently."""
    from importlib.metadata import version

    engine = (_ocr.version() or "unavailable") if options.ocr else "off"
    return f"pdfium={version('pypdfium2')}+{TEXT_RULES};pypdf={version('pypdf')};ocr={engine}"


def no_text(options: Options) -> str:
    if not options.ocr:
        return "no extractable text (scanned? OCR is off: set RAG_OCR=true to read scans)"
    if _ocr.version() is None:
        return f"no extractable text (scanned? OCR needs Tesseract: {_ocr.INSTALL})"
    return "no text: no words in its text layer, nor by OCR in its images"


def load_pdf(data: bytes, options: Options = Options(), progress: Progress = no_progress) -> Read:
    if not data.startswith(b"%PDF") and b"%PDF" not in data[:1024]:
        raise FileError("not a PDF (no %PDF header): the file is damaged or has the wrong extension")
    passwords = options.passwords
    try:
        return pdfium_pages(data, passwords, progress, ocr=options.ocr)
    except _Unopened as e:
        try:
            texts = pypdf_pages(data, passwords, progress)
        except FileError as failed:
            raise FileError(f"{failed}; PDFium: {e}") from failed
        log.info("PDFium could not open it (%s): read with pypdf", e)
        return Read(texts)


class _Unopened(Exception):
    """PDFium could not open the file (not for want of a password)."""


def pdfium_pages(data: bytes, passwords: Sequence[str] = (), progress: Progress = no_progress, ocr: bool = False
                 ) -> Read:
    """Each page's text by PDFium; with `ocr`, the scanned pages' by OCR where Tesseract is installed."""
    import pypdfium2

    pdf = None
    for password in (None, *passwords):
        try:
            pdf = pypdfium2.PdfDocument(data, password=password)
            break
        except pypdfium2.PdfiumError as e:
            if e.err_code != PASSWORD_ERROR:
                raise _Unopened(_describe(e)) from e
    if pdf is None:
        raise FileError(_encrypted_reason(passwords))
    try:
        count = len(pdf)
        texts, scanned, failures = [], [], 0
        progress(0, count)
        for number in range(count):
            if number:
                progress(number, count)
            try:
                page = pdf[number]
                textpage = page.get_textpage()
                try:
                    text = textpage.get_text_range()
                    if sum(ch.isalpha() for ch in text) < SCANNED_LETTERS and _has_image(page):
                        scanned.append(number)
                finally:
                    textpage.close()
                    page.close()
            except pypdfium2.PdfiumError as e:
                log.warning("page %d: text could not be extracted (%s); indexed as empty", number + 1, _describe(e))
                text, failures = "", failures + 1
            texts.append(_LINE_ENDS.sub("\n", text).translate(_PDFIUM_CHARS))
        if count and failures == count:
            raise _Unopened("text extraction failed on every page")
        read, failed = [], []
        if ocr and scanned and _ocr.version():
            step = [0]
            pages = _ocr.recognize_all(((n, lambda n=n: _image(pdf, n)) for n in scanned),
                                       lambda: progress(step[0], len(scanned), "OCR of scanned page"))
            for done, (number, text, problem) in enumerate(pages):
                step[0] = done
                progress(done, len(scanned), "OCR of scanned page")
                if problem:
                    log.warning("page %d: OCR failed, the page is left without text: %s", number + 1, problem)
                    failed.append(problem)
                if sum(ch.isalpha() for ch in text) > sum(ch.isalpha() for ch in texts[number]):
                    texts[number] = text
                    read.append(number + 1)
        if failed and not any(text.strip() for text in texts):  # a reason to act on, not "no text"
            raise FileError(f"OCR failed on {len(failed)} of its {len(scanned)} scanned pages: {failed[0]}")
        return Read(texts, tuple(read))
    finally:
        pdf.close()


def _has_image(page) -> bool:
    import pypdfium2.raw as raw

    return any(True for _ in page.get_objects(filter=(raw.FPDF_PAGEOBJ_IMAGE,), max_depth=2))


def _image(pdf, number: int) -> bytes:
    """Page `number` (0-based) rendered in grey at ocr.DPI (less for a poster-sized page: at most
    ocr.MAX_PIXELS, and ocr.MAX_SIDE a side), as a PGM image (no compression to pay for)."""
    import pypdfium2

    try:
        page = pdf[number]
        try:
            area = max(1.0, page.get_width() * page.get_height())  # in points
            scale = min(_ocr.DPI / 72, (_ocr.MAX_PIXELS / area) ** 0.5,
                        _ocr.MAX_SIDE / max(1.0, page.get_width(), page.get_height()))
            image = page.render(scale=scale, grayscale=True).to_pil()
        finally:
            page.close()
    except pypdfium2.PdfiumError as e:  # this page stays as it was (empty); the others are read
        log.warning("page %d: could not be rendered for OCR (%s)", number + 1, _describe(e))
        return b""
    out = io.BytesIO()
    image.convert("L").save(out, format="PPM")
    return out.getvalue()


def pypdf_pages(data: bytes, passwords: Sequence[str] = (), progress: Progress = no_progress) -> list[str]:
    import pypdf
    from pypdf.errors import DependencyError, FileNotDecryptedError, PdfReadError

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


register(FileType("PDF", (".pdf",), lambda data, options, progress: load_pdf(data, options, progress), check,
                  no_text=no_text, paged=True, reader=reader))
