"""One bad file never stops the batch or exhausts the machine: odd names, symlink loops, files that are
too slow, too big or too hungry to read. Real files made here, the real parsing worker, real indexes."""

import dataclasses
import json
import os
import random
import shutil
import subprocess
import sys
import time

import pytest

from rag.config import Settings
from rag.indexer import ingest, remove_file
from rag.manifest import Manifest
from rag.prepare import Params, Prepared, prepare_all
from rag.report import FAILED, OK
from rag.retrieval import Retriever

from conftest import CONTRACTS, ROOT
from hostile import slow_pdf

NON_UTF8 = os.fsdecode(b"caf\xe9 contract.pdf")  # a Latin-1 name, as copied from an old Windows share


def by_name(report) -> dict:
    return {os.path.basename(f.path): f for f in report.files}


@pytest.fixture(scope="module")
def params(embedder) -> Params:
    return Params(embedder.tokenizer_json(), embedder.chunk_tokens, 24, ())


def test_a_file_name_that_is_not_utf8_is_indexed_like_any_other(tmp_path, settings, folder, embedder):
    shutil.copy(CONTRACTS / "NETGEAR_INC_04_21_2003-EX-10.16-DISTRIBUTOR_AGREEMENT.pdf", folder / NON_UTF8)
    (folder / "notes\x1b[31m.txt").write_text("A note on the distributor agreement.")  # a terminal escape, too
    report = ingest(folder, settings, embedder=embedder)
    assert {f.status for f in report.files} == {OK} and len(report.files) == 5
    assert ingest(folder, settings, embedder=embedder).totals()["unchanged"] == 5  # the same row on every run

    shown = "caf\\xe9 contract.pdf"  # how it is printed, stored in Chroma and sent to a model
    retriever = Retriever(settings, embedder)
    try:
        hits = retriever.search("Which state's law governs the agreement?", 5, [shown]).hits
        assert hits and {h.file for h in hits} == {shown} and {h.path for h in hits} == {str(folder / NON_UTF8)}
        assert retriever.search("governing law", 3, [NON_UTF8]).hits  # the name as the OS gives it works too
    finally:
        retriever.close()

    out = subprocess.run([sys.executable, "-m", "rag.cli", "ingest", str(folder), "--index", str(tmp_path / "cli"),
                          "--collection", settings.collection], capture_output=True, cwd=ROOT)
    table = out.stdout.decode()  # valid UTF-8, or this raises
    assert out.returncode == 0 and shown in table and "notes\\x1b[31m.txt" in table and "\x1b[31m" not in table
    listed = subprocess.run([sys.executable, "-m", "rag.cli", "ingest", str(folder), "--index",
                             str(settings.index_dir), "--collection", settings.collection, "--json"],
                            capture_output=True, text=True, cwd=ROOT)
    assert str(folder / NON_UTF8) in {f["path"] for f in json.loads(listed.stdout)["files"]}

    remove_file(str(folder / NON_UTF8), settings)
    manifest = Manifest(settings.index_dir, settings.collection)
    assert str(folder / NON_UTF8) not in manifest.files() and len(manifest.files()) == 4
    manifest.close()


def test_symlink_loops_are_reported_and_the_rest_is_indexed(settings, folder, embedder):
    os.symlink("b.pdf", folder / "a.pdf")
    os.symlink("a.pdf", folder / "b.pdf")
    os.symlink("self.pdf", folder / "self.pdf")
    (folder / "sub").mkdir()
    os.symlink("..", folder / "sub" / "up")  # a folder loop: not followed
    report = by_name(ingest(folder, settings, embedder=embedder))
    for name in ("a.pdf", "b.pdf", "self.pdf"):
        assert report[name].status == FAILED and report[name].reason.startswith("symlink loop"), report[name]
    assert sum(f.status == OK for f in report.values()) == 3


