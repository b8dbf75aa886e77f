"""The Streamlit workbench, driven by Streamlit's AppTest over real indexes and the real embedded model.

(AppTest cannot drive a file uploader: uploads are tested in tests/test_uploads.py and in the real
browser, tests/test_browser.py.)
"""

import html
import json
import os
import re

from streamlit.testing.v1 import AppTest

from rag.indexer import ingest

from helpers import ROOT, free_port, scripted
from hostile import tall_pdf, unloadable_page_pdf

NETGEAR = "NETGEAR_INC_04_21_2003-EX-10.16-DISTRIBUTOR_AGREEMENT.pdf"


def open_app(monkeypatch, settings, **env) -> AppTest:
    monkeypatch.setenv("RAG_INDEX_DIR", str(settings.index_dir))
    monkeypatch.setenv("RAG_COLLECTION", settings.collection)
    monkeypatch.setenv("RAG_MAX_ANSWER_TOKENS", "32")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300).run()
    assert not app.exception
    return app


def plain(markdown: str) -> str:
    """What the reader sees: Markdown escapes and character references (the app makes all text inert) undone,
    and the invisible word joiners that keep URLs from being links left out."""
    return html.unescape(re.sub(r"\\(.)", r"\1", markdown)).replace("\u2060", "")


def said(elements) -> str:
    return " ".join(plain(e.value) for e in elements)


def library(app):
    """The Library tab's table (the Review tab's matrix comes before it)."""
    return next(d for d in app.dataframe if "file" in d.value.columns).value


def cards(app) -> list[str]:
    return [plain(m.value) for m in app.markdown if re.match(r"\*\*\\\[\d+\\\] ", m.value)]


def test_a_quote_answer_shows_the_clause_and_its_page_highlighted(monkeypatch, sample_index):
    app = open_app(monkeypatch, sample_index, RAG_LLM_BACKEND="embedded")  # quote answers: the default here
    assert any("Answers are quotes" in i.value for i in app.info)
    assert app.button(key="new_conversation").disabled
    app.multiselect(key="scope").set_value([NETGEAR]).run()
    app.chat_input[0].set_value("Which state's law governs the agreement?").run()
    assert not app.exception and not app.error
    answer = app.session_state["turns"][0]["answer"]
    assert answer["mode"] == "quote" and "State of California" in " ".join(answer["text"].split())
    headings = [plain(m.value) for m in app.markdown if plain(m.value).startswith(f"**{NETGEAR}")]
    assert headings and re.match(rf"\*\*{re.escape(NETGEAR)}, p\. \d+\*\* · characters \d+-\d+", headings[0])
    assert not app.button(key="new_conversation").disabled  # an answer makes a conversation to clear
    app.toggle(key="turn0-quote-0").set_value(True).run()
    assert not app.exception and len(app.get("image")) == 1  # the page, its quote highlighted


def test_ask_streams_a_cited_answer_and_keeps_the_conversation(monkeypatch, sample_index):
    app = open_app(monkeypatch, sample_index, RAG_LLM_BACKEND="embedded", RAG_ANSWER="generate")
    assert any("too small to write answers" in plain(w.value) for w in app.warning)  # said plainly
    app.multiselect(key="scope").set_value([NETGEAR]).run()
    app.chat_input[0].set_value("Which state's law governs the agreement?").run()
    assert not app.exception and not [e for e in app.error if not plain(e.value).startswith("Unsupported")]
    first, answer = cards(app), app.session_state["turns"][0]["answer"]
    assert first or answer["unsupported"]  # its page is shown, unless the page lacks what the answer states
    assert all(re.match(rf"\*\*\[\d+\] {re.escape(NETGEAR)}, pp?\. \d", c) for c in first)
    assert not first or any("<mark>" in m.value for m in app.markdown if "class='passage'" in m.value)
    app.chat_input[0].set_value("When does it expire?").run()
    assert not app.exception and not [e for e in app.error if not plain(e.value).startswith("Unsupported")]
    turns = app.session_state["turns"]
    assert [t["question"] for t in turns] == ["Which state's law governs the agreement?", "When does it expire?"]
    assert len(app.chat_message) == 4 and all(s["file"] == NETGEAR for s in turns[1]["answer"]["sources"])
    app.button(key="new_conversation").click().run()
    assert app.session_state["turns"] == []


