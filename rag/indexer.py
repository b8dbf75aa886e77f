"""Folder -> knowledge base: walk, hash, load, chunk, embed, store; incremental and safe to kill.

Identity comes from content: a document id is the file's sha256 plus a signature of the chunker, the
embedding model and its file type's text extractors, and chunk ids extend it with the chunk's index. So an
unchanged, moved or touched file costs a hash and no embedding; a changed file gets new ids and its old
chunks are removed once the new ones are in; a changed chunker, model or extractor re-chunks what it reads.

What reading a file came to when it gave nothing to index (`failed`, `no_text`: a scan without words, a
damaged file, one past a limit) is remembered in its file row, by the sha256 of the bytes read and a signature
of what decides reading (`reading()`: its document signature, the passwords, OCR, the limits): the same bytes
under the same signature are reported with that outcome and not read again (no second minute of OCR on the
same blank scan), until they change, the signature does (a new password, OCR turned on, a larger limit, a new
version of a reader), or the run is asked to (`retry_failed`).

Order of writes, which is what makes a killed run safe to rerun:
  1. manifest: document `pending` (hidden from queries);
  2. Chroma: upsert the chunks not already stored (a rerun resumes here, embedding only what is missing);
  3. manifest, one transaction: document `complete` + the file row pointing at it;
  4. after all files: documents no file points at, and leftovers of killed runs, are hidden then deleted.

While the main process embeds, a worker process reads, parses and chunks the next files (rag.reading.worker),
under limits of time, memory and size that one bad file cannot break. A document is embedded and
stored EMBED_BATCH chunks at a time, so a huge one costs no more memory than a small one.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Callable, Iterator, NamedTuple

from rag.reading import filetypes
from rag.reading.chunking import embedded_text
from rag.config import Settings
from rag.embeddings import Embedder
from rag.errors import ConfigError, FileError, UnknownDocumentError
from rag.knowledge_base import KnowledgeBase, chunk_id, doc_of, signature
from rag.knowledge_base import doc_id as make_doc_id
from rag.lexical import Row
from rag.manifest import Document, FileRow, now
from rag.paths import shown
from rag.reading.worker import Failed, Params, Prepared, prepare_all
from rag.review import Reviewer
from rag.report import FAILED, NO_TEXT, OK, REMOVED, SKIPPED, UNCHANGED, FileReport, IngestReport
from rag.reading.walk import folder_root, hash_file, read_failure, walk

log = logging.getLogger(__name__)

EMBED_BATCH = 1024  # chunks embedded and stored at a time
# ("planned", {"work": n}), then ("reading", {"path", "where": "page 3 of 40"}) as the parser goes, and ("file",
# {"report": FileReport}) as each file is done
Event = Callable[[str, dict], None]


def ingest(target: Path, settings: Settings, *, embedder: Embedder | None = None,
           on_event: Event | None = None, retry_failed: bool = False) -> IngestReport:
    """Bring the knowledge base in line with `target` (a folder, or one file). Raises IndexLockedError.
    `retry_failed`: read again the unchanged files whose reading failed or found no text (remembered otherwise)."""
    target = Path(os.path.abspath(target))
    if not target.exists():
        raise ConfigError(f"{shown(str(target))} does not exist: give a folder (or a file) to ingest")
    embedder = embedder or Embedder(settings)
    kb = KnowledgeBase(settings, embedder.model_id)
    try:
        with kb.writing():
            return _Run(target, kb, embedder, on_event or (lambda kind, data: None), retry_failed).run()
    finally:
        kb.close()


def remove_file(path: str, settings: Settings) -> None:
    """Take one file out of the knowledge base, and its chunks unless another file has the same content.

    The file itself is deleted only when it is an upload (the app keeps those in the uploads folder); a
    file in a folder of the user's stays where it is, so ingesting that folder again brings it back.
    """
    kb = KnowledgeBase.open(settings)
    try:
        with kb.writing():
            manifest = kb.manifest
            row = manifest.files().get(path)
            if row is None:
                raise UnknownDocumentError(f"{shown(path)} is not in collection {settings.collection!r}: nothing to "
                                           "remove")
            manifest.drop_file(path)
            others = sorted(p for p, f in manifest.files().items() if row.doc_id and f.doc_id == row.doc_id)
            if row.doc_id and not others:
                remove_document(kb, row.doc_id)
            elif others and manifest.paths([row.doc_id]).get(row.doc_id) == path:  # label it with a file still there
                kb.store.relabel(row.doc_id, shown(others[0]), shown(Path(others[0]).name))
                manifest.set_path(row.doc_id, others[0])
    finally:
        kb.close()
    if Path(path).parent == kb.uploads.absolute():
        Path(path).unlink(missing_ok=True)


class Outcome(NamedTuple):
    """What reading a file's bytes came to, when it gave nothing to index (kept in its file row)."""
    sha256: str  # the bytes read
    reading: str  # the signature of what decided the reading (_Run.reading)
    reason: str  # as the reader said it
    at: float  # when


