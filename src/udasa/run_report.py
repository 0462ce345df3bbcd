"""The report of a `udasa run`: a one-screen summary on top of the evaluation tables.

Summary: what was trained, on what, where and how long each stage ran, the hyperparameter selection
on the dev task, each task's headline metrics for every model, paired differences of UDASA against
each other model, the pair diagnostics, training curves, the trajectory over curriculum stages, the
reward-vs-KL frontier (and each model against each beta sweep at equal KL), degeneration checks and a
few generations side by side. The per-metric tables with CIs come from `udasa report`. Nothing here
names a task: what is shown comes from the tasks' ``headline`` lists in metrics.json.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from udasa.adaptive import as_trained, read_adaptive_log
from udasa.diagnostics import pair_diagnostics, training_curves
from udasa.evaluation.metrics import frontier_gap
from udasa.evaluation.report import difference, load_run, plot_reward_kl, write_report
from udasa.io import atomic_write_json, atomic_write_text, iter_jsonl

SIDE_BY_SIDE = 3  # generations shown per task


def score_axes(scores: list[dict]) -> list[str]:
    """The axes (configured estimators) of the scores records, in their order."""
    return list(scores[0]["components"]) if scores else []


def axis_correlation(scores: list[dict], key: str = "components") -> np.ndarray:
    """Pearson correlation between the axes over all responses (k x k, k = number of axes)."""
    axes = score_axes(scores)
    cols = [[v for r in scores for v in r[key][a]] for a in axes]
    m = np.array(cols, dtype=float)
    if m.ndim < 2 or m.shape[1] < 2:
        return np.full((len(axes), len(axes)), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.atleast_2d(np.corrcoef(m))  # one axis: corrcoef gives a scalar


def stage_deltas(pairs: list[dict]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for p in pairs:
        out.setdefault(p["stage"], []).append(p["delta_u"])
    return out


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _pipeline_plots(outdir: Path, scores: list[dict], pairs: list[dict]) -> list[str]:
    plt = _plt()
    lines = []
    deltas = stage_deltas(pairs)
    if deltas:
        fig, ax = plt.subplots(figsize=(5, 3))
        hi = max(max(v) for v in deltas.values())
        lo = min(0.0, min(min(v) for v in deltas.values()))
        bins = np.linspace(lo, hi if hi > lo else lo + 1, 20)
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
        corr, axes = axis_correlation(scores), score_axes(scores)
        fig, ax = plt.subplots(figsize=(3.6, 3))
        im = ax.imshow(corr, vmin=-1, vmax=1, cmap="coolwarm")
        ax.set_xticks(range(len(axes)), axes, fontsize=8)
        ax.set_yticks(range(len(axes)), axes, fontsize=8)
        for i in range(len(axes)):
            for j in range(len(axes)):
                ax.text(j, i, "nan" if np.isnan(corr[i, j]) else f"{corr[i, j]:.2f}", ha="center", va="center",
                        fontsize=8)
        fig.colorbar(im, ax=ax)
        ax.set_title("correlation of raw axis scores", fontsize=9)
        fig.tight_layout()
        fig.savefig(outdir / "axis_correlation.png", dpi=110)
        plt.close(fig)
        lines.append("![axis correlation](axis_correlation.png)")
    return lines


def _fmt(m: dict | None, signed: bool = False) -> str:
    if not m or m.get("mean") is None:
        return "–"
    f = "{:+.3f}" if signed else "{:.3f}"
    if m.get("ci_low") is None:
        return f.format(m["mean"])
    return f"{f.format(m['mean'])} [{f.format(m['ci_low'])}, {f.format(m['ci_high'])}]"


def _metric(run: dict, task: str, metric: str) -> dict | None:
    return run["metrics"]["tasks"].get(task, {}).get("metrics", {}).get(metric)


def headline_pairs(runs: list[dict]) -> list[tuple[str, str]]:
    """(task, metric) rows of the headline table, in task order, from each task's own ``headline`` list."""
    rows = []
    for r in runs:
        for task, t in r["metrics"]["tasks"].items():
            for m in t.get("headline") or list(t.get("metrics", {})):
                if (task, m) not in rows:
                    rows.append((task, m))
    return rows


