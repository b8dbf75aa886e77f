"""One real browser: `streamlit run app.py` on the sample corpus, driven by headless Chromium (Debian's
package) through Playwright. Asks a sample question, waits for the cited answer, opens the cited page,
adds a document by upload, and saves screenshots under the test's output folder."""

import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request

import pytest

from conftest import ROOT, free_port

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
QUESTION = "Which state's law governs the NETGEAR distributor agreement?"


@pytest.fixture
def served(sample_index, tmp_path):
    index = tmp_path / "index"  # a copy: the test adds a document
    shutil.copytree(sample_index.index_dir, index)
    port = free_port()
    env = {**os.environ, "RAG_INDEX_DIR": str(index), "RAG_COLLECTION": sample_index.collection,
           "RAG_LLM_BACKEND": "embedded", "RAG_MAX_ANSWER_TOKENS": "48"}
    log = open(tmp_path / "streamlit.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.port",
                             str(port), "--server.headless", "true"], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    url = f"http://localhost:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(f"{url}/_stcore/health", timeout=2)
            break
        except OSError:
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "streamlit.log").read_text()
            time.sleep(0.5)
    yield url
    proc.terminate()
    proc.wait(timeout=30)


@pytest.mark.slow
def test_ask_in_a_real_browser(served, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    assert os.path.exists(CHROMIUM), "install Debian's chromium (apt-get install chromium): .ci/run does"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1280, "height": 1600})
        page.goto(served)
        expect(page.get_by_text("Answering with the embedded model")).to_be_visible(timeout=120_000)
        box = page.get_by_placeholder("Ask a question about your documents")
        box.fill(QUESTION)
        box.press("Enter")
        card = page.locator("strong", has_text=re.compile(r"^\[\d+\] .+\.pdf, pp?\. \d+"))
        expect(card.first).to_be_visible(timeout=240_000)
        cited = card.first.inner_text()
        assert "NETGEAR" in cited
        assert page.locator(".passage").first.inner_text().strip()
        page.get_by_text(re.compile(r"^Show (page \d+|the pages)$")).first.click()
        expect(page.locator("[data-testid='stImage'] img").first).to_be_visible(timeout=60_000)
        page.screenshot(path=str(tmp_path / "ask.png"), full_page=True)

        page.get_by_role("tab", name="Library").click()
        note = tmp_path / "board-minutes.md"
        note.write_text("The board approved the renewal of the NETGEAR distribution agreement on 1 May 2004.\n")
        page.locator("input[type=file]").set_input_files(str(note))
        page.get_by_role("button", name="Add to the knowledge base").click()
        expect(page.get_by_text(re.compile(r"board-minutes\.md: 1 indexed"))).to_be_visible(timeout=120_000)
        page.screenshot(path=str(tmp_path / "library.png"), full_page=True)
        browser.close()
    assert (tmp_path / "ask.png").stat().st_size > 10_000
    shots = os.environ.get("RAG_SCREENSHOTS")  # where the README's screenshot is refreshed from
    if shots:
        shutil.copy(tmp_path / "ask.png", shots)
