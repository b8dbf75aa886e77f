"""Folder -> candidate files, each with the problem that keeps it from being read, if any.

Nothing found on the way stops the walk: a symlink loop, a folder that cannot be listed, a path too
long, a file too large or not a regular file each become that file's report, and the walk goes on.
Files are opened with `open_regular`, which never follows a link out of the folder and never blocks on
a FIFO, even when a file is swapped for one while the ingest runs.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from pathlib import Path
from typing import BinaryIO, Iterator

from rag.errors import FileError
from rag.reading import filetypes
from rag.paths import shown
from rag.report import FAILED, SKIPPED, FileReport


def walk(target: Path, skip: Path, max_bytes: int, unlisted: list[str] | None = None
         ) -> Iterator[tuple[Path, FileReport | None]]:
    """Candidate files under target (sorted; hidden ones and the index itself left out), each with a
    problem report or None. Files over `max_bytes` are reported, not read. Folders that could not be
    listed are reported too, and added to `unlisted` (what was indexed from them is not gone)."""
    root = folder_root(target)
    if not target.is_dir():
        yield target, _problem(target, root, max_bytes)
        return
    skip_real = os.path.realpath(skip)
    folders = [str(target)]  # depth first, in name order, without recursion (folders nest deeper than Python)
    while folders:
        folder = folders.pop()
        try:
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=lambda e: e.name)
        except OSError as e:
            if unlisted is not None:
                unlisted.append(folder)
            yield Path(folder), FileReport(folder, FAILED, f"cannot list this folder: {e.strerror or e}")
            continue
        below = []
        for entry in entries:
            if entry.name.startswith((".", "~$")):
                continue
            try:
                is_folder = entry.is_dir(follow_symlinks=False)
            except OSError:
                is_folder = False  # reported as a file, with its reason
            if is_folder:
                if os.path.realpath(entry.path) != skip_real:
                    below.append(entry.path)
                continue
            path = Path(entry.path)
            yield path, _problem(path, root, max_bytes)
        folders.extend(reversed(below))


def folder_root(target: Path) -> Path:
    """The folder whose files an ingest of `target` (a folder, or one file) may read, links resolved."""
    real = Path(os.path.realpath(target))
    return real if real.is_dir() else real.parent


def _problem(path: Path, root: Path, max_bytes: int) -> FileReport | None:
    if not filetypes.supported(path):
        return FileReport(str(path), SKIPPED, _unsupported(path))
    try:
        info = os.lstat(path)
        link = stat.S_ISLNK(info.st_mode)
        if link:
            info = os.stat(path)
    except OSError as e:
        if e.errno == errno.ELOOP:
            return FileReport(str(path), FAILED, "symlink loop (the link points back at itself): not followed")
        if isinstance(e, FileNotFoundError) and os.path.islink(path):
            real = shown(os.path.realpath(path))
            return FileReport(str(path), FAILED, f"broken symlink (its target {real} does not exist)")
        return read_failure(path, e)
    if link and not (real := Path(os.path.realpath(path))).is_relative_to(root):  # realpath never raises
        return FileReport(str(path), SKIPPED, f"symlink to {shown(str(real))}, outside the folder: not followed")
    if not stat.S_ISREG(info.st_mode):
        return FileReport(str(path), FAILED, "not a regular file")
    if info.st_size > max_bytes:
        return FileReport(str(path), FAILED, too_large(info.st_size, max_bytes))
    return None


def open_regular(path: Path, root: Path) -> BinaryIO:
    """Open a file for reading, as the walk saw it: through links only to files inside `root`, never a
    FIFO or a device (opened without blocking, then checked). Raises FileError with the reason."""
    real = Path(os.path.realpath(path))
    if not real.is_relative_to(root):
        raise FileError(f"symlink to {shown(str(real))}, outside the folder (it changed during the ingest): "
                        "not followed")
    fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise FileError("not a regular file (it changed during the ingest)")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def too_large(size: int, max_bytes: int) -> str:
    return (f"too large ({size / 2**20:,.1f} MB): files up to {max_bytes / 2**20:,.0f} MB are read "
            "(raise max_file_mb, e.g. RAG_MAX_FILE_MB, to read it)")


def _unsupported(path: Path) -> str:
    return f"unsupported file type {shown(path.suffix) or '(no extension)'}: {filetypes.described()} are ingested"


def hash_file(path: Path, root: Path) -> tuple[str, int]:
    """sha256 and size of the file, opened as `open_regular` does (raises FileError or OSError)."""
    digest, size = hashlib.sha256(), 0
    with open_regular(path, root) as f:
        while block := f.read(1 << 20):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def read_failure(path: Path, e: OSError) -> FileReport:
    return FileReport(str(path), FAILED, read_error_reason(e))


def read_error_reason(e: OSError) -> str:
    """Why a file could not be read, as the ingest report says it."""
    if isinstance(e, FileNotFoundError):
        return "vanished during ingest (deleted or moved while reading)"
    return f"cannot read: {e.strerror or e}"