class _Run:
    """One ingest: what the manifest held when it began, what it reports, and its steps in order (run). The
    steps are the functions below it, each given the run: they share its report, timer and signatures."""

    def __init__(self, target: Path, kb: KnowledgeBase, embedder: Embedder, on_event: Event,
                 retry_failed: bool = False):
        self.target, self.kb, self.embedder, self.emit = target, kb, embedder, on_event
        self.settings, self.manifest, self.store = kb.settings, kb.manifest, kb.store
        self.retry_failed = retry_failed
        self._sigs: dict[str, str] = {}  # per file type
        self._readings: dict[str, str] = {}  # per file type
        self.root = folder_root(target)  # links are followed only to files inside it
        self.before = self.manifest.files()  # the rows as this run found them
        # outcomes of reading that gave nothing to index, by the bytes read and the reading signature (a copy or
        # a move of such a file is not read again either)
        self.outcomes = {(row.sha256, row.reading): row for row in self.before.values()
                         if row.read_at and row.status in (FAILED, NO_TEXT)}
        self.unlisted: list[str] = []  # folders that could not be listed: what was indexed from them stays
        self.report = IngestReport()
        self.timer = {"hash": 0.0, "load": 0.0, "chunk": 0.0, "embed": 0.0, "store": 0.0, "remove": 0.0,
                      "review": 0.0}

    @functools.cached_property
    def reviewer(self) -> Reviewer | None:
        """The review model, opened when a document is first stored; None when review is switched off."""
        return Reviewer.open(self.settings)

    def review(self, texts: list[str]) -> str | None:
        """A document's contract review (rag.review), as stored; None with review switched off."""
        if self.reviewer is None:
            return None
        t = time.perf_counter()
        cells = self.reviewer.cells_json(texts)
        self.timer["review"] += time.perf_counter() - t
        return cells

    def run(self) -> IngestReport:
        started, embed_before = time.perf_counter(), self.embedder.seconds
        _repair(self)
        _backfill_lexical(self)
        work, seen = _plan(self)
        self.emit("planned", {"work": len(work)})
        for item in _read(self, work):
            _store(self, item)
        if self.target.is_dir():
            _remove_missing(self, seen)
        _remove_unreferenced(self)
        _drop_strays(self)
        self.report.chunks_in_index = self.store.count()
        health = self.kb.health()
        if not health.ok:  # what this run could not repair (documents from other folders)
            self.report.notes.append(f"the knowledge base is still inconsistent: {health.problem()}; run `rag "
                                     "ingest` on the other folders it holds to repair the rest")
        self.timer["embed"] = self.embedder.seconds - embed_before
        self.timer["total"] = time.perf_counter() - started
        self.report.seconds = self.timer
        return self.report

    def add(self, entry: FileReport, outcome: Outcome | None = None) -> None:
        """Report a file; one that failed or had no text is kept, with its reason (and `outcome`: what reading
        its bytes came to), for whoever lists the library, and for the next run."""
        if entry.status in (FAILED, NO_TEXT):
            entry, row = self._failed_row(entry)
            if outcome is not None:
                row = replace(row, sha256=outcome.sha256, reading=outcome.reading, read_reason=outcome.reason,
                              read_at=outcome.at)
            self.manifest.put_file(row)
        elif entry.status == SKIPPED and entry.path in self.before:  # replaced by a link out of the folder, say
            self.manifest.drop_file(entry.path)
        self.report.files.append(entry)
        self.emit("file", {"report": entry})

    def _failed_row(self, entry: FileReport) -> tuple[FileReport, FileRow]:
        """A file that cannot be read now but was indexed before, and is still there (made unreadable, or
        changed into something that fails), keeps its last good version until it is fixed: nothing lost."""
        old = self.before.get(entry.path)
        doc = self.manifest.document(old.doc_id) if old and old.doc_id else None
        if doc is None or doc.state != "complete" or _gone(entry.path):
            return entry, FileRow(entry.path, None, 0, entry.status, entry.reason, entry.pages, 0, now())
        entry = replace(entry, reason=f"{entry.reason}; the version indexed before stays searchable until this is "
                                      "fixed")
        return entry, FileRow(entry.path, old.doc_id, old.size, entry.status, entry.reason, old.pages, old.chunks,
                              now())

    def sig(self, path: Path) -> str:
        kind = filetypes.for_path(path)
        name = kind.name if kind else ""
        if name not in self._sigs:
            options = filetypes.Options(self.settings.pdf_passwords, self.settings.ocr)
            self._sigs[name] = signature(self.settings, self.embedder.model_id, kind.reader(options) if kind else "")
        return self._sigs[name]

    def reading(self, path: Path) -> str:
        """What decides whether a file of this type can be read, besides its bytes: its document signature (the
        chunker, the model, its type's extractors and their versions, OCR on or off), the passwords tried (as a
        hash) and the limits. A file that failed or had no text is read again when this changes."""
        kind = filetypes.for_path(path)
        name = kind.name if kind else ""
        if name not in self._readings:
            s = self.settings
            passwords = hashlib.sha256("\0".join(s.pdf_passwords).encode()).hexdigest()
            spec = (f"{self.sig(path)};passwords={passwords};ocr={s.ocr};parse_timeout={s.parse_timeout!r};"
                    f"parse_memory_mb={s.parse_memory_mb};max_file_mb={s.max_file_mb}")
            self._readings[name] = hashlib.sha256(spec.encode()).hexdigest()[:16]
        return self._readings[name]


