"""Reference log-probs computed once and kept on disk, plugged into TRL's own precompute path.

TRL's ``DPOTrainer`` with ``precompute_ref_log_probs=True`` runs the reference model over the
data set once, adds ``ref_chosen_logps`` / ``ref_rejected_logps`` columns, and from then on
reads the reference terms of the loss from the batch instead of running a reference model at
every step. Its own cache is a `datasets` cache file keyed by the tokenized data set's
fingerprint, which changes with every stage and ablation (other pairs, other order), and lives
in a temp folder for in-memory data sets.

We keep TRL's mechanism (same columns, TRL's ``compute_ref_log_probs`` for the numbers) and
replace only the storage: one JSONL table per (reference model fingerprint, tokenization
settings), one row per pair keyed by a content hash of the pair. A stage, a later stage with the
same reference, or an ablation run over the same pairs finds its rows there; only missing rows
are computed, and the reference model is not even loaded when nothing is missing.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable

import torch
from torch.utils.data import DataLoader
from trl import DPOTrainer
from trl.trainer.utils import add_fused_lm_head

from udasa.io import JsonlAppender, atomic_write_json, iter_jsonl


class RefLogpCache:
    """An append-only table ``pair_key -> (ref_chosen_logp, ref_rejected_logp)`` for one reference."""

    def __init__(self, root: str | Path, model_fingerprint: str, settings: dict):
        self.settings = {"model_fingerprint": model_fingerprint, **settings}
        digest = hashlib.sha256(json.dumps(self.settings, sort_keys=True).encode()).hexdigest()[:12]
        self.path = Path(root) / f"{model_fingerprint}-{digest}.jsonl"

    def load(self) -> dict[str, tuple[float, float]]:
        if not self.path.exists():
            return {}
        return {r["key"]: (r["chosen"], r["rejected"]) for _, r in iter_jsonl(self.path, partial_tail_ok=True)
                if r is not None}

    def add(self, keys: list[str], chosen: list[float], rejected: list[float]) -> None:
        meta = self.path.with_suffix(".json")
        if not meta.exists():
            atomic_write_json(meta, self.settings)
        with JsonlAppender(self.path, key="key", wait=True) as w:  # a shared cache: concurrent runs take turns
            w.write([{"key": k, "chosen": c, "rejected": r} for k, c, r in zip(keys, chosen, rejected)
                     if k not in w.done])


def tokenization_settings(tokenizer, args) -> dict:
    """What changes the reference numbers besides the model weights and the pair texts."""
    template = getattr(tokenizer, "chat_template", None) or ""
    return {"max_length": args.max_length, "truncation_mode": args.truncation_mode, "ld_alpha": args.ld_alpha,
            "bf16": bool(args.bf16), "fp16": bool(args.fp16), "vocab": len(tokenizer),
            "chat_template": hashlib.sha256(str(template).encode()).hexdigest()[:12]}


def weights_hash(model) -> str:
    """Content hash of a model's weights (to prove which weights a stage started and ended with)."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


class UdasaDPOTrainer(DPOTrainer):
    """TRL's DPOTrainer with a persistent reference log-prob cache and an optional per-process data trace.

    ``ref_cache`` (a `RefLogpCache`) and ``ref_loader`` (returns the reference model) are used when
    ``args.precompute_ref_log_probs`` is set; otherwise this is TRL's trainer unchanged.
    """

    def __init__(self, *args, ref_cache: RefLogpCache | None = None, ref_loader: Callable | None = None,
                 trace_path: Path | None = None, **kwargs):
        self._udasa_cache, self._ref_loader = ref_cache, ref_loader
        self.cache_stats: dict[str, dict] = {}
        self._trace_path = trace_path
        super().__init__(*args, **kwargs)

    def _precompute_ref_logps(self, dataset, name: str, batch_size: int):
        if self._udasa_cache is None:
            return super()._precompute_ref_logps(dataset, name, batch_size)
        keys = dataset["pair_key"]
        table = self._udasa_cache.load()
        missing = [i for i, k in enumerate(keys) if k not in table]
        if missing:
            self._fill(dataset.select(missing), [keys[i] for i in missing], batch_size)
            table = self._udasa_cache.load()
        self.cache_stats[name] = {"hits": len(keys) - len(missing), "misses": len(missing),
                                  "file": str(self._udasa_cache.path)}
        dataset = dataset.add_column("ref_chosen_logps", [table[k][0] for k in keys])
        return dataset.add_column("ref_rejected_logps", [table[k][1] for k in keys])

    def _fill(self, subset, keys: list[str], batch_size: int) -> None:
        """Run the reference over the missing pairs (sharded across processes) and append them to the cache."""
        ref = self._ref_loader()
        if self.args.disable_dropout:
            ref.eval()
        add_fused_lm_head(ref)
        ref = self.accelerator.prepare_model(ref, evaluation_mode=True)
        loader = self.accelerator.prepare(DataLoader(subset, batch_size=batch_size, collate_fn=self.data_collator,
                                                     shuffle=False))
        chosen, rejected = [], []
        for batch in loader:
            c, r = self.compute_ref_log_probs(ref, batch)
            c, r = self.accelerator.gather_for_metrics((c, r))
            chosen.append(c.float().cpu())
            rejected.append(r.float().cpu())
        if self.accelerator.is_main_process:
            self._udasa_cache.add(keys, torch.cat(chosen).tolist(), torch.cat(rejected).tolist())
        del ref, loader
        self.accelerator.wait_for_everyone()

    def training_step(self, model, inputs, *args, **kwargs):
        if self._trace_path is not None:
            # chosen rows are the first half of the batch; hash each one's tokens to know who saw what
            ids, mask = inputs["input_ids"], inputs["attention_mask"]
            half = ids.shape[0] // 2
            rows = [hashlib.sha1(ids[i][mask[i].bool()].cpu().numpy().tobytes()).hexdigest()[:16]
                    for i in range(half)]
            with open(self._trace_path, "a") as f:
                f.write(json.dumps({"step": self.state.global_step, "examples": rows}) + "\n")
        return super().training_step(model, inputs, *args, **kwargs)