@pytest.mark.slow
def test_a_file_too_slow_to_read_fails_alone(tmp_path, settings, folder, embedder):
    """A 300-page PDF whose pages share one content stream of 1M text operators (~10 s a page here; a
    minute on a busy machine) is stopped after parse_timeout without progress; a file each of whose
    pages is quick enough but which takes too long in all is stopped by its whole-file limit; the files
    around them are indexed."""
    slow_pdf(folder / "0-stuck.pdf", pages=300, operators=1_000_000)
    long = slow_pdf(folder / "1-long.pdf", pages=60, operators=60_000)
    # parse_timeout: 2.5x this machine's time for one of 1-long's pages (the fastest of five, when the
    # machine was least busy), so each page passes even at 2.5x slower, while the whole file, 60 pages
    # against a limit of 2.5 x (2 + 60/6) = 30 pages' worth, fails even at twice as fast
    import pypdf

    pages = pypdf.PdfReader(long).pages
    per_page = min(_timed(pages[i].extract_text) for i in range(5))
    report = by_name(ingest(folder, settings.replace(parse_timeout=max(0.5, 2.5 * per_page)), embedder=embedder))
    stuck, long = report["0-stuck.pdf"], report["1-long.pdf"]
    assert stuck.status == FAILED and "without progress" in stuck.reason and "parse_timeout" in stuck.reason
    assert long.status == FAILED and "took longer than its limit" in long.reason and "parse_timeout" in long.reason
    assert sum(f.status == OK for f in report.values()) == 3


def _timed(work) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def test_a_file_over_the_size_limit_is_not_read(settings, folder, embedder):
    (folder / "huge.txt").write_text("word " * 300_000)  # 1.4 MB
    report = by_name(ingest(folder, settings.replace(max_file_mb=1), embedder=embedder))
    assert report["huge.txt"].status == FAILED
    assert report["huge.txt"].reason.startswith("too large (1.4 MB): files up to 1 MB") and "max_file_mb" in \
        report["huge.txt"].reason
    assert sum(f.status == OK for f in report.values()) == 3


def big_text(path, megabytes: int, seed: int = 0):
    words = (CONTRACTS.parent / "README.md").read_text().split()
    rng = random.Random(seed)
    with open(path, "w") as f:
        while f.tell() < megabytes * 2**20:
            f.write(" ".join(rng.choice(words) for _ in range(2000)) + "\n\n")
    return path


def test_a_large_text_file_is_read_in_flat_memory(tmp_path, params):
    """A 10 MB .txt used to take the worker to 1.78 GB (100x its size); it is chunked window by window."""
    big = big_text(tmp_path / "big.txt", 10)
    [item] = list(prepare_all([big], params))
    assert isinstance(item, Prepared) and len(item.chunks) > 10_000
    assert item.peak_mb < 400, f"the worker peaked at {item.peak_mb:.0f} MB"
    assert "".join(c.text for c in item.chunks[:3])  # and the text is all there
    covered = sum(len(c.text) for c in item.chunks)
    assert covered >= big.stat().st_size * 0.95


def test_the_memory_cap_fails_the_file_not_the_machine(tmp_path, params):
    big = big_text(tmp_path / "hungry.txt", 40)
    after = CONTRACTS / "GOCALLINC_03_30_2000-EX-10.7-Promotion_Agreement.pdf"
    hungry, fine = prepare_all([big, after], dataclasses.replace(params, memory_mb=256))
    assert hungry.status == FAILED and "more memory than the 256 MB" in hungry.reason and "parse_memory_mb" in hungry.reason
    assert isinstance(fine, Prepared) and fine.chunks


def test_text_without_spaces_makes_bounded_chunks(tmp_path, params):
    """200,000 characters without a space (a base64 blob pasted into a note): the embedder reads each
    100 characters as one unknown word, and no chunk grows past its window's worth of them."""
    blob = tmp_path / "blob.txt"
    blob.write_text("A" * 200_000 + " The end.")
    [item] = list(prepare_all([blob], params))
    assert isinstance(item, Prepared) and max(len(c.text) for c in item.chunks) <= 100 * params.chunk_tokens
    assert item.chunks[-1].text.endswith("The end.")


def test_settings_for_the_limits_are_checked():
    with pytest.raises(Exception, match="max_file_mb"):
        Settings(max_file_mb=0)
    with pytest.raises(Exception, match="parse_memory_mb"):
        Settings(parse_memory_mb=10)
