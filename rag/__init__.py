"""rag: a private question-answering knowledge base over long documents.

`import rag` is cheap: torch, sentence-transformers and chromadb load only inside the functions that
need them.
"""

__version__ = "0.1.0"
