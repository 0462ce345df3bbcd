"""Batched autoregressive sampling with per-token log-probs, in one short loop.

Why our own loop instead of ``model.generate``: we need the temperature-1 log-prob of every
sampled token (read from the same logits that drove the sampling, no second forward pass),
reproducible draws per (prompt, sample) whatever the batch composition, a prompt prefilled
once and shared by its n samples, and finished rows dropped from the batch as they end.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import torch


@dataclass
class Generation:
    token_ids: list[int] = field(default_factory=list)
    token_logprobs: list[float] = field(default_factory=list)  # log p(token) at temperature 1
    finish_reason: str = "length"  # "stop" (an end-of-turn token) or "length" (max_new_tokens hit)


def sample_seed(seed: int, prompt_id: str, index: int) -> int:
    """A seed for one (prompt, sample) pair, independent of batching and of resume order."""
    digest = hashlib.sha256(f"{seed}\x00{prompt_id}\x00{index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def pick_tokens(logits: torch.Tensor, temperature: float, top_p: float,
                generators: list[torch.Generator] | None, candidates: int = 256) -> torch.Tensor:
    """Choose one token per row: greedy at temperature 0, else nucleus sampling by inverse CDF.

    Each row draws its uniform number from its own generator, so a row's tokens do not depend
    on which other rows share the batch. Sorting the whole vocabulary every step is the
    sampler's largest cost after the model itself, so rows sort only their top ``candidates``
    tokens when those already hold ``top_p`` of the mass (exactly the same nucleus); the rest
    fall back to a full sort.
    """
    if temperature <= 0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    k = min(candidates, probs.shape[-1])
    sorted_p, order = probs.topk(k, dim=-1)  # sorted, descending
    if top_p >= 1.0 or bool((sorted_p.sum(-1) < top_p).any()):
        sorted_p, order = probs.sort(dim=-1, descending=True)
    cum = sorted_p.cumsum(dim=-1)
    # keep the smallest prefix whose mass reaches top_p (the token that crosses it included)
    sorted_p = sorted_p.masked_fill(cum - sorted_p >= top_p, 0.0)
    cum = sorted_p.cumsum(dim=-1)
    u = torch.stack([torch.rand((), generator=g) for g in generators]) if generators else torch.rand(len(logits))
    u = u.to(cum.dtype) * cum[:, -1]
    idx = torch.searchsorted(cum, u.unsqueeze(-1)).clamp_(max=cum.shape[-1] - 1)
    return order.gather(-1, idx).squeeze(-1)


@torch.inference_mode()
def generate(model, prompt_ids: list[list[int]], *, n: int, max_new_tokens: int, temperature: float,
             top_p: float, stop_ids: set[int], pad_id: int, seeds: list[list[int]] | None = None
             ) -> list[list[Generation]]:
    """Sample ``n`` continuations for each tokenized prompt. Returns ``[prompt][sample]``.

    Prompts are left-padded and prefilled once; the KV cache is then repeated ``n`` times.
    ``seeds[i][j]`` seeds sample j of prompt i (None: torch's global generator).
    """
    from transformers import DynamicCache

    device = next(model.parameters()).device
    width = max(len(p) for p in prompt_ids)
    input_ids = torch.full((len(prompt_ids), width), pad_id, dtype=torch.long)
    attn = torch.zeros((len(prompt_ids), width), dtype=torch.long)
    for i, p in enumerate(prompt_ids):
        input_ids[i, width - len(p):] = torch.tensor(p, dtype=torch.long)
        attn[i, width - len(p):] = 1
    input_ids, attn = input_ids.to(device), attn.to(device)
    pos = (attn.cumsum(-1) - 1).clamp_(min=0)

    cache = DynamicCache(config=model.config)
    out = model(input_ids=input_ids, attention_mask=attn, position_ids=pos, cache=cache,
                use_cache=True, logits_to_keep=1)
    logits = out.logits[:, -1, :]
    if n > 1:
        cache.batch_repeat_interleave(n)
        logits = logits.repeat_interleave(n, dim=0)
        attn = attn.repeat_interleave(n, dim=0)
    next_pos = attn.sum(-1)  # position of the next token in each row

    rows = len(prompt_ids) * n
    results = [Generation() for _ in range(rows)]
    gens = None
    if seeds is not None and temperature > 0:
        gens = [torch.Generator().manual_seed(s) for per in seeds for s in per]
    alive = torch.arange(rows)  # global row index of each live batch row
    stop = torch.tensor(sorted(stop_ids), dtype=torch.long, device=device)

    for step in range(max_new_tokens):
        logp = torch.log_softmax(logits.float(), dim=-1)
        tok = pick_tokens(logits, temperature, top_p, [gens[i] for i in alive.tolist()] if gens else None)
        tok_logp = logp.gather(-1, tok.unsqueeze(-1)).squeeze(-1)
        done = torch.isin(tok, stop)
        for r, t, lp, d in zip(alive.tolist(), tok.tolist(), tok_logp.tolist(), done.tolist()):
            g = results[r]
            if d:
                g.finish_reason = "stop"
            else:
                g.token_ids.append(t)
                g.token_logprobs.append(lp)
        if step == max_new_tokens - 1:
            break
        keep = (~done).nonzero().squeeze(-1)
        if keep.numel() == 0:
            break
        if keep.numel() < len(alive):
            cache.batch_select_indices(keep)
            alive, tok, attn, next_pos = alive[keep.cpu()], tok[keep], attn[keep], next_pos[keep]
        attn = torch.cat([attn, attn.new_ones((len(alive), 1))], dim=-1)
        out = model(input_ids=tok.unsqueeze(-1), attention_mask=attn, position_ids=next_pos.unsqueeze(-1),
                    cache=cache, use_cache=True)
        next_pos = next_pos + 1
        logits = out.logits[:, -1, :]

    return [results[i * n:(i + 1) * n] for i in range(len(prompt_ids))]
