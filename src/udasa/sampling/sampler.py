"""The sampling stage: prompts in, one JSONL record of n responses per prompt out (resumable)."""
from __future__ import annotations

import itertools
import os
import warnings
from pathlib import Path
from typing import Iterable

from tqdm.auto import tqdm

from udasa.errors import InputError
from udasa.faults import failpoint
from udasa.io import JsonlAppender
from udasa.models import load_policy, model_fingerprint
from udasa.sampling.config import SampleConfig
from udasa.sampling.generate import generate, sample_seed
from udasa.sampling.prompts import read_prompts

WINDOW_BATCHES = 8  # prompts are sorted by length within a window of this many batches (less padding)


def chat_token_ids(tokenizer, messages: list[dict], system_prompt: str | None = None) -> list[int]:
    if system_prompt is not None and messages[0]["role"] != "system":
        messages = [{"role": "system", "content": system_prompt}] + messages
    if getattr(tokenizer, "chat_template", None):
        ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        if not isinstance(ids, list):  # transformers 5 returns a BatchEncoding
            ids = ids["input_ids"]
        return list(ids)
    # no chat template: plain concatenation of the turns
    return tokenizer("\n\n".join(m["content"] for m in messages))["input_ids"]


def stop_token_ids(tokenizer, model) -> set[int]:
    ids = set()
    for src in (tokenizer.eos_token_id, getattr(model.generation_config, "eos_token_id", None)):
        if isinstance(src, int):
            ids.add(src)
        elif isinstance(src, (list, tuple)):
            ids.update(int(i) for i in src)
    for tok in ("<|im_end|>", "<|eot_id|>", "<|endoftext|>"):
        tid = tokenizer.convert_tokens_to_ids(tok) if tok in tokenizer.get_vocab() else None
        if isinstance(tid, int):
            ids.add(tid)
    return ids


class Policy:
    """A loaded model with its tokenizer, and the one method the pipeline needs from it."""

    def __init__(self, model_name: str, trust_remote_code: bool = False, model=None, tokenizer=None):
        self.name = model_name
        if model is None:
            model, tokenizer = load_policy(model_name, trust_remote_code=trust_remote_code)
        self.model, self.tokenizer = model, tokenizer
        self.stop_ids = stop_token_ids(tokenizer, model)
        self.context = int(getattr(model.config, "max_position_embeddings", 2048) or 2048)
        self.truncated = 0

    def encode(self, messages: list[dict], cfg: SampleConfig, plain: bool = False) -> list[int]:
        """Token ids of a chat prompt, or of the text itself when ``plain`` (a continuation prompt)."""
        if plain:
            ids = self.tokenizer(messages[-1]["content"], add_special_tokens=False)["input_ids"]
        else:
            ids = chat_token_ids(self.tokenizer, messages, cfg.system_prompt)
        limit = cfg.max_prompt_tokens or max(1, self.context - cfg.max_new_tokens)
        if len(ids) > limit:
            self.truncated += 1
            warnings.warn(f"prompt of {len(ids)} tokens cut to its last {limit} (context {self.context})")
            ids = ids[-limit:]
        return ids

    def respond(self, prompts: list[dict], cfg: SampleConfig) -> list[dict]:
        """Sample ``cfg.n`` responses for each ``{id, prompt}`` or ``{id, messages}``; returns output records."""
        prompts = [p if "messages" in p else {**p, "messages": [{"role": "user", "content": p["prompt"]}]}
                   for p in prompts]
        plain = [p.get("format") == "plain" for p in prompts]
        encoded = [self.encode(p["messages"], cfg, pl) for p, pl in zip(prompts, plain)]
        seeds = [[sample_seed(cfg.seed, p["id"], j) for j in range(cfg.n)] for p in prompts]
        gens = generate(self.model, encoded, n=cfg.n, max_new_tokens=cfg.max_new_tokens,
                        temperature=cfg.temperature, top_p=cfg.top_p, stop_ids=self.stop_ids,
                        pad_id=self.tokenizer.pad_token_id, seeds=seeds)
        records = []
        for p, ids, samples, pl in zip(prompts, encoded, gens, plain):
            lps = [[round(x, 5) for x in g.token_logprobs] for g in samples]
            texts = [self.tokenizer.decode(g.token_ids, skip_special_tokens=True) for g in samples]
            rec = {
                "id": p["id"],
                "prompt": p.get("prompt", p["messages"][-1]["content"]),
                "messages": p["messages"],
                # a continuation keeps its leading space: prompt + response is the text
                "responses": texts if pl else [t.strip() for t in texts],
                "num_tokens": [len(g.token_ids) for g in samples],
                "logprob_sum": [round(sum(lp), 4) for lp in lps],
                "logprob_mean": [round(sum(lp) / len(lp), 5) if lp else 0.0 for lp in lps],
                "finish_reasons": [g.finish_reason for g in samples],
                "prompt_tokens": len(ids),
            }
            if pl:
                rec["format"] = "plain"
            if cfg.keep_token_logprobs:
                rec["token_logprobs"] = lps
            records.append(rec)
        return records


