"""``udasa eval``: harmlessness, helpfulness, truthfulness and controlled sentiment of one model."""
from __future__ import annotations

import inspect
from typing import Optional

import typer

from udasa.cli import THREADS_HELP, app, set_threads
from udasa.cli.options import build_config, command, config_file_option, config_options
from udasa.evaluation.runner import EvalConfig

P = inspect.Parameter
HEAD = [P("threads", P.KEYWORD_ONLY, annotation=Optional[int], default=typer.Option(None, help=THREADS_HELP))]
OPTIONS = config_options(EvalConfig, aliases={"sizes": ("--size",)})


def eval_cmd(threads, config, **settings) -> None:
    from udasa.errors import InputError
    from udasa.evaluation.runner import evaluate

    cfg = build_config(OPTIONS, settings, config)
    if "out" not in OPTIONS.values(settings) and config is None:
        raise InputError("give the output folder", field="--out")
    set_threads(threads)
    metrics = evaluate(cfg)
    for name, t in metrics["tasks"].items():
        figs = ", ".join(f"{k} {v['mean']:.3f} [{v['ci_low']:.3f}, {v['ci_high']:.3f}]"
                         for k, v in t["metrics"].items() if v["mean"] is not None)
        typer.echo(f"{name} (n={t['n']}): {figs}")
    for name, e in metrics["evaluators"].items():
        typer.echo(f"evaluator {name}: held-out pairwise accuracy {e['heldout_accuracy']['mean']:.3f} "
                   f"(n={e['heldout_accuracy']['n']})")
    typer.echo(f"metrics: {cfg.out}/metrics.json")


command(app, "eval", eval_cmd, HEAD + [config_file_option()] + OPTIONS.params,
        "Evaluate a model on harmlessness, helpfulness, truthfulness and controlled sentiment.")
