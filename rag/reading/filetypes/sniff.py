"""What bytes named as text (HTML, .txt, .md) really are, before a loader reads them.

- A byte-order mark says the encoding, as browsers decide it: a UTF-8, UTF-16LE or UTF-16BE BOM wins over
  anything the document declares (an HTML `<meta charset>` included).
- Without one, known signatures name what a binary file is (gzip, zip, PDF, an image ...), so its reason says
  what to do ("gzip-compressed data: unpack it (gunzip) first"); UTF-16 without a BOM is named as such; other
  bytes that text never holds (NUL, control characters) are "binary data, not text".
"""

from __future__ import annotations

import codecs
import re

SAMPLE = 65536  # bytes (or characters) looked at
# the BOMs, longest first; Python's codec for the text after each
BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))
# what a file starts with -> what it is, and what to do about it
SIGNATURES = (
    (b"\x1f\x8b", "gzip-compressed data: unpack it (gunzip) first"),
    (b"BZh", "bzip2-compressed data: unpack it (bunzip2) first"),
    (b"\xfd7zXZ\x00", "xz-compressed data: unpack it (unxz) first"),
    (b"(\xb5/\xfd", "zstd-compressed data: unpack it (unzstd) first"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive: unpack it first"),
    (b"PK\x03\x04", "a zip archive: unpack it first (a Word document? name it .docx)"),
    (b"PK\x05\x06", "an empty zip archive"),
    (b"%PDF-", "a PDF: name it .pdf"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old Office file (.doc, .xls): save it as .docx or as text"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image: text in an image is read only from a scanned PDF (convert it to PDF)"),
    (b"\xff\xd8\xff", "a JPEG image: text in an image is read only from a scanned PDF (convert it to PDF)"),
    (b"GIF8", "a GIF image: text in an image is read only from a scanned PDF (convert it to PDF)"),
    (b"II*\x00", "a TIFF image: text in an image is read only from a scanned PDF (convert it to PDF)"),
    (b"MM\x00*", "a TIFF image: text in an image is read only from a scanned PDF (convert it to PDF)"),
    (b"\x7fELF", "a program, not text"),
    (b"MZ", "a Windows program, not text"),
)
BINARY = "binary data, not text"
UTF16_WITHOUT_BOM = "UTF-16 text without a byte-order mark: save it as UTF-8 (or as UTF-16 with a BOM)"
# characters text does not hold: C0 controls but tab, line feed, vertical tab, form feed, carriage return and
# escape, and DEL; a DOS end-of-file mark (0x1a) or a stray one is let pass, not many
_CONTROLS = re.compile(r"[\x00-\x08\x0e-\x1a\x1c-\x1f\x7f]")
_CONTROLS_BYTES = re.compile(_CONTROLS.pattern.encode())


def bom(data: bytes) -> tuple[str, int] | None:
    """(codec, length of the BOM) when the bytes start with a byte-order mark, else None."""
    for mark, codec in BOMS:
        if data.startswith(mark):
            return codec, len(mark)
    return None


def not_text(data: bytes) -> str | None:
    """What bytes without a BOM are when they are not text ("gzip-compressed data: unpack it (gunzip) first",
    "binary data, not text"), or None."""
    for signature, what in SIGNATURES:
        if data.startswith(signature) and (signature != b"BZh" or data[4:10] == b"1AY&SY"):
            if signature == b"MZ" and not _binary(data[:SAMPLE]):  # "MZ" can start a text too
                continue
            return what
    sample = data[:SAMPLE]
    if _utf16(sample):
        return UTF16_WITHOUT_BOM
    return BINARY if _binary(sample) else None


def binary_text(text: str) -> bool:
    """Whether decoded text holds what only binary data does (NUL, many control characters)."""
    sample = text[:SAMPLE]
    found = _CONTROLS.findall(sample)
    return "\x00" in found or len(found) > max(4, len(sample) // 100)


def _binary(sample: bytes) -> bool:
    found = _CONTROLS_BYTES.findall(sample)
    return b"\x00" in found or len(found) > max(4, len(sample) // 100)


def _utf16(sample: bytes) -> bool:
    """Mostly Latin text in UTF-16 (either byte order) without a BOM: every other byte is a NUL."""
    even, odd = sample[0::2], sample[1::2]
    if len(sample) < 8:
        return False
    zeros_even, zeros_odd = even.count(0) / len(even), odd.count(0) / max(1, len(odd))
    return max(zeros_even, zeros_odd) > 0.6 and min(zeros_even, zeros_odd) < 0.05
