"""The sampling stage: prompts in, one JSONL record of n responses per prompt out (resumable)."""
from __future__ import annotations

import dataclasses

import itertools
import os
import warnings
from pathlib import Path
from typing import Iterable

from tqdm.auto import tqdm

from udasa.errors import InputError
from udasa.faults import failpoint
from udasa.io import JsonlAppender, check_distinct, check_regular_file
from udasa.models import model_fingerprint
from udasa.policy import Policy, check_no_control_tokens
from udasa.sampling.config import SampleConfig
from udasa.sampling.generate import sample_seed
from udasa.sampling.prompts import read_prompts
from udasa.resume import SCHEMAS, check_input_unchanged, check_same_producer
from udasa.sampling.records import prompt_hash, sample_record

WINDOW_BATCHES = 8  # prompts are sorted by length within a window of this many batches (less padding)


def respond(policy: Policy, prompts: list[dict], cfg: SampleConfig) -> list[dict]:
    """Sample ``cfg.n`` responses for each ``{id, prompt}`` or ``{id, messages}``; returns samples.jsonl records."""
    prompts = [p if "messages" in p else {**p, "messages": [{"role": "user", "content": p["prompt"]}]}
               for p in prompts]
    encoded = [policy.encode(p["messages"], plain=p.get("format") == "plain", system_prompt=cfg.system_prompt,
                             max_new_tokens=cfg.max_new_tokens, max_prompt_tokens=cfg.max_prompt_tokens,
                             where=f"prompt {p['id']!r}") for p in prompts]
    seeds = [[sample_seed(cfg.seed, p["id"], j) for j in range(cfg.n)] for p in prompts]
    gens = policy.generate(encoded, seeds, n=cfg.n, max_new_tokens=cfg.max_new_tokens,
                           temperature=cfg.temperature, top_p=cfg.top_p)
    return [sample_record(p, ids, [policy.decode(g.token_ids) for g in samples],
                          [g.token_logprobs for g in samples], [g.finish_reason for g in samples], cfg)
            for p, ids, samples in zip(prompts, encoded, gens)]


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
        cfg = dataclasses.replace(cfg, **overrides)
    if cfg.backend == "vllm":
        from udasa.sampling.vllm_backend import sample_vllm
        return sample_vllm(prompts, out, cfg, progress=progress)

    # A first pass validates the whole input (streaming, cheap) before the model loads, a second one (with the
    # tokenizer) refuses control tokens; only then does any sampling start.
    if isinstance(prompts, (str, os.PathLike)):
        check_distinct(out, prompts=prompts)
        total = sum(1 for _ in read_prompts(prompts))
        source = read_prompts(prompts)
    else:
        source = list(read_prompts(prompts))
        total = len(source)
    check_regular_file(out, must_exist=False)
    policy = policy or Policy(cfg.model, trust_remote_code=cfg.trust_remote_code, device=cfg.device, dtype=cfg.dtype)
    for p in (read_prompts(prompts) if isinstance(prompts, (str, os.PathLike)) else source):
        check_no_control_tokens(policy.tokenizer, p["messages"], f"prompt {p['id']!r}")
    meta = sample_meta(cfg)
    with JsonlAppender(out, key="id", remember=lambda r: r.get("prompt_hash")) as writer:
        check_same_producer(writer.first, meta, path=out, what="samples",
                            defaults={"sampling": SampleConfig().settings()})
        pending = unchanged_pending(source, writer, cfg, out)
        per_batch = max(1, cfg.batch_size // cfg.n)
        bar = tqdm(total=total, initial=len(writer.done), desc="sampling", unit="prompt", disable=not progress)
        for batch in _batches(pending, per_batch, lambda p: len(p["prompt"])):
            records = respond(policy, batch, cfg)
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


def sample_meta(cfg: SampleConfig) -> dict:
    """What every samples record carries about what produced it (compared on resume)."""
    return {"schema": SCHEMAS["samples"], "model": cfg.model, "model_fingerprint": _fingerprint(cfg.model),
            "sampling": cfg.settings()}


def unchanged_pending(prompts: Iterable[dict], writer: JsonlAppender, cfg: SampleConfig, out) -> Iterable[dict]:
    """The prompts still to sample; a prompt already sampled into ``out`` must be the same prompt."""
    for p in prompts:
        if p["id"] in writer.done:
            check_input_unchanged(writer.remembered.get(p["id"]), prompt_hash(p, cfg), path=out, item=p["id"],
                                  what="prompt")
        else:
            yield p
