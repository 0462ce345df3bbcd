"""``udasa sample``: draw N responses per prompt with their token log-probs."""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Optional

import typer

from udasa.cli import THREADS_HELP, app, set_threads
from udasa.cli.options import build_config, command, config_file_option, config_options
from udasa.sampling.config import SampleConfig

P = inspect.Parameter
HEAD = [
    P("prompts", P.KEYWORD_ONLY, annotation=Optional[Path],
      default=typer.Option(None, help="JSONL with {id, prompt} or {id, messages} per line.")),
    P("data", P.KEYWORD_ONLY, annotation=Optional[str],
      default=typer.Option(None, help="A vendored prompt set instead of --prompts (see `udasa data`); only the part "
                                      "training may use (udasa/data/splits.py).")),
    P("limit", P.KEYWORD_ONLY, annotation=Optional[int], default=typer.Option(None, help="Use only the first N prompts.")),
    P("out", P.KEYWORD_ONLY, annotation=Path,
      default=typer.Option(..., help="Output JSONL (one record per prompt); rerun to resume.")),
    P("threads", P.KEYWORD_ONLY, annotation=Optional[int], default=typer.Option(None, help=THREADS_HELP)),
]
OPTIONS = config_options(SampleConfig)


def sample(prompts, data, limit, out, threads, config, **settings) -> None:
    from udasa.sampling import sample as run_sample

    cfg = build_config(OPTIONS, settings, config)
    set_threads(threads)
    path = run_sample(prompt_source(prompts, data, limit), out, cfg)
    typer.echo(f"samples: {path}")


def prompt_source(prompts: Optional[Path], data: Optional[str], limit: Optional[int]):
    from udasa.errors import InputError

    if (prompts is None) == (data is None):
        raise InputError("give exactly one of --prompts FILE or --data NAME")
    if limit is not None and limit < 1:
        raise InputError(f"must be >= 1 (got {limit})", field="--limit")
    if data is not None:
        from udasa.data.splits import training_prompts

        try:  # the same rules as `udasa run`: no evaluation or evaluator prompts
            rows = training_prompts(data)
        except (ValueError, InputError) as e:
            raise InputError(str(e).split(": ", 1)[-1], field="--data") from None
        return rows[:limit] if limit else rows
    if limit:
        import itertools

        from udasa.sampling import read_prompts

        return list(itertools.islice(read_prompts(str(prompts)), limit))
    return str(prompts)


command(app, "sample", sample, HEAD + [config_file_option()] + OPTIONS.params,
        "Draw N responses per prompt with their token log-probs.")
