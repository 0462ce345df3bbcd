"""``udasa report``: compare eval runs in one markdown file with tables and PNG plots.

Each run is an eval folder (``metrics.json``) or a pipeline run folder (``eval/metrics.json``).
Tables give mean and 95% bootstrap CI per metric; for every later run, the difference to the
first run with a paired bootstrap CI over the items both runs evaluated (read from the
generations files), or an unpaired difference of means when no items align.
"""
from __future__ import annotations

import json
from pathlib import Path

from udasa.errors import InputError
from udasa.evaluation.metrics import paired_difference
from udasa.io import atomic_write_text, read_jsonl


def resolve_run(path: str) -> Path:
    """The folder holding metrics.json for an eval folder or a pipeline run folder."""
    p = Path(path)
    for cand in (p, p / "eval"):
        if (cand / "metrics.json").exists():
            return cand
    raise InputError("has neither metrics.json nor eval/metrics.json", path=str(p))


def load_run(path: str) -> dict:
    folder = resolve_run(path)
    metrics = _check_metrics(folder / "metrics.json")
    label = folder.parent.name if folder.name == "eval" else folder.name
    items: dict[str, dict[str, dict[str, float]]] = {}  # task -> metric -> id -> value
    for task, t in metrics["tasks"].items():
        gen = folder / t.get("generations", f"generations-{task}.jsonl")
        if not gen.exists():
            continue
        per: dict[str, dict[str, float]] = {}
        for line, r in read_jsonl(gen, partial_tail_ok=True):
            scores = r.get("scores")
            if not isinstance(r.get("id"), (str, int)) or not isinstance(scores, dict):
                raise InputError("a generations record needs an 'id' and a 'scores' mapping", path=str(gen), line=line)
            for m, v in scores.items():
                if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or v != v):
                    raise InputError(f"must be a number or null (got {v!r})"[:200], path=str(gen), line=line,
                                     field=f"scores.{m}")
                per.setdefault(m, {})[str(r["id"])] = v
        items[task] = per
    return {"label": label, "folder": str(folder), "metrics": metrics, "items": items}


def _check_metrics(path: Path) -> dict:
    """metrics.json read and checked: every figure the report prints must be a number (or null)."""
    from udasa.io import read_text_file

    try:
        metrics = json.loads(read_text_file(path))
    except json.JSONDecodeError as e:
        raise InputError(f"invalid JSON ({e.msg})", path=str(path)) from None
    except RecursionError:
        raise InputError("JSON nested too deeply", path=str(path)) from None
    if not isinstance(metrics, dict) or not isinstance(metrics.get("tasks"), dict):
        raise InputError("missing or not a mapping", path=str(path), field="tasks")
    for task, t in metrics["tasks"].items():
        if not isinstance(t, dict) or not isinstance(t.get("metrics"), dict):
            raise InputError("must be a mapping with 'metrics'", path=str(path), field=f"tasks.{task}")
        if not isinstance(t.get("generations", ""), str) or "/" in t.get("generations", "") or \
                ".." in t.get("generations", ""):
            raise InputError("must be a file name in the same folder", path=str(path), field=f"tasks.{task}.generations")
        for name, m in t["metrics"].items():
            where = f"tasks.{task}.metrics.{name}"
            if not isinstance(m, dict):
                raise InputError("must be a mapping of mean, ci_low, ci_high, n", path=str(path), field=where)
            for k in ("mean", "ci_low", "ci_high"):
                v = m.get(k)
                if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or v != v or
                                      abs(v) == float("inf")):
                    raise InputError(f"must be a finite number or null (got {v!r})"[:200], path=str(path),
                                     field=f"{where}.{k}")
    for k in ("evaluators", "timings"):
        if not isinstance(metrics.get(k, {}), dict):
            raise InputError("must be a mapping", path=str(path), field=k)
    return metrics


