"""``udasa check``: validate a recipe and estimate its cost, running nothing."""
from __future__ import annotations

from pathlib import Path
from typing import List

import typer

from udasa.cli import app


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
