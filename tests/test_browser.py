"""One real browser: `streamlit run app.py`, driven by headless Chromium (Debian's package) through
Playwright. On the sample corpus: asks a sample question, waits for the quoted answer, opens its page
(the quote highlighted), adds a document by upload, and saves screenshots under the test's output folder. On a hostile
document and a model steered by it: the browser fetches nothing and links nowhere."""

import contextlib
import os
import re
import shutil
import subprocess
import sys
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from helpers import ROOT, free_port, wait_for

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
QUESTION = "Which state's law governs the NETGEAR distributor agreement?"


@contextlib.contextmanager
def streamlit_app(index, collection, log_dir, **env):
    port = free_port()
    env = {**os.environ, "RAG_INDEX_DIR": str(index), "RAG_COLLECTION": collection, **env}
    log = open(log_dir / "streamlit.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.port",
                             str(port), "--server.headless", "true"], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    url = f"http://localhost:{port}"

    def healthy():
        assert proc.poll() is None, (log_dir / "streamlit.log").read_text()
        try:
            urllib.request.urlopen(f"{url}/_stcore/health", timeout=2)
            return True
        except OSError:
            return False

    try:
        assert wait_for(healthy, timeout=120), (log_dir / "streamlit.log").read_text()
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@contextlib.contextmanager
def chromium():
    from playwright.sync_api import sync_playwright

    assert os.path.exists(CHROMIUM), "install Debian's chromium (apt-get install chromium): .ci/run does"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def served(sample_index, tmp_path):
    index = tmp_path / "index"  # a copy: the test adds a document
    # copied by another process: a file this process opens and closes drops every POSIX lock it holds on that
    # file, so copying the manifest here would let the next process to close it delete its WAL and shared
    # memory under this process's open connections (later tests then read it as "disk I/O error")
    subprocess.run(["cp", "-R", str(sample_index.index_dir), str(index)], check=True)
    with streamlit_app(index, sample_index.collection, tmp_path, RAG_LLM_BACKEND="embedded",
                       RAG_MAX_ANSWER_TOKENS="48") as url:
        yield url


@pytest.mark.slow
def test_ask_in_a_real_browser(served, tmp_path):
    from playwright.sync_api import expect

    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 1600})
        page.goto(served)
        expect(page.get_by_text("Answers are quotes")).to_be_visible(timeout=120_000)
        box = page.get_by_placeholder("Ask a question about your documents")
        box.fill(QUESTION)
        box.press("Enter")
        card = page.locator("strong", has_text=re.compile(r"^.+\.pdf, p\. \d+$"))
        expect(card.first).to_be_visible(timeout=240_000)
        assert "NETGEAR" in card.first.inner_text()
        assert "State of California" in page.locator(".passage").first.inner_text()
        page.get_by_text(re.compile(r"^Show page \d+$")).first.click()
        expect(page.locator("[data-testid='stImage'] img").first).to_be_visible(timeout=60_000)
        page.screenshot(path=str(tmp_path / "ask.png"), full_page=True)

        page.get_by_role("tab", name="Library").click()
        note = tmp_path / "board-minutes.md"
        note.write_text("The board approved the renewal of the NETGEAR distribution agreement on 1 May 2004.\n")
        page.locator("input[type=file]").set_input_files(str(note))
        page.get_by_role("button", name="Add to the knowledge base").click()
        expect(page.get_by_text(re.compile(r"board-minutes\.md: 1 indexed"))).to_be_visible(timeout=120_000)
        page.screenshot(path=str(tmp_path / "library.png"), full_page=True)
    assert (tmp_path / "ask.png").stat().st_size > 10_000
    shots = os.environ.get("RAG_SCREENSHOTS")  # the folder the README's screenshots are refreshed from
    if shots:
        shutil.copy(tmp_path / "ask.png", os.path.join(shots, "ask.png"))


CHOSEN = ("Governing Law", "Renewal Term", "Non-Compete", "Cap On Liability")  # the Review tab's columns, in order


