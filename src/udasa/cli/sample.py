"""``udasa sample`` and ``udasa models list``."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from udasa.cli import app, models_app
from udasa.models import DEFAULT_POLICY


@app.command()
def sample(
    prompts: Optional[Path] = typer.Option(None, help="JSONL with {id, prompt} or {id, messages} per line."),
    data: Optional[str] = typer.Option(None, help="A vendored prompt set instead of --prompts (see `udasa data`); "
                                       "only the part training may use (udasa/data/splits.py)."),
    limit: Optional[int] = typer.Option(None, help="Use only the first N prompts."),
    out: Path = typer.Option(..., help="Output JSONL (one record per prompt); rerun to resume."),
    model: str = typer.Option(DEFAULT_POLICY, help="Embedded model name or a local Hugging Face model folder."),
    n: int = typer.Option(4, help="Responses per prompt."),
    max_new_tokens: int = typer.Option(128, help="Generation budget per response."),
    temperature: float = typer.Option(1.0, help="Sampling temperature (0 = greedy)."),
    top_p: float = typer.Option(0.95, help="Nucleus sampling mass."),
    batch_size: int = typer.Option(64, help="Sequences per forward pass (larger batches use the CPU better)."),
    seed: int = typer.Option(0, help="Base seed; each (prompt, sample) derives its own."),
    backend: str = typer.Option("hf", help="'hf' (transformers) or 'vllm' (optional extra, GPU)."),
    system_prompt: Optional[str] = typer.Option(None, help="System message before every prompt."),
    trust_remote_code: bool = typer.Option(False, help="Allow model code from the model folder."),
    device: str = typer.Option("auto", help="auto (first CUDA device, else CPU), cpu, cuda or cuda:N."),
    dtype: str = typer.Option("auto", help="auto (bfloat16 on a capable GPU, else float32), float32, bfloat16, float16."),
    threads: Optional[int] = typer.Option(None, help="torch CPU threads (default: torch's choice)."),
) -> None:
    """Draw N responses per prompt with their token log-probs."""
    from udasa.sampling import SampleConfig
    from udasa.sampling import sample as run_sample

    cfg = SampleConfig(model=model, n=n, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                       batch_size=batch_size, seed=seed, backend=backend, system_prompt=system_prompt,
                       trust_remote_code=trust_remote_code, device=device, dtype=dtype)
    _threads(threads)
    source = _prompt_source(prompts, data, limit)
    path = run_sample(source, out, cfg)
    typer.echo(f"samples: {path}")


def _prompt_source(prompts: Optional[Path], data: Optional[str], limit: Optional[int]):
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


def _threads(threads: Optional[int]) -> None:
    if threads:
        import torch
        torch.set_num_threads(threads)


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
