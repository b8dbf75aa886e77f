"""`rag eval QUESTIONS --docs FOLDER --out DIR`: answer quality and retrieval on a batch of questions.

Exit status: 0 when the report is written, 1 on a library error (said in one line), 2 on bad usage.
Ctrl-C keeps every finished result; the same command again resumes.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

from rag.cli import add_answer_option, add_model_options
from rag.config import ORDERINGS, Settings, parse_tokens
from rag.errors import ConfigError


def register(subparsers, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "eval", parents=[common], help="measure retrieval and answers on a question set; write a report",
        description="Run every question under each ordering x budget; write results.jsonl, summary.json and "
                    "report.md (with plots) to --out. A rerun with the same --out resumes.")
    p.add_argument("questions", type=Path, help="questions, one JSON object a line (see data/README.md)")
    p.add_argument("--docs", type=Path, help="ingest this folder first (unchanged files cost nothing)")
    p.add_argument("--out", type=Path, required=True, help="folder for results.jsonl, summary.json, report.md")
    p.add_argument("--orderings", default="golden", help=f"comma-separated, of {', '.join(ORDERINGS)}")
    p.add_argument("--budgets", help="comma-separated source budgets, e.g. 4k,16k,64k (default: the budget setting)")
    p.add_argument("--retrieval-only", action="store_true", help="no language model: evidence and retrieval metrics")
    add_answer_option(p, "quote: the best sentences, verbatim, no language model (--budgets are then quote budgets, "
                         "default the quote_budget setting); generate: the model answers. Default: quote with the "
                         "embedded model, generate with a server's")
    p.add_argument("--limit", type=int, default=0, help="the first N questions (after --sample)")
    p.add_argument("--sample", type=int, default=0, help="a seeded random sample of N questions")
    p.add_argument("--seed", type=int, default=0, help="seed of --sample")
    p.add_argument("--answerable-only", action="store_true", help="skip questions marked unanswerable")
    p.add_argument("--unscoped", action="store_true",
                   help="ask each question of the whole knowledge base, not of the documents it names")
    p.add_argument("--concurrency", type=int, default=4, help="questions answered at once by a server backend")
    p.add_argument("--baseline", action="store_true",
                   help="also measure a stock LlamaIndex pipeline (1,024- and 256-token chunks) in this run")
    p.add_argument("--no-texts", action="store_true",
                   help="leave the sources' texts out of results.jsonl (a dev-set grid's would take GBs)")
    p.add_argument("--judge-url", help="OpenAI-compatible server of an optional LLM judge")
    p.add_argument("--judge-model", default="", help="the judge's model name (default: the first it lists)")
    add_model_options(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from rich.console import Console
    from rich.markup import escape

    from rag.paths import printable

    from eval import harness, report
    from eval.bench_ingest import machine
    from rag.engine import Engine
    from rag.backends.openai import RetrievalOnly

    err = Console(stderr=True)
    orderings = tuple(o.strip() for o in args.orderings.split(",") if o.strip())
    if bad := [o for o in orderings if o not in ORDERINGS]:
        raise ConfigError(f"unknown ordering {bad[0]!r}: use {', '.join(ORDERINGS)}")
    if not args.questions.is_file():
        raise ConfigError(f"no question file at {args.questions}")
    questions = harness.load_questions(args.questions, args.limit, args.sample, args.seed, args.answerable_only)
    if args.unscoped:
        questions = [replace(q, documents=()) for q in questions]
    if args.docs:
        from rag.indexer import ingest

        err.print(f"indexing {printable(str(args.docs))} ...", markup=False)
        ingested = ingest(args.docs, settings)
        if ingested.has_failures:
            err.print(f"[yellow]{sum(1 for f in ingested.files if f.status in ('failed', 'no_text'))} files "
                      "could not be indexed: see `rag ingest` for why[/]")
    engine = Engine(settings, llm=RetrievalOnly() if args.retrieval_only else None)
    quoting = not args.retrieval_only and engine.mode == "quote"  # opens the model only to see what it is
    if quoting and orderings != ("golden",):
        raise ConfigError("quote answers rank sentences, not sources: --orderings does not apply to --answer quote")
    try:
        default = settings.quote_budget if quoting else settings.budget
        budgets = tuple(parse_tokens(b) for b in args.budgets.split(",")) if args.budgets else (default,)
    except ValueError as e:
        raise ConfigError(f"--budgets {args.budgets!r}: write token counts like 4k,16k,64k ({e})") from e
    answering = "quotes (no language model)" if quoting else engine.llm.describe
    baselines = ()
    if args.baseline:
        from eval.baseline import SIZES, StockPipeline

        if not args.docs:
            raise ConfigError("--baseline builds its own index: give the documents with --docs")
        err.print("building the stock LlamaIndex baselines (once per --out) ...")
        baselines = tuple(StockPipeline(args.docs, args.out / f"baseline-{n}", n) for n in SIZES)
    judge = None
    if args.judge_url and not args.retrieval_only:
        from eval.judge import Judge

        judge = Judge(settings, args.judge_url, args.judge_model)
    concurrency = args.concurrency if not quoting and engine.llm.backend.concurrent else 1
    plan = harness.Plan(orderings, budgets, args.retrieval_only, concurrency, baselines, judge, not args.no_texts,
                        quoting)
    asked = str(args.questions) + (" (unscoped: each asked of the whole knowledge base)" if args.unscoped else "")
    info = harness.RunInfo(asked, settings.collection, answering, {
        "docs": str(args.docs or ""), "machine": machine(), "date": time.strftime("%Y-%m-%d"),
        "question_count": len(questions), "answerable_count": sum(q.answerable for q in questions),
        "orderings": orderings, "budgets": budgets, "judge": judge.describe if judge else "",
        "max_answer_tokens": settings.max_answer_tokens, "answer": "quote" if quoting else "generate",
        **({"quote_threshold": 0.0} if quoting else {})})  # a quote's score is its margin over the threshold
    info.check(args.out)
    err.print(f"[{answering}] {len(questions)} questions x {len(orderings)} orderings x {len(budgets)} budgets"
              + (f" + {len(baselines)} baselines" if baselines else ""), markup=False)
    total = len(questions) * len(budgets) * (len(orderings) + len(baselines))
    try:
        with _progress(err, total) as (progress, task):
            results = harness.run(questions, settings, plan, args.out, engine,
                                  on_row=lambda row: progress.advance(task))
    finally:
        engine.close()
    keep, pipelines = {q.id for q in questions}, {b.name for b in baselines}
    rows = [r for r in results.rows if r["id"] in keep and r["budget"] in budgets
            and (r["ordering"] in orderings if r["pipeline"] == harness.OURS else r["pipeline"] in pipelines)]
    summary = report.write(args.out, rows, info.extra | {
        "questions": info.questions, "collection": info.collection, "backend": info.backend})
    ours = [s for s in summary["settings"] if s["pipeline"] == "ours"]
    for s in ours:
        mt = s["metrics"]
        said = [f"{name} {mt[name]['mean']:.3f}" for name in ("evidence_recall", "mrr", "f1", "quote_top1",
                                                               "quote_top3", "abstention_accuracy") if name in mt]
        print(f"{s['ordering']:>8} {s['budget']:>7}: " + ", ".join(said))
    if summary["errors"]:
        err.print(f"[yellow]{len({e['id'] for e in summary['errors']})} questions could not be run (counted as misses; "
                  f"a rerun tries them again), e.g.: {escape(summary['errors'][0]['error'])}[/]")
    print(f"report: {args.out / 'report.md'}")
    return 0


class _progress:
    """A bar on a terminal; elsewhere (a log, a pipe) a line every 5% or every minute, whichever comes first."""

    def __init__(self, console, total: int):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(TextColumn("eval"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                                 console=console, transient=True, disable=not console.is_terminal)
        self.console, self.total, self.done = console, total, 0
        self.started = time.monotonic()
        self.said = (self.started, 0)  # when progress was last printed, and at how many rows
        if not console.is_terminal:
            self.progress.advance = self._line

    def _line(self, task, advance: float = 1) -> None:
        self.done += advance
        now = time.monotonic()
        if self.done == self.total or now - self.said[0] >= 60 or self.done - self.said[1] >= self.total / 20:
            left = (now - self.started) / self.done * (self.total - self.done)
            self.console.print(f"eval: {self.done:.0f}/{self.total} rows ({100 * self.done / self.total:.0f}%), "
                               f"about {left / 60:.0f} min left", markup=False, highlight=False)
            self.said = (now, self.done)

    def __enter__(self):
        self.progress.__enter__()
        return self.progress, self.progress.add_task("eval", total=self.total)

    def __exit__(self, *exc):
        return self.progress.__exit__(*exc)
