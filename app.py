"""Streamlit workbench: `streamlit run app.py`. A thin shell over rag/: Ask, Review, Library, Settings.

Binds to localhost and sends no usage statistics (.streamlit/config.toml). Every library error is
shown as the message it carries, which says what to do. Nothing a document or a model wrote reaches the
page as Markdown or HTML: document text, answers, questions, file names and error messages all go
through `inert` (rag.page_view), so none of them can load an image, a link or anything else.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import queue
import sqlite3
import threading
from pathlib import Path

import streamlit as st

from rag.config import ANSWER_MODES, ORDERINGS, Settings, load_settings
from rag.errors import RagError
from rag import backends
from rag.reading import filetypes
from rag.uploads import MAX_UPLOAD_MB, save_upload
from rag.knowledge_base import KnowledgeBase, damaged
from rag.page_view import answer_words, highlight_html, inert, page_image
from rag.paths import shown
from rag.prompts import pages_label
from rag.review import FOUND

BUDGETS = {f"{k}K": k * 1024 for k in (4, 8, 16, 32, 64, 128)}  # the context budgets offered, 128K: Llama 3.1's window
HISTORY_TURNS = 3  # earlier turns the model sees in a follow-up
NAME_PIXELS = (24, 7.5, 900)  # the Library's file column: padding, pixels a character (13 px type), at most
log = logging.getLogger("rag.app")

st.set_page_config(page_title="rag: private knowledge base", layout="wide")
state = st.session_state
state.setdefault("overrides", {})  # which model answers: a change opens another Engine
state.setdefault("options", {})  # budget, ordering, top_k: per question, the same Engine
state.setdefault("turns", [])


def settings() -> Settings:
    return backends.check(load_settings(state.overrides))


@st.cache_resource(show_spinner=False, max_entries=4)
def knowledge_base(s: Settings) -> KnowledgeBase:
    """One open knowledge base per index (and collection), shared by every session and answering model."""
    return KnowledgeBase.open(s)


def kb_for(s: Settings) -> KnowledgeBase:
    return knowledge_base(s.replace(llm_backend="auto", llm_url="", llm_model=""))  # the same one for any model


@st.cache_resource(show_spinner="Opening the knowledge base ...", max_entries=2)
def engine_for(s: Settings):
    """One Engine per knowledge base and answering model; per-question options never make another. Its models
    start loading in the background as the page opens, so the first question finds them ready."""
    from rag.engine import Engine

    engine = Engine(s, kb=kb_for(s))
    engine.warm()
    return engine


def question_options(s: Settings) -> dict:
    """Budget, ordering and hits for the next question: the Settings tab's choice, else the settings'."""
    return {"budget": s.budget, "ordering": s.ordering, "top_k": s.top_k, **state.options}


def files(s: Settings) -> list:
    return kb_for(s).library()


def say(kind, text: str) -> None:
    """st.error / st.warning / st.success / st.info with `text` shown as the characters it is."""
    kind(inert(text))


def show_text(text: str, css: str = "answer", where=st) -> None:
    """A question or an answer, as the characters it is (a model steered by a document may write Markdown)."""
    where.markdown(f"<div class='{css}'>{inert(text)}</div>", unsafe_allow_html=True)


def status_line(engine) -> None:
    if engine.mode == "quote" and engine.settings.llm_url and engine.llm.fallback:
        say(st.warning, f"Answers are quotes from your documents, chosen without a language model, instead of the "
                        f"small embedded model standing in for the server, because {engine.llm.fallback}")
        return
    if engine.mode == "quote":
        say(st.info, "Answers are quotes: the sentences of your documents that answer, verbatim, each with its file "
                     "and page, chosen without a language model (nothing is invented). For written answers, choose "
                     "\"generate\" in Settings, with a server (vLLM, Ollama, llama.cpp) for Llama-3.1-8B-Instruct.")
        return
    llm = engine.llm
    if llm.fallback:
        say(st.warning, f"Answering with the small embedded model, because {llm.fallback}")
    elif llm.too_small:
        say(st.warning, f"Answering with the {llm.describe}. Do not rely on its answers: {llm.too_small}.")
    elif not llm.backend.needs_url:
        say(st.info, f"Answering with the {llm.describe}. It runs offline; point Settings at a server (vLLM, "
                     "Ollama, llama.cpp) for Llama-3.1-8B-Instruct.")
    else:
        say(st.success, f"Answering with {llm.describe}: reachable.")
    if "llama" in llm.model_name.lower():  # Meta's licence asks Llama-based products to say so
        st.caption("Built with Llama")


class Streamed:
    """Iterate to get the answer's pieces as the model writes them; then `answer` or `error` is set."""

    def __init__(self, engine, context):
        self.pieces: queue.Queue = queue.Queue()
        self.answer, self.error = None, None
        threading.Thread(target=self._work, args=(engine, context), daemon=True).start()

    def _work(self, engine, context) -> None:
        try:
            self.answer = engine.answer(context, on_token=self.pieces.put)
        except Exception as e:  # shown as a message, never a traceback; RagErrors say what to do
            self.error = e
        finally:
            self.pieces.put(None)

    def __iter__(self):
        while (piece := self.pieces.get()) is not None:
            yield piece


