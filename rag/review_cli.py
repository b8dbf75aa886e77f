"""`rag review`: every contract of the knowledge base (or the named ones) x CUAD's 41 clause types.

Without --out it prints, per document, the clause types found (probability at least 0.5), each with its short
answer or the first words of its best quote and the page. --out FILE writes every cell; the extension picks the
format: .jsonl (one object per document x clause type), .csv (the same, flat), .xlsx (a sheet a lawyer can filter:
one row per document, one column per clause type; and a sheet with every quote). --verify has a language model
server confirm each quote first (rag.verify).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path

from rag.config import Settings
from rag.domain.cuad import BY_KEY, BY_NAME, CATEGORIES
from rag.errors import ConfigError, RagError
from rag.paths import printable, shown

FORMATS = (".jsonl", ".csv", ".xlsx")
CELL_WORDS = 12  # words of the best quote shown in a matrix cell


def register(subparsers, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser("review", parents=[common], help="review contracts: each x CUAD's 41 clause types",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("documents", nargs="*", metavar="DOCUMENT", help="file names or paths (default: every document)")
    p.add_argument("--categories", help="clause types, comma-separated, by name or key (governing-law,non-compete)")
    p.add_argument("--out", type=Path, help=f"write every cell to this file: {', '.join(FORMATS)}")
    p.add_argument("--verify", action="store_true", help="a language model server (RAG_LLM_URL) confirms each quote "
                   "(yes/no); the quotes it rejects no longer count for their cell")
    p.add_argument("--concurrency", type=int, default=4, help="--verify: questions sent to the server at once")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from rag.knowledge_base import KnowledgeBase
    from rag.review import Reviewer, complete_documents, library_reviews

    if args.out and args.out.suffix.lower() not in FORMATS:
        raise ConfigError(f"--out {shown(str(args.out))}: name a file ending in {', '.join(FORMATS)}")
    wanted = categories(args.categories)
    reviewer = Reviewer.open(settings)
    if reviewer is None:
        raise ConfigError("contract review is switched off (review_model = none): unset RAG_REVIEW_MODEL to review")
    kb = KnowledgeBase.open(settings)
    try:
        documents = complete_documents(kb, args.documents) if args.documents else \
            dict(sorted(complete_documents(kb).items(), key=lambda kv: kv[1].path.lower()))  # as named, or by path
        if not documents:
            raise RagError(f"the knowledge base {settings.collection!r} in {settings.index_dir} is empty: add "
                           "documents with `rag ingest FOLDER` first")
        reviews = library_reviews(kb, reviewer, documents)
    finally:
        kb.close()
    if args.verify:
        from rag.backends import open_llm
        from rag.verify import verify

        reviews, done = verify(reviews, open_llm(settings), args.concurrency, set(wanted))
        print(done.said(), file=sys.stderr)
    rows = [(documents[d].path, cell) for d in documents for cell in reviews[d] if cell.category in wanted]
    if args.out:
        args.out.write_bytes(export(rows, args.out.suffix.lower()))
        print(f"{len(reviews)} documents x {len(wanted)} clause types -> {shown(str(args.out))}", file=sys.stderr)
    else:
        print_found(rows)
    return 0


def categories(option: str | None) -> list[str]:
    """The clause types asked for, by name ("Governing Law") or key ("governing-law"); all by default."""
    if not option:
        return [c.name for c in CATEGORIES]
    names = []
    for given in (g.strip() for g in option.split(",") if g.strip()):
        category = BY_NAME.get(given) or BY_KEY.get(given.lower()) or BY_KEY.get("-".join(given.lower().split()))
        if category is None:
            raise ConfigError(f"no clause type {given!r}: use names or keys such as "
                              f"{', '.join(c.key for c in CATEGORIES[:5])} (all: {', '.join(c.key for c in CATEGORIES)})")
        names.append(category.name)
    return names


def row(path: str, cell) -> dict:
    return {"document": Path(path).name, "path": path, **cell.as_dict()}


def export(rows, suffix: str) -> bytes:
    """`rows` ((path, cell) pairs) as a file of the format its extension names: .jsonl, .csv or .xlsx."""
    return {".jsonl": jsonl, ".csv": csv_text, ".xlsx": xlsx}[suffix](rows)


def jsonl(rows) -> bytes:
    return "".join(json.dumps(row(path, cell), ensure_ascii=False) + "\n" for path, cell in rows).encode()


def csv_text(rows) -> bytes:
    """One line per document x clause type: its best quote and page in columns, every quote as JSON."""
    f = io.StringIO(newline="")
    w = csv.writer(f)
    w.writerow(["document", "category", "found", "probability", "answer", "quote", "page", "quotes"])
    for path, cell in rows:
        best = cell.quotes[0] if cell.quotes else None
        w.writerow([inert(Path(path).name), cell.category, cell.found, round(cell.probability, 4),
                    inert(cell.answer), inert(best.text if best else ""), best.page if best else "",
                    inert(json.dumps(cell.as_dict()["quotes"], ensure_ascii=False))])
    return f.getvalue().encode()


def inert(text: str) -> str:
    """A field a spreadsheet will not run: text opening with = + - @ (a formula, in a document written to steer
    whoever opens the sheet) gets a leading apostrophe, as spreadsheets themselves mark text."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def xlsx(rows) -> bytes:
    """Sheet "Matrix": a row per document, a column per clause type, each cell the short answer or the best quote's
    first words and its page, shaded by probability; sheet "Quotes": every quote, one per row, to filter."""
    from openpyxl import Workbook
    from openpyxl.styles import PatternFill
    from openpyxl.utils import get_column_letter

    book = Workbook()
    matrix = book.active
    matrix.title = "Matrix"
    names = list(dict.fromkeys(cell.category for _, cell in rows))
    documents = list(dict.fromkeys(path for path, _ in rows))
    put(matrix, 1, 1, "document")
    for j, name in enumerate(names, 2):
        put(matrix, 1, j, name)
    at = {(path, cell.category): cell for path, cell in rows}
    for i, path in enumerate(documents, 2):
        put(matrix, i, 1, Path(path).name)
        for j, name in enumerate(names, 2):
            cell = at.get((path, name))
            if cell is None or not cell.quotes:
                continue
            shown_cell = put(matrix, i, j, f"{'' if cell.found else '(unlikely) '}{cell_words(cell)} "
                                           f"(p. {cell.quotes[0].page}, {cell.probability:.0%})")
            shade = int(255 - 120 * cell.probability)
            shown_cell.fill = PatternFill("solid", fgColor=f"{shade:02X}FF{shade:02X}" if cell.found else "FFFFFF")
    matrix.freeze_panes = "B2"
    matrix.column_dimensions["A"].width = 40
    for j in range(2, len(names) + 2):
        matrix.column_dimensions[get_column_letter(j)].width = 30
    quotes = book.create_sheet("Quotes")
    for j, title in enumerate(("document", "category", "found", "cell probability", "answer", "rank", "quote",
                               "page", "start", "end", "quote probability", "verified"), 1):
        put(quotes, 1, j, title)
    r = 2
    for path, cell in rows:
        for rank, q in enumerate(cell.quotes, 1):
            for j, value in enumerate((Path(path).name, cell.category, cell.found, round(cell.probability, 4),
                                       cell.answer, rank, q.text, q.page, q.start, q.end, round(q.probability, 4),
                                       {True: "yes", False: "no"}.get(q.verified, "")), 1):
                put(quotes, r, j, value)
            r += 1
    quotes.auto_filter.ref = f"A1:L{max(r - 1, 1)}"
    matrix.auto_filter.ref = f"A1:{get_column_letter(len(names) + 1)}{len(documents) + 1}"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def put(sheet, row_number: int, column: int, value):
    """A cell whose text stays text: never a formula, whatever the document says."""
    cell = sheet.cell(row=row_number, column=column)
    cell.value = value
    if isinstance(value, str):
        cell.data_type = "s"
    return cell


def cell_words(cell) -> str:
    """What a matrix cell shows: the short answer, else the best quote's first words."""
    words = cell.quotes[0].text.split() if cell.quotes else []
    return cell.answer or " ".join(words[:CELL_WORDS]) + (" ..." if len(words) > CELL_WORDS else "")


def print_found(rows) -> None:
    last = None
    for path, cell in rows:
        if path != last:
            print(f"\n{printable(Path(path).name)}")
            last = path
        if cell.found:
            print(f"  {cell.category:36s} {cell.probability:4.0%}  {printable(cell_words(cell))}  "
                  f"(p. {cell.quotes[0].page})")
