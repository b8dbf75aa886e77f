"""File paths as the OS gives them, and as text that can be stored and shown.

On Linux a file name is bytes. A name that is not valid UTF-8 (copied from an old Windows share or
out of a zip: `caf\\xe9.pdf`) reaches Python as a str with lone surrogates, which SQLite, Chroma, a
UTF-8 JSON file, a terminal or a browser all refuse. So a path has three forms:

- the str the OS gives, used to open the file (everywhere in memory);
- `stored(path)`: what the manifest keeps: the path itself when it is valid UTF-8, else its raw bytes
  (a BLOB), so the same file maps to the same row on every run and no encoding is guessed;
- `shown(path)`: for people and for text stores (Chroma metadata, prompts, reports): bytes that are
  not UTF-8 written as `\\xe9`, control characters (a newline, a terminal escape) as `\\x1b`.
"""

from __future__ import annotations

import os
import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def stored(path: str) -> str | bytes:
    try:
        path.encode("utf-8")
        return path
    except UnicodeEncodeError:
        return os.fsencode(path)


def loaded(value: str | bytes) -> str:
    """The path as the OS gives it, from what `stored` kept."""
    return os.fsdecode(value) if isinstance(value, bytes) else value


def shown(path: str) -> str:
    """Printable, valid UTF-8, and the same string for the same path."""
    try:
        text = os.fsencode(path).decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate that no file system produced
        text = path.encode("utf-8", "backslashreplace").decode("utf-8")
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 256 else f"\\u{ord(m.group()):04x}",
                        text)


def valid_text(text: str) -> str:
    """`text` with anything that is not valid UTF-8 (a lone surrogate) written as an escape."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