def _fmt(s: dict | None) -> str:
    if not s or s.get("mean") is None:
        return "–"
    return f"{s['mean']:.3f} [{s['ci_low']:.3f}, {s['ci_high']:.3f}]"


def difference(first: dict, other: dict, task: str, metric: str) -> tuple[dict | None, str]:
    """(summary of other - first, how it was computed)."""
    a = other["items"].get(task, {}).get(metric, {})
    b = first["items"].get(task, {}).get(metric, {})
    d = paired_difference(a, b)
    if d is not None:
        return d, "paired"
    ma = other["metrics"]["tasks"].get(task, {}).get("metrics", {}).get(metric)
    mb = first["metrics"]["tasks"].get(task, {}).get("metrics", {}).get(metric)
    if ma and mb and ma.get("mean") is not None and mb.get("mean") is not None:
        return {"mean": ma["mean"] - mb["mean"], "ci_low": None, "ci_high": None, "n": None}, "unpaired"
    return None, "n/a"


def write_report(runs: list[str], out: str, labels: list[str] | None = None) -> Path:
    """Write ``out/report.md`` and its PNGs; ``labels`` name the runs (default: their folder names)."""
    if not runs:
        raise InputError("name at least one run folder", field="runs")
    if labels is not None and len(labels) != len(runs):
        raise InputError(f"{len(labels)} labels for {len(runs)} runs", field="labels")
    loaded = [load_run(r) for r in runs]
    for r, lab in zip(loaded, labels or []):
        r["label"] = lab
    outdir = Path(out)
    outdir.mkdir(parents=True, exist_ok=True)
    first = loaded[0]
    lines = ["# udasa evaluation report", "", "Runs (the first is the reference for differences):", ""]
    for r in loaded:
        m = r["metrics"]
        lines.append(f"- **{r['label']}**: `{r['folder']}` model `{m.get('model')}` "
                     f"(fingerprint `{m.get('model_fingerprint')}`)")
    lines += ["", "Cells: mean [95% bootstrap CI]. Δ: run minus the first run, with a paired bootstrap CI over the "
              "items both evaluated (unpaired difference of means, no CI, when items do not align).", ""]
    tasks = list(dict.fromkeys(t for r in loaded for t in r["metrics"]["tasks"]))
    for task in tasks:
        metric_names = list(dict.fromkeys(m for r in loaded for m in r["metrics"]["tasks"].get(task, {})
                                          .get("metrics", {})))
        lines += [f"## {task}", ""]
        head = ["metric"] + [r["label"] for r in loaded] + [f"Δ {r['label']}" for r in loaded[1:]]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for m in metric_names:
            hib = next((r["metrics"]["tasks"][task]["metrics"][m].get("higher_is_better") for r in loaded
                        if m in r["metrics"]["tasks"].get(task, {}).get("metrics", {})), None)
            arrow = {True: " ↑", False: " ↓"}.get(hib, "")
            row = [m + arrow] + [_fmt(r["metrics"]["tasks"].get(task, {}).get("metrics", {}).get(m)) for r in loaded]
            for r in loaded[1:]:
                d, how = difference(first, r, task, m)
                if d is None:
                    row.append("–")
                elif how == "paired":
                    row.append(f"{d['mean']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}]")
                else:
                    row.append(f"{d['mean']:+.3f} (unpaired)")
            lines.append("| " + " | ".join(row) + " |")
        ns = ", ".join(f"{r['label']} n={r['metrics']['tasks'][task]['n']}" for r in loaded
                       if task in r["metrics"]["tasks"])
        lines += ["", f"Items: {ns}.", ""]
        png = _plot_task(loaded, task, metric_names, outdir)
        if png:
            lines += [f"![{task}]({png})", ""]
    for task in tasks:  # every task that measures both a reward and the KL to the reference
        if any({"reward", "kl"} <= set(r["metrics"]["tasks"].get(task, {}).get("metrics", {})) for r in loaded):
            png = plot_reward_kl(loaded, outdir, task)
            lines += [f"## {task}: reward vs KL", "", f"![reward vs KL]({png})", ""]
    lines += _evaluator_section(loaded)
    path = outdir / "report.md"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def _evaluator_section(loaded: list[dict]) -> list[str]:
    lines = ["## Evaluator reward models", "",
             "Bradley-Terry heads on frozen all-MiniLM-L6-v2 embeddings, trained on human HH-RLHF labels; "
             "held-out pairwise accuracy (chance = 0.5). They only evaluate; training never sees them.", "",
             "| run | evaluator | held-out accuracy [95% CI] | n test pairs | cross-set accuracy | fingerprint |",
             "|---|---|---|---|---|---|"]
    for r in loaded:
        for name, e in (r["metrics"].get("evaluators") or {}).items():
            cross = ", ".join(f"{k} {_fmt(v)}" for k, v in (e.get("cross_accuracy") or {}).items())
            lines.append(f"| {r['label']} | {name} | {_fmt(e.get('heldout_accuracy'))} | {e.get('n_test_pairs')} | "
                         f"{cross} | `{e.get('data_fingerprint')}-{e.get('embedder_fingerprint')}` |")
    return lines + [""]


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _plot_task(loaded: list[dict], task: str, metric_names: list[str], outdir: Path) -> str | None:
    if not metric_names:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, len(metric_names), figsize=(3.2 * len(metric_names), 3.2), squeeze=False)
    for ax, m in zip(axes[0], metric_names):
        for i, r in enumerate(loaded):
            s = r["metrics"]["tasks"].get(task, {}).get("metrics", {}).get(m)
            if not s or s.get("mean") is None:
                continue
            err = [[s["mean"] - s["ci_low"]], [s["ci_high"] - s["mean"]]]
            ax.bar(i, s["mean"], yerr=err, capsize=4, color=f"C{i}", label=r["label"])
        ax.set_xticks(range(len(loaded)), [r["label"] for r in loaded], rotation=30, ha="right", fontsize=8)
        ax.set_title(m, fontsize=9)
    fig.suptitle(f"{task} (95% bootstrap CI)", fontsize=10)
    fig.tight_layout()
    name = f"{task}.png"
    fig.savefig(outdir / name, dpi=110)
    plt.close(fig)
    return name