def _stage_table(finished: dict[str, dict]) -> list[str]:
    lines = ["| stage | seconds | device | dtype |", "|---|---|---|---|"]
    for name, m in finished.items():
        p = m.get("placement") or {}
        resumed = f" (resumed: {m['seconds_before_resuming']:.0f} of them before)" \
            if m.get("seconds_before_resuming") else ""
        lines.append(f"| {name} | {m['seconds']:.0f}{resumed} | {p.get('device', '–')} | {p.get('dtype', '–')} |")
    return lines


def _selection_section(root: Path) -> list[str]:
    path = root / "selection.json"
    if not path.exists():
        return []
    sel = json.loads(path.read_text())
    metrics = [sel["metric"]] + [m for m in sel["max"] if m != sel["metric"]]
    lines = ["## Hyperparameters chosen on the dev task", "",
             f"Each candidate trained UDASA on the same pairs and was evaluated on `{sel['task']}` only (never on a "
             f"test task); the chosen one has the {'highest' if sel['higher_is_better'] else 'lowest'} "
             f"`{sel['metric']}`" + (f" among those within {sel['max']}" if sel["max"] else "") +
             "; its settings apply to every baseline.", "",
             "| candidate | train overrides | " + " | ".join(f"dev {m}" for m in metrics) + " | chosen |",
             "|---|---|" + "---|" * len(metrics) + "---|"]
    for c in sel["candidates"]:
        mark = "✓" if c["candidate"] == sel["chosen"] else ("" if c["eligible"] else "over a ceiling")
        lines.append(f"| {c['candidate']} | `{json.dumps(c['train'])}` | " +
                     " | ".join(_fmt(c["dev"].get(m)) for m in metrics) + f" | {mark} |")
    return lines + [""]


def _differences(runs: list[dict], rows: list[tuple[str, str]]) -> list[str]:
    """UDASA minus every other model, paired over the items both evaluated."""
    main = next((r for r in runs if r["label"] == "udasa"), None)
    others = [r for r in runs if r is not main]
    if main is None or not others:
        return []
    lines = ["## UDASA against each model", "",
             "udasa minus the column's model: mean [95% paired bootstrap CI] over the items both evaluated; a CI "
             "that excludes 0 is a measured difference.", "",
             "| task | metric | " + " | ".join(f"udasa − {r['label']}" for r in others) + " |",
             "|---|---|" + "---|" * len(others)]
    for task, metric in rows:
        if _metric(main, task, metric) is None:
            continue
        cells = []
        for r in others:
            d, how = difference(r, main, task, metric)
            cells.append(_fmt(d, signed=True) + (" (unpaired)" if how == "unpaired" else ""))
        lines.append(f"| {task} | {metric} | " + " | ".join(cells) + " |")
    return lines + [""]


def _pair_section(trained: list, outdir: Path) -> tuple[list[str], dict]:
    diags, lines = {}, []
    for t in trained:
        if t.pairs is None or not Path(t.pairs).exists():
            continue
        if t.name.startswith("select-") or any(d.get("_pairs") == str(t.pairs) for d in diags.values()):
            continue
        # an adaptive run's stages as they were trained (re-split after each stage), not the static split
        pairs = as_trained([r for _, r in iter_jsonl(t.pairs)], Path(t.model_dir) / "pairs.trained.jsonl")
        if pairs:
            diags[t.name] = {**pair_diagnostics(pairs), "_pairs": str(t.pairs)}
    if not diags:
        return [], {}
    lines += ["## Pair diagnostics", "",
              "Independent checks of the training pairs (VADER and GCG refusal markers play no part in building "
              "them): share of pairs whose chosen response is more positive (plain-text continuations) or refuses "
              "while the rejected one complies (HH-harmless requests).", "",
              "| pairs of | stage | pairs | Δu mean | chosen more positive | chosen refuses, rejected complies | "
              "rejected refuses, chosen complies |", "|---|---|---|---|---|---|---|"]
    for name, d in diags.items():
        for stage, s in sorted(d["stages"].items(), key=lambda kv: kv[1]["stage_index"]):
            lines.append(f"| {name} | {stage} | {s['pairs']} | {_fmt(s['delta_u'])} | "
                         f"{s.get('chosen_more_positive', '–')} | {s.get('chosen_refuses_rejected_complies', '–')} | "
                         f"{s.get('rejected_refuses_chosen_complies', '–')} |")
        if "sentiment" in d:
            lines.append(f"| {name} | all | {d['sentiment']['pairs']} | | "
                         f"{_fmt(d['sentiment']['chosen_more_positive'])} (VADER difference "
                         f"{_fmt(d['sentiment']['compound_difference'], True)}) | | |")
        if "refusal" in d:
            lines.append(f"| {name} | all | {d['refusal']['pairs']} | | | "
                         f"{d['refusal']['chosen_refuses_rejected_complies']} | "
                         f"{d['refusal']['rejected_refuses_chosen_complies']} |")
    adaptive = {name: log for name, log in ((t.name, read_adaptive_log(t.model_dir)) for t in trained) if log}
    if adaptive:
        lines += ["", "Adaptive curriculum: after each stage the pairs not yet trained were re-scored with the updated "
                  "policy and re-split by their new Δu (the stages above are as trained). How much the order "
                  "changed:", "", "| model | after | pairs re-scored | Spearman ρ (old, new Δu) | pairs that changed "
                  "stage | Δu mean before → after |", "|---|---|---|---|---|---|"]
        for name, log in adaptive.items():
            for r in log:
                rho = "–" if r["rank_correlation"] is None else f"{r['rank_correlation']:.3f}"
                lines.append(f"| {name} | {r['after']} | {r['pairs']} | {rho} | {r['moved_stage']} | "
                             f"{r['delta_u_mean_before']:.3f} → {r['delta_u_mean_after']:.3f} |")
    return lines + [""], {k: {kk: vv for kk, vv in v.items() if kk != "_pairs"} for k, v in diags.items()}


