"""Files people upload through the app, checked and saved into the folder the app ingests (removing a document
is rag.indexer.remove_file).

Uploads are untrusted: the name is reduced to a plain file name (no folders, no path traversal, no
control characters), the type is checked by content as well as by extension (each file type says how:
rag.reading.filetypes), and the size is capped. An accepted upload is
written into the collection's uploads folder (index_dir/uploads/COLLECTION) and ingested from there.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from pathlib import Path

from rag.reading import filetypes
from rag.config import Settings
from rag.errors import FileError
from rag.knowledge_base import uploads_dir
from rag.paths import shown

MAX_UPLOAD_MB = 50  # also Streamlit's server.maxUploadSize in .streamlit/config.toml
_UNSAFE = re.compile(r"[^\w.\- ()+,&]+", re.UNICODE)


def safe_name(name: str) -> str:
    """A plain file name from whatever a browser sent: the last path part, odd characters as '_'."""
    base = re.split(r"[\\/]", name or "")[-1]
    base = _UNSAFE.sub("_", "".join(ch for ch in base if ch.isprintable())).strip(" .")
    stem, ext = os.path.splitext(base)
    if not filetypes.supported(base):
        raise FileError(f"{shown(name)!r}: only {filetypes.described()} files can be added")
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
    problem = filetypes.for_path(name).check(data)
    if problem:
        raise FileError(f"{name} {problem}")


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