# --- consistency: when the stores disagree, before reading (and stray vectors after) ----------------------

def _repair(run: _Run) -> None:
    """When the stores disagree (someone deleted the chroma folder, say), send this folder's documents
    that lost vectors back to be embedded again by this run, and out of the keyword index until then.
    (Vectors of documents the manifest does not list are dropped at the end: this run may reuse them.)"""
    health = run.kb.health()
    if health.ok:
        return
    prefix = str(run.target) + os.sep
    mine = {row.doc_id for path, row in run.before.items()
            if row.doc_id and (path == str(run.target) or path.startswith(prefix))}
    listed = run.manifest.documents()
    lost = [d for d in listed.values() if d.state == "complete" and d.doc_id in mine
            and len(run.store.existing([chunk_id(d.doc_id, i) for i in range(d.chunks)])) < d.chunks]
    complete = {d for d, doc in listed.items() if doc.state == "complete"} - {d.doc_id for d in lost}
    with run.manifest.transaction() as m:
        for d in lost:  # hidden again, and out of the keyword index, until their vectors are back
            m.set_state(d.doc_id, "pending")
        for document in m.lexical.documents() - complete:
            m.lexical.drop(document)  # keyword rows of documents that are not complete
    run.report.notes.append(f"repaired: {health.problem()}" + (
        f"; re-embedding what Chroma lost of {len(lost)} documents ({sum(d.chunks for d in lost)} chunks)"
        if lost else ""))


