"""Optional vLLM sampling backend (``pip install udasa[vllm]``, GPU): same samples.jsonl schema as "hf".

What differs from the transformers backend: vLLM draws its own random numbers (one seed per
prompt, shared by its n samples), so the texts are other draws from the same distribution, not
the same texts. ``token_logprobs`` are vLLM's raw log-probs of the sampled tokens (before
temperature and top-p), i.e. log p(token) at temperature 1, as the "hf" backend records.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Iterable

from udasa.errors import InputError
from udasa.io import JsonlAppender
from udasa.models import resolve_model_path
from udasa.sampling.config import SampleConfig
from udasa.policy import chat_token_ids, check_no_control_tokens
from udasa.sampling.generate import sample_seed
from udasa.sampling.prompts import read_prompts
from udasa.sampling.records import sample_record
from udasa.resume import check_same_producer
from udasa.sampling.sampler import sample_meta, unchanged_pending


def _import_vllm():
    try:
        import vllm
    except ImportError:
        raise InputError("backend 'vllm' needs the vllm package (GPU): pip install 'udasa[vllm]'",
                         field="backend") from None
    return vllm


def sample_vllm(prompts: str | os.PathLike | Iterable[dict], out: str | os.PathLike, cfg: SampleConfig, *,
                progress: bool = True) -> Path:
    """The vLLM version of `udasa.sampling.sample` (resumable the same way)."""
    vllm = _import_vllm()
    prompts = list(read_prompts(prompts))  # validates everything before the engine starts
    path = str(resolve_model_path(cfg.model))
    meta = sample_meta(cfg)
    with JsonlAppender(out, key="id", remember=lambda r: r.get("prompt_hash")) as writer:
        check_same_producer(writer.first, meta, path=out, what="samples")
        pending = list(unchanged_pending(prompts, writer, cfg, out))
        if not pending:
            return Path(out)
        llm = vllm.LLM(model=path, seed=cfg.seed, trust_remote_code=cfg.trust_remote_code, dtype=cfg.dtype)
        tok = llm.get_tokenizer()
        context = llm.llm_engine.model_config.max_model_len
        limit = cfg.max_prompt_tokens or max(1, context - cfg.max_new_tokens)
        encoded = []
        for p in pending:
            ids = vllm_prompt_ids(tok, p, cfg)
            if len(ids) > limit:
                warnings.warn(f"prompt of {len(ids)} tokens cut to its last {limit}")
                ids = ids[-limit:]
            encoded.append(ids)
        params = [vllm.SamplingParams(n=cfg.n, temperature=cfg.temperature, top_p=cfg.top_p,
                                      max_tokens=cfg.max_new_tokens, logprobs=0,
                                      seed=sample_seed(cfg.seed, p["id"], 0) % (2 ** 31))
                  for p in pending]
        step = max(1, cfg.batch_size)  # write every `batch_size` prompts so a killed run loses little
        for start in range(0, len(pending), step):
            chunk = slice(start, start + step)
            outs = llm.generate([{"prompt_token_ids": ids} for ids in encoded[chunk]], params[chunk],
                                use_tqdm=progress)
            writer.write([{**_record(p, ids, o, cfg), **meta}
                          for p, ids, o in zip(pending[chunk], encoded[chunk], outs)])
    return Path(out)


def vllm_prompt_ids(tokenizer, prompt: dict, cfg: SampleConfig) -> list[int]:
    """The same prompt tokens as the transformers backend: chat template, or the plain text as is."""
    check_no_control_tokens(tokenizer, prompt["messages"], f"prompt {prompt['id']!r}")
    if prompt.get("format") == "plain":
        return tokenizer(prompt["messages"][-1]["content"], add_special_tokens=False)["input_ids"]
    return chat_token_ids(tokenizer, prompt["messages"], cfg.system_prompt)


def _record(p: dict, ids: list[int], out, cfg: SampleConfig) -> dict:
    """vLLM's RequestOutput -> the native samples.jsonl record (`sample_record`)."""
    lps = []
    for c in out.outputs:
        # one {token_id: Logprob} dict per generated token; the sampled token is always included
        lp = [step[t].logprob for t, step in zip(c.token_ids, c.logprobs or [])]
        if c.finish_reason == "stop" and c.stop_reason is None and lp:
            lp = lp[:-1]  # stopped by the end-of-turn token: excluded, as the hf backend does
        lps.append(lp)
    finish = ["stop" if c.finish_reason == "stop" else "length" for c in out.outputs]
    return sample_record(p, ids, [c.text for c in out.outputs], lps, finish, cfg)