def show_page(path: str, page: int, highlight=()) -> None:
    """The page as an image, its quotes marked, said when it is shown smaller than asked. Showing a page never
    stops the app: whatever it raises is one line (a hostile or changed PDF), and the tabs after it render."""
    try:
        image = page_image(path, page, highlight=highlight)
        if image.note:
            say(st.info, image.note)
        st.image(image.png, caption=f"page {page}")
    except RagError as e:
        say(st.error, str(e))
    except Exception as e:  # PDFium, Pillow or Streamlit on a PDF no one foresaw: said; the traceback is logged
        log.warning("showing page %s of %s failed", page, path, exc_info=True)
        say(st.error, f"{shown(Path(path).name)}: cannot show page {page} ({e or type(e).__name__})")


OCR_NOTE = "scanned page, read by OCR: check the words against the page image (they are not marked on it)"


def quote_cards(answer: dict, key: str) -> None:
    """Each quote with its file and page, and the page itself with the quote's characters highlighted."""
    from rag.engine import shortfall, strength

    if why := shortfall(answer["abstained"], answer.get("weak", False), (answer["ranked"] or [None])[0]):
        weak = "A weak match. " if answer.get("weak") else ""
        st.caption(f"{weak}{why}; the sentences are below for you to judge.")
    for i, q in enumerate(answer["quotes"] or answer["ranked"]):
        with st.container(border=True):
            place = inert(q["section"]) if q.get("section") else f"p. {q['page']}"
            st.markdown(f"**{inert(q['file'])}, {place}** · characters {q['start']}-{q['end']} · "
                        f"{strength(q['score'], q.get('probability'))}" + (f" · {OCR_NOTE}" if q.get("ocr") else ""))
            st.markdown(f"<div class='passage'>{inert(' '.join(q['text'].split()))}</div>", unsafe_allow_html=True)
            if q["path"].lower().endswith(".pdf") and st.toggle(f"Show page {q['page']}", key=f"{key}-quote-{i}"):
                show_page(q["path"], q["page"], [q["text"]])


def support_note(answer: dict) -> None:
    """What a written answer states that no source it cites holds, said before its sources."""
    missing = ", ".join(answer["unsupported"])
    if answer["support"] == "unsupported":
        say(st.error, f"Unsupported: nothing this answer states ({missing}) is in the sources it cites. Do not rely "
                      "on it; what the documents say is below, in their own words.")
    elif answer["support"] == "partly supported":
        say(st.warning, f"Partly unsupported: no source it cites holds {missing}. Check before relying on it.")