def plot_reward_kl(loaded: list[dict], outdir: Path, task: str, groups: dict[str, str] | None = None,
                   name: str | None = None) -> str | None:
    """Mean reward against mean KL (95% CIs both ways) per run; runs of one group (e.g. a beta sweep of one
    method) are joined by a line, in order of KL: the reward-vs-KL frontier of the DPO paper."""
    groups = groups or {}
    fam: dict[str, list] = {}
    for r in loaded:
        ms = r["metrics"]["tasks"].get(task, {}).get("metrics", {})
        rw, kl = ms.get("reward"), ms.get("kl")
        if rw and kl and rw.get("mean") is not None and kl.get("mean") is not None:
            fam.setdefault(groups.get(r["label"], r["label"]), []).append((kl, rw))
    if not fam:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.8))
    for i, (g, pts) in enumerate(fam.items()):
        pts.sort(key=lambda p: p[0]["mean"])
        err = lambda k: [[p[k]["mean"] - p[k]["ci_low"] for p in pts], [p[k]["ci_high"] - p[k]["mean"] for p in pts]]  # noqa: E731
        ax.errorbar([p[0]["mean"] for p in pts], [p[1]["mean"] for p in pts], xerr=err(0), yerr=err(1),
                    fmt="o-" if len(pts) > 1 else "o", color=f"C{i % 10}", capsize=2, lw=1, ms=4, label=g)
    ax.set_xlabel("sequence KL to the reference (nats)")
    ax.set_ylabel("reward")
    ax.set_title(task, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    name = name or f"reward_vs_kl-{task}.png"
    fig.savefig(outdir / name, dpi=110)
    plt.close(fig)
    return name
