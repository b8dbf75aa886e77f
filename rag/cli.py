"""The `rag` command: global options, settings, and subcommands found by entry point.

Subcommands live in the shells (`ingest/`, `eval/`, ...) and register under the entry-point group
`rag.commands` (see pyproject.toml), so this library imports none of them. Each entry point is a
function `register(subparsers, common)` that adds a parser (with `parents=[common]`, the global
options) and sets `run(args, settings) -> int` as its default. An option whose dest is a Settings
field overrides that setting.

Exit codes: what the subcommand returns (0 success, 1 some work failed), 2 for bad usage or settings,
1 for any other RagError; errors are printed as one line that says what to do, never a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sqlite3
import sys
import time
from importlib.metadata import entry_points

from rag import __version__
from rag import backends
from rag.config import ANSWER_MODES, ORDERINGS, Settings, load_settings
from rag.errors import ConfigError, RagError
from rag.knowledge_base import damaged
from rag.paths import PrintableFormatter, json_safe, printable
from rag.prompts import NOT_FOUND, WEAK_MATCH, pages_label

GLOBAL_OPTIONS = {  # flag -> (settings field, help)
    "--index": ("index_dir", "index folder (env RAG_INDEX_DIR; default ~/.local/share/rag/index)"),
    "--collection": ("collection", "knowledge base name inside the index (env RAG_COLLECTION; default 'default')"),
    "--chroma-url": ("chroma_url", "use a Chroma server, e.g. http://localhost:8000 (env RAG_CHROMA_URL)"),
    "--embedding-model": ("embedding_model", "sentence-transformers model name or path (default: bundled MiniLM)"),
    "--device": ("device", "auto, cpu, cuda or mps (env RAG_DEVICE)"),
}


def add_answer_option(parser: argparse.ArgumentParser, help_text: str) -> None:
    """--answer: quote or generate (the `answer` setting), for the subcommands that answer questions."""
    parser.add_argument("--answer", dest="answer", choices=ANSWER_MODES, help=help_text)


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """--backend and --llm-url: which model answers (the llm_backend and llm_url settings), for the subcommands
    that answer questions; the choices are the backends' registry."""
    parser.add_argument("--backend", dest="llm_backend", choices=["auto", *backends.names()],
                        help="which model answers (default auto: the server at --llm-url, else the embedded model)")
    parser.add_argument("--llm-url", dest="llm_url", help="OpenAI-compatible server, e.g. http://localhost:8000")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rag", description="Private question answering over your documents.")
    parser.add_argument("--version", action="version", version=f"rag {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what the library does")
    common = argparse.ArgumentParser(add_help=False)
    for flag, (field, help_text) in GLOBAL_OPTIONS.items():
        common.add_argument(flag, dest=field, default=None, help=help_text)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for entry in sorted(entry_points(group="rag.commands"), key=lambda e: e.name):
        entry.load()(sub, common)
    return parser


GRACE = 5.0  # seconds a stopped command has to clean up before it is ended outright
_CAUGHT: list[int] = []  # the signal that stopped this command


