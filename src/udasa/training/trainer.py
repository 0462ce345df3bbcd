"""Staged DPO: one TRL ``DPOTrainer`` per curriculum stage, each starting from the previous stage.

Layout of ``out``::

    stage-1-conservative/   HF model folder (safetensors + tokenizer + README.md model card)
    stage-2-moderate/       ... (with LoRA also adapter/, the cumulative adapter)
    stage-3-exploratory/
    final/                  the last stage's weights, with the card of the whole run
    train_log.jsonl         one line per logging step and one per stage end

A stage folder is complete when its marker file (written last) exists; a rerun skips complete
stages and resumes an unfinished one from its last TRL checkpoint (``<stage>/checkpoints``).
Runs unchanged under ``accelerate launch``: the Trainer shards the data, only the main process
writes, and every process waits at a barrier before the next stage reads the weights back.
"""
from __future__ import annotations

import json
import shutil
import time
import warnings
from pathlib import Path

from typing import Callable

from transformers import TrainerCallback

from udasa.errors import InputError
from udasa.faults import failpoint
from udasa.io import JsonlAppender, atomic_write_json, file_sha256
from udasa.resume import check_same_producer
from udasa.models import cache_dir, model_fingerprint, resolve_model_path
from udasa.training.config import TrainConfig
from udasa.training.data import Stage, read_pairs, to_rows, trim_prompt
from udasa.training.fused_head import completion_only_lm_head

MARKER = "udasa_stage.json"  # written last: its presence means the folder is complete
METRICS = ("loss", "rewards/margins", "rewards/accuracies", "rewards/chosen", "rewards/rejected",
           "logps/chosen", "logps/rejected", "learning_rate", "grad_norm")


def check_inputs(pairs_path: str | Path, config: TrainConfig) -> tuple[list[Stage], Path]:
    """Every check that can fail before training: pairs file, stages, model folder, LoRA targets."""
    stages = read_pairs(pairs_path)
    try:
        model_path = resolve_model_path(config.model)
    except InputError as e:
        raise InputError(str(e), field="model") from None
    if config.use_lora:
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM

        from udasa.models import load_checked

        mcfg = load_checked(lambda: AutoConfig.from_pretrained(model_path, trust_remote_code=config.trust_remote_code),
                            model_path, "model config")
        with torch.device("meta"):  # module names without allocating weights
            names = {n.rsplit(".", 1)[-1] for n, _ in AutoModelForCausalLM.from_config(mcfg).named_modules()}
        missing = [m for m in config.lora_target_modules if m not in names]
        if missing:
            linear = sorted(n for n in names if n.endswith("proj") or n in ("lm_head", "fc1", "fc2", "c_attn"))
            raise InputError(f"modules {missing} are not in {model_path} (candidates: {linear})",
                             field="lora_target_modules")
    stages = [s for s in stages if s.label not in config.skip_stages]
    if not stages:
        raise InputError(f"skip_stages {config.skip_stages} leaves no stage of {pairs_path} to train",
                         field="skip_stages")
    for s in stages:
        config.dpo_config(s.label, s.index, "/tmp/udasa-check")  # validates dpo_kwargs against DPOConfig
    return stages, model_path