def _training_section(trained: list, outdir: Path) -> tuple[list[str], dict]:
    curves = {}
    for t in trained:
        log = Path(t.model_dir) / "train_log.jsonl"
        if t.method == "dpo" and log.exists():
            curves[t.name] = training_curves([r for _, r in iter_jsonl(log, partial_tail_ok=True)])
    curves = {k: v for k, v in curves.items() if v}
    if not curves:
        return [], {}
    lines = ["## Training", "",
             "DPO loss, reward margin (β·log-ratio of chosen minus rejected, nats) and reward accuracy over the last "
             "quarter of each stage's logged steps.", "",
             "| model | stage | pairs trained | steps | loss | margin | accuracy |", "|---|---|---|---|---|---|---|"]
    for name, stages in curves.items():
        for stage, c in stages.items():
            lines.append(f"| {name} | {stage} | {_trained_of(c)} | {c['step'][-1] if c['step'] else 0} | "
                         f"{c['loss_end']} | {c['margin_end']} | {c['accuracy_end']} |")
    short = [f"{name} {_dropped(stages)}" for name, stages in curves.items() if _dropped(stages)]
    if short:
        lines += ["", f"Pairs not trained (their prompt alone fills `max_length` tokens, and TRL drops them): "
                      f"{', '.join(short)}. Raise `max_length` or, for multi-turn prompts, set `trim_long_prompts: "
                      "true` to train them; the pair diagnostics count every pair."]
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
    for i, (name, stages) in enumerate(curves.items()):
        offset = 0
        for j, (stage, c) in enumerate(stages.items()):
            x = [offset + s for s in c["step"]]
            for ax, key in zip(axes, ("loss", "margin", "accuracy")):
                ax.plot(x, c[key], color=f"C{i}", alpha=0.35 + 0.65 * (j + 1) / len(stages), lw=1,
                        label=name if j == 0 else None)
            offset = x[-1] if x else offset
    for ax, key in zip(axes, ("DPO loss", "reward margin", "reward accuracy")):
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("optimizer step (stages back to back)", fontsize=8)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(outdir / "training_curves.png", dpi=110)
    plt.close(fig)
    return lines + ["", "![training curves](training_curves.png)", ""], curves


def _dropped(stages: dict) -> int:
    return sum(c["pairs"] - c["pairs_trained"] for c in stages.values()
               if c["pairs"] is not None and c["pairs_trained"] is not None)


def _kept_note(stages: dict | None) -> str:
    """" (724 of them kept by TRL)" in the report's opening line when the main model trained fewer pairs."""
    if not stages or not _dropped(stages):
        return ""
    kept = sum(c["pairs_trained"] for c in stages.values() if c["pairs_trained"] is not None)
    return f" ({kept} of them kept by TRL: the others' prompts fill `max_length`)"


