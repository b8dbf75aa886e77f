"""The knowledge base as people manage it: files they upload, documents they remove.

Uploads are untrusted: the name is reduced to a plain file name (no folders, no path traversal, no
control characters), the type is checked by content as well as by extension (a PDF must start with
`%PDF-`; a text file must be UTF-8 without NUL bytes), and the size is capped. An accepted upload is
written into the collection's uploads folder (index_dir/uploads/COLLECTION) and ingested from there.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from pathlib import Path

from rag.config import Settings
from rag.errors import FileError

MAX_UPLOAD_MB = 50  # also Streamlit's server.maxUploadSize in .streamlit/config.toml
TYPES = {".pdf": "PDF", ".txt": "text", ".md": "Markdown"}
_UNSAFE = re.compile(r"[^\w.\- ()+,&]+", re.UNICODE)


def uploads_dir(settings: Settings) -> Path:
    return settings.index_dir / "uploads" / settings.collection


def safe_name(name: str) -> str:
    """A plain file name from whatever a browser sent: the last path part, odd characters as '_'."""
    base = re.split(r"[\\/]", name or "")[-1]
    base = _UNSAFE.sub("_", "".join(ch for ch in base if ch.isprintable())).strip(" .")
    stem, ext = os.path.splitext(base)
    if ext.lower() not in TYPES:
        raise FileError(f"{name!r}: only {', '.join(TYPES)} files can be added")
    if not stem.strip("_"):
        raise FileError(f"{name!r} is not a usable file name: rename the file and upload it again")
    return stem[:150] + ext.lower()


def check_content(name: str, data: bytes) -> None:
    """Raise FileError unless `data` is what its (safe) name says, within the size limit."""
    if len(data) > MAX_UPLOAD_MB * 2**20:  # rounded up, so a file just over the limit never reads as "50 MB"
        raise FileError(f"{name} is {math.ceil(len(data) * 100 / 2**20) / 100:.2f} MB: files up to {MAX_UPLOAD_MB} MB "
                        "can be added")
    if not data:
        raise FileError(f"{name} is empty (0 bytes)")
    if name.endswith(".pdf"):
        if b"%PDF-" not in data[:1024]:
            raise FileError(f"{name} is named .pdf but is not a PDF (it does not start with %PDF-)")
        return
    if b"\x00" in data:
        raise FileError(f"{name} is named {Path(name).suffix} but holds binary data, not text")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise FileError(f"{name} is not UTF-8 text ({e.reason} at byte {e.start}): save it as UTF-8 and retry") from e


def save_upload(settings: Settings, name: str, data: bytes) -> Path:
    """Check an uploaded file and write it (atomically) into the uploads folder; returns where it went.

    A different file of the same name is kept beside it as 'name (2).pdf'; the same file again is
    written over itself (ingesting it again then costs nothing).
    """
    clean = safe_name(name)
    check_content(clean, data)
    folder = uploads_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    target, n = folder / clean, 1
    while target.exists() and target.read_bytes() != data:
        n += 1
        target = folder / f"{Path(clean).stem} ({n}){Path(clean).suffix}"
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".upload-")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, target)
    return target