def test_a_generated_answer_whose_quote_is_not_in_its_source_says_so(monkeypatch, sample_index, tmp_path):
    said = 'It is governed by the laws of Mars [1] "the laws of the planet Mars".'
    with scripted("scripted_llm.py", tmp_path, answer=said) as (url, _):
        app = open_app(monkeypatch, sample_index, RAG_LLM_BACKEND="vllm", RAG_LLM_URL=url)
        app.multiselect(key="scope").set_value([NETGEAR]).run()
        app.chat_input[0].set_value("Which state's law governs the agreement?").run()
    assert not app.exception
    assert [plain(e.value) for e in app.error] == [  # Mars is in no source: said, above the citation
        "Unsupported: nothing this answer states (Mars) is in the sources it cites. Do not rely on it; what the "
        "documents say is below, in their own words."]
    [citation] = app.session_state["turns"][0]["answer"]["citations"]
    assert citation["verified"] is False and citation["quoted"] == "the laws of the planet Mars"
    assert any(plain(w.value).startswith("Not verified") and "the laws of the planet Mars" in plain(w.value)
               for w in app.warning)


def test_an_invented_answer_is_shown_unsupported_with_the_documents_own_words(monkeypatch, sample_index, tmp_path):
    tickets = "TICKETSCOMINC_06_22_1999-EX-10.22-SPONSORSHIP_AGREEMENT.pdf"
    with scripted("scripted_llm.py", tmp_path, answer="The CEO's annual salary is $1.1 million.") as (url, _):
        app = open_app(monkeypatch, sample_index, RAG_LLM_BACKEND="vllm", RAG_LLM_URL=url)
        app.multiselect(key="scope").set_value([tickets]).run()
        app.chat_input[0].set_value("What is the CEO's annual salary?").run()
    assert not app.exception
    answer = app.session_state["turns"][0]["answer"]
    assert answer["support"] == "unsupported" and answer["citations"] == [] and answer["instead"]["mode"] == "quote"
    assert any(plain(e.value).startswith("Unsupported: nothing this answer states (1.1 million)") for e in app.error)
    assert any("in their own words" in c.value for c in app.caption)
    assert [m for m in app.markdown if plain(m.value).startswith(f"**{tickets}, p. ")]  # the quote answer's cards


def test_the_models_load_as_the_page_opens_and_an_answer_says_where_its_time_went(monkeypatch, sample_index):
    """The first answer took ~21 s with an empty bubble: now the models load when the page opens (the question
    finds them ready), the bubble says what is being done, and the answer what each step took."""
    import gc

    from rag.engine import Engine

    app = open_app(monkeypatch, sample_index, RAG_LLM_BACKEND="embedded")
    opened = [o for o in gc.get_objects() if isinstance(o, Engine) and o.settings.index_dir == sample_index.index_dir]
    assert opened and opened[-1]._loading  # loading began with the page, before any question
    for engine in opened:
        engine.ready()  # a state to wait for: everything loaded
    app.multiselect(key="scope").set_value([NETGEAR]).run()
    app.chat_input[0].set_value("Which state's law governs the agreement?").run()
    assert not app.exception and not app.error
    [turn] = app.session_state["turns"]
    assert turn["answer"]["seconds"]["load"] < 0.005 and "loading the models" not in turn["took"]
    assert re.fullmatch(r"searching \d+\.\d\d s · choosing quotes \d+\.\d\d s", turn["took"])
    assert any(c.value == turn["took"] for c in app.caption)


def test_a_server_that_is_down_is_a_message_that_says_what_to_do(monkeypatch, sample_index):
    url = f"http://127.0.0.1:{free_port()}"
    app = open_app(monkeypatch, sample_index, RAG_LLM_BACKEND="vllm", RAG_LLM_URL=url)
    errors = said(app.error)
    assert url in errors and "vllm serve" in errors
    auto = open_app(monkeypatch, sample_index, RAG_LLM_BACKEND="auto", RAG_LLM_URL=url)
    assert any(url in plain(w.value) and "embedded model" in w.value for w in auto.warning)  # the fallback, said


def test_document_text_is_shown_as_text(monkeypatch, settings, embedder, tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "tricky.md").write_text("<script>alert('owned')</script> <img src=x onerror=alert(1)>\n\n"
                                      "This Agreement is governed by the laws of the State of Delaware.\n")
    ingest(folder, settings, embedder=embedder)
    app = open_app(monkeypatch, settings, RAG_LLM_BACKEND="embedded")
    app.chat_input[0].set_value("Which state's laws govern this agreement?").run()
    passages = [m.value for m in app.markdown if "class='passage'" in m.value]
    assert passages and all("<script" not in p and "<img" not in p and "\n" not in p for p in passages)
    assert any("<script>alert('owned')</script>" in plain(p) for p in passages)  # shown, as the characters they are