@pytest.mark.slow
def test_review_and_a_question_about_every_contract_in_a_real_browser(served, tmp_path):
    """The Review tab: the matrix of the sample contracts, a click on NETGEAR's governing-law cell shows its quote
    (California) and the page with it highlighted; the XLSX download is what is shown; a filter keeps the contracts
    that have a non-compete. Then the Ask tab answers "which contracts have a non-compete?" from the review, a card
    for each of those contracts."""
    from openpyxl import load_workbook
    from playwright.sync_api import expect

    contracts = sorted((p.name for p in (ROOT / "data" / "contracts").glob("*.pdf")), key=str.lower)
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1400})
        page.goto(served)
        page.get_by_role("tab", name="Review").click()
        shown = page.locator(".st-key-review_columns input")
        expect(shown).to_be_visible(timeout=120_000)
        for name in CHOSEN:
            shown.fill(name)
            shown.press("Enter")
        page.keyboard.press("Escape")
        expect(page.get_by_text(re.compile(rf"^Download XLSX \(10 documents x {len(CHOSEN)} clause types\)$"))
               ).to_be_visible(timeout=60_000)
        grid = page.locator(".st-key-review_matrix [data-testid='stDataFrameResizable']")
        box = grid.bounding_box()
        row = contracts.index("NETGEAR_INC_04_21_2003-EX-10.16-DISTRIBUTOR_AGREEMENT.pdf")
        page.mouse.click(box["x"] + 300 + 110, box["y"] + 35 * (row + 1) + 17)  # header, then 35 px rows
        expect(page.get_by_text(re.compile(r"Governing Law · found, probability \d+% · answer: California"))
               ).to_be_visible(timeout=60_000)
        assert "State of California" in page.locator(".passage").first.inner_text()
        page.get_by_text(re.compile(r"^Show page \d+$")).first.click()
        expect(page.locator("[data-testid='stImage'] img").first).to_be_visible(timeout=60_000)
        page.screenshot(path=str(tmp_path / "review.png"), full_page=True)
        with page.expect_download() as download:
            page.get_by_role("button", name=re.compile("Download XLSX")).click()
        download.value.save_as(tmp_path / "review.xlsx")
        matrix = load_workbook(tmp_path / "review.xlsx")["Matrix"]
        assert [c.value for c in matrix[1]] == ["document", *CHOSEN] and matrix.max_row == 11
        assert "California" in next(r[1].value for r in matrix.iter_rows(min_row=2) if r[0].value.startswith("NETGEAR"))

        has = page.locator(".st-key-review_has input")
        has.fill("Non-Compete")
        has.press("Enter")
        page.keyboard.press("Escape")
        fewer = page.get_by_text(re.compile(r"^[1-9] of 10 documents\."))  # two of the samples bar competing
        expect(fewer).to_be_visible(timeout=60_000)
        having = int(fewer.inner_text().split()[0])

        page.get_by_role("tab", name="Ask").click()
        box = page.get_by_placeholder("Ask a question about your documents")
        box.fill("Which of our contracts have a non-compete?")
        box.press("Enter")
        cards = page.locator("strong", has_text=re.compile(r"^.+\.pdf, p\. \d+$"))
        expect(cards.first).to_be_visible(timeout=240_000)
        assert cards.count() == having  # a card a contract: the ones the review finds it in
        expect(page.get_by_text(re.compile(r"reading the contract review"))).to_be_visible(timeout=30_000)
        page.screenshot(path=str(tmp_path / "review-ask.png"), full_page=True)
    shots = os.environ.get("RAG_SCREENSHOTS")
    if shots:
        shutil.copy(tmp_path / "review.png", os.path.join(shots, "review.png"))


def ask(browser, url: str, question: str):
    """A new page on the app, every request it makes recorded, with `question` asked: (page, requested URLs)."""
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1280, "height": 1600})
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    page.goto(url)
    box = page.get_by_placeholder("Ask a question about your documents")
    expect(box).to_be_visible(timeout=120_000)
    box.fill(question)
    box.press("Enter")
    return page, requested


def seen(page) -> str:
    """The page's text as a reader sees it: the invisible word joiners that keep URLs from being linked
    (rag.page_view.inert) left out."""
    return page.locator("body").inner_text().replace("\u2060", "")


def links(page) -> list[str]:
    return page.eval_on_selector_all("a[href]", "anchors => anchors.map(a => a.href)")


class Listener:
    """A real HTTP server on this machine standing for 'outside': every request it gets is a leak."""

    def __init__(self):
        self.requests: list[str] = []
        seen = self.requests

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                seen.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