def _batches(prompts: Iterable[dict], per_batch: int, encode_len) -> Iterable[list[dict]]:
    """Group prompts into batches of similar length, sorting within windows so input streams."""
    it = iter(prompts)
    while window := list(itertools.islice(it, per_batch * WINDOW_BATCHES)):
        window.sort(key=encode_len)
        for i in range(0, len(window), per_batch):
            yield window[i:i + per_batch]


def sample(prompts: str | os.PathLike | Iterable[dict], out: str | os.PathLike, config: SampleConfig | None = None,
           *, policy: Policy | None = None, progress: bool = True, **overrides) -> Path:
    """Draw ``n`` responses per prompt and append one record per prompt to ``out`` (JSONL).

    ``prompts`` is a JSONL path (``{"id","prompt"}`` or ``{"id","messages"}`` per line) or any
    iterable of such dicts, e.g. a ``datasets.Dataset``. Rerunning with the same ``out`` skips
    prompt ids already written, so a killed run continues where it stopped. Keyword overrides
    set `SampleConfig` fields: ``sample("p.jsonl", "s.jsonl", n=8, temperature=0.7)``.
    """
    cfg = config or SampleConfig()
    if overrides:
        cfg = SampleConfig(**{**cfg.__dict__, **overrides})
    if cfg.backend == "vllm":
        from udasa.sampling.vllm_backend import sample_vllm
        return sample_vllm(prompts, out, cfg, progress=progress)

    # First pass validates the whole input (cheap, streaming) so bad input fails before any work.
    total = sum(1 for _ in read_prompts(prompts)) if isinstance(prompts, (str, os.PathLike)) else None
    if total is None:
        prompts = list(read_prompts(prompts))
        total = len(prompts)
        source = prompts
    else:
        source = read_prompts(prompts)

    policy = policy or Policy(cfg.model, trust_remote_code=cfg.trust_remote_code)
    meta = {"model": cfg.model, "model_fingerprint": _fingerprint(cfg.model), "sampling": cfg.settings()}
    with JsonlAppender(out, key="id") as writer:
        _check_compatible(writer, meta, out)
        pending = (p for p in source if p["id"] not in writer.done)
        per_batch = max(1, cfg.batch_size // cfg.n)
        bar = tqdm(total=total, initial=len(writer.done), desc="sampling", unit="prompt", disable=not progress)
        for batch in _batches(pending, per_batch, lambda p: len(p["prompt"])):
            records = policy.respond(batch, cfg)
            writer.write([{**r, **meta} for r in records])
            bar.update(len(batch))
            failpoint("sample.batch")
        bar.close()
    if policy.truncated:
        warnings.warn(f"{policy.truncated} prompts were longer than the context and were cut")
    return Path(out)


def _fingerprint(name: str) -> str | None:
    try:
        return model_fingerprint(name)
    except InputError:  # an in-memory policy whose name is not a folder (tests)
        return None


def _check_compatible(writer: JsonlAppender, meta: dict, out) -> None:
    """Refuse to resume into a file written with another model or other sampling settings."""
    if writer.first is not None:
        old = {k: writer.first.get(k) for k in ("model", "sampling")}
        new = {k: meta[k] for k in ("model", "sampling")}
        if old != new:
            raise InputError(f"already holds samples from other settings {old} (now {new}); "
                             "use another --out or delete it", path=str(out))
