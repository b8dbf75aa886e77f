"""Showing pages and document text (rag.page_view) on hostile input: a page of any shape renders within a
screen's pixels, in a real process whose memory is bounded; text that looks like a URL or an e-mail address
never becomes a link, even where Streamlit reads it as Markdown."""

import html
import io
import json
import re
import subprocess
import sys

import pytest

from hostile import tall_pdf, text_pdf

from helpers import ROOT

TALL_QUOTE = "Late payments bear interest at one percent per month."
MEMORY = 1 << 30  # bytes of address space for the rendering process: the unbounded render needed 18 GB
RENDER = """
import json, resource, sys, time
from rag.page_view import render_page
started = time.monotonic()
png = render_page(sys.argv[1], 1, highlight=[sys.argv[3]])
open(sys.argv[2], "wb").write(png)
print(json.dumps({"seconds": time.monotonic() - started,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def bounded(limit: int):
    import resource

    return lambda: resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def yellow_rows(png: bytes) -> list[int]:
    """The rows of the image that hold a quote's highlight (a translucent yellow over the page)."""
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    return sorted({y for y in range(image.height) for x in range(image.width)
                   if (lambda r, g, b: r > 180 and r - b > 60 and g - b > 40)(*image.getpixel((x, y)))})


def test_a_page_of_an_absurd_shape_renders_small_in_bounded_memory(tmp_path):
    """A 10 x 14,400 pt strip, asked 900 pixels wide, would be a 1.2-gigapixel image (109 s and 18 GB):
    a real process limited to 1 GB of address space renders it scaled down, its quote still marked."""
    from PIL import Image

    pdf = tall_pdf(tmp_path / "strip.pdf")
    out = tmp_path / "strip.png"
    done = subprocess.run([sys.executable, "-c", RENDER, str(pdf), str(out), TALL_QUOTE], cwd=ROOT,
                          capture_output=True, text=True, preexec_fn=bounded(MEMORY), timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    measured = json.loads(done.stdout)
    print(f"rendered the 10 x 14,400 pt page in {measured['seconds']:.2f} s, peak {measured['peak_mb']:.0f} MB")
    from rag.page_view import MAX_PAGE_PIXELS, MAX_PAGE_SIDE

    png = out.read_bytes()
    width, height = Image.open(io.BytesIO(png)).size
    assert width <= 900 and height <= MAX_PAGE_SIDE and width * height <= MAX_PAGE_PIXELS
    rows = yellow_rows(png)  # the boxes scaled as the page was: the quote's line, at the top of the strip
    assert rows and rows[-1] <= height * 8 / 14_400 + 1, (rows[:5], height)


@pytest.mark.parametrize("size, shrunk", [
    ((612, 792), False),  # US letter: 900 pixels wide, as asked
    ((14_400, 14_400), False),  # the largest page PDF allows, square: 900 x 900
    ((14_400, 10), False),  # a strip lying down: 900 x 1
    ((576, 7_200), True),  # a receipt roll, 8 x 100 inches: 11 million pixels at 900 wide
    ((10, 14_400), True),  # a strip standing up
])
def test_a_page_is_shown_as_asked_unless_that_would_not_fit_a_screen(tmp_path, size, shrunk):
    from PIL import Image

    from rag.page_view import MAX_PAGE_PIXELS, MAX_PAGE_SIDE, page_image

    pdf = tall_pdf(tmp_path / "page.pdf", *size)
    shown = page_image(pdf, 1, width=900, highlight=[TALL_QUOTE])
    width, height = Image.open(io.BytesIO(shown.png)).size
    assert 1 <= width <= 900 and 1 <= height <= MAX_PAGE_SIDE and width * height <= MAX_PAGE_PIXELS
    if not shrunk:
        assert width == 900 and shown.note is None
    else:
        w, h = (f"{v:,}" for v in size)
        percent = re.fullmatch(rf"page 1 is {w} × {h} points: shown at ([\d.]+)% size", shown.note)
        assert percent, shown.note
        asked_height = size[1] * 900 / size[0]  # pixels, at 900 wide
        assert float(percent.group(1)) == pytest.approx(100 * height / asked_height, rel=0.01)


def test_an_ordinary_page_renders_at_the_asked_width(tmp_path):
    from PIL import Image

    from rag.page_view import page_image, render_page

    pdf = text_pdf(tmp_path / "letter.pdf", ["The governing law is the law of Delaware."])
    assert Image.open(io.BytesIO(render_page(pdf, 1, width=400))).size == (400, 518)
    assert page_image(pdf, 1, width=400).note is None


# what Streamlit's Markdown (remark-gfm's autolink literals, in its StreamlitMarkdown bundle) makes a link of,
# in the text it has decoded: the same patterns, as Python writes them
AUTOLINK_URL = re.compile(r"(?i)(https?://|www(?=\.))([-.\w]+)", re.ASCII)
AUTOLINK_EMAIL = re.compile(r"([-.\w+]+)@([-\w]+(?:\.[-\w]+)+)", re.ASCII)
LINKABLE = ["http://127.0.0.1:8765/x.png", "see https://example.com/a?b=c.", "HTTPS://EXAMPLE.COM",
            "www.example.com", "(WWW.example.org)", "http://www.example.com", "xhttp://wwww.example.net",
            "write to legal@acme.test today", "mailto:legal@acme.test", "a.b+c@d-e.example.co.uk"]


@pytest.mark.parametrize("text", LINKABLE)
def test_inert_text_holds_no_autolink_literal_yet_reads_the_same(text):
    from rag.page_view import inert

    decoded = html.unescape(inert(text))  # what a Markdown parser has in its text node
    assert not AUTOLINK_URL.search(decoded) and not AUTOLINK_EMAIL.search(decoded), decoded
    assert decoded.replace("\u2060", "") == text  # only an invisible word joiner added
    assert re.fullmatch(r"[^\W_]*(?:(?: |&#\d+;)[^\W_]*)*", inert(text))  # nothing but letters, digits, references
