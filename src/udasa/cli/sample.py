"""``udasa sample`` and ``udasa models list``."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from udasa.cli import app, models_app
from udasa.models import DEFAULT_POLICY


@app.command()
def sample(
    prompts: Path = typer.Option(..., help="JSONL with {id, prompt} or {id, messages} per line."),
    out: Path = typer.Option(..., help="Output JSONL (one record per prompt); rerun to resume."),
    model: str = typer.Option(DEFAULT_POLICY, help="Embedded model name or a local Hugging Face model folder."),
    n: int = typer.Option(4, help="Responses per prompt."),
    max_new_tokens: int = typer.Option(128, help="Generation budget per response."),
    temperature: float = typer.Option(1.0, help="Sampling temperature (0 = greedy)."),
    top_p: float = typer.Option(0.95, help="Nucleus sampling mass."),
    batch_size: int = typer.Option(32, help="Sequences per forward pass."),
    seed: int = typer.Option(0, help="Base seed; each (prompt, sample) derives its own."),
    backend: str = typer.Option("hf", help="'hf' (transformers) or 'vllm' (optional extra, GPU)."),
    system_prompt: Optional[str] = typer.Option(None, help="System message before every prompt."),
    trust_remote_code: bool = typer.Option(False, help="Allow model code from the model folder."),
    threads: Optional[int] = typer.Option(None, help="torch CPU threads (default: torch's choice)."),
) -> None:
    """Draw N responses per prompt with their token log-probs."""
    from udasa.sampling import SampleConfig
    from udasa.sampling import sample as run_sample

    cfg = SampleConfig(model=model, n=n, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                       batch_size=batch_size, seed=seed, backend=backend, system_prompt=system_prompt,
                       trust_remote_code=trust_remote_code)
    _threads(threads)
    path = run_sample(str(prompts), out, cfg)
    typer.echo(f"samples: {path}")


def _threads(threads: Optional[int]) -> None:
    if threads:
        import torch
        torch.set_num_threads(threads)


@models_app.command("list")
def models_list() -> None:
    """Show the embedded models, their source packages and where converted copies are cached."""
    from udasa.models import cache_dir, list_models

    typer.echo(f"cache: {cache_dir()} (set UDASA_CACHE to move it)")
    for m in list_models():
        typer.echo(f"\n{m['name']}  [{m['kind']}]  {m['description']}")
        typer.echo(f"  package: {m['package']}\n  source:  {m['source']}\n  cache:   {m['cache']}")
