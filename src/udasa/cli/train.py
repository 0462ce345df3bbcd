"""``udasa pairs`` and ``udasa train``."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from udasa.cli import app
from udasa.models import DEFAULT_POLICY


def _floats(text: Optional[str], n: int, name: str):
    if text is None:
        return None
    from udasa.errors import InputError

    try:
        vals = tuple(float(x) for x in text.split(","))
    except ValueError:
        raise InputError(f"expected {n} comma-separated numbers, got {text!r}", field=name) from None
    if len(vals) != n:
        raise InputError(f"expected {n} comma-separated numbers, got {text!r}", field=name)
    return vals


@app.command()
def pairs(
    scores: Path = typer.Option(..., help="scores.jsonl from `udasa score`."),
    out: Path = typer.Option(..., help="Output pairs.jsonl (pairs.summary.json is written next to it)."),
    score_key: str = typer.Option("u", help="u (combined) or one axis: semantic, factual, value."),
    rejected: str = typer.Option("highest", help="Rejected response: highest, second_lowest, random_higher."),
    min_delta: float = typer.Option(0.0, help="Drop pairs whose Δu is below this (Δu <= 0 is always dropped)."),
    curriculum: str = typer.Option("udasa", help="udasa, none (one stage), reverse, random (ablations)."),
    split: str = typer.Option("quantile", help="quantile (by Δu rank) or threshold (fixed Δu cuts)."),
    fractions: Optional[str] = typer.Option(None, help="Shares of conservative,moderate,exploratory (default thirds)."),
    thresholds: Optional[str] = typer.Option(None, help="low,high Δu cuts for --split threshold."),
    seed: int = typer.Option(0, help="Seed of random_higher and of the random curriculum."),
) -> None:
    """Build chosen/rejected pairs from uncertainty scores and assign curriculum stages."""
    from udasa.curriculum import CurriculumConfig
    from udasa.pairs import PairConfig, build_pairs, format_summary

    cur = CurriculumConfig(curriculum=curriculum, split=split, seed=seed, thresholds=_floats(thresholds, 2, "thresholds"),
                           **({"fractions": _floats(fractions, 3, "fractions")} if fractions else {}))
    cfg = PairConfig(score_key=score_key, rejected=rejected, min_delta=min_delta, seed=seed, curriculum=cur)
    summary = build_pairs(scores, out, cfg)
    typer.echo(format_summary(summary))


@app.command()
def train(
    pairs: Path = typer.Option(..., help="pairs.jsonl from `udasa pairs`."),
    out: Path = typer.Option(..., help="Output folder: stage-k-*/, final/, train_log.jsonl. Rerun to resume."),
    model: str = typer.Option(DEFAULT_POLICY, help="Initial policy: embedded name or Hugging Face model folder."),
    reference: str = typer.Option("initial", help="Reference model: initial (frozen) or previous (stage start)."),
    beta: float = typer.Option(0.1, help="DPO beta."),
    learning_rate: float = typer.Option(1e-6, help="Peak learning rate."),
    epochs: float = typer.Option(1.0, help="Epochs per stage."),
    loss_type: str = typer.Option("sigmoid", help="Any TRL DPO loss_type (comma-separated to combine)."),
    max_steps: int = typer.Option(-1, help="If > 0: optimizer steps per stage instead of epochs."),
    stage_override: List[str] = typer.Option([], help="STAGE.FIELD=VALUE, e.g. moderate.beta=0.2 (repeatable)."),
    batch_size: int = typer.Option(4, help="Pairs per process per forward pass."),
    grad_accum: int = typer.Option(1, help="Gradient accumulation steps."),
    max_length: int = typer.Option(512, help="Max prompt+response tokens."),
    save_steps: int = typer.Option(50, help="Steps between checkpoints inside a stage."),
    seed: int = typer.Option(0, help="Seed (stage k uses seed + k)."),
    lora: bool = typer.Option(False, help="Train a LoRA adapter; stage folders hold merged weights + adapter/."),
    lora_r: int = typer.Option(8, help="LoRA rank."),
    lora_alpha: int = typer.Option(16, help="LoRA alpha."),
    lora_targets: str = typer.Option("q_proj,k_proj,v_proj,o_proj", help="Comma-separated module names."),
    ref_cache: bool = typer.Option(True, help="Cache reference log-probs on disk (off: TRL's per-step reference)."),
    ref_cache_dir: Optional[Path] = typer.Option(None, help="Cache folder (default $UDASA_CACHE/ref-logps)."),
    device: str = typer.Option("auto", help="auto (first CUDA device, else CPU), cpu, cuda or cuda:N."),
    dtype: str = typer.Option("auto", help="auto (bfloat16 on a capable GPU, else float32), float32, bfloat16, float16."),
    dpo_kwargs: Optional[str] = typer.Option(None, help="JSON object of extra trl.DPOConfig fields."),
    record_batches: bool = typer.Option(False, help="Write which pairs each process trained on (debug sharding)."),
    threads: Optional[int] = typer.Option(None, help="torch CPU threads."),
    config: Optional[Path] = typer.Option(None, help="YAML/JSON of TrainConfig fields (a recipe's train section); "
                                          "when given, the other training flags are ignored."),
) -> None:
    """Staged DPO: conservative -> moderate -> exploratory, saving a model folder after each stage."""
    from udasa.errors import InputError
    from udasa.training import TrainConfig
    from udasa.training import train as run_train

    if threads:
        import torch
        torch.set_num_threads(threads)
    overrides: dict[str, dict] = {}
    for item in stage_override:
        try:
            key, value = item.split("=", 1)
            stage, name = key.split(".", 1)
        except ValueError:
            raise InputError(f"expected STAGE.FIELD=VALUE, got {item!r}", field="stage_override") from None
        overrides.setdefault(stage, {})[name] = value if name == "loss_type" else float(value)
    try:
        extra = json.loads(dpo_kwargs) if dpo_kwargs else {}
    except json.JSONDecodeError as e:
        raise InputError(f"invalid JSON: {e.msg}", field="dpo_kwargs") from None
    if config is not None:
        final = run_train(pairs, out, _config_file(config))
        typer.echo(f"final model: {final}")
        return
    cfg = TrainConfig(model=model, reference=reference, beta=beta, learning_rate=learning_rate,
                      num_train_epochs=epochs, loss_type=loss_type.split(","), max_steps=max_steps,
                      stage_overrides=overrides, per_device_train_batch_size=batch_size,
                      gradient_accumulation_steps=grad_accum, max_length=max_length, save_steps=save_steps, seed=seed,
                      use_lora=lora, lora_r=lora_r, lora_alpha=lora_alpha, lora_target_modules=lora_targets.split(","),
                      ref_cache=ref_cache, ref_cache_dir=str(ref_cache_dir) if ref_cache_dir else None, device=device,
                      dtype=dtype,
                      record_batches=record_batches, dpo_kwargs=extra)
    final = run_train(pairs, out, cfg)
    typer.echo(f"final model: {final}")


def _config_file(path: Path):
    """A TrainConfig from a YAML/JSON file, checked like a recipe section (errors name file, line, key)."""
    from udasa.io import load_yaml, read_text_file
    from udasa.recipe import build
    from udasa.training import TrainConfig

    data = load_yaml(read_text_file(path), str(path)) or {}
    return build(TrainConfig, data, source=str(path), prefix="", lines={})
