"""Folder -> candidate files, each with the problem that keeps it from being read, if any.

Nothing found on the way stops the walk: a symlink loop, a folder that cannot be listed, a file too
large or not a regular file each become that file's report, and the walk goes on.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from pathlib import Path
from typing import Iterator

from rag.loaders import read_error_reason, supported
from rag.paths import shown
from rag.report import FAILED, SKIPPED, FileReport


def walk(target: Path, skip: Path, max_bytes: int) -> Iterator[tuple[Path, FileReport | None]]:
    """Candidate files under target (sorted; hidden ones and the index itself left out), each with a
    problem report or None. Files over `max_bytes` are reported, not read."""
    root = Path(os.path.realpath(target))
    if not target.is_dir():
        yield target, _problem(target, root.parent, max_bytes)
        return
    skip = os.path.realpath(skip)
    unlisted: list[OSError] = []
    for dirpath, dirnames, filenames in os.walk(target, followlinks=False, onerror=unlisted.append):
        while unlisted:  # a folder inside that could not be listed (permissions, deleted meanwhile)
            e = unlisted.pop()
            yield Path(e.filename), FileReport(str(e.filename), FAILED, f"cannot list this folder: {e.strerror or e}")
        dirnames[:] = sorted(d for d in dirnames
                             if not d.startswith(".") and os.path.realpath(os.path.join(dirpath, d)) != skip)
        for name in sorted(filenames):
            if name.startswith((".", "~$")):
                continue
            path = Path(dirpath) / name
            yield path, _problem(path, root, max_bytes)
    for e in unlisted:  # the folder itself vanished while being walked
        yield Path(e.filename), FileReport(str(e.filename), FAILED, f"cannot list this folder: {e.strerror or e}")


def _problem(path: Path, root: Path, max_bytes: int) -> FileReport | None:
    if not supported(path):
        return FileReport(str(path), SKIPPED, _unsupported(path))
    if path.is_symlink():
        real = os.path.realpath(path)  # never raises, loops included
        try:
            os.stat(path)
        except OSError as e:
            if e.errno == errno.ELOOP:
                return FileReport(str(path), FAILED, "symlink loop (the link points back at itself): not followed")
            if isinstance(e, FileNotFoundError):
                return FileReport(str(path), FAILED, f"broken symlink (its target {shown(real)} does not exist)")
            return read_failure(path, e)
        if not Path(real).is_relative_to(root):
            return FileReport(str(path), SKIPPED, f"symlink to {shown(real)}, outside the folder: not followed")
    try:
        info = path.stat()
    except OSError as e:
        return read_failure(path, e)
    if not stat.S_ISREG(info.st_mode):
        return FileReport(str(path), FAILED, "not a regular file")
    if info.st_size > max_bytes:
        return FileReport(str(path), FAILED, too_large(info.st_size, max_bytes))
    return None


def too_large(size: int, max_bytes: int) -> str:
    return (f"too large ({size / 2**20:,.1f} MB): files up to {max_bytes / 2**20:,.0f} MB are read "
            "(raise max_file_mb, e.g. RAG_MAX_FILE_MB, to read it)")


def _unsupported(path: Path) -> str:
    return f"unsupported file type {shown(path.suffix) or '(no extension)'}: PDF, .txt and .md are ingested"


def hash_file(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def read_failure(path: Path, e: OSError) -> FileReport:
    return FileReport(str(path), FAILED, read_error_reason(e))
