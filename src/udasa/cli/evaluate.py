"""``udasa eval`` and ``udasa report``."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from udasa.cli import app
from udasa.models import DEFAULT_POLICY


@app.command("eval")
def eval_cmd(
    model: str = typer.Option(DEFAULT_POLICY, help="Embedded model name or a local Hugging Face model folder."),
    out: Path = typer.Option(..., help="Output folder: metrics.json and generations-<task>.jsonl; rerun to resume."),
    tasks: str = typer.Option("harmless,helpful,truthful,sentiment", help="Comma-separated task names or YAML paths."),
    limit: Optional[int] = typer.Option(None, help="Only the first N items of each task (quick check)."),
    full: bool = typer.Option(False, "--full", help="Every item of each data set instead of the default subsets."),
    sample: bool = typer.Option(False, "--sample", help="Seeded temperature-1 sampling instead of greedy decoding."),
    seed: int = typer.Option(0, help="Sampling seed."),
    batch_size: int = typer.Option(16, help="Prompts per generation batch."),
    reference_model: str = typer.Option(DEFAULT_POLICY, help="Base model for the sentiment KL and helpful baseline."),
    baseline: Optional[Path] = typer.Option(None, help="Eval folder whose helpful generations are the win-rate "
                                                       "baseline (default: generate with --reference-model)."),
    device: str = typer.Option("auto", help="auto (first CUDA device, else CPU), cpu, cuda or cuda:N."),
    dtype: str = typer.Option("auto", help="auto (bfloat16 on a capable GPU, else float32), float32, bfloat16, float16."),
    threads: Optional[int] = typer.Option(None, help="torch CPU threads (default: torch's choice; use 1 on a "
                                                     "busy machine)."),
    rm_max_pairs: Optional[int] = typer.Option(None, help="Quick tests only: train the evaluator reward models on "
                                                          "at most N pairs (weaker evaluators, own cache entry)."),
) -> None:
    """Evaluate a model on harmlessness, helpfulness, truthfulness and controlled sentiment."""
    from udasa.evaluation.runner import EvalConfig, evaluate

    if threads:
        import torch
        torch.set_num_threads(threads)
    cfg = EvalConfig(model=model, out=str(out), tasks=tuple(t.strip() for t in tasks.split(",") if t.strip()),
                     limit=limit, full=full, sample=sample, seed=seed, batch_size=batch_size,
                     reference_model=reference_model, baseline=str(baseline) if baseline else None,
                     rm_max_pairs=rm_max_pairs, device=device, dtype=dtype)
    metrics = evaluate(cfg)
    for name, t in metrics["tasks"].items():
        figs = ", ".join(f"{k} {v['mean']:.3f} [{v['ci_low']:.3f}, {v['ci_high']:.3f}]"
                         for k, v in t["metrics"].items() if v["mean"] is not None)
        typer.echo(f"{name} (n={t['n']}): {figs}")
    for name, e in metrics["evaluators"].items():
        typer.echo(f"evaluator {name}: held-out pairwise accuracy {e['heldout_accuracy']['mean']:.3f} "
                   f"(n={e['heldout_accuracy']['n']})")
    typer.echo(f"metrics: {out / 'metrics.json'}")


@app.command("report")
def report_cmd(
    runs: List[Path] = typer.Argument(..., help="Eval folders (with metrics.json) or pipeline run folders (with "
                                                "eval/metrics.json); the first is the baseline for differences."),
    out: Path = typer.Option(Path("report"), help="Output folder for report.md and PNG plots."),
) -> None:
    """Tables with 95% bootstrap CIs, differences to the first run, evaluator accuracies, and plots."""
    from udasa.evaluation.report import write_report

    path = write_report([str(r) for r in runs], str(out))
    typer.echo(f"report: {path}")


evaluators_app = typer.Typer(no_args_is_help=True, help="The evaluator reward models (heads on frozen MiniLM).")
app.add_typer(evaluators_app, name="evaluators")


@evaluators_app.command("train")
def evaluators_train(
    out: Optional[Path] = typer.Option(None, help="Where to write the heads (default: the package's own "
                                                  "udasa/evaluation/heads/, which udasa ships)."),
    device: str = typer.Option("auto", help="Where the embedder runs: auto, cpu, cuda or cuda:N."),
    threads: Optional[int] = typer.Option(None, help="torch CPU threads."),
) -> None:
    """Train the harmlessness and helpfulness evaluators on the rm-train split of the vendored HH-RLHF pairs
    (human labels) and measure them on the held-out rm-test split."""
    from udasa.device import resolve_device
    from udasa.evaluation.reward_models import SHIPPED_DIR, train_reward_models

    if threads:
        import torch
        torch.set_num_threads(threads)
    target = out or SHIPPED_DIR
    models = train_reward_models(out=target, device=str(resolve_device(device)))
    for name, m in models.items():
        acc = m.meta["heldout_accuracy"]
        typer.echo(f"{name}_rm: {m.meta['n_train_pairs']} train pairs, held-out accuracy {acc['mean']:.3f} "
                   f"[{acc['ci_low']:.3f}, {acc['ci_high']:.3f}] on {acc['n']} pairs")
    typer.echo(f"heads: {target}")


@evaluators_app.command("show")
def evaluators_show() -> None:
    """Which evaluator heads evaluation uses, and their held-out accuracy."""
    from udasa.evaluation.reward_models import SHIPPED_DIR, shipped_heads_match

    for name in ("harmless", "helpful"):
        meta = SHIPPED_DIR / f"{name}_rm.json"
        if meta.exists():
            import json

            m = json.loads(meta.read_text())
            typer.echo(f"{name}_rm: held-out accuracy {m['heldout_accuracy']['mean']:.3f} ({m['n_test_pairs']} pairs), "
                       f"{m['n_train_pairs']} train pairs, data {m['data_fingerprint']}")
    typer.echo("shipped heads match this data and embedder" if shipped_heads_match() else
               "shipped heads are missing or stale: evaluation trains heads into the cache on first use")
