"""PDF parsing: PDFium (what `rag ingest` reads with) against pypdf (what it read with before), side by side.

    python -m eval.bench_parse --docs ../shared/data/financebench/docs --out eval/reports/parse_benchmark

Each file is read by both, one after the other (so both see the same load on a busy machine): every page's
text, as ingestion asks for it. A file a library cannot read counts its time until it gave up, and is named.
The report also counts the lines of each text (pypdf puts a table's cells on lines of their own) and the
Llama-3 tokens they take.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from rag.reading.filetypes import pdf
from rag.tokens import llama3_tokens


def read(load, data: bytes) -> tuple[float, list[str] | None, str]:
    started = time.perf_counter()
    try:
        read, error = load(data, ()), ""
        pages = getattr(read, "pages", read)  # PDFium's reader says which pages it OCR'd too
    except Exception as e:  # noqa: BLE001  a library's failure is a result here
        pages, error = None, f"{type(e).__name__}: {str(e)[:120]}"
    return time.perf_counter() - started, pages, error


def measure(path: Path) -> dict:
    data = path.read_bytes()
    row = {"file": path.name}
    for name, load in (("pdfium", pdf.pdfium_pages), ("pypdf", pdf.pypdf_pages)):
        seconds, pages, error = read(load, data)
        text = "\n".join(pages or [])
        row[name] = {"seconds": round(seconds, 3), "pages": len(pages or []), "error": error,
                     "lines": text.count("\n") + 1 if text else 0, "tokens": llama3_tokens(text) if text else 0}
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=Path, default=Path("../shared/data/financebench/docs"))
    parser.add_argument("--out", type=Path, default=Path("eval/reports/parse_benchmark"))
    args = parser.parse_args()
    rows = []
    for path in sorted(args.docs.glob("*.pdf")):
        rows.append(measure(path))
        print(json.dumps(rows[-1]), flush=True)
    total = {name: sum(r[name]["seconds"] for r in rows) for name in ("pdfium", "pypdf")}
    result = {"date": time.strftime("%Y-%m-%d"), "docs": str(args.docs), "files": rows, "seconds": total,
              "speedup": total["pypdf"] / total["pdfium"]}
    from eval.report import save

    save(args.out, result, render)


def render(r: dict) -> str:
    from eval.bench_ingest import machine

    rows = "\n".join(
        f"| {x['file']} | {x['pdfium']['pages']} | {x['pdfium']['seconds']:.2f} | "
        f"{x['pypdf']['seconds']:.2f}{' (failed: ' + x['pypdf']['error'] + ')' if x['pypdf']['error'] else ''} | "
        f"{x['pdfium']['lines']:,} / {x['pypdf']['lines']:,} | {x['pdfium']['tokens']:,} / {x['pypdf']['tokens']:,} |"
        for x in r["files"])
    pages = sum(x["pdfium"]["pages"] for x in r["files"])
    failed = [x["file"] for x in r["files"] if x["pdfium"]["error"]]
    return f"""# PDF parsing benchmark

{r['date']}, {machine()}. Folder: `{r['docs']}` ({len(r['files'])} files, {pages:,} pages).

**PDFium {r['seconds']['pdfium']:.1f} s, pypdf {r['seconds']['pypdf']:.1f} s: {r['speedup']:.1f}x faster**, each file
read by both in turn in one process. PDFium failed on: {', '.join(failed) or 'none'}.

| file | pages | PDFium s | pypdf s | lines (PDFium / pypdf) | Llama-3 tokens (PDFium / pypdf) |
|---|---:|---:|---:|---:|---:|
{rows}
"""


if __name__ == "__main__":
    main()
