"""The report of a `udasa run`: a one-screen summary on top of the evaluation tables.

Summary: what was trained, on what, how long each stage took, the headline metric of each task
for the base model, UDASA and every baseline, and the pipeline's own plots (Δu by stage, how the
three uncertainty axes correlate). The per-metric tables with CIs come from `udasa report`.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from udasa.evaluation.report import load_run, write_report
from udasa.io import atomic_write_text, iter_jsonl

HEADLINE = [("harmless", "refusal_rate"), ("harmless", "harmless_rm"), ("helpful", "helpful_rm"),
            ("helpful", "win_rate"), ("truthful", "mc1"), ("truthful", "mc2"), ("sentiment", "reward"),
            ("sentiment", "kl")]
AXES = ("semantic", "factual", "value")


def axis_correlation(scores: list[dict], key: str = "components") -> np.ndarray:
    """Pearson correlation between the three axes over all responses (3 x 3)."""
    cols = [[v for r in scores for v in r[key][a]] for a in AXES]
    m = np.array(cols, dtype=float)
    if m.shape[1] < 2:
        return np.full((3, 3), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.corrcoef(m)


def stage_deltas(pairs: list[dict]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for p in pairs:
        out.setdefault(p["stage"], []).append(p["delta_u"])
    return out


def _plots(root: Path, outdir: Path, scores: list[dict], pairs: list[dict]) -> list[str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines = []
    deltas = stage_deltas(pairs)
    if deltas:
        fig, ax = plt.subplots(figsize=(5, 3))
        bins = np.linspace(0, max(max(v) for v in deltas.values()) or 1, 20)
        for stage in ("conservative", "moderate", "exploratory", "all"):
            if stage in deltas:
                ax.hist(deltas[stage], bins=bins, alpha=0.6, label=f"{stage} ({len(deltas[stage])})")
        ax.set_xlabel("Δu = u(rejected) - u(chosen)")
        ax.set_ylabel("pairs")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(outdir / "delta_u_by_stage.png", dpi=110)
        plt.close(fig)
        lines.append("![Δu by stage](delta_u_by_stage.png)")
    if scores:
        corr = axis_correlation(scores)
        fig, ax = plt.subplots(figsize=(3.6, 3))
        im = ax.imshow(corr, vmin=-1, vmax=1, cmap="coolwarm")
        ax.set_xticks(range(3), AXES, fontsize=8)
        ax.set_yticks(range(3), AXES, fontsize=8)
        for i in range(3):
            for j in range(3):
                ax.text(j, i, "nan" if np.isnan(corr[i, j]) else f"{corr[i, j]:.2f}", ha="center", va="center",
                        fontsize=8)
        fig.colorbar(im, ax=ax)
        ax.set_title("correlation of raw axis scores", fontsize=9)
        fig.tight_layout()
        fig.savefig(outdir / "axis_correlation.png", dpi=110)
        plt.close(fig)
        lines.append("![axis correlation](axis_correlation.png)")
    return lines


def _cell(run: dict, task: str, metric: str) -> str:
    m = run["metrics"]["tasks"].get(task, {}).get("metrics", {}).get(metric)
    if not m or m.get("mean") is None:
        return "–"
    if m.get("ci_low") is None:
        return f"{m['mean']:.3f}"
    return f"{m['mean']:.3f} [{m['ci_low']:.3f}, {m['ci_high']:.3f}]"


def write_run_report(recipe, root: Path, evals: list[tuple[str, Path]], seconds: dict[str, float],
                     wall: float) -> Path:
    outdir = root / "report"
    outdir.mkdir(parents=True, exist_ok=True)
    labels = [name for name, _ in evals]
    tables = write_report([str(p) for _, p in evals], str(outdir), labels=labels)
    runs = [load_run(str(p)) for _, p in evals]
    scores = [r for _, r in iter_jsonl(root / "scores.jsonl")]
    pairs = [r for _, r in iter_jsonl(root / "pairs.jsonl")] if (root / "pairs.jsonl").exists() else []
    n_prompts = sum(1 for _ in iter_jsonl(root / "prompts.jsonl"))
    summary_path = root / "pairs.summary.json"
    pair_summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    cfg = recipe.stage_config("sample")
    lines = [f"# udasa run: {recipe.name}", "",
             f"Policy `{recipe.model}` aligned on {n_prompts} unlabelled prompts "
             f"({', '.join(p.data or p.path for p in recipe.prompts)}), {cfg.n} samples each "
             f"(temperature {cfg.temperature}, ≤ {cfg.max_new_tokens} new tokens), value spec "
             f"`{recipe.stage_config('score').spec}`; {len(pairs)} pairs trained conservative → moderate → "
             f"exploratory with DPO. Recipe `{recipe.source}`; resolved config in `recipe.resolved.json`.", "",
             f"Compute time of all stages: {sum(seconds.values()) / 60:.1f} min (this invocation: {wall / 60:.1f} min, "
             "less when it reused finished stages). Stage times:", "",
             "| stage | seconds |", "|---|---|"]
    lines += [f"| {k} | {v:.0f} |" for k, v in seconds.items()]
    if pair_summary:
        lines += ["", "Pairs per stage: " + ", ".join(
            f"{s.get('stage')} {s.get('count', s.get('n'))}" for s in pair_summary.get("stages", [])) +
            f"; dropped: {pair_summary.get('dropped', {})}."]
    lines += ["", "## Headline metrics", "", "mean [95% bootstrap CI]; the first column is the reference.", "",
              "| task | metric | " + " | ".join(labels) + " |", "|---|---|" + "---|" * len(labels)]
    for task, metric in HEADLINE:
        if any(task in r["metrics"]["tasks"] for r in runs):
            lines.append(f"| {task} | {metric} | " + " | ".join(_cell(r, task, metric) for r in runs) + " |")
    lines += ["", "## Pipeline", ""] + _plots(root, outdir, scores, pairs) + [""]
    body = tables.read_text(encoding="utf-8")
    body = body.replace("# udasa evaluation report", "## Evaluation tables", 1)
    atomic_write_text(tables, "\n".join(lines) + "\n" + body)
    return tables
