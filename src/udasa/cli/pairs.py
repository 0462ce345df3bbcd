"""``udasa pairs``: chosen/rejected pairs from uncertainty scores, split into curriculum stages."""
from __future__ import annotations

import inspect
from pathlib import Path

import typer

from udasa.cli import app
from udasa.cli.options import build_config, command, config_file_option, config_options
from udasa.curriculum import CurriculumConfig
from udasa.pairs import PairConfig

P = inspect.Parameter
HEAD = [
    P("scores", P.KEYWORD_ONLY, annotation=Path, default=typer.Option(..., help="scores.jsonl from `udasa score`.")),
    P("out", P.KEYWORD_ONLY, annotation=Path,
      default=typer.Option(..., help="Output pairs.jsonl (pairs.summary.json is written next to it).")),
]
PAIRS = config_options(PairConfig, skip=("curriculum",))
# the curriculum's settings as flat flags; its seed is the pairs' --seed
CURRICULUM = config_options(CurriculumConfig, skip=("seed",))


def pairs(scores, out, config, **settings) -> None:
    from udasa.pairs import build_pairs, format_summary

    cur = CURRICULUM.values(settings)
    cfg = build_config(PAIRS, settings, config)
    if cur or "seed" in PAIRS.values(settings):
        base = {k: v for k, v in vars(cfg.curriculum).items()}
        cur_cfg = build_config(CURRICULUM, {}, None, extra={**base, **cur, "seed": cfg.seed})
        cfg = build_config(PAIRS, settings, config, extra={"curriculum": vars(cur_cfg)})
    summary = build_pairs(scores, out, cfg)
    typer.echo(format_summary(summary))


command(app, "pairs", pairs, HEAD + [config_file_option()] + PAIRS.params + CURRICULUM.params,
        "Build chosen/rejected pairs from uncertainty scores and assign curriculum stages.")