def source_cards(answer: dict, key: str) -> None:
    if answer["mode"] in ("quote", "review"):  # a review answer: one quote a contract, shown as quotes are
        quote_cards(answer, key)
        return
    support_note(answer)
    if answer.get("instead"):
        st.caption("What the documents say, in their own words (a quote answer from the same sources):")
        quote_cards(answer["instead"], f"{key}-instead")
    words = answer_words(answer["text"])
    cited = answer["citations"]
    for c in cited:
        with st.container(border=True):
            how = " · matched by its words (the model cited nothing)" if c["inferred"] else ""
            how += f" · {OCR_NOTE}" if c.get("ocr") else ""
            place = inert(c["section"]) if c.get("section") else pages_label(c["page_start"], c["page_end"])
            st.markdown(f"**\\[{c['number']}\\] {inert(c['file'])}, {place}**{how}")
            if c["verified"] is False:
                say(st.warning, f"Not verified: the words the answer quotes from [{c['number']}] are not in it "
                                f"(\"{c['quoted']}\"). Read the source before relying on this.")
            quotes = [q for q in answer["quotes"] if q["source"] == c["number"]]
            for q in quotes:
                place = inert(q["section"]) if q.get("section") else f"p. {q['page']}"
                st.markdown(f"<div class='passage'>\u201c{inert(' '.join(q['text'].split()))}\u201d, {place}"
                            "</div>", unsafe_allow_html=True)
            st.markdown(f"<div class='passage'>{highlight_html(c['passage'], words)}</div>", unsafe_allow_html=True)
            if c["path"].lower().endswith(".pdf"):
                pages = range(c["page_start"], c["page_end"] + 1)
                if st.toggle(f"Show page {c['page_start']}" if len(pages) == 1 else "Show the pages",
                             key=f"{key}-page-{c['number']}"):
                    for page in pages:
                        show_page(c["path"], page, [q["text"] for q in quotes if q["page"] == page])
    others = [s for s in answer["sources"] if s["number"] not in {c["number"] for c in cited}]
    if others:
        with st.expander(f"{len(others)} more sources in the prompt ({answer['prompt_tokens']} prompt tokens)"):
            for s in others:
                place = inert(s["section"]) if s.get("section") else pages_label(s["page_start"], s["page_end"])
                st.markdown(f"\\[{s['number']}\\] {inert(s['file'])}, {place} "
                            f"· rank {s['rank']} · {s['tokens']} tokens")


def ask_tab(s: Settings) -> None:
    try:
        engine = engine_for(s)
    except RagError as e:
        say(st.error, str(e))
        return
    status_line(engine)
    names = sorted({shown(Path(f.path).name) for f, doc in files(s) if doc is not None})
    if not names:
        st.info("The knowledge base is empty: add documents in the Library tab, or run `rag ingest FOLDER`.")
        return
    scope = st.multiselect("Ask about", names, placeholder="All documents", key="scope")
    for i, turn in enumerate(state.turns):
        with st.chat_message("user"):
            show_text(turn["question"], "question")
        with st.chat_message("assistant"):
            show_text(turn["answer"]["text"])
            source_cards(turn["answer"], f"turn{i}")
            if turn.get("took"):
                st.caption(turn["took"])
    question = st.chat_input("Ask a question about your documents")
    if st.button("New conversation", key="new_conversation", disabled=not state.turns):
        state.turns = []
        st.rerun()
    if not question:
        return
    with st.chat_message("user"):
        show_text(question, "question")
    history = [(t["question"], t["answer"]["text"]) for t in state.turns[-HISTORY_TURNS:]]
    with st.chat_message("assistant"):
        quoting = engine.mode == "quote"
        progress = st.status("Loading the models (once) ..." if engine.loading else "Searching the documents ...")
        try:
            waited = engine.ready()
            if not scope and not history and (category := engine.clause_across(question)):
                progress.update(label=f"Reading the contract review: {category} ...")
                remember(question, engine.review_answer(question, category), waited)
            progress.update(label="Searching the documents ...")
            if quoting:
                context = engine.context(question, scope or None, history=history, quoting=True,
                                         top_k=question_options(s)["top_k"])
                progress.update(label="Choosing the sentences that answer ...")
                answer = engine.quote_answer(context)
            else:
                context = engine.context(question, scope or None, history=history, **question_options(s))
        except RagError as e:
            progress.update(label="Stopped", state="error")
            say(st.error, str(e))
            return
        if quoting:
            remember(question, answer, waited)
        progress.update(label=f"Writing the answer: {inert(engine.llm.describe)} ...")
        streamed = Streamed(engine, context)
        so_far, text = st.empty(), ""
        for piece in streamed:
            text += piece
            show_text(text, where=so_far)
        if streamed.error is not None:
            progress.update(label="Stopped", state="error")
            say(st.error, str(streamed.error))
            return
    remember(question, streamed.answer, waited)