def _trained_of(c: dict) -> str:
    if c["pairs_trained"] is None:
        return "–"
    return str(c["pairs"]) if c["pairs_trained"] == c["pairs"] else f"{c['pairs_trained']} of {c['pairs']}"


def _trajectory_section(root: Path, runs: list[dict], rows: list[tuple[str, str]], outdir: Path) -> list[str]:
    folder = root / "eval-stages"
    if not folder.is_dir():
        return []
    points = [("base", next((r for r in runs if r["label"] == "base"), None))]
    points += [(p.name, load_run(str(p))) for p in sorted(folder.iterdir()) if (p / "metrics.json").exists()]
    points.append(("final", next((r for r in runs if r["label"] == "udasa"), None)))
    points = [(n, r) for n, r in points if r is not None]
    if len(points) < 2:
        return []
    lines = ["## Trajectory over the curriculum", "",
             "The main model evaluated after each stage (stage k's model has seen stages 1..k).", "",
             "| task | metric | " + " | ".join(n for n, _ in points) + " |", "|---|---|" + "---|" * len(points)]
    for task, metric in rows:
        if all(_metric(r, task, metric) is None for _, r in points):
            continue
        lines.append(f"| {task} | {metric} | " + " | ".join(_fmt(_metric(r, task, metric)) for _, r in points) + " |")
    plot_rows = [(t, m) for t, m in rows if all(_metric(r, t, m) is not None for _, r in points)][:3]
    if plot_rows:
        plt = _plt()
        fig, axes = plt.subplots(1, len(plot_rows), figsize=(3.6 * len(plot_rows), 3), squeeze=False)
        for ax, (task, metric) in zip(axes[0], plot_rows):
            ms = [_metric(r, task, metric) for _, r in points]
            x = range(len(points))
            ax.errorbar(x, [m["mean"] for m in ms], yerr=[[m["mean"] - m["ci_low"] for m in ms],
                                                         [m["ci_high"] - m["mean"] for m in ms]], fmt="o-", capsize=3)
            ax.set_xticks(list(x), [n.replace("stage-", "") for n, _ in points], rotation=30, ha="right", fontsize=7)
            ax.set_title(f"{task}: {metric}", fontsize=9)
        fig.tight_layout()
        fig.savefig(outdir / "trajectory.png", dpi=110)
        plt.close(fig)
        lines += ["", "![trajectory](trajectory.png)"]
    return lines + [""]


def _frontier_section(runs: list[dict], groups: dict[str, str], outdir: Path) -> list[str]:
    """Reward against KL for every task that has both; a line joins the runs of one group."""
    lines = []
    for task in dict.fromkeys(t for r in runs for t in r["metrics"]["tasks"]):
        png = plot_reward_kl(runs, outdir, task, groups, name=f"frontier-{task}.png")
        if png:
            lines += [f"![reward vs KL: {task}]({png})", ""] + _frontier_gaps(runs, groups, task)
    return (["## Reward against KL", ""] + lines) if lines else []


def _frontier_gaps(runs: list[dict], groups: dict[str, str], task: str) -> list[str]:
    """Each model's reward minus each beta sweep's frontier at the model's KL: the comparison at equal KL."""
    have = [r for r in runs if all(m in r["items"].get(task, {}) for m in ("reward", "kl"))]
    base = [r for r in have if r["label"] == "base"]
    sweeps: dict[str, list[dict]] = {}
    for r in have:
        if r["label"] != "base":
            sweeps.setdefault(groups.get(r["label"], r["label"]), []).append(r)
    # every sweep starts at the base model (KL 0, the limit of a large beta), so a model that moved little
    # is read against the chord from the base to the sweep's most conservative point
    sweeps = {g: rs + base for g, rs in sweeps.items() if len(rs) >= 2}
    rows = []
    for r in have:
        if r["label"] == "base":
            continue
        cells = [frontier_gap([(c["items"][task]["reward"], c["items"][task]["kl"]) for c in curve],
                              (r["items"][task]["reward"], r["items"][task]["kl"]))
                 if groups.get(r["label"], r["label"]) != g else None for g, curve in sweeps.items()]
        if any(cells):
            rows.append(f"| {r['label']} | " + " | ".join(_fmt(c, signed=True) for c in cells) + " |")
    if not rows:
        return []
    return [f"Reward at equal KL ({task}): the row's model minus the column's beta sweep, whose models' mean (KL, "
            "reward), starting from the base at KL 0, are joined by straight lines and read at the row model's KL; "
            "mean [95% paired bootstrap CI] over the items all of them evaluated; – where the KL lies outside the "
            "sweep's range.", "",
            "| model | " + " | ".join(f"− {g} frontier" for g in sweeps) + " |", "|---|" + "---|" * len(sweeps),
            *rows, ""]


