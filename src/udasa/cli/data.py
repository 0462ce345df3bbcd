"""``udasa data`` and ``udasa models list``."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from udasa.cli import app, models_app


@app.command("data")
def data_cmd(
    name: Optional[str] = typer.Argument(None, help="Data set to export; omit to list them."),
    out: Optional[Path] = typer.Option(None, help="Write its prompts as JSONL here."),
    limit: Optional[int] = typer.Option(None, help="Only the first N."),
) -> None:
    """List the vendored data sets, or export one as a prompts JSONL."""
    import json

    from udasa.data import DATASETS, load_prompts
    from udasa.data.splits import EVAL_ONLY, training_prompts
    from udasa.errors import InputError

    if name is None:
        for d in DATASETS:
            n, use = len(load_prompts(d)), "evaluation only" if d in EVAL_ONLY else \
                f"{len(training_prompts(d))} usable for training"
            typer.echo(f"{d:22s} {n} prompts ({use})")
        return
    if limit is not None and limit < 1:
        raise InputError(f"must be >= 1 (got {limit})", field="--limit")
    try:
        rows = load_prompts(name)
    except ValueError as e:
        raise InputError(str(e), field="name") from None
    rows = rows[:limit] if limit else rows
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    if out is None:
        typer.echo(text, nl=False)
    else:
        from udasa.io import atomic_write_text

        atomic_write_text(out, text)
        typer.echo(f"{len(rows)} prompts -> {out}")


@models_app.command("list")
def models_list() -> None:
    """Show the embedded models, their source packages and where converted copies are cached."""
    from udasa.models import cache_dir, list_models

    typer.echo(f"cache: {cache_dir()} (set UDASA_CACHE to move it)")
    for m in list_models():
        typer.echo(f"\n{m['name']}  [{m['kind']}]  {m['description']}")
        typer.echo(f"  package: {m['package']}\n  source:  {m['source']}\n  cache:   {m['cache']}")
