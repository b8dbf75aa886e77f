"""File paths as the OS gives them, and as text that can be stored and shown.

On Linux a file name is bytes. A name that is not valid UTF-8 (copied from an old Windows share or
out of a zip: `caf\\xe9.pdf`) reaches Python as a str with lone surrogates, which SQLite, Chroma, a
UTF-8 JSON file, a terminal or a browser all refuse. So a path has three forms:

- the str the OS gives, used to open the file (everywhere in memory);
- `stored(path)`: what the manifest keeps: the path itself when it is valid UTF-8, else its raw bytes
  (a BLOB), so the same file maps to the same row on every run and no encoding is guessed;
- `shown(path)`: for people and for text stores (Chroma metadata, prompts, reports, JSON output): a
  byte that is not UTF-8 written as `\\xe9`; a control character (a newline, a terminal escape) or one
  that reorders or hides text (right-to-left override, zero-width space) as `\\x1b` / `\\u202e`; a
  backslash as `\\\\`, so two names never show alike.
"""

from __future__ import annotations

import logging
import os
import re

_SURROGATE = re.compile(r"[\ud800-\udfff]")
# C0 and C1 controls, line and paragraph separators, bidirectional controls, zero-width characters
_HIDDEN = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")
_HIDDEN_BUT_LINES = re.compile(_HIDDEN.pattern.replace("\\x00-\\x1f", "\\x00-\\x08\\x0b-\\x1f"))


def stored(path: str) -> str | bytes:
    try:
        path.encode("utf-8")
        return path
    except UnicodeEncodeError:
        return os.fsencode(path)


def loaded(value: str | bytes) -> str:
    """The path as the OS gives it, from what `stored` kept."""
    return os.fsdecode(value) if isinstance(value, bytes) else value


def valid_text(text: str) -> str:
    """`text` as valid UTF-8: a byte the OS could not decode (a lone surrogate) written as `\\xe9`."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return _SURROGATE.sub(_escape_surrogate, text)


def shown(path: str) -> str:
    """A path (or a name) printable, valid UTF-8, and one string per path (backslashes doubled)."""
    return printable(path.replace("\\", "\\\\"))


def printable(text: str, lines: bool = False) -> str:
    """Text from outside (a message, a log line; with `lines`, an answer that keeps its line breaks and
    tabs) that cannot steer a terminal and is valid UTF-8."""
    hidden = _HIDDEN_BUT_LINES if lines else _HIDDEN
    return hidden.sub(_escape_hidden, _SURROGATE.sub(_escape_surrogate, text))


class PrintableFormatter(logging.Formatter):
    """Log lines through `printable`: a document's bytes in a library's warning never reach a terminal raw."""

    def format(self, record: logging.LogRecord) -> str:
        return printable(super().format(record))


def json_safe(value):
    """A JSON-ready structure with every string valid UTF-8 (for --json output and results files)."""
    if isinstance(value, str):
        return valid_text(value)
    if isinstance(value, dict):
        return {json_safe(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def _escape_surrogate(m: re.Match) -> str:
    code = ord(m.group())
    return f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"\\u{code:04x}"


def _escape_hidden(m: re.Match) -> str:
    code = ord(m.group())
    return f"\\x{code:02x}" if code < 256 else f"\\u{code:04x}"