def train(pairs_path: str | Path, out_dir: str | Path, config: TrainConfig | None = None,
          adapt: Callable[[Path, list[Stage]], list[Stage]] | None = None) -> Path:
    """Train stage by stage on ``pairs_path``; returns the ``final/`` model folder.

    ``adapt(stage_folder, remaining_stages)``, if given, runs after each stage but the last and returns the
    remaining stages with their pairs re-split (the adaptive curriculum); it must be deterministic, since a
    resumed run calls it again after the stages it skips."""
    from accelerate import PartialState

    cfg = config or TrainConfig()
    out = Path(out_dir)
    stages, initial = check_inputs(pairs_path, cfg)
    # the same process group the Trainer will use (gloo on CPU-only machines)
    state = PartialState(cpu=cfg.placement().device.type == "cpu")
    data = {"pairs_file": str(pairs_path), "pairs_sha256": file_sha256(pairs_path),
            "stages": {s.name: {"pairs": len(s.pairs), "fingerprint": s.fingerprint()} for s in stages}}
    run = {"initial_model": str(initial), "initial_fingerprint": model_fingerprint(initial),
           "config": cfg.settings(), "data": data, "world_size": state.num_processes,
           "placement": cfg.placement().describe()}
    run = json.loads(json.dumps(run, default=str))  # as it reads back from run.json
    if state.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        _check_resume(out, run)
    state.wait_for_everyone()

    start_from = initial
    records = []
    remaining = list(stages)
    while remaining:
        stage = remaining.pop(0)
        folder = out / stage.name
        if (folder / MARKER).exists():
            rec = json.loads((folder / MARKER).read_text())
            if rec.get("data_fingerprint") != stage.fingerprint():
                raise InputError(f"stage {stage.name} was trained on other pairs than it would be now; delete the "
                                 "folder or use another --out", path=str(folder))
            records.append(rec)
        else:
            records.append(_train_stage(stage, start_from, initial, folder, out, cfg, run, records))
        start_from = folder
        if adapt is not None and remaining:
            remaining = adapt(folder, remaining)
    final = out / "final"
    if state.is_main_process and not (final / MARKER).exists():
        _write_final(start_from, final, run, records)
    state.wait_for_everyone()
    return final


def _check_resume(out: Path, run: dict) -> None:
    """Refuse to continue a run in ``out`` that was started with other pairs, model or settings."""
    path = out / "run.json"
    if path.exists():
        try:
            old = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise InputError(f"invalid JSON ({e.msg}); delete the folder to start over", path=str(path)) from None
        check_same_producer(old, {k: run[k] for k in ("initial_fingerprint", "config", "data")}, path=out,
                            what="a training run", defaults={"config": TrainConfig().settings()})
    else:
        atomic_write_json(path, run)


def _load(path: Path, cfg: TrainConfig):
    import torch
    from transformers import AutoModelForCausalLM

    from udasa.models import load_checked

    return load_checked(lambda: AutoModelForCausalLM.from_pretrained(
        path, dtype=torch.float32, use_safetensors=True, trust_remote_code=cfg.trust_remote_code), Path(path))


def _policy(start_from: Path, initial: Path, cfg: TrainConfig):
    """The model a stage trains: full weights of the previous stage, or base + the cumulative LoRA adapter."""
    if not cfg.use_lora:
        return _load(start_from, cfg)
    from peft import LoraConfig, PeftModel, get_peft_model

    base = _load(initial, cfg)
    if start_from != initial:
        return PeftModel.from_pretrained(base, start_from / "adapter", is_trainable=True)
    # LoRA's A matrices are drawn from the global RNG, which the Trainer seeds only later: without this, the
    # adapter's start (and every number after it) depended on what the process had done before training
    from transformers import set_seed

    set_seed(cfg.seed)
    return get_peft_model(base, LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                                           target_modules=list(cfg.lora_target_modules), task_type="CAUSAL_LM"))


