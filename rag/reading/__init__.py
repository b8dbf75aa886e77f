"""Reading files: what runs in the parsing worker process (worker), and what it calls.

- `walk`: which files of a folder are read (links, limits, what is skipped), and hashing them;
- `filetypes/`: the file types, one module each, in one registry (PDF, Word, HTML, text);
- `ocr`: Tesseract on the pages of a scan;
- `chunking`: pages of text -> chunks (tables and clause headings kept whole);
- `worker`: the parsing worker process, started by the indexer, which reads, hashes, parses and chunks the
  next files under limits of time, memory and size while the main process embeds.

The boundary: this subpackage runs in the worker process, which must start fast and stay small, so nothing
here imports torch, transformers, sentence_transformers or chromadb (at import or while reading a file); it
gets the embedding tokenizer as JSON. tests/test_reading_boundary.py holds that.
"""
