"""``udasa validate``: how often u agrees with human preferences; ``--fit`` chooses a spec's settings."""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Optional

import typer

from udasa.cli import THREADS_HELP, app, set_threads
from udasa.cli.options import build_config, command, config_options
from udasa.uncertainty.config import ScoreConfig
from udasa.uncertainty.validate import ValidateConfig

P = inspect.Parameter
HEAD = [
    P("out", P.KEYWORD_ONLY, annotation=Path,
      default=typer.Option(..., help="Output folder (items.jsonl, scores-*.jsonl, validation.json/.md); resumable.")),
    P("score_only", P.KEYWORD_ONLY, annotation=bool,
      default=typer.Option(False, "--score-only", help="Sample nothing; score the slice's items already collected.")),
    P("threads", P.KEYWORD_ONLY, annotation=Optional[int], default=typer.Option(None, help=THREADS_HELP)),
]
VALIDATE = config_options(ValidateConfig)
# the scorer's own settings; the policy, device and dtype are the validation's
SCORING = config_options(ScoreConfig, skip=("model", "device", "dtype"))


def validate(out, score_only, threads, **settings) -> None:
    from udasa.uncertainty.validate import DEFAULT_SPEC, markdown_table
    from udasa.uncertainty.validate import validate as run_validate

    vcfg = build_config(VALIDATE, settings, None)
    scoring = SCORING.values(settings)
    scoring.setdefault("spec", DEFAULT_SPEC[vcfg.data])
    cfg = build_config(SCORING, {}, None, extra={**scoring, "device": vcfg.device, "dtype": vcfg.dtype})
    set_threads(threads)
    res = run_validate(vcfg, cfg, out, collect=not score_only)
    typer.echo(markdown_table(res["agreement"], f"{vcfg.data}: {res['items']} items"))
    if "fit" in res:
        f = res["fit"]
        typer.echo(f"fitted {f['weights']}, contrast_weight {f['contrast_weight']}, factual_gate {f['factual_gate']}: "
                   f"dev agreement {f['fit']['dev_agreement']:.3f} (defaults {f['fit']['default_dev_agreement']:.3f})"
                   f" -> {f['spec_file']}")
    typer.echo(f"saved: {out / 'validation.json'}, {out / 'validation.md'}")


command(app, "validate", validate, HEAD + VALIDATE.params + SCORING.params,
        "How often u agrees with human preferences (HH-RLHF) or the correct answer (TruthfulQA MC1); with --fit, "
        "choose the spec's weights on the dev slice and write them into the spec.")
