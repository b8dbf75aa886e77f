"""Folder -> candidate files, each with the problem that keeps it from being read, if any."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from typing import Iterator

from rag.loaders import read_error_reason, supported
from rag.report import FAILED, SKIPPED, FileReport


def walk(target: Path, skip: Path) -> Iterator[tuple[Path, FileReport | None]]:
    """Candidate files under target (sorted; hidden ones and the index itself left out), each with a
    problem report or None."""
    if target.is_file():
        yield target, None if supported(target) else FileReport(str(target), SKIPPED, _unsupported(target))
        return
    root, skip = target.resolve(), skip.resolve()
    for dirpath, dirnames, filenames in os.walk(target, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames
                             if not d.startswith(".") and (Path(dirpath) / d).resolve() != skip)
        for name in sorted(filenames):
            if name.startswith((".", "~$")):
                continue
            path = Path(dirpath) / name
            yield path, _problem(path, root)


def _problem(path: Path, root: Path) -> FileReport | None:
    if not supported(path):
        return FileReport(str(path), SKIPPED, _unsupported(path))
    if path.is_symlink():
        real = path.resolve()
        if not real.exists():
            return FileReport(str(path), FAILED, f"broken symlink (its target {real} does not exist)")
        if not real.is_relative_to(root):
            return FileReport(str(path), SKIPPED, f"symlink to {real}, outside the folder: not followed")
    try:
        mode = path.stat().st_mode
    except OSError as e:
        return read_failure(path, e)
    if not stat.S_ISREG(mode):
        return FileReport(str(path), FAILED, "not a regular file")
    return None


def _unsupported(path: Path) -> str:
    return f"unsupported file type {path.suffix or '(no extension)'}: PDF, .txt and .md are ingested"


def hash_file(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def read_failure(path: Path, e: OSError) -> FileReport:
    return FileReport(str(path), FAILED, read_error_reason(e))
