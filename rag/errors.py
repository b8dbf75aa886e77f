"""Every error the library raises on purpose, in one shallow tree under `RagError`.

The rule (DESIGN.md, convention 4):
- raise a `RagError` when the caller must act (bad settings, index locked, server down); its message
  says what to do next;
- log a warning when a problem was handled (a garbled page, a page with no text);
- a file that cannot be ingested is a per-file status in the ingest report, and the batch goes on.

The shells (`rag` CLI, the app) turn these into exit codes or messages; the library never exits.
"""

from __future__ import annotations


class RagError(Exception):
    """Base of every error the library raises on purpose; str(e) is meant for the user."""


class ConfigError(RagError):
    """A setting is missing, malformed or contradictory."""


class IndexLockedError(RagError):
    """Another process is writing to the same index."""


class IndexDamagedError(RagError):
    """The manifest cannot be read: a damaged SQLite file (SQLITE_CORRUPT, SQLITE_NOTADB), nothing else."""


class DiskFullError(RagError):
    """The disk that holds the index has no room left for what must be written (SQLITE_FULL, ENOSPC)."""


class IndexChangedError(RagError):
    """Another process changed the index while this one read it, and reading it afresh failed too."""


class IndexInconsistentError(RagError):
    """The manifest, the keyword index and Chroma disagree (e.g. the chroma folder was deleted)."""


class StoreError(RagError):
    """The Chroma store (or the manifest) could not be opened, reached, read or written."""


class StoreReadError(StoreError):
    """Chroma failed to read a local index; the usual cause is another process writing it meanwhile, which
    reading it afresh gets past (rag.knowledge_base.KnowledgeBase.read does, once)."""


class EmbeddingError(RagError):
    """The embedding model could not be loaded."""


class LLMUnavailableError(RagError):
    """The configured language-model server did not answer, or answered with an error."""


class LLMTimeoutError(LLMUnavailableError):
    """The server answered too slowly for this one request (it may still answer the next)."""


class UnknownDocumentError(RagError):
    """A question's scope names a document the knowledge base does not hold."""


class PromptTooLongError(RagError):
    """The question alone does not fit the model's context window."""


class FileError(RagError):
    """One file could not be ingested; `status` is its report status, str(e) the reason."""

    status = "failed"


class NoTextError(FileError):
    """The file opened but holds no extractable text (scanned pages, empty document)."""

    status = "no_text"
