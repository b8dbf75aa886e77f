"""What an ingest run reports: a status and a reason per file, and totals (`rag ingest` prints it as a
table or as JSON)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

# statuses: ok (indexed now), unchanged, failed, no_text (nothing to index), skipped (not ours to index), removed
OK, UNCHANGED, FAILED, NO_TEXT, SKIPPED, REMOVED = "ok", "unchanged", "failed", "no_text", "skipped", "removed"


@dataclass
class FileReport:
    path: str
    status: str
    reason: str = ""
    pages: int = 0
    chunks: int = 0


@dataclass
class IngestReport:
    files: list[FileReport] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    embedded: int = 0  # chunks embedded by this run
    removed_documents: int = 0
    chunks_in_index: int = 0
    notes: list[str] = field(default_factory=list)  # what the run repaired, or could not

    @property
    def has_failures(self) -> bool:
        """Any file failed or had no text: the run exits 1."""
        return any(f.status in (FAILED, NO_TEXT) for f in self.files)

    def totals(self) -> dict:
        counts = {s: 0 for s in (OK, UNCHANGED, FAILED, NO_TEXT, SKIPPED, REMOVED)}
        for f in self.files:
            counts[f.status] += 1
        return {"files": len(self.files), **counts, "pages": sum(f.pages for f in self.files if f.status == OK),
                "chunks": sum(f.chunks for f in self.files if f.status == OK), "embedded": self.embedded,
                "removed_documents": self.removed_documents, "chunks_in_index": self.chunks_in_index,
                "seconds": {k: round(v, 3) for k, v in self.seconds.items()}}

    def to_dict(self) -> dict:
        return {"files": [asdict(f) for f in self.files], "totals": self.totals(), "notes": self.notes}


