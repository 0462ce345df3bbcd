"""``udasa report``: several evaluated models side by side."""
from __future__ import annotations

from pathlib import Path
from typing import List

import typer

from udasa.cli import app


@app.command("report")
def report_cmd(
    runs: List[Path] = typer.Argument(..., help="Eval folders (with metrics.json) or pipeline run folders (with "
                                                "eval/metrics.json); the first is the baseline for differences."),
    out: Path = typer.Option(Path("report"), help="Output folder for report.md and PNG plots."),
) -> None:
    """Tables with 95% bootstrap CIs, differences to the first run, evaluator accuracies, and plots."""
    from udasa.evaluation.report import write_report

    path = write_report([str(r) for r in runs], str(out))
    typer.echo(f"report: {path}")
