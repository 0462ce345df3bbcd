"""``udasa score``: each response's semantic, factual and value uncertainty, combined into u."""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Optional

import typer

from udasa.cli import THREADS_HELP, app, set_threads
from udasa.cli.options import build_config, command, config_file_option, config_options
from udasa.uncertainty.config import ScoreConfig

P = inspect.Parameter
HEAD = [
    P("samples", P.KEYWORD_ONLY, annotation=Path, default=typer.Option(..., help="samples.jsonl written by `udasa sample`.")),
    P("out", P.KEYWORD_ONLY, annotation=Path,
      default=typer.Option(..., help="Output scores.jsonl (one record per prompt); rerun to resume.")),
    P("threads", P.KEYWORD_ONLY, annotation=Optional[int], default=typer.Option(None, help=THREADS_HELP)),
]
OPTIONS = config_options(ScoreConfig)


def score(samples, out, threads, config, **settings) -> None:
    from udasa.uncertainty import score as run_score

    cfg = build_config(OPTIONS, settings, config)
    set_threads(threads)
    typer.echo(f"scores: {run_score(samples, out, cfg)}")


command(app, "score", score, HEAD + [config_file_option()] + OPTIONS.params,
        "Score each response's semantic, factual and value uncertainty and combine them into u.")
