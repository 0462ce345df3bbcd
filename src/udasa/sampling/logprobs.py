"""Teacher-forced log-probs of given continuations (human answers, multiple-choice options, KL terms).

The sampler records log-probs of what it samples; this scores text it did not sample, in one
batched forward pass per batch of (context, continuation) pairs.
"""
from __future__ import annotations

import torch

from udasa.policy import chat_token_ids


@torch.inference_mode()
def continuation_logprobs(model, contexts: list[list[int]], continuations: list[list[int]], *, pad_id: int,
                          batch_size: int = 16) -> list[list[float]]:
    """log p(continuation token | context, earlier continuation tokens) for each pair, temperature 1.

    Pairs are right-padded and batched by length; an empty continuation gives ``[]``.
    """
    assert len(contexts) == len(continuations)
    device = next(model.parameters()).device
    order = sorted(range(len(contexts)), key=lambda i: len(contexts[i]) + len(continuations[i]))
    out: list[list[float]] = [[] for _ in contexts]
    for start in range(0, len(order), batch_size):
        idx = [i for i in order[start:start + batch_size] if continuations[i]]
        if not idx:
            continue
        seqs = [contexts[i] + continuations[i] for i in idx]
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
        attn = torch.zeros((len(seqs), width), dtype=torch.long)
        for r, s in enumerate(seqs):
            ids[r, :len(s)] = torch.tensor(s)
            attn[r, :len(s)] = 1
        logits = model(input_ids=ids.to(device), attention_mask=attn.to(device)).logits.float()
        logp = torch.log_softmax(logits[:, :-1], dim=-1)
        tok_lp = logp.gather(-1, ids[:, 1:].to(device).unsqueeze(-1)).squeeze(-1)
        for r, i in enumerate(idx):
            c = len(contexts[i])
            out[i] = tok_lp[r, c - 1:c - 1 + len(continuations[i])].tolist()
    return out


@torch.inference_mode()
def continue_from_cache(model, cache, last_logits: torch.Tensor, continuations: list[list[int]], *,
                        pad_id: int) -> list[list[float]]:
    """Per-token log-probs of several continuations of one context already in ``cache``.

    ``last_logits`` are the context's last-position logits (they predict each continuation's first
    token); the cache is repeated once per continuation and all continuations run as one
    right-padded batch. The cache is consumed (extended in place).
    """
    out: list[list[float]] = [[] for _ in continuations]
    idx = [i for i, c in enumerate(continuations) if c]
    if not idx:
        return out
    device = last_logits.device
    first = torch.log_softmax(last_logits.float(), dim=-1)
    conts = [continuations[i] for i in idx]
    k, width, base = len(conts), max(len(c) for c in conts), cache.get_seq_length()
    if width > 1:
        cache.batch_repeat_interleave(k)
        ids = torch.full((k, width - 1), pad_id, dtype=torch.long)
        mask = torch.zeros((k, base + width - 1), dtype=torch.long)
        mask[:, :base] = 1
        for r, c in enumerate(conts):  # feed all but the last token: position j predicts token j + 1
            ids[r, :len(c) - 1] = torch.tensor(c[:-1])
            mask[r, base:base + len(c) - 1] = 1
        pos = torch.arange(base, base + width - 1, device=device).unsqueeze(0).expand(k, -1)
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device), position_ids=pos, cache=cache,
                       use_cache=True).logits.float()
        targets = torch.full((k, width - 1), 0, dtype=torch.long)
        for r, c in enumerate(conts):
            targets[r, :len(c) - 1] = torch.tensor(c[1:])
        tok_lp = (logits.gather(-1, targets.to(device).unsqueeze(-1)).squeeze(-1)
                  - torch.logsumexp(logits, dim=-1)).tolist()
    for r, (i, c) in enumerate(zip(idx, conts)):
        out[i] = [float(first[c[0]])] + (tok_lp[r][:len(c) - 1] if len(c) > 1 else [])
    return out


@torch.inference_mode()
def shared_prefix_logprobs(model, context: list[int], continuations: list[list[int]], *,
                           pad_id: int) -> list[list[float]]:
    """log p of each continuation's tokens after one shared ``context``, which runs once.

    The same numbers as `continuation_logprobs` on (context, continuation) pairs, for the price of one
    context instead of one per continuation (validation items, the contrastive judge).
    """
    from transformers import DynamicCache

    if not any(continuations):
        return [[] for _ in continuations]
    device = next(model.parameters()).device
    cache = DynamicCache(config=model.config)
    out = model(input_ids=torch.tensor([context], device=device), cache=cache, use_cache=True, logits_to_keep=1)
    return continue_from_cache(model, cache, out.logits[0, -1], continuations, pad_id=pad_id)


@torch.inference_mode()
def branched_logprobs(model, prefix: list[int], suffixes: list[list[int]], continuations: list[list[int]], *,
                      pad_id: int) -> list[list[list[float]]]:
    """For each suffix, the log-probs of every continuation after ``prefix + suffix``.

    The prefix (a dialogue) runs once; each suffix (an instruction and the assistant header) runs on a copy
    of its cache; the continuations of a suffix run as one batch. ``[suffix][continuation][token]``.
    """
    import copy

    from transformers import DynamicCache

    device = next(model.parameters()).device
    cache = DynamicCache(config=model.config)
    model(input_ids=torch.tensor([prefix], device=device), cache=cache, use_cache=True, logits_to_keep=1)
    out = []
    for suffix in suffixes:
        branch = copy.deepcopy(cache)
        start = len(prefix)
        last = model(input_ids=torch.tensor([suffix], device=device), cache=branch, use_cache=True, logits_to_keep=1,
                     position_ids=torch.arange(start, start + len(suffix), device=device)[None]).logits[0, -1]
        out.append(continue_from_cache(model, branch, last, continuations, pad_id=pad_id))
    return out


def response_logprobs(model, tokenizer, messages: list[list[dict]], responses: list[str], *,
                      batch_size: int = 16, system_prompt: str | None = None) -> list[list[float]]:
    """Token log-probs of each assistant ``response`` after its chat ``messages`` (the chat template applied).

    The response is tokenized on its own after the assistant header, which is how the sampler
    would have produced it; the end-of-turn token is not scored (as in the sampler's records).
    """
    contexts = [chat_token_ids(tokenizer, m, system_prompt) for m in messages]
    conts = [tokenizer(r, add_special_tokens=False)["input_ids"] for r in responses]
    return continuation_logprobs(model, contexts, conts, pad_id=tokenizer.pad_token_id, batch_size=batch_size)
