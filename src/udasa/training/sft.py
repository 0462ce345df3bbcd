"""Best-of-n baseline: supervised fine-tuning on each prompt's lowest-u response.

The same samples and scores as UDASA, but no pairs and no curriculum: it asks whether the
preference signal (chosen vs rejected) adds anything over imitating the most certain response.
Uses `TrainConfig`'s optimisation fields (learning rate, epochs, batch size, LoRA, seed); the
DPO-only fields (beta, loss type, reference, cache) do not apply.
"""
from __future__ import annotations

import json
import shutil
import time
import warnings
from pathlib import Path

from udasa.errors import InputError
from udasa.io import atomic_write_json, atomic_write_jsonl, iter_jsonl
from udasa.models import model_fingerprint
from udasa.training.config import TrainConfig
from udasa.training.trainer import MARKER, _policy


def best_of_n_rows(scores_path: str | Path, score_key: str = "u") -> list[dict]:
    """One prompt-completion row per prompt: its lowest-score non-empty response (ties: lower index)."""
    rows = []
    for line, rec in iter_jsonl(scores_path, partial_tail_ok=True):
        scores = rec["u"] if score_key == "u" else rec["normalized"][score_key]
        cands = [(s, i) for i, (s, r) in enumerate(zip(scores, rec["responses"])) if r.strip()]
        if not cands:
            continue
        _, best = min(cands)
        plain = rec.get("format") == "plain"
        rows.append({"id": rec["id"], "prompt": rec["prompt"] if plain else rec["messages"],
                     "completion": rec["responses"][best] if plain else
                     [{"role": "assistant", "content": rec["responses"][best]}],
                     "index": best, "score": scores[best]})
    if not rows:
        raise InputError("no prompt has a non-empty response to imitate", path=str(scores_path))
    return rows


def train_best_of_n(scores_path: str | Path, out_dir: str | Path, config: TrainConfig | None = None) -> Path:
    """SFT on the best-of-n responses; writes ``out/final`` (HF model folder) and ``out/train_log.jsonl``."""
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from udasa.models import resolve_model_path

    cfg = config or TrainConfig()
    out, final = Path(out_dir), Path(out_dir) / "final"
    if (final / MARKER).exists():
        return final
    initial = resolve_model_path(cfg.model)
    rows = best_of_n_rows(scores_path)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_jsonl(out / "sft_data.jsonl", rows)
    t0 = time.time()
    args = SFTConfig(output_dir=str(out / "checkpoints"), learning_rate=cfg.learning_rate,
                     num_train_epochs=cfg.num_train_epochs, max_steps=cfg.max_steps,
                     per_device_train_batch_size=cfg.per_device_train_batch_size,
                     gradient_accumulation_steps=cfg.gradient_accumulation_steps, max_length=cfg.max_length,
                     lr_scheduler_type=cfg.lr_scheduler_type, logging_steps=cfg.logging_steps, save_strategy="no",
                     seed=cfg.seed, report_to="none", disable_tqdm=True, completion_only_loss=True,
                     **cfg.precision_args())
    from udasa.models import load_checked

    tok = load_checked(lambda: AutoTokenizer.from_pretrained(initial, trust_remote_code=cfg.trust_remote_code), initial,
                       "tokenizer")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = _policy(initial, initial, cfg)
    data = Dataset.from_list([{"prompt": r["prompt"], "completion": r["completion"]} for r in rows])
    trainer = SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tok)
    kept = len(trainer.train_dataset)  # TRL drops an example whose prompt alone fills max_length
    if kept < len(rows) and trainer.accelerator.is_main_process:
        warnings.warn(f"{len(rows) - kept} of {len(rows)} best-of-n prompts fill max_length ({cfg.max_length}) tokens "
                      "and are not trained; raise max_length")
    result = trainer.train()
    model = trainer.accelerator.unwrap_model(trainer.model)
    if cfg.use_lora:
        model = model.merge_and_unload()
    tmp = out / ".final.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tok.save_pretrained(tmp)
    logs = [h for h in trainer.state.log_history if "loss" in h]
    rec = {"method": "sft-best-of-n", "prompts": len(rows), "prompts_trained": kept, "initial_model": str(initial),
           "initial_fingerprint": model_fingerprint(initial), "steps": trainer.state.global_step,
           "train_runtime_s": round(result.metrics.get("train_runtime", 0), 2), "seconds": round(time.time() - t0, 2),
           "final_loss": logs[-1]["loss"] if logs else None}
    with open(out / "train_log.jsonl", "w") as f:
        for h in logs:
            f.write(json.dumps({"event": "log", **h}) + "\n")
        f.write(json.dumps({"event": "end", **rec}) + "\n")
    (tmp / "README.md").write_text(
        f"# udasa best-of-n SFT baseline\n\nSupervised fine-tuning of `{cfg.model}` on the lowest-u response of each "
        f"of {len(rows)} prompts (`{scores_path}`).\n\n```json\n{json.dumps(rec, indent=2)}\n```\n")
    atomic_write_json(tmp / MARKER, rec)
    tmp.rename(final)
    return final