def _rounds_section(runs: list[dict], trained: list, rows: list[tuple[str, str]], outdir: Path) -> list[str]:
    """Iterative rounds: each round's headline metrics, its Δu distribution, and the reward-vs-KL path."""
    rounds = [t for t in trained if t.name == "udasa" or t.name.startswith("udasa-round-")]
    if len(rounds) < 2:
        return []
    by_label = {r["label"]: r for r in runs}
    path = [by_label[n] for n in ["base"] + [t.name for t in rounds] if n in by_label]
    lines = ["## Rounds", "", "Round 1 is `udasa`; round r samples from the model round r-1 produced.", "",
             "| task | metric | " + " | ".join(r["label"] for r in path) + " |", "|---|---|" + "---|" * len(path)]
    for task, metric in rows:
        if any(_metric(r, task, metric) for r in path):
            lines.append(f"| {task} | {metric} | " + " | ".join(_fmt(_metric(r, task, metric)) for r in path) + " |")
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for i, t in enumerate(rounds):
        if t.pairs is not None and Path(t.pairs).exists():
            d = [p["delta_u"] for _, p in iter_jsonl(t.pairs)]
            axes[0].hist(d, bins=20, alpha=0.5, color=f"C{i}", label=f"{t.name} ({len(d)} pairs)")
    axes[0].set_xlabel("Δu")
    axes[0].legend(fontsize=7)
    for task in dict.fromkeys(t for r in path for t in r["metrics"]["tasks"]):
        pts = [(_metric(r, task, "kl"), _metric(r, task, "reward"), r["label"]) for r in path]
        pts = [p for p in pts if p[0] and p[1] and p[0].get("mean") is not None and p[1].get("mean") is not None]
        if len(pts) > 1:
            axes[1].plot([p[0]["mean"] for p in pts], [p[1]["mean"] for p in pts], "o-", label=task)
            for kl, rw, lab in pts:
                axes[1].annotate(lab.replace("udasa-", ""), (kl["mean"], rw["mean"]), fontsize=7)
    axes[1].set_xlabel("KL to the reference (nats)")
    axes[1].set_ylabel("reward")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(outdir / "rounds.png", dpi=110)
    plt.close(fig)
    return lines + ["", "![rounds](rounds.png)", ""]


def _side_by_side(runs: list[dict], trained: list) -> list[str]:
    """A few generations of the base, UDASA and the random-pair baseline (if any) on the same items."""
    def random_pairs(t) -> bool:
        if t.pairs is None or not Path(t.pairs).exists():
            return False
        first = next((r for _, r in iter_jsonl(t.pairs)), {})
        return first.get("selection") == "random"

    wanted = ["base", "udasa"] + [t.name for t in trained if random_pairs(t)][:1]
    chosen = [r for name in wanted for r in runs if r["label"] == name]
    if len(chosen) < 2:
        return []
    lines = ["## Generations side by side", ""]
    for task, t in chosen[0]["metrics"]["tasks"].items():
        if t.get("decoding", {}).get("kind") == "teacher-forced":
            continue
        gens = []
        for r in chosen:
            path = Path(r["folder"]) / t.get("generations", f"generations-{task}.jsonl")
            gens.append({g["id"]: g for _, g in iter_jsonl(path, partial_tail_ok=True)} if path.exists() else {})
        ids = [i for i in gens[0] if all(i in g for g in gens)][:SIDE_BY_SIDE]
        for i in ids:
            lines += [f"**{task}, `{i}`**: {_quote(gens[0][i]['prompt'])}", ""]
            for r, g in zip(chosen, gens):
                head = g[i].get("scores", {}).get(t.get("headline", [None])[0]) if t.get("headline") else None
                lines.append(f"- *{r['label']}*" + (f" ({t['headline'][0]} {head})" if head is not None else "") +
                             f": {_quote(g[i]['response'])}")
            lines.append("")
    return lines


