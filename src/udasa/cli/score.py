"""``udasa score`` and ``udasa validate``."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from udasa.cli import app
from udasa.errors import InputError


def parse_weights(text: str) -> dict[str, float]:
    """``"semantic=1,factual=0,value=2"`` -> dict; missing axes get 0."""
    out = {}
    for part in text.split(","):
        if not part.strip():
            continue
        key, sep, val = part.partition("=")
        try:
            out[key.strip()] = float(val)
        except ValueError:
            sep = ""
        if not sep:
            raise InputError(f"expected axis=number pairs like 'semantic=1,factual=1,value=1', got {text!r}",
                             field="weights")
    return out


def _score_config(spec, weights, normalization, embedder, use_policy_judge, model=None, device="auto", dtype="auto",
                  contrast_weight=None, factual_gate=None):
    from udasa.uncertainty import ScoreConfig

    kw = dict(spec=spec, normalization=normalization, embedder=embedder, use_policy_judge=use_policy_judge,
              model=model, device=device, dtype=dtype, contrast_weight=contrast_weight, factual_gate=factual_gate)
    if weights:
        kw["weights"] = parse_weights(weights)
    return ScoreConfig(**kw)


def _threads(threads: Optional[int]) -> None:
    if threads:
        import torch
        torch.set_num_threads(threads)


@app.command()
def score(
    samples: Path = typer.Option(..., help="samples.jsonl written by `udasa sample`."),
    out: Path = typer.Option(..., help="Output scores.jsonl (one record per prompt); rerun to resume."),
    spec: str = typer.Option("safety", help="Value spec: safety, helpful, honest, positive-sentiment or a YAML path."),
    weights: Optional[str] = typer.Option(None, help="Axis weights, e.g. 'semantic=1,factual=1,value=1' (default: "
                                                     "the spec's fitted weights, else equal)."),
    contrast_weight: Optional[float] = typer.Option(None, help="Share of the contrastive estimator in the value axis "
                                                              "(0-1; default: the spec's fitted value, else 0)."),
    factual_gate: Optional[str] = typer.Option(None, help="'value' or 'none' (default: the spec's fitted value)."),
    normalization: str = typer.Option("rank", help="Within-prompt normalisation: rank, minmax or none."),
    embedder: str = typer.Option("all-minilm-l6-v2", help="Sentence embedder (embedded name or folder)."),
    model: Optional[str] = typer.Option(None, help="Refuse samples from any other model (also the judge's model)."),
    use_policy_judge: bool = typer.Option(False, help="Mix the policy's own P(Yes) judge into the value axis."),
    device: str = typer.Option("auto", help="auto (first CUDA device, else CPU), cpu, cuda or cuda:N."),
    dtype: str = typer.Option("auto", help="auto (bfloat16 on a capable GPU, else float32), float32, bfloat16, float16."),
    threads: Optional[int] = typer.Option(None, help="torch CPU threads (default: torch's choice)."),
) -> None:
    """Score each response's semantic, factual and value uncertainty and combine them into u."""
    from udasa.uncertainty import score as run_score

    cfg = _score_config(spec, weights, normalization, embedder, use_policy_judge, model, device, dtype,
                        contrast_weight, factual_gate)
    _threads(threads)
    typer.echo(f"scores: {run_score(samples, out, cfg)}")


@app.command()
def validate(
    data: str = typer.Option("hh-harmless", help="hh-harmless, hh-helpful or truthfulqa."),
    out: Path = typer.Option(..., help="Output folder (items.jsonl, scores-*.jsonl, validation.json/.md); resumable."),
    n_samples: int = typer.Option(4, help="Fresh policy samples per item, added to the human candidates."),
    limit: Optional[int] = typer.Option(None, help="Items to use (from --offset); with neither, the reporting slice "
                                                   "(items 100-399 of HH, 150-299 of TruthfulQA's validation "
                                                   "questions) or with --fit the dev slice (0-99, 0-149)."),
    offset: Optional[int] = typer.Option(None, help="First item; design tuning and --fit stay on the dev slice."),
    fit: bool = typer.Option(False, "--fit", help="Choose the spec's axis weights, contrast weight and factual gate "
                                                  "on the dev slice's human labels and write them into the spec."),
    max_new_tokens: int = typer.Option(64, help="Generation budget of the fresh samples."),
    model: str = typer.Option("smollm2-135m-instruct", help="Policy (embedded name or folder)."),
    seed: int = typer.Option(0, help="Sampling seed."),
    spec: Optional[str] = typer.Option(None, help="Value spec (default: safety / helpful / honest by data set)."),
    weights: Optional[str] = typer.Option(None, help="Axis weights, e.g. 'semantic=1,factual=1,value=1'."),
    contrast_weight: Optional[float] = typer.Option(None, help="Share of the contrastive estimator in the value axis "
                                                              "(0-1; default: the spec's fitted value, else 0)."),
    factual_gate: Optional[str] = typer.Option(None, help="'value' or 'none' (default: the spec's fitted value)."),
    normalization: str = typer.Option("rank", help="Within-prompt normalisation: rank, minmax or none."),
    embedder: str = typer.Option("all-minilm-l6-v2", help="Sentence embedder."),
    use_policy_judge: bool = typer.Option(False, help="Mix the policy's own P(Yes) judge into the value axis."),
    score_only: bool = typer.Option(False, help="Sample nothing; score the slice's items already collected."),
    device: str = typer.Option("auto", help="auto (first CUDA device, else CPU), cpu, cuda or cuda:N."),
    dtype: str = typer.Option("auto", help="auto (bfloat16 on a capable GPU, else float32), float32, bfloat16, float16."),
    threads: Optional[int] = typer.Option(None, help="torch CPU threads (default: torch's choice)."),
) -> None:
    """How often u agrees with human preferences (HH-RLHF) or the correct answer (TruthfulQA MC1)."""
    from udasa.uncertainty.validate import DEFAULT_SPEC, ValidateConfig, markdown_table
    from udasa.uncertainty.validate import validate as run_validate

    vcfg = ValidateConfig(data=data, offset=offset, limit=limit, fit=fit, n_samples=n_samples,
                          max_new_tokens=max_new_tokens, model=model, seed=seed, device=device, dtype=dtype)
    cfg = _score_config(spec or DEFAULT_SPEC[data], weights, normalization, embedder, use_policy_judge,
                        device=device, dtype=dtype, contrast_weight=contrast_weight, factual_gate=factual_gate)
    _threads(threads)
    res = run_validate(vcfg, cfg, out, collect=not score_only)
    typer.echo(markdown_table(res["agreement"], f"{data}: {res['items']} items"))
    if "fit" in res:
        f = res["fit"]
        typer.echo(f"fitted {f['weights']}, contrast_weight {f['contrast_weight']}, factual_gate {f['factual_gate']}: "
                   f"dev agreement {f['fit']['dev_agreement']:.3f} (defaults {f['fit']['default_dev_agreement']:.3f})"
                   f" -> {f['spec_file']}")
    typer.echo(f"saved: {out / 'validation.json'}, {out / 'validation.md'}")
