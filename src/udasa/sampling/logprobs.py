"""Teacher-forced log-probs of given continuations (human answers, multiple-choice options, KL terms).

The sampler records log-probs of what it samples; this scores text it did not sample, in one
batched forward pass per batch of (context, continuation) pairs.
"""
from __future__ import annotations

import torch

from udasa.sampling.sampler import chat_token_ids


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


def response_logprobs(model, tokenizer, messages: list[list[dict]], responses: list[str], *,
                      batch_size: int = 16, system_prompt: str | None = None) -> list[list[float]]:
    """Token log-probs of each assistant ``response`` after its chat ``messages`` (the chat template applied).

    The response is tokenized on its own after the assistant header, which is how the sampler
    would have produced it; the end-of-turn token is not scored (as in the sampler's records).
    """
    contexts = [chat_token_ids(tokenizer, m, system_prompt) for m in messages]
    conts = [tokenizer(r, add_special_tokens=False)["input_ids"] for r in responses]
    return continuation_logprobs(model, contexts, conts, pad_id=tokenizer.pad_token_id, batch_size=batch_size)