def remember(question: str, answer, waited: float) -> None:
    """The answer joins the conversation, with where its time went, and the page shows it (st.rerun: "New
    conversation" then has something to clear)."""
    s = answer.seconds
    s["load"] = waited  # waited for before the question was searched (what the engine's own count missed)
    last = ("choosing quotes", s["quote"]) if answer.mode == "quote" else ("reading the contract review", s["review"]) \
        if answer.mode == "review" else ("writing", s["total"] - sum(s.get(k, 0.0) for k in ("load", "retrieve", "pack")))
    steps = [("loading the models", s["load"]), ("searching", s.get("retrieve", 0.0) + s.get("pack", 0.0)), last]
    state.turns.append({"question": question, "answer": answer.to_dict(),
                        "took": " · ".join(f"{name} {t:.2f} s" for name, t in steps if t >= 0.005)})
    st.rerun()


@st.cache_resource(show_spinner=False, max_entries=2)
def reviewer_for(review_model: str, _s: Settings):
    """The review model, read once per model file (its tf-idf index is built once with it)."""
    from rag.review import Reviewer

    return Reviewer.open(_s)


def review_tab(s: Settings) -> None:
    """The contract review: a row per document, a column per clause type, each cell its short answer or first
    words, shaded by probability; filters; a cell chosen (clicked, or in the two boxes below) shows its quotes on
    their pages, highlighted; downloads of what is shown."""
    from rag.domain.cuad import CATEGORIES
    from rag.review import complete_documents, library_reviews
    from rag.review_cli import export

    reviewer = reviewer_for(s.review_model, s)
    if reviewer is None:
        st.info("Contract review is switched off (review_model = none): unset RAG_REVIEW_MODEL to review.")
        return
    kb = kb_for(s)
    documents = complete_documents(kb)
    if not documents:
        st.info("The knowledge base is empty: add documents in the Library tab, or run `rag ingest FOLDER`.")
        return
    with st.spinner(f"Reading the review of {len(documents)} documents ..."):
        reviews = library_reviews(kb, reviewer, documents)
    labels = labelled({d: doc.path for d, doc in documents.items()})
    paths = {labels[d]: doc.path for d, doc in documents.items()}
    cells = {labels[d]: {c.category: c for c in reviews[d]} for d in documents}
    names = [c.name for c in CATEGORIES]
    left, middle, right = st.columns(3)
    columns = left.multiselect("Clause types shown", names, placeholder="all 41", key="review_columns") or names
    has = middle.multiselect("Has", names, placeholder="any", key="review_has")
    lacks = right.multiselect("Lacks", names, placeholder="any", key="review_lacks")
    rows = sorted((n for n, found in cells.items() if all(found[c].found for c in has)
                   and not any(found[c].found for c in lacks)), key=str.lower)
    st.caption(f"{len(rows)} of {len(cells)} documents. A cell: the clause's short answer or first words, shaded "
               f"by how probable it is that the document holds it (shown from {FOUND:.0%}; pale yellow: maybe). "
               "Choose a cell to read its quotes on their pages.")
    if not rows:
        return
    state.review_matrix_rows = rows  # what a click's row number means, for choose_cell
    matrix(cells, rows, columns)
    table = [(paths[n], cells[n][c]) for n in rows for c in columns]
    for place, suffix, mime in zip(st.columns(2), (".csv", ".xlsx"), ("text/csv", XLSX)):
        place.download_button(f"Download {suffix[1:].upper()} ({len(rows)} documents x {len(columns)} clause types)",
                              export(table, suffix), f"review{suffix}", mime, key=f"review_download{suffix}")
    for key, allowed in (("review_doc", rows), ("review_category", columns)):  # a choice filtered away is undone
        if state.get(key) not in allowed:
            state[key] = None
    pick_doc, pick_type = st.columns(2)
    name = pick_doc.selectbox("Document", rows, key="review_doc", index=None, placeholder="choose a cell above, or "
                                                                                        "here")
    category = pick_type.selectbox("Clause type", columns, key="review_category", index=None,
                                   placeholder="choose a cell above, or here")
    if name in cells and category in cells[name]:
        review_cell(cells[name][category], paths[name], name)


