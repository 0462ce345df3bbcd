"""``udasa run``: a whole recipe."""
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
    report_only: bool = typer.Option(False, "--report-only",
                                     help="Run nothing: rewrite the report from the stages that have finished "
                                          "(safe while another process runs the recipe)."),
    only: List[str] = typer.Option([], "--only",
                                   help="Run the shared stages, then only this part: main (the main model) or a "
                                        "baseline's name (repeatable). Processes given disjoint parts run side by "
                                        "side on one output folder, e.g. one per GPU."),
) -> None:
    """Run sample -> score -> pairs -> train -> eval -> report; rerun to continue after a crash."""
    from udasa.pipeline import run as run_pipeline

    report = run_pipeline(recipe, overrides=placement_overrides(set_, device, dtype), out=out, log=typer.echo,
                          report_only=report_only, only=list(only) or None)
    if report is not None:
        typer.secho(f"\nreport: {report}", fg="green")


def placement_overrides(overrides: list[str], device: Optional[str], dtype: Optional[str]) -> list[str]:
    extra = [f"device={device}"] * (device is not None) + [f"dtype={dtype}"] * (dtype is not None)
    return list(overrides) + extra