def _quote(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    text = text if len(text) <= limit else text[:limit] + " …"
    return text.replace("|", "\\|")


def write_run_report(recipe, root: Path, evals: list[tuple[str, Path]], trained: list, finished: dict[str, dict],
                     wall: float | None) -> Path:
    outdir = root / "report"
    outdir.mkdir(parents=True, exist_ok=True)
    labels = [name for name, _ in evals]
    tables = write_report([str(p) for _, p in evals], str(outdir), labels=labels)
    runs = [load_run(str(p)) for _, p in evals]
    for r, lab in zip(runs, labels):
        r["label"] = lab
    scores = [r for _, r in iter_jsonl(root / "scores.jsonl")]
    pairs = [r for _, r in iter_jsonl(root / "pairs.jsonl")] if (root / "pairs.jsonl").exists() else []
    n_prompts = sum(1 for _ in iter_jsonl(root / "prompts.jsonl"))
    summary_path = root / "pairs.summary.json"
    pair_summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    train_lines, curves = _training_section(trained, outdir)
    cfg = recipe.stage_config("sample")
    seconds = [m["seconds"] for m in finished.values()]
    lines = [f"# udasa run: {recipe.name}", "",
             f"Policy `{recipe.model}` aligned on {n_prompts} unlabelled prompts "
             f"({', '.join(p.data or p.path for p in recipe.prompts)}), {cfg.n} samples each "
             f"(temperature {cfg.temperature}, ≤ {cfg.max_new_tokens} new tokens), value spec "
             f"`{recipe.stage_config('score').spec}`; {len(pairs)} pairs{_kept_note(curves.get('udasa'))} trained "
             f"conservative → moderate → exploratory with DPO. Recipe `{recipe.source}`; resolved config in "
             f"`recipe.resolved.json`.", "",
             f"Compute time of all stages: {sum(seconds) / 60:.1f} min"
             + (" (report rewritten with `--report-only`)" if wall is None else
                f" (this invocation: {wall / 60:.1f} min, less when it reused finished stages)")
             + ". Stage times and where each stage's models ran:", ""]
    lines += _stage_table(finished)
    if pair_summary:
        lines += ["", "Pairs per stage: " + ", ".join(
            f"{s.get('stage')} {s.get('count', s.get('n'))}" for s in pair_summary.get("stages", [])) +
            f"; dropped: {pair_summary.get('dropped', {})}."]
    done = {t.name for t in trained}
    pending = [v.name for v in recipe.baselines if v.name not in done]
    if pending:  # a report written mid-run, or with --report-only: say what the tables leave out
        lines += ["", f"Baselines of the recipe not finished yet, so absent below: {', '.join(pending)} "
                      f"(rerun `udasa run {recipe.source}` to continue)."]
    lines += [""] + _selection_section(root)
    rows = headline_pairs(runs)
    lines += ["## Headline metrics", "", "mean [95% bootstrap CI]; the first column is the reference.", "",
              "| task | metric | " + " | ".join(labels) + " |", "|---|---|" + "---|" * len(labels)]
    for task, metric in rows:
        lines.append(f"| {task} | {metric} | " + " | ".join(_fmt(_metric(r, task, metric)) for r in runs) + " |")
    lines += [""] + _differences(runs, rows)
    groups = {t.name: t.group for t in trained}
    groups.setdefault("base", "base")
    lines += _frontier_section(runs, groups, outdir)
    lines += _trajectory_section(root, runs, rows, outdir)
    lines += _rounds_section(runs, trained, rows, outdir)
    pair_lines, diags = _pair_section(trained, outdir)
    lines += pair_lines + train_lines
    lines += ["## Pipeline", ""] + _pipeline_plots(outdir, scores, pairs) + [""]
    lines += _side_by_side(runs, trained)
    atomic_write_json(root / "diagnostics.json", {"pairs": diags, "training": {
        k: {s: {kk: vv for kk, vv in c.items() if kk.endswith("_end") or kk in ("stage_index", "pairs", "pairs_trained")}
            for s, c in v.items()}
        for k, v in curves.items()}})
    body = tables.read_text(encoding="utf-8")
    body = body.replace("# udasa evaluation report", "## Evaluation tables", 1)
    atomic_write_text(tables, "\n".join(lines) + "\n" + body)
    return tables