def labelled(paths: dict[str, str]) -> dict[str, str]:
    """Each document's row label: its file name, and where two share a name, the folder it is in as well."""
    names = [Path(p).name for p in paths.values()]
    return {d: shown(Path(p).name if names.count(Path(p).name) == 1 else f"{Path(p).name} ({Path(p).parent})")
            for d, p in paths.items()}


XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MATRIX_PIXELS = (300, 220)  # the review matrix's columns: the document's, each clause type's


def matrix(cells: dict, rows: list[str], columns: list[str]) -> None:
    import pandas as pd

    from rag.review_cli import cell_words

    chosen = [[cells[n][c] for c in columns] for n in rows]
    frame = pd.DataFrame([[cell_words(c) if c.quotes and c.probability >= FOUND / 2 else "" for c in row]
                          for row in chosen], index=rows, columns=columns)
    shades = pd.DataFrame([[shade(c.probability) for c in row] for row in chosen], index=rows, columns=columns)
    text = st.column_config.TextColumn  # shown as the characters they are
    st.dataframe(frame.style.apply(lambda _: shades, axis=None), key="review_matrix", on_select=choose_cell,
                 selection_mode="single-cell", height=min(35 * (len(rows) + 1) + 3, 640),
                 column_config={"_index": text("document", pinned=True, width=MATRIX_PIXELS[0]),
                                **{c: text(width=MATRIX_PIXELS[1]) for c in columns}})


def shade(probability: float) -> str:
    """A cell's background: green, deeper as the clause is more probable, from FOUND; a pale yellow for a maybe
    (over half of FOUND); none under that."""
    if probability >= FOUND:
        light = int(235 - 110 * (probability - FOUND) / (1 - FOUND))
        return f"background-color: rgb({light}, 245, {light}); color: black"
    return "background-color: rgb(255, 248, 215); color: black" if probability >= FOUND / 2 else ""


def choose_cell() -> None:
    """A click on the matrix chooses its document and clause type in the boxes under it."""
    chosen = state.review_matrix.selection.get("cells") or []
    if chosen:
        row, column = chosen[0]
        if row < len(state.get("review_matrix_rows", ())):
            state.review_doc, state.review_category = state.review_matrix_rows[row], column


def review_cell(cell, path: str, name: str) -> None:
    st.markdown(f"**{inert(name)} · {inert(cell.category)}** · "
                f"{'found' if cell.found else 'not found'}, probability {cell.probability:.0%}"
                + (f" · answer: {inert(cell.answer)}" if cell.answer else ""))
    if not cell.quotes:
        st.caption("No passage of this document reads as this clause type.")
    for i, q in enumerate(cell.quotes):
        with st.container(border=True):
            st.markdown(f"p. {q.page} · characters {q.start}-{q.end} · probability {q.probability:.0%}")
            st.markdown(f"<div class='passage'>{inert(' '.join(q.text.split()))}</div>", unsafe_allow_html=True)
            if path.lower().endswith(".pdf") and st.toggle(f"Show page {q.page}", key=f"review-quote-{i}"):
                show_page(path, q.page, [q.text])