def _train_stage(stage: Stage, start_from: Path, initial: Path, folder: Path, out: Path, cfg: TrainConfig,
                 run: dict, previous: list[dict]) -> dict:
    from datasets import Dataset
    from transformers import AutoTokenizer
    from transformers.trainer_utils import get_last_checkpoint

    from udasa.training.card import model_card
    from udasa.training.ref_cache import RefLogpCache, UdasaDPOTrainer, tokenization_settings, weights_hash

    t0 = time.time()
    args = cfg.dpo_config(stage.label, stage.index, folder / "checkpoints")
    from udasa.models import load_checked

    tok = load_checked(lambda: AutoTokenizer.from_pretrained(initial, trust_remote_code=cfg.trust_remote_code), initial,
                       "tokenizer")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = _policy(start_from, initial, cfg)
    start_hash = weights_hash(_merged_view(model, cfg.use_lora))
    ref_path = (resolve_model_path(cfg.reference_model) if cfg.reference_model else
                initial if cfg.reference == "initial" else start_from)
    ref_fp = model_fingerprint(ref_path)
    cache = ref_model = None
    if cfg.ref_cache:
        root = Path(cfg.ref_cache_dir) if cfg.ref_cache_dir else cache_dir() / "ref-logps"
        cache = RefLogpCache(root, ref_fp, tokenization_settings(tok, args))
    else:
        ref_model = _load(ref_path, cfg)  # TRL's default: a reference forward at every step
    trace = None
    if cfg.record_batches:
        folder.mkdir(parents=True, exist_ok=True)
        trace = folder / f"batches.rank{args.process_index}.jsonl"
        trace.unlink(missing_ok=True)
    logger = _LogCallback(out / "train_log.jsonl", stage)
    rows = to_rows(stage, _fitter(tok, cfg.max_length) if cfg.trim_long_prompts and cfg.max_length else None)
    trimmed = sum(r["pair_key"] != p["pair_key"] for r, p in zip(rows, stage.pairs))
    with completion_only_lm_head(enabled=not args.torch_compile):  # the reference pass (in the constructor), the steps
        trainer = UdasaDPOTrainer(model=model, ref_model=ref_model, args=args,
                                  train_dataset=Dataset.from_list(rows), processing_class=tok,
                                  callbacks=[logger], ref_cache=cache, ref_loader=lambda: _load(ref_path, cfg),
                                  trace_path=trace)
        trained = len(trainer.train_dataset)  # TRL drops pairs whose prompt alone fills max_length
        if trained == 0:
            raise InputError(f"every pair of stage '{stage.label}' has a prompt of max_length ({cfg.max_length}) "
                             "tokens or more and was dropped by truncation; raise max_length (or, for multi-turn "
                             "prompts, set trim_long_prompts)", field="max_length")
        if trained < len(stage.pairs) and trainer.accelerator.is_main_process:
            hint = "" if cfg.trim_long_prompts else " (or, for multi-turn prompts, set trim_long_prompts)"
            warnings.warn(f"stage '{stage.label}': {len(stage.pairs) - trained} of {len(stage.pairs)} pairs have a "
                          f"prompt of max_length ({cfg.max_length}) tokens or more and are not trained; raise "
                          f"max_length{hint}")
        ckpt = get_last_checkpoint(str(args.output_dir)) if Path(args.output_dir).is_dir() else None
        result = trainer.train(resume_from_checkpoint=ckpt)

    unwrapped = trainer.accelerator.unwrap_model(trainer.model)
    trainer.save_model(str(folder))  # gathers sharded weights (ZeRO-3 / FSDP); writes on the main process only
    end_model = unwrapped.merge_and_unload() if cfg.use_lora else unwrapped
    end_hash = weights_hash(end_model)
    if trace is not None:
        with open(trace, "a") as f:
            f.write(json.dumps({"final_weights": end_hash}) + "\n")
    rec = {"stage": stage.label, "stage_index": stage.index, "folder": stage.name, "pairs": len(stage.pairs),
           "pairs_trained": trained, "prompts_trimmed": trimmed,
           "data_fingerprint": stage.fingerprint(), "init_from": str(start_from),
           "init_fingerprint": model_fingerprint(start_from), "start_weights": start_hash, "end_weights": end_hash,
           "reference": str(ref_path), "reference_fingerprint": ref_fp,
           "ref_cache": trainer.cache_stats.get("train"), "resumed_from_checkpoint": ckpt,
           "dpo": {k: getattr(args, k) for k in ("beta", "learning_rate", "num_train_epochs", "max_steps",
                                                  "loss_type")},
           "steps": trainer.state.global_step, "train_runtime_s": round(result.metrics.get("train_runtime", 0), 2),
           "seconds": round(time.time() - t0, 2), "metrics": logger.summary()}
    if trainer.accelerator.is_main_process:
        if cfg.use_lora:
            (folder / "adapter").mkdir(parents=True, exist_ok=True)
            for f in folder.glob("adapter_*"):  # save_model wrote the adapter; the folder gets merged weights
                f.replace(folder / "adapter" / f.name)
            # TRL loads a frozen copy of a pre-existing adapter as "ref" (unused here: the cache holds the
            # reference) and save_model writes it too; it is not part of the result
            shutil.rmtree(folder / "ref", ignore_errors=True)
            end_model.save_pretrained(folder, safe_serialization=True)
        tok.save_pretrained(folder)
        (folder / "training_args.bin").unlink(missing_ok=True)  # a pickle; the card records the settings
        (folder / "README.md").write_text(model_card(run, previous + [rec], title=f"udasa {stage.name}"))
        with JsonlAppender(out / "train_log.jsonl", key=_log_key) as w:
            w.write([{"event": "stage_end", **rec}])
        shutil.rmtree(folder / "checkpoints", ignore_errors=True)
        atomic_write_json(folder / MARKER, rec)
        failpoint("train.stage")
    trainer.accelerator.wait_for_everyone()
    return rec


