"""`rag ingest FOLDER`: the command-line shell over rag.indexer (progress bar, report table, exit codes)."""
