"""results.jsonl -> summary.json (aggregates with bootstrap confidence intervals) and report.md with PNG plots."""

from __future__ import annotations

import json
import statistics
import time
from collections import defaultdict
from pathlib import Path
from typing import Iterable

from eval.metrics import METRIC_DEFINITIONS, quote_tradeoff

BOOTSTRAP = 1000  # resamples for the 95% intervals
RETRIEVAL = ("evidence_recall", "evidence_words", "evidence_found", "mrr", "recall_at_10", "first_evidence_source",
             "first_evidence_offset", "prompt_tokens")
ANSWERS = ("exact_match", "f1", "contains", "abstention_accuracy", "answered_anyway", "false_abstention",
           "citation_precision", "citation_inferred", "judge", "tokens_per_second")
SECONDS = ("retrieve", "pack", "first_token", "total", "retrieve_and_pack")


def save(out: Path, result: dict, render) -> None:
    """A benchmark's result as OUT.json and, rendered, OUT.md; the rendering is printed too."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    out.with_suffix(".md").write_text(render(result))
    print(render(result))


def bootstrap(values: list[float], seed: int = 0) -> tuple[float, float]:
    """The 95% percentile interval of the mean over BOOTSTRAP resamples of the questions."""
    import numpy as np

    data = np.asarray(values, dtype=float)
    if len(data) < 2:
        return (float(data.mean()),) * 2 if len(data) else (float("nan"),) * 2
    means = np.random.default_rng(seed).choice(data, size=(BOOTSTRAP, len(data))).mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def aggregate(rows: Iterable[dict], intervals: bool = True) -> dict:
    values: dict[str, list[float]] = defaultdict(list)
    n = 0
    for row in rows:
        n += 1
        values["error"].append(1.0 if "error" in row else 0.0)  # a share of all questions, not of the failed ones
        for name, v in row["metrics"].items():
            if name == "error":
                continue
            if v is not None:
                values[name].append(float(v))
        for name, v in row.get("seconds", {}).items():
            values[f"seconds_{name}"].append(float(v))
    if not any(values["error"]):
        del values["error"]
    out: dict = {"n": n}
    for name, vs in sorted(values.items()):
        item = {"mean": statistics.fmean(vs), "n": len(vs)}
        if name.startswith("seconds_") or name == "prompt_tokens":
            ordered = sorted(vs)
            item.update(p50=statistics.median(ordered), p95=ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))])
        elif intervals:
            item["ci95"] = bootstrap(vs)
        out[name] = item
    return out


def summarize(rows: list[dict], run: dict) -> dict:
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for row in rows:
        groups[(row["pipeline"], row["ordering"], row["budget"])].append(row)
    settings, categories = [], {}
    for (pipeline, ordering, budget), members in sorted(groups.items(), key=lambda kv: (kv[0][0] != "ours", kv[0])):
        label = f"{pipeline}/{ordering}/{budget}"
        settings.append({"pipeline": pipeline, "ordering": ordering, "budget": budget,
                         "effective_budget": max(r.get("effective_budget") or 0 for r in members),
                         "metrics": aggregate(members)})
        by_category: dict[str, list[dict]] = defaultdict(list)
        for row in members:
            by_category[row.get("category") or "-"].append(row)
        categories[label] = {c: {k: v for k, v in aggregate(rs, intervals=False).items() if not k.startswith("seconds_")}
                             for c, rs in sorted(by_category.items())}
    errors = [{"id": r["id"], "pipeline": r["pipeline"], "ordering": r["ordering"], "budget": r["budget"],
               "error": r["error"]} for r in rows if "error" in r]
    return {"run": run, "settings": settings, "by_category": categories, "errors": errors,
            "quote_curve": quote_curve(rows, run.get("quote_threshold")), "definitions": METRIC_DEFINITIONS}


def quote_curve(rows: list[dict], chosen: float | None = None, steps: int = 41) -> list[dict]:
    """Precision, recall and abstention of quote answers at thresholds spread over the best scores seen (and
    at the `chosen` one)."""
    points = [(r["ranked"][0]["score"] if r["ranked"] else -1.0,
               None if not r["answerable"] else bool(r["ranked"] and r["ranked"][0]["match"]))
              for r in rows if r["pipeline"] == "ours" and "ranked" in r]
    if not points:
        return []
    import numpy as np

    thresholds = sorted({*np.quantile([s for s, _ in points], np.linspace(0, 1, steps)).tolist(),
                         *([chosen] if chosen is not None else [])})
    return [quote_tradeoff(points, t) for t in thresholds]


def write(out: Path, rows: list[dict], run: dict) -> dict:
    summary = summarize(rows, run)
    (out / "summary.json").write_text(json.dumps(_rounded(summary), indent=1) + "\n")
    plots = plot(out, summary, rows)
    (out / "report.md").write_text(render(summary, plots))
    return summary


def _rounded(value):
    """Floats to 5 significant digits: the summary is read by people and diffed in git."""
    if isinstance(value, float):
        return float(f"{value:.5g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_rounded(v) for v in value]
    return value


def _cell(metric: dict | None, digits: int = 3) -> str:
    if not metric:
        return "–"
    if "ci95" in metric:
        lo, hi = metric["ci95"]
        return f"{metric['mean']:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"
    return f"{metric['mean']:.{digits}f}"


def _budget(b: int) -> str:
    return f"{b // 1024}K" if b % 1024 == 0 else str(b)


def render(summary: dict, plots: list[str]) -> str:
    run, settings = summary["run"], summary["settings"]
    lines = [f"# Evaluation report: {run.get('name') or run.get('questions')}", "",
             f"{run.get('date', time.strftime('%Y-%m-%d'))}, {run.get('machine', '')}. Questions: `{run.get('questions')}`"
             f" ({run.get('question_count', '?')} questions; {run.get('answerable_count', '?')} answerable). "
             f"Documents: `{run.get('docs') or run.get('collection')}`. Answering model: {run.get('backend')}.", ""]
    if run.get("judge"):
        lines += [f"LLM judge (labelled `judge`, never the only number): {run['judge']}.", ""]
    lines += ["Brackets are 95% bootstrap intervals over questions. Budget = tokens of sources, counted with the "
              "answering model's tokenizer (Meta's Llama-3 tokenizer when retrieval-only, for a vLLM server, and "
              "for the baseline); `eff.` = the largest budget the answering model allowed.", "",
              "## Retrieval and packed evidence", "",
              "| pipeline | ordering | budget | eff. | evidence recall | evidence words | evidence found | MRR | "
              "recall@10 | first evidence source | its token offset | prompt tokens p50 |",
              "|---|---|---|---:|---|---|---|---|---|---:|---:|---:|"]
    for s in settings:
        mt = s["metrics"]
        tokens = f"{mt['prompt_tokens']['p50']:.0f}" if "prompt_tokens" in mt else "–"
        lines.append(f"| {s['pipeline']} | {s['ordering']} | {_budget(s['budget'])} | {s['effective_budget']} | "
                     f"{_cell(mt.get('evidence_recall'))} | {_cell(mt.get('evidence_words'))} | "
                     f"{_cell(mt.get('evidence_found'))} | {_cell(mt.get('mrr'))} | "
                     f"{_cell(mt.get('recall_at_10'))} | {_cell(mt.get('first_evidence_source'), 1)} | "
                     f"{_cell(mt.get('first_evidence_offset'), 0)} | {tokens} |")
    answered = [s for s in settings if "f1" in s["metrics"] or "abstention_accuracy" in s["metrics"]]
    if answered:
        lines += ["", "## Answers", "",
                  "| ordering | budget | exact match | F1 | contains | abstention accuracy | answered anyway | "
                  "false abstention | citation precision | citations verified | judge | first token p50 s | "
                  "total p50 s | tokens/s |", "|---|---|---|---|---|---|---|---|---|---|---|---:|---:|---:|"]
        for s in answered:
            mt = s["metrics"]
            p50 = lambda name: f"{mt[name]['p50']:.2f}" if name in mt else "–"  # noqa: E731
            lines.append(f"| {s['ordering']} | {_budget(s['budget'])} | {_cell(mt.get('exact_match'))} | "
                         f"{_cell(mt.get('f1'))} | {_cell(mt.get('contains'))} | {_cell(mt.get('abstention_accuracy'))} | "
                         f"{_cell(mt.get('answered_anyway'))} | {_cell(mt.get('false_abstention'))} | "
                         f"{_cell(mt.get('citation_precision'))} | {_cell(mt.get('citation_verified'))} | "
                         f"{_cell(mt.get('judge'))} | "
                         f"{p50('seconds_first_token')} | {p50('seconds_total')} | {_cell(mt.get('tokens_per_second'), 1)} |")
    quoted = [s for s in settings if "quote_top1" in s["metrics"] or "quote_verified" in s["metrics"]]
    if quoted:
        lines += ["", "## Quote answers", "",
                  "Scores are margins over the threshold that applied (rag/quotes.py): 0 parts quotes from abstentions. "
                  "An abstention is a miss in top-1 and top-3. A best quote under `weak` (rag/domain/quote_weights.json) is shown as a weak match, not "
                  "as the answer: `not answered` = unanswerable questions abstained on or shown a weak match; `weak` "
                  "= answerable questions shown one (their quotes still count in top-1 and top-3).", "",
                  "| budget | top-1 match | top-3 match | abstention accuracy | not answered | weak | false abstention | "
                  "quotes verified | quote p50 ms |", "|---|---|---|---|---|---|---|---|---:|"]
        for s in quoted:
            mt = s["metrics"]
            ms = f"{1000 * mt['seconds_quote']['p50']:.0f}" if "seconds_quote" in mt else "–"
            lines.append(f"| {_budget(s['budget'])} | {_cell(mt.get('quote_top1'))} | {_cell(mt.get('quote_top3'))} | "
                         f"{_cell(mt.get('abstention_accuracy'))} | {_cell(mt.get('not_answered'))} | "
                         f"{_cell(mt.get('weak'))} | {_cell(mt.get('false_abstention'))} | "
                         f"{_cell(mt.get('quote_verified'))} | {ms} |")
        curve = summary.get("quote_curve") or []
        if curve:
            lines += ["", "The trade-off over the threshold (precision: answered questions whose top quote matches, an "
                      "unanswerable question answered counting as wrong; recall: answerable top-1):", "",
                      "| threshold | precision | recall (top-1) | abstention accuracy |", "|---:|---:|---:|---:|"]
            lines += [f"| {c['threshold']} | {c['precision']:.3f} | {c['recall']:.3f} | {c['abstention']:.3f} |"
                      for c in curve[::max(1, len(curve) // 10)]]
    lines += ["", "## Speed", "", "| pipeline | ordering | budget | retrieve p50 ms | pack p50 ms | total p50 s |",
              "|---|---|---|---:|---:|---:|"]
    for s in settings:
        mt = s["metrics"]
        ms = lambda name: f"{1000 * mt[name]['p50']:.1f}" if name in mt else "–"  # noqa: E731
        retrieve = ms("seconds_retrieve") if "seconds_retrieve" in mt else ms("seconds_retrieve_and_pack")
        total = f"{mt['seconds_total']['p50']:.2f}" if "seconds_total" in mt else "–"
        lines.append(f"| {s['pipeline']} | {s['ordering']} | {_budget(s['budget'])} | {retrieve} | "
                     f"{ms('seconds_pack')} | {total} |")
    if summary.get("errors"):
        errors = summary["errors"]
        by_message: dict[str, list[str]] = defaultdict(list)
        for e in errors:
            by_message[e["error"]].append(e["id"])
        lines += ["", "## Questions that could not be run", "",
                  f"{len({e['id'] for e in errors})} questions ({len(errors)} rows) could not be run; each counts as a "
                  "miss in the metrics above (`error` is their share), and the next run with the same `--out` tries "
                  "them again.", "", "| questions | error |", "|---:|---|"]
        for message, ids in sorted(by_message.items(), key=lambda kv: -len(kv[1])):
            shown = ", ".join(sorted(set(ids))[:3]) + (" ..." if len(set(ids)) > 3 else "")
            lines.append(f"| {len(set(ids))} | {message.replace('|', '/')} (e.g. {shown}) |")
    first = next((s for s in settings if s["pipeline"] == "ours"), None)
    if first:
        label = f"ours/{first['ordering']}/{first['budget']}"
        lines += ["", f"## By category ({label})", "", "| category | questions | evidence recall | MRR | F1 | "
                  "quote top-1 | quote top-3 | abstention accuracy |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for category, mt in summary["by_category"][label].items():
            lines.append(f"| {category} | {mt['n']} | {_cell(mt.get('evidence_recall'))} | {_cell(mt.get('mrr'))} | "
                         f"{_cell(mt.get('f1'))} | {_cell(mt.get('quote_top1'))} | {_cell(mt.get('quote_top3'))} | "
                         f"{_cell(mt.get('abstention_accuracy'))} |")
    if plots:
        lines += ["", "## Plots", ""] + [f"![{p}]({p})" for p in plots]
    lines += ["", "## Metric definitions", ""] + [f"- **{k}**: {v}" for k, v in summary["definitions"].items()]
    return "\n".join(lines) + "\n"


def plot(out: Path, summary: dict, rows: list[dict]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = []
    series: dict[str, list[tuple[int, dict]]] = defaultdict(list)
    for s in summary["settings"]:
        name = s["ordering"] if s["pipeline"] == "ours" else f"stock {s['pipeline']}"
        series[name].append((s["budget"], s["metrics"]))
    for metric, title, filename in (("evidence_recall", "Evidence recall of the packed sources", "evidence_recall.png"),
                                    ("f1", "Answer token F1", "answer_f1.png")):
        lines = {name: sorted((b, mt[metric]) for b, mt in points if metric in mt) for name, points in series.items()}
        lines = {k: v for k, v in lines.items() if v}
        if not lines:
            continue
        fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
        for name, points in lines.items():
            xs = [b for b, _ in points]
            ys = [v["mean"] for _, v in points]
            ax.plot(xs, ys, marker="o", label=name, linestyle="--" if name.startswith("stock") else "-")
            if all("ci95" in v for _, v in points):
                ax.fill_between(xs, [v["ci95"][0] for _, v in points], [v["ci95"][1] for _, v in points], alpha=0.15)
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted({b for pts in lines.values() for b, _ in pts}))
        ax.set_xticklabels([_budget(b) for b in ax.get_xticks()])
        ax.set(title=f"{title} vs budget", xlabel="source budget (tokens)", ylabel=metric)
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / filename)
        plt.close(fig)
        made.append(filename)
    made += _latency_plot(out, plt, rows)
    curve = summary.get("quote_curve")
    if curve:
        fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
        ax.plot([c["recall"] for c in curve], [c["precision"] for c in curve], marker=".")
        chosen = summary["run"].get("quote_threshold")
        if chosen is not None:
            at = min(curve, key=lambda c: abs(c["threshold"] - chosen))
            ax.scatter([at["recall"]], [at["precision"]], color="red", zorder=3, label=f"threshold {chosen}")
            ax.legend()
        ax.set(title="Quote answers: precision vs recall over the threshold", xlabel="recall (answerable top-1)",
               ylabel="precision")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(out / "quote_pr.png")
        plt.close(fig)
        made.append("quote_pr.png")
    return made


def _latency_plot(out: Path, plt, rows: list[dict]) -> list[str]:
    ours = [r for r in rows if r["pipeline"] == "ours" and "prompt_tokens" in r["metrics"]]
    if not ours:
        return []
    answered = all("total" in r["seconds"] for r in ours)
    seconds = [r["seconds"]["total"] if answered else r["seconds"]["retrieve"] + r["seconds"]["pack"] for r in ours]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    ax.scatter([r["metrics"]["prompt_tokens"] for r in ours], seconds, s=6, alpha=0.4)
    ax.set(title="Latency vs prompt tokens", xlabel="prompt tokens",
           ylabel="question to last answer token (s)" if answered else "retrieve + pack (s)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "latency.png")
    plt.close(fig)
    return ["latency.png"]


def merge(folders: list[Path], out: Path, name: str = "") -> dict:
    """One report from several `rag eval` runs over disjoint questions (say the two held-out halves of a
    calibration, each run with the models fitted on the other half)."""
    from eval.harness import Results

    runs = [json.loads((f / "run.json").read_text()) for f in folders]
    rows = [row for f in folders for row in Results(f).rows]
    if len({r["id"] for r in rows if r["pipeline"] == "ours"}) != sum(r["question_count"] for r in runs):
        raise SystemExit("these runs share questions: merge runs over disjoint question sets")
    run = {**runs[0], "name": name or runs[0].get("name", ""), "questions": " + ".join(r["questions"] for r in runs),
           "question_count": sum(r["question_count"] for r in runs),
           "answerable_count": sum(r["answerable_count"] for r in runs), "merged_from": [str(f) for f in folders]}
    out.mkdir(parents=True, exist_ok=True)
    (out / "run.json").write_text(json.dumps(run, indent=2) + "\n")
    with (out / "results.jsonl").open("w", encoding="utf-8") as f:  # a run folder like any other (eval.compare)
        for folder in folders:
            f.write((folder / "results.jsonl").read_text(encoding="utf-8"))
    return write(out, rows, run)


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Merge `rag eval` runs over disjoint questions into one report.")
    parser.add_argument("runs", type=Path, nargs="+", help="folders written by `rag eval`")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--name", default="", help="the report's title")
    args = parser.parse_args()
    merge(args.runs, args.out, args.name)
    print(f"report: {args.out / 'report.md'}")


if __name__ == "__main__":
    main()
