"""Two or more `rag eval` runs over the same questions, side by side in one report.

    python -m eval.compare eval/reports/run-quotes eval/reports/run-generated --out eval/reports/side-by-side

Each run is a folder `rag eval` wrote (run.json, results.jsonl). Only the questions every run answered are
compared, each run's first budget with the golden ordering, so every column is measured on the same questions;
the report says how many. Answers are shown side by side for a few questions, so a reader can see what the
numbers mean.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

from eval.report import _cell, aggregate

METRICS = (("quote_top1", "top quote matches a gold clause"), ("quote_top3", "one of the top 3 quotes matches"),
           ("abstention_accuracy", "abstains when the documents don't say"),
           ("not_answered", "abstains, or shows only a weak match, when the documents don't say"),
           ("evidence_recall", "gold evidence in the sources read"),
           ("false_abstention", "abstains on an answerable question"), ("f1", "answer token F1 with the gold answers"),
           ("contains", "answer contains a gold answer"), ("quote_verified", "quotes found verbatim on their page"),
           ("citation_verified", "a generated answer's citations whose quoted words are in the cited source"))
EXAMPLES = 6


def load(folder: Path) -> tuple[dict, dict[str, dict]]:
    """A run's run.json and its answered rows (ours, golden order, first budget) by question id."""
    run = json.loads((folder / "run.json").read_text())
    rows = [json.loads(line) for line in (folder / "results.jsonl").read_text(encoding="utf-8").splitlines()
            if line.strip()]
    rows = [r for r in rows if r["pipeline"] == "ours" and r["ordering"] == "golden" and "error" not in r]
    budget = min((r["budget"] for r in rows), default=0)
    return run, {r["id"]: r for r in rows if r["budget"] == budget}


def name(run: dict) -> str:
    return "quote answers" if run.get("answer") == "quote" else f"generated: {run.get('backend')}"


def compare(folders: list[Path], names: list[str] | None = None) -> dict:
    runs = [load(f) for f in folders]
    common = sorted(set.intersection(*(set(rows) for _, rows in runs)))
    if not common:
        raise SystemExit("these runs share no answered question: run them on the same questions (--sample/--seed)")
    columns = []
    for n, (folder, (run, rows)) in enumerate(zip(folders, runs)):
        kept = [rows[i] for i in common]
        by_category = defaultdict(list)
        for r in kept:
            by_category[r.get("category") or "-"].append(r)
        columns.append({"folder": str(folder), "name": names[n] if names else name(run),
                        "machine": run.get("machine", ""), "date": run.get("date", ""), "metrics": aggregate(kept),
                        "by_category": {c: aggregate(rs, intervals=False) for c, rs in sorted(by_category.items())},
                        "rows": {r["id"]: r for r in kept}})
    return {"questions": runs[0][0].get("questions"), "common": common, "columns": columns}


def render(c: dict) -> str:
    cols = c["columns"]
    first = cols[0]["rows"]
    answerable = sum(first[i]["answerable"] for i in c["common"])
    lines = ["# Side by side", "",
             f"Questions: `{c['questions']}`, the {len(c['common'])} every run answered ({answerable} answerable). "
             "Brackets are 95% bootstrap intervals over questions. Made by `python -m eval.compare`.", ""]
    lines += [f"- **{col['name']}**: `{col['folder']}`, {col['date']}, {col['machine']}" for col in cols]
    lines += ["", "| metric | " + " | ".join(col["name"] for col in cols) + " |",
              "|---|" + "---|" * len(cols)]
    for metric, meaning in METRICS:
        if any(metric in col["metrics"] for col in cols):
            lines.append(f"| {metric} ({meaning}) | " + " | ".join(_cell(col["metrics"].get(metric)) for col in cols)
                         + " |")
    for label, key in (("seconds p50 (question to answer)", "p50"), ("seconds p95", "p95")):
        lines.append(f"| {label} | " + " | ".join(
            f"{col['metrics']['seconds_total'][key]:.2f}" if "seconds_total" in col["metrics"] else "–"
            for col in cols) + " |")
    lines += ["", "## By category (top-1 quote match / abstention accuracy)", "",
              "| category | " + " | ".join(col["name"] for col in cols) + " |", "|---|" + "---|" * len(cols)]
    for category in cols[0]["by_category"]:
        cells = []
        for col in cols:
            mt = col["by_category"].get(category, {})
            cells.append(" / ".join(f"{mt[k]['mean']:.2f}" if k in mt else "–"
                                    for k in ("quote_top1", "abstention_accuracy")))
        lines.append(f"| {category} | " + " | ".join(cells) + " |")
    lines += ["", "## Some answers", ""]
    shown = [i for i in c["common"] if first[i]["answerable"]][:EXAMPLES // 2] + \
            [i for i in c["common"] if not first[i]["answerable"]][:EXAMPLES // 2]
    for i in shown:
        lines += [f"**{first[i]['question']}** ({first[i]['documents'][0] if first[i]['documents'] else 'all'}; "
                  f"{'answerable' if first[i]['answerable'] else 'the contract does not say'})", ""]
        for col in cols:
            text = " ".join(str(col["rows"][i].get("answer", "")).split())
            lines.append(f"- {col['name']}: {_quoted(text[:400] + (' ...' if len(text) > 400 else ''))}")
        lines.append("")
    return "\n".join(lines) + "\n"


def _quoted(text: str) -> str:
    """Document and model text shown as code, so nothing in it is read as Markdown."""
    return "`" + text.replace("`", "'") + "`" if text else "(nothing)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", type=Path, nargs="+", help="folders written by `rag eval`")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--names", help="comma-separated, one a run: what each column is (default: its answer mode)")
    args = parser.parse_args()
    names = args.names.split(",") if args.names else None
    if names and len(names) != len(args.runs):
        parser.error(f"--names gives {len(names)} names for {len(args.runs)} runs")
    c = compare(args.runs, names)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "comparison.json").write_text(json.dumps(
        {"questions": c["questions"], "common": len(c["common"]),
         "columns": [{k: v for k, v in col.items() if k != "rows"} for col in c["columns"]]}, indent=1) + "\n")
    (args.out / "report.md").write_text(render(c))
    print(render(c))


if __name__ == "__main__":
    main()
