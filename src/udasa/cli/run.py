"""``udasa run`` and ``udasa check``: whole recipes."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from udasa.cli import app


@app.command()
def run(
    recipe: Path = typer.Argument(..., help="Recipe YAML (see recipes/ and docs/recipes.md)."),
    out: Optional[Path] = typer.Option(None, help="Output folder (default: the recipe's out, else runs/<name>)."),
    set_: List[str] = typer.Option([], "--set", help="Override a recipe key, e.g. --set train.beta=0.2 (repeatable)."),
    device: Optional[str] = typer.Option(None, help="Override the recipe's device: auto, cpu, cuda or cuda:N."),
    dtype: Optional[str] = typer.Option(None, help="Override the recipe's dtype: auto, float32, bfloat16, float16."),
) -> None:
    """Run sample -> score -> pairs -> train -> eval -> report; rerun to continue after a crash."""
    from udasa.pipeline import run as run_pipeline

    report = run_pipeline(recipe, overrides=_placement_overrides(set_, device, dtype), out=out, log=typer.echo)
    typer.secho(f"\nreport: {report}", fg="green")


def _placement_overrides(overrides: list[str], device: Optional[str], dtype: Optional[str]) -> list[str]:
    extra = [f"device={device}"] * (device is not None) + [f"dtype={dtype}"] * (dtype is not None)
    return list(overrides) + extra


@app.command()
def check(
    recipe: Path = typer.Argument(..., help="Recipe YAML to validate."),
    set_: List[str] = typer.Option([], "--set", help="Override a recipe key (as in `udasa run`)."),
    measure: bool = typer.Option(False, "--measure", help="Time a short sampling and training run on this machine "
                                                          "first (about a minute), for the cost estimate."),
    quiet: bool = typer.Option(False, "--quiet", help="Do not print the resolved recipe."),
) -> None:
    """Validate a recipe (keys, types, values, prompt sources, TRL's DPOConfig) and estimate its cost, without
    running anything."""
    import json
    import tempfile

    from udasa.cost import estimate
    from udasa.cost import measure as measure_rates
    from udasa.pipeline import collect_prompts
    from udasa.recipe import load_recipe, resolved

    r = load_recipe(recipe, set_)
    n = len(collect_prompts(r))
    over = [{}] + [v.train for v in r.baselines] + (r.select.candidates if r.select else [])
    for o in over:  # every DPO setting through TRL's own DPOConfig, as training will build it
        r.stage_config("train", o).dpo_config("all", 0, tempfile.gettempdir())
    if not quiet:
        typer.echo(json.dumps(resolved(r), indent=2))
    rates = measure_rates(r) if measure else None
    for line in estimate(r, n, rates).lines():
        typer.echo(line)
    typer.secho(f"{recipe}: ok ({n} training prompts, output {r.out_dir})", fg="green")