def stop_on_signals() -> None:
    """Ctrl-C (SIGINT) and SIGTERM stop any command promptly, at any stage.

    - Python keeps SIGINT ignored when it started ignored (a background job of a script): reset it.
    - Both raise KeyboardInterrupt in the main thread, so `finally` blocks release the index's lock and
      stop the parsing worker; a second signal adds nothing.
    - When the main thread cannot get to it (inside a library's C code, or waiting on threads), a
      watchdog ends the process GRACE seconds later. Every index write is crash-safe, so that loses
      nothing a rerun does not redo.
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)  # written by C code the moment a signal lands

    def on_signal(signum, frame):
        if not _CAUGHT:
            _CAUGHT.append(signum)
            raise KeyboardInterrupt

    def watchdog():
        while (got := os.read(read_end, 1)) and got[0] not in (signal.SIGINT, signal.SIGTERM):
            pass
        time.sleep(GRACE)
        os.write(2, b"rag: stopped (run it again to finish; finished work is kept)\n")
        os._exit(128 + got[0])

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, on_signal)
    threading.Thread(target=watchdog, name="rag-stop-watchdog", daemon=True).start()


def entry() -> int:
    """The `rag` command (and `python -m rag.cli`): main() with signals handled as a command should."""
    stop_on_signals()
    try:
        return main()
    except KeyboardInterrupt:  # before a subcommand started, or while it was reporting its own interruption
        print("rag: interrupted", file=sys.stderr)
        return 128 + (_CAUGHT[0] if _CAUGHT else 2)
    except BrokenPipeError:  # `rag ... | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 141


def main(argv: list[str] | None = None) -> int:
    # libraries' own tqdm bars (e.g. the GGUF de-quantizer's) are noise here: progress is ours to show.
    # tqdm reads this when it is first imported, which the heavy libraries do lazily, after this line.
    os.environ.setdefault("TQDM_DISABLE", "1")
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = logging.StreamHandler()
    handler.setFormatter(PrintableFormatter("%(levelname)s %(name)s: %(message)s"))  # documents' text can reach logs
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, handlers=[handler])
    settings = None
    try:
        # any option whose dest is a Settings field overrides that setting
        overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(Settings) if hasattr(args, f.name)}
        settings = backends.check(load_settings(overrides))
        return args.run(args, settings)
    except sqlite3.DatabaseError as e:  # a damaged manifest, wherever it is read: our error, with the way out
        print(f"rag {args.command}: {printable(str(damaged(settings or Settings(), e)))}", file=sys.stderr)
        return 1
    except ConfigError as e:
        print(f"rag {args.command}: {printable(str(e))}", file=sys.stderr)
        return 2
    except RagError as e:
        print(f"rag {args.command}: {printable(str(e))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"rag {args.command}: interrupted; run it again to finish (finished work is kept)", file=sys.stderr)
        return 128 + (_CAUGHT[0] if _CAUGHT else 2)


def register_ask(subparsers, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser("ask", parents=[common], help="answer a question from the knowledge base, with citations",
                              description="Answer a question from the documents, citing file and page.")
    p.add_argument("question")
    p.add_argument("--doc", dest="documents", action="append", metavar="FILE",
                   help="only this document (file name or path; repeatable)")
    p.add_argument("--json", action="store_true", help="print the whole Answer as JSON")
    add_answer_option(p, "quote: the sentences that answer, verbatim, chosen without a language model; generate: "
                         "the model writes the answer (default: quote with the embedded model, generate with a server)")
    p.add_argument("--budget", dest="budget", help="tokens of sources in the prompt, e.g. 32k or 128k")
    p.add_argument("--ordering", dest="ordering", choices=ORDERINGS)
    add_model_options(p)
    p.set_defaults(run=run_ask)


def run_ask(args: argparse.Namespace, settings: Settings) -> int:
    from rag.engine import Engine

    started = time.perf_counter()
    engine = Engine(settings)
    opened = time.perf_counter() - started  # the index, and the models it began loading (the question waits for them)
    try:
        engine.warm()  # the model that writes answers, when one does, loads meanwhile too
        quoting = engine.mode == "quote"
        if not args.json:
            print(QUOTES_NOTE if quoting else f"[{engine.llm.describe}]", file=sys.stderr)
            if not quoting and engine.llm.too_small:
                print(f"WARNING: {engine.llm.too_small}", file=sys.stderr)
        # a model steered by a document could write terminal escapes: the answer is printed printable
        stream = None if args.json else (lambda piece: print(printable(piece, lines=True), end="", flush=True))
        answer = engine.ask(args.question, args.documents, on_token=stream)
    finally:
        engine.close()
    answer.seconds["open"] = opened
    if args.json:
        print(json.dumps(json_safe(answer.to_dict()), indent=2))
        return 0
    if answer.mode == "review":
        print(printable(answer.text.split("\n", 1)[0]))
        for q in answer.quotes:
            print(f'\n  [{q.source}] {printable(q.file)}, {where(q)} ({q.score:.0%}), characters {q.start}-{q.end}:')
            print(f'      "{printable(q.shown())}"')
    elif answer.mode == "quote":
        print_quotes(answer)
    else:
        print()
        print_support(answer)
        for c in answer.citations:
            print(f"  [{c.number}] {printable(c.file)}, {printable(c.section) or pages_label(c.page_start, c.page_end)}" +
                  (OCR_NOTE if c.ocr else "") + ("  (matched by its words: the model cited nothing)" if c.inferred else "") +
                  ("" if c.inferred else "  (quoted nothing: not checked)" if c.verified is None else
                   "" if c.verified else "  NOT VERIFIED: its quoted words are not in this source"))
        for q in answer.quotes:
            print(f'      [{q.source}] "{printable(q.shown())}" ({where(q)}, characters {q.start}-{q.end})' +
                  (OCR_NOTE if q.ocr else ""))
        if answer.instead is not None:
            print("\nWhat the documents say, in their own words (a quote answer from the same sources):")
            print_quotes(answer.instead)
    print(timings(answer), file=sys.stderr)
    return 0


QUOTES_NOTE = "[quotes: the sentences that answer, verbatim; no language model]"
OCR_NOTE = "  (scanned page, read by OCR: check the page image)"


def timings(answer) -> str:
    """Where the time went: loading (once per process: the index opened, the models it needs), then this question's
    own steps."""
    s = answer.seconds
    loading = s.get("open", 0.0) + s.get("load", 0.0)  # opening the index, then what the question waited for
    load = f"load {loading:.2f} s (models and index, once per process); " if loading >= 0.005 else ""
    if answer.mode == "review":
        return f"(the contract review of {answer.checked} documents, no language model; {load}{s['review']:.2f} s)"
    if answer.mode == "quote":
        return (f"(sentences of {sum(x['tokens'] for x in answer.sources)} tokens of sources, quote budget "
                f"{answer.budget}; {load}retrieve {s['retrieve']:.2f} s, pack {s['pack']:.2f} s, quote {s['quote']:.2f} s)")
    return (f"({answer.prompt_tokens} prompt tokens, {sum(x['tokens'] for x in answer.sources)} of them sources within a "
            f"{answer.budget}-token source budget; {load}retrieve {s['retrieve']:.2f} s, pack {s['pack']:.2f} s, first "
            f"token {s['first_token'] - s.get('load', 0):.2f} s after loading, total {s['total']:.1f} s)")


def print_support(answer) -> None:
    """What a written answer states that its sources do not hold, said before its citations."""
    missing = ", ".join(printable(w) for w in answer.unsupported)
    if answer.support == "unsupported":
        print(f"UNSUPPORTED: nothing it states ({missing}) is in the sources it cites. Do not rely on it.")
    elif answer.support == "partly supported":
        print(f"PARTLY UNSUPPORTED: no source it cites holds {missing}. Check before relying on it.")


def where(quote) -> str:
    """Where a quote stands: its page, or for a document without pages (Word, HTML) its section."""
    return printable(quote.section) if quote.section else f"p. {quote.page}"


def print_quotes(answer) -> None:
    """Each quote on its own lines, with where it stands: file, page and characters of that page."""
    from rag.engine import shortfall, strength

    why = shortfall(answer.abstained, answer.weak, answer.ranked[0] if answer.ranked else None)
    if answer.abstained:
        print(NOT_FOUND + (f" {why}; they are shown for you to judge:" if why else ""))
    elif answer.weak:
        print(f"{WEAK_MATCH} {why}; they are shown for you to judge:")
    for q in answer.quotes or answer.ranked:
        print(f'\n  "{printable(q.shown())}"')
        print(f"      {printable(q.file)}, {where(q)}, characters {q.start}-{q.end} ({strength(q.score, q.probability)})"
              + (OCR_NOTE if q.ocr else ""))


if __name__ == "__main__":
    sys.exit(entry())