def _backfill_lexical(run: _Run) -> None:
    """Complete documents missing from the keyword index (an index built before it existed) get
    their chunk texts from the store: no parsing, no embedding."""
    missing = {d.doc_id for d in run.manifest.documents().values() if d.state == "complete"}
    for doc_id in missing - run.manifest.lexical.documents():
        ids, texts, metadatas = run.store.chunks({"doc_id": doc_id})
        rows = [Row(cid, m["chunk"], m["page_start"], m["page_end"], m["tokens"], text, m.get("heading", ""))
                for cid, text, m in zip(ids, texts, metadatas)]
        with run.manifest.transaction() as m:
            m.lexical.put(doc_id, rows)


def _drop_strays(run: _Run) -> None:
    """Vectors of documents the manifest does not list (a manifest moved away, then rebuilt)."""
    if run.kb.health().ok:
        return
    stray = {doc_of(cid) for cid in run.store.ids()} - set(run.manifest.documents())
    for document in stray:
        run.store.delete_document(document)
    if stray:
        run.report.notes.append(f"repaired: dropped the vectors of {len(stray)} documents the manifest does "
                                "not list")


# --- 1. planning: what is there, what changed, and so what to read -----------------------------------------

def _plan(run: _Run) -> tuple[list[Path], set[str]]:
    """The files to read (new, changed, or indexed before page texts were kept), and every path the walk saw.
    The rest is reported here: a problem the walk found, a file that cannot be hashed, bytes whose reading
    failed before (not read again), an unchanged file (adopted, when its content is indexed under another path)."""
    files, documents = run.manifest.files(), run.manifest.documents()
    without_pages = run.manifest.without_pages()  # indexed before page texts were kept: read again, once
    work, seen = [], set()
    for path, problem in walk(run.target, run.settings.index_dir, run.settings.max_file_mb * 2**20, run.unlisted):
        seen.add(str(path))
        if problem:
            run.add(_unlisted_note(run, problem) if str(path) in run.unlisted else problem)
            continue
        t = time.perf_counter()
        try:
            sha, size = hash_file(path, run.root)
        except OSError as e:
            run.add(read_failure(path, e))
            continue
        except FileError as e:
            run.add(FileReport(str(path), e.status, str(e)))
            continue
        finally:
            run.timer["hash"] += time.perf_counter() - t
        doc_id = make_doc_id(sha, run.sig(path))
        doc = documents.get(doc_id)
        if doc is None and not run.retry_failed and (known := run.outcomes.get((sha, run.reading(path)))):
            run.add(FileReport(str(path), known.status, _not_read_again(known)), Outcome(
                known.sha256, known.reading, known.read_reason, known.read_at))
            continue
        if doc is None or doc.state != "complete" or doc_id in without_pages:
            work.append(path)
            continue
        row, reason = files.get(str(path)), ""
        if row is None or row.doc_id != doc_id or row.status != OK:  # new here, or readable again
            reason = _adopt(run, path, doc)
            run.manifest.put_file(FileRow(str(path), doc_id, size, OK, reason, doc.pages, doc.chunks, now()))
        run.add(FileReport(str(path), UNCHANGED, reason, doc.pages, doc.chunks))
    return work, seen


def _unlisted_note(run: _Run, report: FileReport) -> FileReport:
    inside = [p for p, row in run.before.items() if p.startswith(report.path + os.sep) and row.doc_id]
    if not inside:
        return report
    return replace(report, reason=f"{report.reason}; the {len(inside)} files indexed from it before stay until it "
                                  "can be listed again")


