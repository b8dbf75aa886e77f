"""How chunks meet tables: of an index's documents, re-chunked from their stored page texts as `rag ingest`
chunks them, how many chunk ends fall inside a table row, and how many chunks carry a table's heading.

    python -m eval.table_rows --index /tmp/financebench-index

A table row here is a line that ends in two or more figures (rag.reading.chunking's rule); a chunk end inside one
leaves figures on the other side of the cut. The end of a page is no cut.
"""

from __future__ import annotations

import argparse
import sqlite3
from pathlib import Path

from rag.reading.chunking import chunk_pages, is_row
from rag.config import Settings
from rag.embeddings import Embedder


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", type=Path, required=True, help="an index made by `rag ingest`")
    args = parser.parse_args(argv)
    settings = Settings(index_dir=args.index)
    embedder = Embedder(settings)
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_str(embedder.tokenizer_json())

    def tokenize(texts):
        return [e.offsets for e in tokenizer.encode_batch(list(texts), add_special_tokens=False)]

    db = sqlite3.connect(f"file:{args.index / 'manifest.sqlite'}?mode=ro", uri=True)
    documents = [row[0] for row in db.execute("SELECT DISTINCT doc_id FROM pages")]
    chunks = inside = headed = 0
    for doc_id in documents:
        pages = [text for (text,) in db.execute("SELECT text FROM pages WHERE doc_id = ? ORDER BY page", (doc_id,))]
        for chunk in chunk_pages(pages, tokenize, embedder.chunk_tokens, settings.chunk_overlap):
            chunks += 1
            headed += bool(chunk.heading)
            page = pages[chunk.page_end - 1]
            line_end = page.find("\n", chunk.end)
            line_end = len(page) if line_end == -1 else line_end
            if page[chunk.end:line_end].strip():  # the chunk ends before its line does
                inside += is_row(page[page.rfind("\n", 0, chunk.end) + 1:line_end])
    print(f"{len(documents)} documents, {chunks} chunks: {inside} chunk ends inside a table row "
          f"({inside / max(chunks, 1):.2%}); {headed} chunks start inside a table and carry its heading")


if __name__ == "__main__":
    main()
