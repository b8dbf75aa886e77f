"""Streamlit front end: `streamlit run app.py`. A thin shell over rag/.

Today it shows the knowledge base: every file ingested, with its status and reason. Asking questions
arrives with the query engine (`rag ask`).
"""

from __future__ import annotations

import datetime as dt

import streamlit as st

from rag.config import load_settings
from rag.errors import RagError
from rag.manifest import Manifest

st.set_page_config(page_title="rag: private knowledge base", layout="wide")
st.title("Knowledge base")

try:
    settings = load_settings()
    manifest = Manifest(settings.index_dir, settings.collection)
    files = sorted(manifest.files().values(), key=lambda f: f.path)
    manifest.close()
except RagError as e:
    st.error(str(e))
    st.stop()

st.caption(f"Collection `{settings.collection}` in `{settings.chroma_url or settings.index_dir}`")
if not files:
    st.info("The knowledge base is empty: run `rag ingest FOLDER` to add documents.")
    st.stop()

indexed = [f for f in files if f.doc_id]
st.metric("documents", len(indexed), help="files indexed and searchable")
st.dataframe(
    [{"file": f.path, "status": f.status, "pages": f.pages, "chunks": f.chunks, "reason": f.reason,
      "updated": dt.datetime.fromtimestamp(f.updated_at).strftime("%Y-%m-%d %H:%M")} for f in files],
    use_container_width=True, hide_index=True)