def test_library_rescans_a_folder_and_removes_a_document(monkeypatch, settings, folder):
    (folder / "empty.pdf").write_bytes(b"")
    app = open_app(monkeypatch, settings, RAG_LLM_BACKEND="embedded")
    assert any("knowledge base is empty" in i.value for i in app.info)
    app.text_input(key="rescan_folder").input(str(folder)).run()
    app.button(key="rescan").click().run()
    assert not app.exception
    assert "3 indexed" in said(app.success)
    assert "empty.pdf: failed: empty file (0 bytes)" in said(app.error)
    table = library(app)
    assert sorted(table["status"]) == ["failed", "ok", "ok", "ok"]
    gone = sorted(p.name for p in folder.glob("*.pdf") if p.stat().st_size)[0]
    app.selectbox(key="remove_path").set_value(str(folder / gone)).run()
    app.button(key="remove").click().run()
    assert f"Removed {gone}" in said(app.success)
    assert gone not in set(library(app)["file"])
    assert (folder / gone).exists()


def test_rescan_of_a_folder_with_odd_names_shows_them(monkeypatch, settings, tmp_path):
    """A name that is not UTF-8, and a symlink loop, in a re-scanned folder: listed, never a traceback."""
    folder = tmp_path / "odd"
    folder.mkdir()
    (folder / os.fsdecode(b"caf\xe9.md")).write_text("The governing law is the law of Delaware.")
    os.symlink("loop.pdf", folder / "loop.pdf")
    app = open_app(monkeypatch, settings, RAG_LLM_BACKEND="embedded")
    app.text_input(key="rescan_folder").input(str(folder)).run()
    app.button(key="rescan").click().run()
    assert not app.exception
    assert "1 indexed" in said(app.success) and "loop.pdf: failed: symlink loop" in said(app.error)
    assert sorted(library(app)["file"]) == ["caf\\xe9.md", "loop.pdf"]


def other_tabs_rendered(app) -> None:
    """The Review tab's matrix, the Library tab's table and the Settings tab's form: the tabs after Ask still
    rendered."""
    assert [d.key for d in app.dataframe] == ["review_matrix", None] and len(app.select_slider) == 1


def test_a_page_of_an_absurd_shape_is_shown_scaled_down_and_a_page_that_fails_is_a_line(monkeypatch, settings,
                                                                                        embedder, tmp_path):
    """A 10 x 14,400 pt page (a 1.2-gigapixel image at 900 pixels wide: 18 GB and a traceback) is shown
    scaled down, said so; the same file changed on disk so that its page no longer loads is a one-line
    error. The tabs after Ask render either way."""
    folder = tmp_path / "docs"
    folder.mkdir()
    tall_pdf(folder / "strip.pdf")
    ingest(folder, settings, embedder=embedder)
    app = open_app(monkeypatch, settings, RAG_LLM_BACKEND="embedded")
    app.chat_input[0].set_value("When must the distributor pay an invoice?").run()
    assert not app.exception and app.session_state["turns"][0]["answer"]["quotes"][0]["file"] == "strip.pdf"
    app.toggle(key="turn0-quote-0").set_value(True).run()
    assert not app.exception and not app.error and len(app.get("image")) == 1
    notes = [plain(i.value) for i in app.info if plain(i.value).startswith("page 1 is")]
    assert len(notes) == 1 and re.fullmatch(r"page 1 is 10 × 14,400 points: shown at [\d.]+% size", notes[0])
    other_tabs_rendered(app)

    unloadable_page_pdf(folder / "strip.pdf")  # PDFium opens it, and fails to load page 1
    app.run()
    assert not app.exception and not app.get("image")
    [error] = [plain(e.value) for e in app.error]
    assert "strip.pdf" in error and "page 1" in error and "\n" not in error
    other_tabs_rendered(app)


def test_the_context_budget_is_disabled_for_quote_answers(monkeypatch, sample_index):
    quoting = open_app(monkeypatch, sample_index, RAG_LLM_BACKEND="embedded")  # auto: quotes with this model
    slider = quoting.select_slider[0]
    assert slider.label.startswith("Context budget") and slider.disabled
    assert "4096 tokens of sources (quote_budget)" in slider.help
    assert any(plain(c.value).startswith("Answers are quotes: they are chosen from 4096 tokens of sources")
               for c in quoting.caption)
    generating = open_app(monkeypatch, sample_index, RAG_LLM_BACKEND="embedded", RAG_ANSWER="generate")
    assert not generating.select_slider[0].disabled