def _fitter(tok, max_length: int):
    """For `trim_prompt`: a chat pair's prompt trimmed until prompt + the longer response fit max_length."""
    def tokens(messages: list[dict], response: str) -> int:
        text = tok.apply_chat_template(messages + [{"role": "assistant", "content": response}], tokenize=False)
        return len(tok(text, add_special_tokens=False)["input_ids"])

    return lambda p: trim_prompt(p["messages"], max_length,
                                 lambda m: max(tokens(m, p["chosen"]), tokens(m, p["rejected"])))


def _merged_view(model, use_lora: bool):
    """The plain weights a model stands for: for a PEFT model, a merged copy of base + adapter."""
    if not use_lora:
        return model
    import copy

    return copy.deepcopy(model).merge_and_unload()


def _write_final(last: Path, final: Path, run: dict, records: list[dict]) -> None:
    from udasa.training.card import model_card

    tmp = final.with_name(".final.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(last, tmp, ignore=shutil.ignore_patterns("checkpoints", "batches.rank*", MARKER))
    (tmp / "README.md").write_text(model_card(run, records, title="udasa final model"))
    atomic_write_json(tmp / MARKER, {"from": str(last), "stages": records})
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)


def _log_key(r: dict):
    return (r.get("event"), r.get("stage_index"), r.get("step"))


class _LogCallback(TrainerCallback):
    """Appends each Trainer log line to train_log.jsonl (main process) and keeps the stage's DPO metrics."""

    def __init__(self, path: Path, stage: Stage):
        self.path, self.stage, self.rows = path, stage, []
        self._writer: JsonlAppender | None = None  # opened on the first log line (main process only)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or "loss" not in logs:
            return
        row = {"event": "log", "stage": self.stage.label, "stage_index": self.stage.index, "step": state.global_step,
               "epoch": round(state.epoch or 0, 4), **{k: logs[k] for k in METRICS if k in logs}}
        self.rows.append(row)
        if state.is_world_process_zero:
            self._writer = self._writer or JsonlAppender(self.path, key=_log_key)
            if _log_key(row) not in self._writer.done:  # a resumed stage logs its last steps again
                self._writer.write([row])

    def on_train_end(self, args, state, control, **kwargs):
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def summary(self) -> dict:
        """Mean and last value of each DPO metric over the stage's logged steps."""
        out = {}
        for k in METRICS:
            vals = [r[k] for r in self.rows if k in r]
            if vals:
                out[k] = {"mean": round(sum(vals) / len(vals), 5), "last": round(vals[-1], 5), "n": len(vals)}
        return out