def _adopt(run: _Run, path: Path, doc: Document) -> str:
    """A known document at a new path: moved, renamed or copied. Relabel if its old path is gone."""
    if doc.path == str(path) or os.path.exists(doc.path):
        return "" if doc.path == str(path) else f"same content as {shown(doc.path)}: indexed once"
    run.store.relabel(doc.doc_id, shown(str(path)), shown(path.name))
    run.manifest.set_path(doc.doc_id, str(path))
    return f"moved from {shown(doc.path)}"


# --- 2. reading: read, parse and chunk in the worker process, a couple of files ahead of the embedder ----------

def _read(run: _Run, work: list[Path]) -> Iterator[Prepared | Failed]:
    if not work:
        return
    s = run.settings
    params = Params(run.embedder.tokenizer_json(), run.embedder.chunk_tokens, s.chunk_overlap, s.pdf_passwords,
                    s.parse_timeout, s.parse_memory_mb, s.max_file_mb * 2**20, str(run.root),
                    filetypes.modules(), s.ocr)
    reading = lambda path, where: run.emit("reading", {"path": str(path), "where": where})  # noqa: E731
    with contextlib.closing(prepare_all(work, params, reading)) as prepared:  # stops the worker however we leave
        for item in prepared:
            for stage, seconds in item.seconds.items():
                run.timer[stage] += seconds
            yield item


# --- 3. storing one document: embed what is missing, store, then mark complete ----------------------------------

def _store(run: _Run, item: Prepared | Failed) -> None:
    if isinstance(item, Failed):
        _remember_failure(run, item)
        return
    doc_id = make_doc_id(item.sha256, run.sig(item.path))
    known = run.manifest.document(doc_id)
    if known is not None and known.state == "complete" and doc_id in run.manifest.without_pages():
        _keep_pages(run, item, known)
    elif known is not None and known.state == "complete":
        _same_as(run, item, known)
    else:
        _index(run, item, doc_id)


def _remember_failure(run: _Run, item: Failed) -> None:
    """What reading its bytes came to is kept (not when they were never read)."""
    outcome = Outcome(item.sha256, run.reading(item.path), item.reason, now()) if item.sha256 else None
    run.add(FileReport(str(item.path), item.status, item.reason), outcome)


def _keep_pages(run: _Run, item: Prepared, known: Document) -> None:
    """A document indexed before page texts were kept: all it lacked, as its chunks and vectors are there."""
    path, cells = str(item.path), run.review(item.texts)
    with run.manifest.transaction() as m:
        m.put_pages(known.doc_id, item.texts, item.ocr, item.sections)
        if cells is not None:
            m.put_review(known.doc_id, run.reviewer.name, cells)
        m.put_file(FileRow(path, known.doc_id, item.size, OK, item.note, known.pages, known.chunks, now()))
    run.add(FileReport(path, OK, "page texts kept for quotes", known.pages, known.chunks))


def _same_as(run: _Run, item: Prepared, known: Document) -> None:
    """A duplicate of a document stored earlier in this run."""
    path, reason = str(item.path), f"same content as {shown(known.path)}: indexed once"
    run.manifest.put_file(FileRow(path, known.doc_id, item.size, OK, reason, known.pages, known.chunks, now()))
    run.add(FileReport(path, OK, reason, known.pages, known.chunks))


def _index(run: _Run, item: Prepared, doc_id: str) -> None:
    """The order of writes in the module's docstring: pending, vectors, then complete in one transaction."""
    path = str(item.path)
    doc = Document(doc_id, item.sha256, "pending", path, item.pages, len(item.chunks), sum(item.tokens), now())
    run.manifest.put_document(doc)
    ids = [chunk_id(doc_id, c.index) for c in item.chunks]
    _embed_missing(run, item, doc_id, ids)
    old, cells = run.before.get(path), run.review(item.texts)
    with run.manifest.transaction() as m:
        m.lexical.put(doc_id, (Row(cid, c.index, c.page_start, c.page_end, n, c.text, c.heading)
                               for cid, c, n in zip(ids, item.chunks, item.tokens)))
        m.put_pages(doc_id, item.texts, item.ocr, item.sections)
        if cells is not None:
            m.put_review(doc_id, run.reviewer.name, cells)
        if old and old.doc_id and old.doc_id != doc_id and not m.pointing_at(old.doc_id, but=path):
            m.set_state(old.doc_id, "removing")  # the version it replaces: never searchable beside it
            m.lexical.drop(old.doc_id)
        m.put_document(Document(**{**asdict(doc), "state": "complete", "ingested_at": now()}))
        m.put_file(FileRow(path, doc_id, item.size, OK, item.note, item.pages, len(item.chunks), now()))
    run.add(FileReport(path, OK, item.note, item.pages, len(item.chunks)))


