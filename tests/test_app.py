"""The Streamlit shell, driven by Streamlit's AppTest over a real ingested index."""

from streamlit.testing.v1 import AppTest

from rag.config import Settings
from rag.indexer import ingest

from conftest import ROOT


def test_app_lists_the_knowledge_base(tmp_path, monkeypatch, folder, embedder):
    settings = Settings(index_dir=tmp_path / "index", collection="appkb")
    (folder / "empty.pdf").write_bytes(b"")
    ingest(folder, settings, embedder=embedder)
    monkeypatch.setenv("RAG_INDEX_DIR", str(settings.index_dir))
    monkeypatch.setenv("RAG_COLLECTION", settings.collection)
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert not app.exception
    assert app.metric[0].value == "3"
    table = app.dataframe[0].value
    assert sorted(table["status"]) == ["failed", "ok", "ok", "ok"]
    assert "empty file (0 bytes)" in set(table["reason"])


def test_app_on_an_empty_index_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("RAG_INDEX_DIR", str(tmp_path / "index"))
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert not app.exception
    assert "rag ingest FOLDER" in app.info[0].value
