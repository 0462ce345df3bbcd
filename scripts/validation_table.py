"""The validation table of docs/RESULTS.md from `udasa validate` outputs (scripts/validation.sh runs it).

    python scripts/validation_table.py runs/val

Reads the reporting runs (``<dir>/<data>/validation.json``) and the fits (``<dir>/<data>-dev/validation.json``)
and replaces the "Validation: does u agree with human preferences?" table section of docs/RESULTS.md.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "RESULTS.md"
DATA = ("hh-harmless", "hh-helpful", "truthfulqa")
TITLE = "Validation table (generated)"


def cell(a: dict | None, bold: bool = False) -> str:
    if not a:
        return "–"
    text = f"{100 * a['agreement']:.1f}%"
    return (f"**{text}**" if bold else text) + f" [{100 * a['ci_low']:.1f}, {100 * a['ci_high']:.1f}]"


def main(root: str) -> None:
    runs = {d: json.loads((Path(root) / d / "validation.json").read_text()) for d in DATA
            if (Path(root) / d / "validation.json").exists()}
    fits = {d: json.loads((Path(root) / f"{d}-dev" / "validation.json").read_text()) for d in DATA
            if (Path(root) / f"{d}-dev" / "validation.json").exists()}
    rows = list(dict.fromkeys(k for r in runs.values() for k in r["agreement"]))
    cols = [d for d in DATA if d in runs]
    lines = [f"## {TITLE}", "",
             "Reporting slice (HH items 100-399, TruthfulQA validation questions 150-299); agreement with the "
             "human label [95% bootstrap CI]. `combined u` uses each spec's fitted settings; the best "
             "annotation-free baseline of each column is in bold.", "",
             "| scorer | " + " | ".join(f"{d} ({runs[d]['items']} items)" for d in cols) + " |",
             "|---|" + "---|" * len(cols)]
    baselines = ("shorter wins", "longer wins", "higher log-likelihood wins")
    for name in rows:
        cells = []
        for d in cols:
            a = runs[d]["agreement"].get(name)
            best = max(baselines, key=lambda b: runs[d]["agreement"][b]["agreement"])
            cells.append(cell(a, bold=name == best))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "Combined u minus each annotation-free baseline on the same items (paired bootstrap over items, "
              "percentage points [95% CI]; the goal asks for every difference above 0):", "",
              "| baseline | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for b in baselines:
        diffs = [runs[d].get("combined_u_minus", {}).get(b) for d in cols]
        lines.append(f"| {b} | " + " | ".join(
            f"{100 * x['difference']:+.1f} [{100 * x['ci_low']:+.1f}, {100 * x['ci_high']:+.1f}]" if x else "–"
            for x in diffs) + " |")
    lines += ["", "Length-matched comparisons only (the two answers within 20% of each other's length):", "",
              "| scorer | " + " | ".join(f"{d} ({runs[d]['length_matched']['items']} items)" for d in cols) + " |",
              "|---|" + "---|" * len(cols)]
    for name in ("combined u", "combined u, unfitted defaults", "value: embedding estimator",
                 "value: contrastive estimator", *baselines):
        lm = [runs[d]["length_matched"]["agreement"] for d in cols]
        if any(x and name in x for x in lm):
            lines.append(f"| {name} | " + " | ".join(cell(x.get(name) if x else None) for x in lm) + " |")
    if fits:
        lines += ["", "Settings fitted on the dev slices (`udasa validate --fit`, human labels of the dev items only):",
                  "", "| data | spec | weights (semantic, factual, value) | contrast weight | factual gate | dev "
                  "agreement: fitted / unfitted defaults |", "|---|---|---|---|---|---|"]
        for d, f in fits.items():
            fit = f["fit"]
            w = fit["weights"]
            lines.append(f"| {d} | {f['scoring']['spec']} | {w['semantic']}, {w['factual']}, {w['value']} | "
                         f"{fit['contrast_weight']} | {fit['factual_gate']} | {100 * fit['fit']['dev_agreement']:.1f}% "
                         f"/ {100 * fit['fit']['default_dev_agreement']:.1f}% ({fit['fit']['items']} items) |")
    section = "\n".join(lines) + "\n"
    text = DOC.read_text()
    pattern = re.compile(rf"^## {re.escape(TITLE)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(lambda m: section + "\n", text) if pattern.search(text) else text.rstrip() + "\n\n" + section
    DOC.write_text(text)
    print(section)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/val")