def library_tab(s: Settings) -> None:
    st.caption(f"Collection `{s.collection}` in `{s.chroma_url or s.index_dir}`")
    table = st.empty()  # filled last, after this run's uploads, re-scans and removals
    uploads = st.file_uploader(f"Add {filetypes.described()} files (up to {MAX_UPLOAD_MB} MB each)",
                               type=[extension[1:] for extension in filetypes.extensions()],
                               accept_multiple_files=True, key=f"uploads{state.get('upload_round', 0)}")
    if uploads and st.button("Add to the knowledge base", type="primary"):
        saved = []
        for upload in uploads:
            try:
                saved.append(save_upload(s, upload.name, upload.getvalue()))
            except RagError as e:
                say(st.error, str(e))
        for path in saved:
            run_ingest(s, path)
        state.upload_round = state.get("upload_round", 0) + 1
    left, right = st.columns(2)
    with left:
        folder = st.text_input("Re-scan a folder (new and changed files are indexed, removed ones dropped)",
                               key="rescan_folder", placeholder="/path/to/contracts")
        if st.button("Re-scan", key="rescan", disabled=not folder):
            run_ingest(s, Path(folder).expanduser())
    with right:
        path = st.selectbox("Remove a document", [f.path for f, _ in files(s)], format_func=lambda p: shown(Path(p).name),
                            key="remove_path", index=None, placeholder="choose a document")
        if st.button("Remove", key="remove", disabled=not path):
            from rag.indexer import remove_file

            try:
                remove_file(path, s)
                say(st.success, f"Removed {shown(Path(path).name)}. A file in a folder of yours stays there: a re-scan "
                                "of that folder adds it back.")
            except RagError as e:
                say(st.error, str(e))
    rows = files(s)
    if not rows:
        table.info("No documents yet: upload some, or re-scan a folder.")
        return
    names = [shown(Path(f.path).name) for f, _ in rows]
    pad, per_char, most = NAME_PIXELS
    text = st.column_config.TextColumn  # shown as the characters they are, whatever they look like
    table.dataframe([{
        "file": name, "status": f.status.replace("_", " "), "pages": f.pages, "chunks": f.chunks,
        "size (KB)": round(f.size / 1024, 1),
        "ingested": dt.datetime.fromtimestamp(doc.ingested_at if doc else f.updated_at).strftime("%Y-%m-%d %H:%M"),
        "reason": f.reason, "path": shown(f.path)} for name, (f, doc) in zip(names, rows)], hide_index=True,
        width="stretch", column_config={  # the whole name, and kept in sight when the table scrolls sideways
            "file": text(width=int(min(most, pad + per_char * max(map(len, names)))), pinned=True),
            "reason": text(width="large"), "path": text(width="large")})


def run_ingest(s: Settings, target: Path) -> None:
    from rag.indexer import ingest
    from rag.report import FAILED, NO_TEXT

    bar = st.progress(0.0, text=f"Indexing {inert(shown(target.name))} ...")
    seen = {"work": 0, "done": 0}

    def on_event(kind: str, data: dict) -> None:
        if kind == "planned":
            seen["work"] = data["work"]
        elif kind == "reading" and seen["work"]:  # the file being parsed: its pages, its OCR
            bar.progress(min(1.0, seen["done"] / seen["work"]),
                         text=inert(f"{shown(Path(data['path']).name)}: {data['where']}"))
        elif kind == "file" and seen["work"]:
            seen["done"] += 1
            bar.progress(min(1.0, seen["done"] / seen["work"]), text=inert(shown(Path(data["report"].path).name)))

    try:
        report = ingest(target, s, on_event=on_event)
    except RagError as e:
        bar.empty()
        say(st.error, str(e))
        return
    bar.empty()
    for f in report.files:
        if f.status in (FAILED, NO_TEXT):
            say(st.error, f"{shown(Path(f.path).name)}: {f.status.replace('_', ' ')}: {f.reason}")
    t = report.totals()
    say(st.success, f"{shown(target.name)}: {t['ok']} indexed, {t['unchanged']} unchanged, {t[FAILED] + t[NO_TEXT]} "
                    f"not indexed, {t['removed']} removed. The collection holds {t['chunks_in_index']} chunks.")


