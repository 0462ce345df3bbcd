"""The samples.jsonl record: one builder for every sampling backend (transformers and vLLM)."""
from __future__ import annotations

from udasa.resume import content_hash
from udasa.sampling.config import SampleConfig


def prompt_hash(prompt: dict, cfg: SampleConfig) -> str:
    """What a record was sampled from: the prompt's id, dialogue and format, and the system prompt."""
    return content_hash([prompt["id"], prompt["messages"], prompt.get("format", "chat"), cfg.system_prompt])


def sample_record(prompt: dict, prompt_ids: list[int], texts: list[str], token_logprobs: list[list[float]],
                  finish_reasons: list[str], cfg: SampleConfig) -> dict:
    """One prompt's record. ``prompt`` is a checked prompt (``id``, ``prompt``, ``messages``, optional
    ``format``); ``texts`` are the decoded responses (special tokens skipped), ``token_logprobs`` the
    temperature-1 log-probs of their tokens (end-of-turn token excluded)."""
    plain = prompt.get("format") == "plain"
    lps = [[round(float(x), 5) for x in lp] for lp in token_logprobs]
    rec = {
        "id": prompt["id"],
        "prompt": prompt.get("prompt", prompt["messages"][-1]["content"]),
        "messages": prompt["messages"],
        # a continuation keeps its leading space: prompt + response is the text
        "responses": list(texts) if plain else [t.strip() for t in texts],
        "num_tokens": [len(lp) for lp in lps],
        "logprob_sum": [round(sum(lp), 4) for lp in lps],
        "logprob_mean": [round(sum(lp) / len(lp), 5) if lp else 0.0 for lp in lps],
        "finish_reasons": list(finish_reasons),
        "prompt_tokens": len(prompt_ids),
        "prompt_hash": prompt_hash(prompt, cfg),
    }
    if plain:
        rec["format"] = "plain"
    if prompt.get("spec"):
        rec["spec"] = prompt["spec"]
    if cfg.keep_token_logprobs:
        rec["token_logprobs"] = lps
    return rec