def test_the_library_table_is_wide_enough_for_file_names(monkeypatch, sample_index):
    app = open_app(monkeypatch, sample_index, RAG_LLM_BACKEND="embedded")
    table = next(d for d in app.dataframe if "file" in d.value.columns)
    names = table.value["file"]
    longest = max(len(name) for name in names)
    assert longest > 50  # CUAD's names: NETGEAR_INC_04_21_2003-EX-10.16-DISTRIBUTOR_AGREEMENT.pdf
    columns = json.loads(table.proto.columns)
    # measured in Chromium: CUAD's longest name, 104 characters, is 700 pixels wide in the table
    assert columns["file"]["width"] >= 7 * longest and columns["file"]["pinned"]
    assert all(columns[name]["type_config"]["type"] == "text" for name in ("file", "reason", "path"))


def test_the_review_tab_shows_each_contract_by_clause_type_and_a_cell_its_quotes_on_the_page(monkeypatch,
                                                                                             sample_index):
    app = open_app(monkeypatch, sample_index, RAG_LLM_BACKEND="embedded")
    matrix = next(d for d in app.dataframe if "Governing Law" in d.value.columns)
    assert len(matrix.value) == 10 and len(matrix.value.columns) == 41
    assert matrix.value.loc[NETGEAR, "Governing Law"] == "California"  # the short answer, in its cell
    assert sorted(b.label.split(" (")[0] for b in app.get("download_button")) == ["Download CSV", "Download XLSX"]
    app.selectbox(key="review_doc").set_value(NETGEAR)
    app.selectbox(key="review_category").set_value("Governing Law").run()
    assert not app.exception
    assert any(re.match(rf"\*\*{re.escape(NETGEAR)} · Governing Law\*\* · found, probability \d+% · answer: "
                           "California$", plain(m.value)) for m in app.markdown)
    assert "State of California" in " ".join(plain(m.value) for m in app.markdown if "passage" in m.value)
    app.toggle(key="review-quote-0").set_value(True).run()
    assert not app.exception and len(app.get("image")) == 1  # its page, the quote highlighted

    app.multiselect(key="review_has").set_value(["Non-Compete"]).run()  # a filter: the contracts that bar competing
    having = [c.value for c in app.caption if re.match(r"\d+ of 10 documents", c.value)]
    assert having and 1 <= int(having[0].split()[0]) < 10
    assert app.session_state["review_doc"] is None  # NETGEAR has none: its cell is no longer shown
    app.multiselect(key="review_lacks").set_value(["Non-Compete"]).run()  # has and lacks it: none
    assert any(c.value.startswith("0 of 10 documents") for c in app.caption) and not app.exception


def test_the_review_tab_says_when_review_is_switched_off(monkeypatch, sample_index):
    app = open_app(monkeypatch, sample_index, RAG_LLM_BACKEND="embedded", RAG_REVIEW_MODEL="none")
    assert any("Contract review is switched off" in i.value for i in app.info)


def test_two_contracts_of_one_name_in_two_folders_are_two_rows_of_the_review(monkeypatch, settings, embedder,
                                                                              tmp_path):
    import shutil

    from helpers import CONTRACTS

    sources = sorted(CONTRACTS.glob("*.pdf"))[:2]
    for folder, source in zip(("north", "south"), sources):
        (tmp_path / folder).mkdir()
        shutil.copy(source, tmp_path / folder / "contract.pdf")
        ingest(tmp_path / folder, settings, embedder=embedder)
    app = open_app(monkeypatch, settings, RAG_LLM_BACKEND="embedded")
    matrix = next(d for d in app.dataframe if "Governing Law" in d.value.columns)
    assert sorted(matrix.value.index) == [f"contract.pdf ({tmp_path / 'north'})", f"contract.pdf ({tmp_path / 'south'})"]
    app.selectbox(key="review_doc").set_value(f"contract.pdf ({tmp_path / 'south'})")
    app.selectbox(key="review_category").set_value("Governing Law").run()
    assert not app.exception and any("contract.pdf" in plain(m.value) and "Governing Law" in plain(m.value)
                                     for m in app.markdown)
