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
from udasa.sampling.generate import sample_seed
from udasa.sampling.prompts import read_prompts
from udasa.sampling.sampler import _check_compatible, _fingerprint, chat_token_ids


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
    meta = {"model": cfg.model, "model_fingerprint": _fingerprint(cfg.model), "sampling": cfg.settings()}
    with JsonlAppender(out, key="id") as writer:
        _check_compatible(writer, meta, out)
        pending = [p for p in prompts if p["id"] not in writer.done]
        if not pending:
            return Path(out)
        llm = vllm.LLM(model=path, seed=cfg.seed, trust_remote_code=cfg.trust_remote_code)
        tok = llm.get_tokenizer()
        context = llm.llm_engine.model_config.max_model_len
        limit = cfg.max_prompt_tokens or max(1, context - cfg.max_new_tokens)
        encoded = []
        for p in pending:
            ids = chat_token_ids(tok, p["messages"], cfg.system_prompt)
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


def _record(p: dict, ids: list[int], out, cfg: SampleConfig) -> dict:
    lps = []
    for c in out.outputs:
        # one {token_id: Logprob} dict per generated token; the sampled token is always included
        lp = [round(step[t].logprob, 5) for t, step in zip(c.token_ids, c.logprobs or [])]
        if c.finish_reason == "stop" and c.stop_reason is None and lp:
            lp = lp[:-1]  # stopped by the end-of-turn token: excluded, as the hf backend does
        lps.append(lp)
    rec = {
        "id": p["id"], "prompt": p["prompt"], "messages": p["messages"],
        "responses": [c.text.strip() for c in out.outputs],
        "num_tokens": [len(lp) for lp in lps],
        "logprob_sum": [round(sum(lp), 4) for lp in lps],
        "logprob_mean": [round(sum(lp) / len(lp), 5) if lp else 0.0 for lp in lps],
        "finish_reasons": ["stop" if c.finish_reason == "stop" else "length" for c in out.outputs],
        "prompt_tokens": len(ids),
    }
    if cfg.keep_token_logprobs:
        rec["token_logprobs"] = lps
    return rec