def settings_tab(s: Settings) -> None:
    try:
        engine, problem = engine_for(s), None
        quoting = engine.mode == "quote"  # as applied: the form's own choice counts once applied
    except RagError as e:
        engine, problem, quoting = None, e, False
    with st.form("settings"):
        choices = ["auto", *backends.names()]
        backend = st.radio("Answering model", choices, horizontal=True, index=choices.index(s.llm_backend),
                           format_func=lambda name: "auto" if name == "auto" else backends.get(name).title,
                           help="auto: the server at the URL (its kind recognised) when it answers, else the "
                                "embedded model")
        url = st.text_input("Server URL (vLLM, Ollama, llama.cpp or any OpenAI-compatible server)", s.llm_url,
                            placeholder="http://localhost:8000")
        model = st.text_input("Model name on the server", s.llm_model, placeholder="the first one it lists")
        modes = ["auto", *ANSWER_MODES]
        answer = st.radio("Answers", modes, horizontal=True, index=modes.index(s.answer),
                          help="quote: the sentences that answer, verbatim, no language model; generate: the model "
                               "writes the answer; auto: quote with the small embedded model, generate with a server")
        o = question_options(s)
        budget = st.select_slider("Context budget (tokens of sources)", list(BUDGETS),
                                  value=next((k for k, v in BUDGETS.items() if v == o["budget"]), "32K"),
                                  disabled=quoting, help=f"for generated answers; quote answers choose from "
                                                         f"{s.quote_budget} tokens of sources (quote_budget)")
        if quoting:
            st.caption(f"Answers are quotes: they are chosen from {s.quote_budget} tokens of sources (quote_budget), "
                       "and the context budget applies to generated answers.")
        top_k = st.number_input("Hits retrieved (0: enough to fill the budget)", 0, 2000, o["top_k"])
        ordering = st.selectbox("Ordering", ORDERINGS, index=ORDERINGS.index(o["ordering"]))
        if st.form_submit_button("Apply"):
            state.overrides = {"llm_backend": backend, "llm_url": url.strip(), "llm_model": model.strip(),
                               "answer": answer}
            state.options = {"budget": BUDGETS[budget], "top_k": int(top_k), "ordering": ordering}
            st.rerun()
    if engine is None:
        say(st.error, str(problem))
    else:
        try:
            status_line(engine)
            o = question_options(s)
            if quoting:
                used = f"quotes are chosen from {s.quote_budget} tokens of sources (quote_budget)"
            else:
                used = (f"context window {engine.llm.context_window} tokens; source budget "
                        f"{engine.budget('', o['budget'])} tokens used of the {o['budget']} asked; "
                        f"ordering {o['ordering']}")
            st.caption(inert(f"{used[0].upper()}{used[1:]}; index {s.index_dir}, collection {s.collection}."))
        except RagError as e:
            say(st.error, str(e))
    listed = {k: v for k, v in dataclasses.asdict(s).items() if k not in {"pdf_passwords"}}
    with st.expander("All settings"):
        st.json({k: str(v) for k, v in listed.items()})


st.markdown("<style>.passage{max-height:14em;overflow-y:auto;white-space:pre-wrap;font-size:0.9em}"
            ".answer,.question{white-space:pre-wrap}</style>", unsafe_allow_html=True)
st.title("Knowledge base")
try:
    current = settings()
except RagError as e:
    say(st.error, str(e))
    st.stop()
TABS = {"Ask": ask_tab, "Review": review_tab, "Library": library_tab, "Settings": settings_tab}
for tab, show in zip(st.tabs(list(TABS)), TABS.values()):
    with tab:
        try:
            show(current)
        except RagError as e:  # the knowledge base cannot be opened, or its stores disagree: said, with the way out
            say(st.error, str(e))
        except sqlite3.DatabaseError as e:  # a damaged manifest
            say(st.error, str(damaged(current, e)))
