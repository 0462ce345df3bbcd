"""``udasa evaluators train`` and ``udasa evaluators show``: the evaluator reward models."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from udasa.cli import evaluators_app


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