def _embed_missing(run: _Run, item: Prepared, doc_id: str, ids: list[str]) -> None:
    """Embed and upsert the chunks not already stored, EMBED_BATCH at a time (resuming a killed run, or
    rebuilding a lost manifest, reuses the vectors that are there)."""
    have = run.store.existing(ids)
    todo = [i for i, cid in enumerate(ids) if cid not in have]
    for lo in range(0, len(todo), EMBED_BATCH):
        batch = todo[lo:lo + EMBED_BATCH]
        vectors = run.embedder.embed([embedded_text(item.chunks[i]) for i in batch])
        run.report.embedded += len(batch)
        t = time.perf_counter()
        run.store.upsert([ids[i] for i in batch], vectors, [item.chunks[i].text for i in batch],
                         [_metadata(item, doc_id, i) for i in batch])
        run.timer["store"] += time.perf_counter() - t


def _metadata(item: Prepared, doc_id: str, i: int) -> dict:
    c = item.chunks[i]
    return {"doc_id": doc_id, "sha256": item.sha256, "path": shown(str(item.path)), "file": shown(item.path.name),
            "page_start": c.page_start, "page_end": c.page_end, "start": c.start, "end": c.end,
            "chunk": c.index, "tokens": item.tokens[i], "heading": c.heading}


# --- 4. removing what is gone ----------------------------------------------------------------------------

def _remove_missing(run: _Run, seen: set[str]) -> None:
    """Files of the folder the walk did not see (but not those in folders it could not list)."""
    prefix = str(run.target) + os.sep
    unlisted = tuple(folder + os.sep for folder in run.unlisted)
    for path, row in run.manifest.files().items():
        if path.startswith(prefix) and path not in seen and not path.startswith(unlisted):
            run.manifest.drop_file(path)
            if row.doc_id:
                run.add(FileReport(path, REMOVED, "no longer in the folder", row.pages, row.chunks))


def _remove_unreferenced(run: _Run) -> None:
    """Documents no file points at, and those a killed run left pending or removing."""
    referenced = run.manifest.referenced()
    for doc in run.manifest.documents().values():
        if doc.doc_id in referenced and doc.state == "complete":
            continue
        t = time.perf_counter()
        log.info("removing %s document %s (%s)", doc.state, doc.doc_id, doc.path)
        remove_document(run.kb, doc.doc_id)
        run.timer["remove"] += time.perf_counter() - t
        run.report.removed_documents += 1


def _not_read_again(row: FileRow) -> str:
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(row.read_at))
    return f"{row.read_reason} (unchanged since {when}: not read again; `rag ingest --retry-failed` reads it again)"


def _gone(path: str) -> bool:
    """Deleted (not merely unreadable: a file we may not look at is still there)."""
    try:
        os.lstat(path)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return False


def remove_document(kb: KnowledgeBase, doc_id: str) -> None:
    """Hide (and leave the keyword index), delete the chunks (one metadata delete), then forget the
    document. Safe to repeat."""
    with kb.manifest.transaction() as m:
        m.set_state(doc_id, "removing")
        m.lexical.drop(doc_id)
    kb.store.delete_document(doc_id)
    kb.manifest.drop_document(doc_id)
