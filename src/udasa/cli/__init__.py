"""The ``udasa`` command line: one thin command per pipeline stage.

Each command parses its flags, builds the stage's config dataclass and calls one function.
Stage modules register their commands on `app` (see the imports at the bottom).
"""
from __future__ import annotations

import sys

import typer

from udasa.errors import InputError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Uncertainty-driven adaptive self-alignment: sample, score, pair, train, evaluate, report.")
models_app = typer.Typer(no_args_is_help=True, help="Embedded models and their caches.")
app.add_typer(models_app, name="models")


def main() -> None:
    try:
        app()
    except InputError as e:
        typer.secho(f"error: {e}", fg="red", err=True)
        sys.exit(2)


from udasa.cli import sample as _sample  # noqa: E402,F401  (registers commands)
from udasa.cli import score as _score  # noqa: E402,F401
from udasa.cli import train as _train  # noqa: E402,F401
from udasa.cli import evaluate as _evaluate  # noqa: E402,F401
from udasa.cli import run as _run  # noqa: E402,F401
