"""`rag ingest FOLDER [--json]`: bring a knowledge base in line with a folder and report every file.

Exit status: 0 when every file is ok or unchanged (skipped files, e.g. unsupported types, don't count),
1 when any failed or had no text (the good ones are still indexed), 2 on bad usage.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.markup import escape

from rag.reading import filetypes
from rag.config import Settings
from rag.indexer import ingest
from rag.paths import json_safe, shown
from rag.report import FAILED, NO_TEXT, OK, REMOVED, SKIPPED, UNCHANGED, IngestReport

STYLE = {OK: "green", UNCHANGED: "dim", FAILED: "red", NO_TEXT: "yellow", SKIPPED: "dim", REMOVED: "cyan"}


def register(subparsers, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser("ingest", parents=[common], help=f"index a folder of {filetypes.described()} files",
                              description="Index a folder (or one file) into the knowledge base. Unchanged files "
                                          "cost a hash; changed files are re-indexed; removed files are dropped.")
    p.add_argument("folder", type=Path, help="folder (or single file) to ingest")
    p.add_argument("--json", action="store_true", help="print the report as JSON instead of a table")
    p.add_argument("--password", dest="pdf_passwords", action="append",
                   help="password to try on encrypted PDFs (repeatable; env RAG_PDF_PASSWORDS, comma-separated)")
    p.add_argument("--no-ocr", dest="ocr", action="store_false", default=None,
                   help="leave scanned pages unread instead of reading them with Tesseract (env RAG_OCR=false)")
    p.add_argument("--retry-failed", action="store_true",
                   help="read again the files that failed or had no text, even when neither they nor the settings "
                        "that decide reading changed (otherwise their outcome is remembered, not read again)")
    p.add_argument("--chunk-tokens", dest="chunk_tokens", type=int, help="chunk size in embedding tokens")
    p.add_argument("--batch-size", dest="embed_batch_size", type=int, help="embedding batch size")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from rich.console import Console

    err = Console(stderr=True)
    progress = _progress(err) if err.is_terminal and not args.json else None
    if progress:
        with progress:
            report = ingest(args.folder, settings, on_event=_on_event(progress), retry_failed=args.retry_failed)
    else:
        report = ingest(args.folder, settings, retry_failed=args.retry_failed)
    if args.json:
        json.dump(json_safe(report.to_dict()), sys.stdout, indent=2)
        print()
    else:
        _print_table(Console(), report, settings, args.folder)
    return 1 if report.has_failures else 0


def _progress(console):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TextColumn("{task.fields[current]}"), console=console, transient=True)


def _on_event(progress):
    state = {}

    def handle(kind: str, data: dict) -> None:
        if kind == "planned":
            state["task"] = progress.add_task("indexing", total=data["work"], current="")
        elif kind == "reading" and "task" in state:  # the file being parsed: its pages, its OCR
            progress.update(state["task"], current=escape(f"{shown(Path(data['path']).name)[:50]}: {data['where']}"))
        elif kind == "file" and "task" in state and data["report"].status not in (UNCHANGED, SKIPPED, REMOVED):
            progress.update(state["task"], advance=1, current=escape(shown(Path(data["report"].path).name)[:60]))

    return handle


def _print_table(console, report: IngestReport, settings: Settings, folder: Path) -> None:
    from rich.table import Table

    listed = [f for f in report.files if f.status != UNCHANGED or f.reason]
    if listed:
        table = Table(show_edge=False, pad_edge=False)
        for column, justify in (("file", "left"), ("status", "left"), ("pages", "right"), ("chunks", "right"),
                                ("reason", "left")):
            table.add_column(column, justify=justify, overflow="fold")
        for f in listed:
            table.add_row(escape(_shown(f.path, folder)), f"[{STYLE[f.status]}]{f.status}[/]", str(f.pages or ""),
                          str(f.chunks or ""), escape(shown(f.reason)))
        console.print(table)
    for note in report.notes:
        console.print(f"[yellow]{escape(note)}[/]")
    t = report.totals()
    counts = ", ".join(f"{t[s]} {s.replace('_', ' ')}" for s in (OK, UNCHANGED, FAILED, NO_TEXT, SKIPPED, REMOVED)
                       if t[s])
    console.print(f"{t['files']} files: {counts or 'nothing to do'}. Embedded {t['embedded']} chunks in "
                  f"{t['seconds']['total']:.1f} s; collection {settings.collection!r} holds {t['chunks_in_index']} "
                  f"chunks ({escape(shown(str(settings.chroma_url or settings.index_dir)))}).")


def _shown(path: str, folder: Path) -> str:
    """A path as the user will recognise it: relative to the folder they named, when it is inside; printable
    (file names are data: a name may hold bytes that are not UTF-8, or a terminal's escape codes)."""
    root = folder.absolute() if folder.is_dir() else folder.absolute().parent
    try:
        return shown(str(Path(path).relative_to(root)))
    except ValueError:
        return shown(path)