@pytest.mark.slow
def test_hostile_text_and_a_steered_answer_load_nothing_in_the_browser(tmp_path, embedder):
    """A document with an image after a blank line (which used to end the passage's HTML block and be
    fetched), raw HTML, a link and a bare URL; and an answer from a model it steered, carrying the same.
    The page shows them as text: the listener gets no request, and the page holds no link or image to it."""
    from playwright.sync_api import expect

    from rag.config import Settings
    from rag.indexer import ingest

    listener = Listener()
    leak = listener.origin
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "payment-terms.txt").write_text(
        "Payment terms. The Distributor shall pay each invoice within thirty days of receipt.\n\n"
        f"![logo]({leak}/pixel.png?leak=passage)\n\n<img src=\"{leak}/img.png?leak=html\">\n\n"
        f"[Click here]({leak}/link?leak=link) or see {leak}/bare?leak=url and :red[styled] $x^2$\n")
    settings = Settings(index_dir=tmp_path / "index", collection="hostile")
    ingest(docs, settings, embedder=embedder)
    answer = tmp_path / "answer.txt"
    answer.write_text(f"Payment is due within thirty days [1].\n\n![chart]({leak}/answer.png?leak=answer) "
                      f"<img src={leak}/answer2.png> [details]({leak}/answer-link)")
    llm_port = free_port()
    llm = subprocess.Popen([sys.executable, str(ROOT / "tests" / "scripted_llm.py"), str(llm_port), str(answer)])
    try:
        with streamlit_app(settings.index_dir, settings.collection, tmp_path, RAG_LLM_BACKEND="vllm",
                           RAG_LLM_URL=f"http://127.0.0.1:{llm_port}", RAG_MAX_ANSWER_TOKENS="64") as url, \
                chromium() as browser:
            page, requested = ask(browser, url, "When must the distributor pay an invoice?")
            expect(page.get_by_text("Payment is due within thirty days").first).to_be_visible(timeout=240_000)
            expect(page.get_by_text(re.compile(r"^\[1\] payment-terms\.txt, p\. 1"))).to_be_visible(timeout=60_000)
            page.screenshot(path=str(tmp_path / "hostile.png"), full_page=True)
            # shown as the characters they are ...
            text = seen(page)
            for shown in (f"![logo]({leak}/pixel.png?leak=passage)", f"<img src=\"{leak}/img.png?leak=html\">",
                          f"![chart]({leak}/answer.png?leak=answer)", f"[details]({leak}/answer-link)"):
                assert shown in text, shown
            # ... and nothing that could load or link: no element points at the listener, none was requested
            port = leak.rsplit(":", 1)[1]
            for selector in ("img", "a", "iframe", "source", "video", "audio", "object", "embed", "link"):
                for attribute in ("src", "href", "data", "srcset"):
                    assert page.locator(f"{selector}[{attribute}*='{port}']").count() == 0, (selector, attribute)
            assert not [u for u in requested if port in u], requested
        assert (tmp_path / "answer.log").read_text().count("/v1/chat/completions") >= 1  # the steered model answered
    finally:
        llm.terminate()
        llm.wait(timeout=30)
        listener.close()
    assert listener.requests == []


@pytest.mark.slow
def test_urls_hosts_and_addresses_in_documents_link_nowhere_in_the_browser(tmp_path, embedder):
    """A Word contract named like a host, in a folder named like one, whose heading and text hold a bare URL
    to a real local server, a `www.` host and an e-mail address; and a file that fails, named like a host.
    Asked about (a quote card titled with the file and the heading) and re-scanned (messages that name the
    folder and the failed file): every one shows as text, no element links to them, nothing is requested."""
    from playwright.sync_api import expect

    from rag.config import Settings
    from rag.indexer import ingest

    from hostile import notices_docx

    listener = Listener()
    leak = listener.origin
    docs = tmp_path / "www.acme-folder.test"
    docs.mkdir()
    notices_docx(docs / "www.acme-files.test.docx", leak)
    (docs / "www.acme-failed.test.pdf").write_bytes(b"")
    settings = Settings(index_dir=tmp_path / "index", collection="urls")
    ingest(docs, settings, embedder=embedder)
    heading = f"12. Notices: legal@acme.test www.acme.test {leak}/x.png"
    try:
        with streamlit_app(settings.index_dir, settings.collection, tmp_path, RAG_LLM_BACKEND="embedded") as url, \
                chromium() as browser:
            page, requested = ask(browser, url, "Where must notices be sent?")
            title = page.locator("strong", has_text="acme-files")
            expect(title.first).to_be_visible(timeout=240_000)
            port = leak.rsplit(":", 1)[1]

            def linked() -> list[str]:
                return [h for h in links(page) if any(s in h for s in (port, "acme", "mailto"))]

            assert f"www.acme-files.test.docx, {heading}" in title.first.inner_text().replace("\u2060", "")
            assert "e-mail to legal@acme.test, with a copy posted at " f"{leak}/notice.png" in seen(page)
            page.screenshot(path=str(tmp_path / "urls-ask.png"), full_page=True)
            assert linked() == []
            page.locator(".st-key-scope [data-testid='stMultiSelect']").click()  # the scope: a list of the file names
            expect(page.get_by_role("option", name=re.compile("acme-files")).first).to_be_visible(timeout=30_000)
            assert linked() == []
            page.keyboard.press("Escape")

            page.get_by_role("tab", name="Library").click()
            rescan = page.get_by_placeholder("/path/to/contracts")
            rescan.fill(str(docs))
            rescan.press("Enter")  # the folder is committed, and the button enabled
            page.get_by_role("button", name="Re-scan").click()
            said = page.locator("[data-testid='stAlert']")  # st.error, st.success: Markdown
            expect(said.filter(has_text=re.compile("acme-failed.*empty file"))).to_be_visible(timeout=120_000)
            expect(said.filter(has_text=re.compile("acme-folder.*unchanged"))).to_be_visible(timeout=60_000)
            page.screenshot(path=str(tmp_path / "urls.png"), full_page=True)
            text = seen(page)
            for shown in ("www.acme-folder.test: 0 indexed, 1 unchanged",
                          "www.acme-failed.test.pdf: failed: empty file"):
                assert shown in text, shown
            assert linked() == []
            page.get_by_role("tab", name="Ask").click()  # the conversation, shown again after the re-scan
            expect(title.first).to_be_visible(timeout=60_000)
            assert linked() == []
            assert not [u for u in requested if port in u or "acme" in u], requested
    finally:
        listener.close()
    assert listener.requests == []
