"""Configuration of the staged preference-optimisation stage.

`TrainConfig` holds what udasa adds (stages, reference choice, LoRA, the reference log-prob
cache) plus the handful of DPO settings people change; `dpo_config()` turns it into one TRL
`DPOConfig` per stage, so TRL stays the single source of truth for everything else (pass any
other `DPOConfig` field through ``dpo_kwargs``).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from udasa.device import Placement, check_device_name, check_dtype_name
from udasa.errors import InputError, check_fields, finite_number
from udasa.models import DEFAULT_POLICY

REFERENCES = ("initial", "previous")
STAGE_LABELS = ("conservative", "moderate", "exploratory", "all")
OVERRIDABLE = ("beta", "learning_rate", "num_train_epochs", "loss_type", "max_steps")


@dataclass
class TrainConfig:
    """How the policy is trained, stage by stage, on pairs.jsonl.

    Fields:
        model: the initial policy: embedded model name or a local Hugging Face model folder.
        reference: "initial" (the frozen initial model for every stage, the default) or "previous" (each
            stage's reference is the model the stage starts from).
        reference_model: an explicit reference for every stage (embedded name or folder), overriding
            ``reference``; iterative rounds use it to keep the round-1 model as the reference.
        beta: DPO β (deviation from the reference); overridable per stage.
        learning_rate: peak learning rate; overridable per stage.
        num_train_epochs: epochs over each stage's pairs; overridable per stage.
        loss_type: any TRL DPO ``loss_type`` (e.g. "sigmoid", "ipo", "hinge"), or a list of them; per stage too.
        max_steps: if > 0, optimizer steps per stage instead of epochs (smoke tests, benchmarks).
        stage_overrides: per stage label ("conservative", "moderate", "exploratory", "all"), a dict of
            overrides among beta, learning_rate, num_train_epochs, loss_type, max_steps.
        skip_stages: stage labels not to train (e.g. ``[exploratory]``: only the pairs whose Δu the scores are
            surest of); the other stages train as they would have, in their order, and ``final/`` is the last
            one trained. An ablation: the pairs file and its stages stay as they are.
        per_device_train_batch_size: pairs per process per forward pass.
        gradient_accumulation_steps: forward passes per optimizer step.
        max_length: prompt + response tokens kept per sequence (TRL truncates the end beyond it, and drops a
            pair whose prompt alone fills it; each stage records how many pairs it trained).
        trim_long_prompts: drop a DPO chat pair's earliest turns (system messages stay) until the prompt and the
            longer of its two responses fit ``max_length``, instead of letting TRL cut the responses or drop the
            pair; a prompt whose last turn alone does not fit is still dropped. Plain-text pairs are left as they
            are. The responses were sampled with the whole conversation, so a trimmed pair trains on less
            context than its responses saw.
        lr_scheduler_type: transformers scheduler name; each stage warms up and decays on its own.
        warmup_ratio: share of each stage's steps used for warm-up.
        logging_steps: optimizer steps between two lines of train_log.jsonl.
        save_steps: optimizer steps between TRL checkpoints inside a stage (a killed run resumes there).
        seed: seed of model init, dropout and the within-stage shuffle (stage k uses seed + k).
        use_lora: train a LoRA adapter (peft) instead of all weights; stage folders then hold the merged
            weights (a plain HF model) and the cumulative adapter under ``adapter/``.
        lora_r, lora_alpha, lora_dropout: LoRA rank, scaling and dropout.
        lora_target_modules: module names to adapt; each must exist in the model (checked before training).
        ref_cache: precompute reference log-probs once and keep them on disk (see ``ref_cache.py``); off means
            TRL's default, a reference model run at every step.
        ref_cache_dir: where the cache lives; None = ``$UDASA_CACHE/ref-logps``.
        precompute_batch_size: pairs per forward pass when filling the cache.
        device: where training runs: "auto" (the first CUDA device if any, else the CPU), "cpu", "cuda",
            "cuda:N" (under ``train_launcher`` the launcher places the processes); a recipe's top-level
            ``device`` fills it.
        dtype: mixed-precision autocast over float32 master weights: "auto" (bfloat16 on a capable GPU,
            float32 on the CPU), "float32" (no autocast), "bfloat16" or "float16"; a recipe's top-level
            ``dtype`` fills it.
        activation_checkpointing: recompute activations in the backward pass to save memory (large models).
        record_batches: write, per stage and process, which pairs each process trained on and a hash of its
            final weights (``<stage>/batches.rank<k>.jsonl``); used by the distributed test.
        trust_remote_code: passed to transformers; off unless you ask.
        dpo_kwargs: any other `trl.DPOConfig` field, passed through unchanged (e.g. ``{"ld_alpha": 0.5}``).
    """

    model: str = DEFAULT_POLICY
    reference: str = "initial"
    reference_model: str | None = None
    beta: float = 0.1
    learning_rate: float = 1e-6
    num_train_epochs: float = 1.0
    loss_type: str | list[str] = "sigmoid"
    max_steps: int = -1
    stage_overrides: dict[str, dict] = field(default_factory=dict)
    skip_stages: list[str] = field(default_factory=list)
    per_device_train_batch_size: int = 4
    gradient_accumulation_steps: int = 1
    max_length: int | None = 512
    trim_long_prompts: bool = False
    lr_scheduler_type: str = "linear"
    warmup_ratio: float = 0.0
    logging_steps: int = 1
    save_steps: int = 50
    seed: int = 0
    use_lora: bool = False
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    lora_target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    ref_cache: bool = True
    ref_cache_dir: str | None = None
    precompute_batch_size: int = 8
    device: str = "auto"
    dtype: str = "auto"
    activation_checkpointing: bool = False
    record_batches: bool = False
    trust_remote_code: bool = False
    dpo_kwargs: dict = field(default_factory=dict)

    def __post_init__(self):
        checks = [
            (self.reference in REFERENCES, "reference", f"must be one of {REFERENCES}"),
            (_pos(self.beta), "beta", "must be > 0"),
            (_pos(self.learning_rate), "learning_rate", "must be > 0"),
            (_pos(self.num_train_epochs) and self.num_train_epochs <= 1000, "num_train_epochs", "must be in (0, 1000]"),
            (isinstance(self.max_steps, int) and (self.max_steps == -1 or 0 < self.max_steps <= 10_000_000),
             "max_steps", "must be -1 (use epochs) or in [1, 10000000]"),
            (1 <= self.per_device_train_batch_size <= 65536, "per_device_train_batch_size", "must be in [1, 65536]"),
            (1 <= self.gradient_accumulation_steps <= 65536, "gradient_accumulation_steps", "must be in [1, 65536]"),
            (self.max_length is None or 8 <= self.max_length <= 1_048_576, "max_length", "must be in [8, 1048576] or None"),
            (finite_number(self.warmup_ratio) and 0 <= self.warmup_ratio < 1, "warmup_ratio", "must be in [0, 1)"),
            (self.logging_steps >= 1, "logging_steps", "must be >= 1"),
            (self.save_steps >= 1, "save_steps", "must be >= 1"),
            (self.lora_r >= 1, "lora_r", "must be >= 1"),
            (finite_number(self.lora_dropout) and 0 <= self.lora_dropout < 1, "lora_dropout", "must be in [0, 1)"),
            (self.lora_alpha > 0, "lora_alpha", "must be > 0"),
            (bool(self.lora_target_modules), "lora_target_modules", "must name at least one module"),
            (self.precompute_batch_size >= 1, "precompute_batch_size", "must be >= 1"),
        ]
        check_fields(self, checks)
        check_device_name(self.device)
        check_dtype_name(self.dtype)
        self.model = str(self.model)
        if isinstance(self.loss_type, str):
            self.loss_type = [self.loss_type]
        if not isinstance(self.stage_overrides, dict):
            raise InputError("must be a mapping of stage label to overrides", field="stage_overrides")
        for stage, ov in self.stage_overrides.items():
            if stage not in STAGE_LABELS:
                raise InputError(f"unknown stage {stage!r}; stages are {', '.join(STAGE_LABELS)}",
                                 field=f"stage_overrides.{stage}")
            if not isinstance(ov, dict):
                raise InputError("must be a mapping of overrides", field=f"stage_overrides.{stage}")
            bad = sorted(set(ov) - set(OVERRIDABLE))
            if bad:
                raise InputError(f"cannot override {bad}; choose among {OVERRIDABLE}", field=f"stage_overrides.{stage}")
            for name, value in ov.items():  # the same ranges as the run-wide settings
                ok = {"beta": _pos, "learning_rate": _pos, "num_train_epochs": _pos,
                      "max_steps": lambda v: isinstance(v, int) and not isinstance(v, bool) and (v == -1 or v > 0),
                      "loss_type": lambda v: isinstance(v, str) or (isinstance(v, list) and v and
                                                                    all(isinstance(x, str) for x in v))}[name](value)
                if not ok:
                    raise InputError(f"{value!r} is out of range for {name}", field=f"stage_overrides.{stage}.{name}")

        self.skip_stages = [self.skip_stages] if isinstance(self.skip_stages, str) else list(self.skip_stages)
        unknown = [s for s in self.skip_stages if s not in STAGE_LABELS]
        if unknown:
            raise InputError(f"unknown stage(s) {unknown}; stages are {', '.join(STAGE_LABELS)}", field="skip_stages")

    def stage_value(self, stage: str, name: str):
        return self.stage_overrides.get(stage, {}).get(name, getattr(self, name))

    def placement(self) -> Placement:
        return Placement.of(self.device, self.dtype)

    def precision_args(self) -> dict:
        """The transformers `TrainingArguments` that put training on ``device`` with ``dtype`` autocast."""
        import torch

        p = self.placement()
        on_gpu = p.device.type == "cuda"
        if on_gpu and p.device.index:
            torch.cuda.set_device(p.device)  # the Trainer uses the current device in a single process
        return {"bf16": p.dtype == torch.bfloat16, "fp16": p.dtype == torch.float16, "dataloader_pin_memory": on_gpu,
                # without a GPU, use_cpu lets torchrun / accelerate start gloo process groups (MULTI_CPU)
                "use_cpu": not on_gpu}

    def dpo_config(self, stage: str, stage_index: int, output_dir: str | Path):
        """The TRL `DPOConfig` of one stage (heavy import, so only called when training)."""
        from trl import DPOConfig

        names = {f.name for f in dataclasses.fields(DPOConfig)}
        bad = sorted(set(self.dpo_kwargs) - names)
        if bad:
            raise InputError(f"not DPOConfig fields: {bad}", field="dpo_kwargs")
        loss = self.stage_value(stage, "loss_type")
        kwargs = dict(
            output_dir=str(output_dir), beta=float(self.stage_value(stage, "beta")),
            learning_rate=float(self.stage_value(stage, "learning_rate")),
            num_train_epochs=float(self.stage_value(stage, "num_train_epochs")),
            max_steps=int(self.stage_value(stage, "max_steps")),
            loss_type=[loss] if isinstance(loss, str) else list(loss),
            per_device_train_batch_size=self.per_device_train_batch_size,
            gradient_accumulation_steps=self.gradient_accumulation_steps, max_length=self.max_length,
            lr_scheduler_type=self.lr_scheduler_type, warmup_steps=self.warmup_ratio,
            logging_steps=self.logging_steps, save_strategy="steps", save_steps=self.save_steps,
            save_total_limit=1, seed=self.seed + stage_index, data_seed=self.seed + stage_index,
            precompute_ref_log_probs=self.ref_cache, precompute_ref_batch_size=self.precompute_batch_size,
            activation_checkpointing=self.activation_checkpointing, report_to="none",
            trust_remote_code=self.trust_remote_code, disable_tqdm=True, **self.precision_args(),
        )
        kwargs.update(self.dpo_kwargs)
        return DPOConfig(**kwargs)

    def settings(self) -> dict:
        return dataclasses.asdict(self)


def _pos(x) -> bool:
    return finite_number(x) and x > 0
