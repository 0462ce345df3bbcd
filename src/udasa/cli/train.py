"""``udasa train``: staged DPO, conservative -> moderate -> exploratory."""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import List, Optional

import typer

from udasa.cli import THREADS_HELP, app, set_threads
from udasa.cli.options import build_config, command, config_file_option, config_options
from udasa.training.config import TrainConfig

P = inspect.Parameter
HEAD = [
    P("pairs", P.KEYWORD_ONLY, annotation=Path, default=typer.Option(..., help="pairs.jsonl from `udasa pairs`.")),
    P("out", P.KEYWORD_ONLY, annotation=Path,
      default=typer.Option(..., help="Output folder: stage-k-*/, final/, train_log.jsonl. Rerun to resume.")),
    P("stage_override", P.KEYWORD_ONLY, annotation=List[str],
      default=typer.Option([], help="STAGE.FIELD=VALUE, e.g. moderate.beta=0.2 (repeatable); joins stage_overrides.")),
    P("threads", P.KEYWORD_ONLY, annotation=Optional[int], default=typer.Option(None, help=THREADS_HELP)),
]
# the shorter flags of earlier releases stay as aliases
OPTIONS = config_options(TrainConfig, aliases={
    "num_train_epochs": ("--epochs",), "per_device_train_batch_size": ("--batch-size",),
    "gradient_accumulation_steps": ("--grad-accum",), "use_lora": ("--lora/--no-lora",),
    "lora_target_modules": ("--lora-targets",)})


def train(pairs, out, stage_override, threads, config, **settings) -> None:
    from udasa.errors import InputError
    from udasa.io import load_yaml
    from udasa.training import train as run_train

    overrides: dict[str, dict] = {}
    for item in stage_override:
        key, sep, value = item.partition("=")
        stage, dot, name = key.partition(".")
        if not sep or not dot:
            raise InputError(f"expected STAGE.FIELD=VALUE, got {item!r}", field="stage_override")
        overrides.setdefault(stage.strip(), {})[name.strip()] = load_yaml(value, f"--stage-override {key}")
    extra = {}
    if overrides:
        base = build_config(OPTIONS, settings, config).stage_overrides
        extra["stage_overrides"] = {**base, **{s: {**base.get(s, {}), **o} for s, o in overrides.items()}}
    cfg = build_config(OPTIONS, settings, config, extra=extra)
    set_threads(threads)
    final = run_train(pairs, out, cfg)
    typer.echo(f"final model: {final}")


command(app, "train", train, HEAD + [config_file_option()] + OPTIONS.params,
        "Staged DPO: conservative -> moderate -> exploratory, saving a model folder after each stage.")
