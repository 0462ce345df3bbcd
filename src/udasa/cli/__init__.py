"""The ``udasa`` command line: one file per command (or group of commands), each thin.

A command parses its flags, builds its stage's config and calls one function. The flags of a stage's
settings are generated from its config dataclass (`options.py`), so every setting of a recipe section is
also a flag, with the same documentation, and every such command takes ``--config FILE``.
"""
from __future__ import annotations

import sys
from typing import Optional

import typer

from udasa.errors import InputError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Uncertainty-driven adaptive self-alignment: sample, score, pair, train, evaluate, report.")
models_app = typer.Typer(no_args_is_help=True, help="Embedded models and their caches.")
app.add_typer(models_app, name="models")
evaluators_app = typer.Typer(no_args_is_help=True, help="The evaluator reward models (heads on frozen MiniLM).")
app.add_typer(evaluators_app, name="evaluators")

THREADS_HELP = "torch CPU threads (default: torch's choice; 1 on a busy machine)."


def set_threads(threads: Optional[int]) -> None:
    if threads:
        import torch
        torch.set_num_threads(threads)


def main() -> None:
    try:
        app()
    except InputError as e:
        typer.secho(f"error: {e}", fg="red", err=True)
        sys.exit(2)


from udasa.cli import sample as _sample  # noqa: E402,F401  (each module registers its commands)
from udasa.cli import data as _data  # noqa: E402,F401
from udasa.cli import score as _score  # noqa: E402,F401
from udasa.cli import validate as _validate  # noqa: E402,F401
from udasa.cli import pairs as _pairs  # noqa: E402,F401
from udasa.cli import train as _train  # noqa: E402,F401
from udasa.cli import eval as _eval  # noqa: E402,F401
from udasa.cli import report as _report  # noqa: E402,F401
from udasa.cli import evaluators as _evaluators  # noqa: E402,F401
from udasa.cli import run as _run  # noqa: E402,F401
from udasa.cli import check as _check  # noqa: E402,F401
