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
from transformers.cache_utils import DynamicLayer


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
    on which other rows share the batch. Sorting the whole vocabulary is the sampler's largest
    cost after the model itself, so each row sorts only its top ``candidates`` tokens when those
    already hold ``top_p`` of the mass (exactly the same nucleus), then 16x as many; only rows
    whose nucleus is wider still sort everything.
    """
    if temperature <= 0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    u = torch.stack([torch.rand((), generator=g) for g in generators]) if generators else torch.rand(len(logits))
    vocab = probs.shape[-1]
    out = torch.empty(len(probs), dtype=torch.long, device=probs.device)
    rows = torch.arange(len(probs), device=probs.device)
    for k in (candidates, 16 * candidates, vocab):
        k = min(k, vocab)
        if top_p >= 1.0 and k < vocab:
            continue
        sub = probs if len(rows) == len(probs) else probs[rows]
        sorted_p, order = sub.topk(k, dim=-1) if k < vocab else sub.sort(dim=-1, descending=True)
        fits = sorted_p.sum(-1) >= top_p if k < vocab else torch.ones(len(rows), dtype=torch.bool)
        if bool(fits.any()):
            out[rows[fits]] = _nucleus_draw(sorted_p[fits], order[fits], u[rows[fits]], top_p)
        rows = rows[~fits]
        if rows.numel() == 0:
            break
    return out


def _nucleus_draw(sorted_p: torch.Tensor, order: torch.Tensor, u: torch.Tensor, top_p: float) -> torch.Tensor:
    """Inverse-CDF draw inside the nucleus of rows sorted by descending probability."""
    cum = sorted_p.cumsum(dim=-1)
    # keep the smallest prefix whose mass reaches top_p (the token that crosses it included)
    sorted_p = sorted_p.masked_fill(cum - sorted_p >= top_p, 0.0)
    cum = sorted_p.cumsum(dim=-1)
    u = u.to(cum.dtype) * cum[:, -1]
    idx = torch.searchsorted(cum, u.unsqueeze(-1)).clamp_(max=cum.shape[-1] - 1)
    return order.gather(-1, idx).squeeze(-1)


class _PreallocatedLayer(DynamicLayer):
    """A DynamicLayer that writes into a buffer sized for the whole generation.

    transformers' DynamicLayer concatenates the new key/value onto the old ones at every step,
    copying the whole cache each time (15% of decode time here); this layer writes in place and
    hands attention a view of the filled part: the same attention inputs, no copy.
    """

    def __init__(self, capacity: int):
        super().__init__()
        self.capacity, self.length = capacity, 0

    def allocate(self, rows: int, keys: torch.Tensor, values: torch.Tensor) -> None:
        """Zeroed buffers shaped like ``keys``/``values`` (zeros: masked padding must not hold NaN)."""
        self.lazy_initialization(keys, values)
        self.kbuf = keys.new_zeros((rows, keys.shape[1], self.capacity, keys.shape[-1]))
        self.vbuf = values.new_zeros((rows, values.shape[1], self.capacity, values.shape[-1]))

    def write_rows(self, rows: slice, start: int, keys: torch.Tensor, values: torch.Tensor) -> None:
        end = start + keys.shape[-2]
        self.kbuf[rows, :, start:end] = keys
        self.vbuf[rows, :, start:end] = values

    def set_length(self, length: int) -> None:
        self.length = length
        self.keys, self.values = self.kbuf[:, :, :length], self.vbuf[:, :, :length]

    def update(self, key_states, value_states, *args, **kwargs):
        if not self.is_initialized:
            self.allocate(key_states.shape[0], key_states, value_states)
        self.write_rows(slice(None), self.length, key_states, value_states)
        self.set_length(self.length + key_states.shape[-2])
        return self.keys, self.values

    def batch_repeat_interleave(self, repeats: int) -> None:
        if self.is_initialized:
            self.kbuf, self.vbuf = self.kbuf.repeat_interleave(repeats, 0), self.vbuf.repeat_interleave(repeats, 0)
            self.set_length(self.length)

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if self.is_initialized:
            self.kbuf, self.vbuf = self.kbuf[indices], self.vbuf[indices]
            self.set_length(self.length)


def _preallocated_cache(model, capacity: int):
    """A DynamicCache whose plain layers are `_PreallocatedLayer`s (sliding-window ones stay as they are)."""
    from transformers import DynamicCache

    cache = DynamicCache(config=model.config)
    cache.layers = [_PreallocatedLayer(capacity) if type(layer) is DynamicLayer else layer for layer in cache.layers]
    return cache


def _prefill_each(model, cache, prompt_ids: list[list[int]], n: int, device) -> torch.Tensor:
    """Run each prompt alone (no compute spent on padding) and copy its keys/values into the
    left-padded rows of its ``n`` samples in ``cache``. Returns the last logits of every row."""
    from transformers import DynamicCache

    width = max(len(p) for p in prompt_ids)
    logits = []
    for i, p in enumerate(prompt_ids):
        own = DynamicCache(config=model.config)
        out = model(input_ids=torch.tensor([p], dtype=torch.long, device=device), cache=own, use_cache=True,
                    logits_to_keep=1)
        logits.append(out.logits[0, -1])
        for dst, src in zip(cache.layers, own.layers):
            if i == 0:
                dst.allocate(len(prompt_ids) * n, src.keys, src.values)
            dst.write_rows(slice(i * n, (i + 1) * n), width - len(p), src.keys, src.values)
    for layer in cache.layers:
        layer.set_length(width)
    return torch.stack(logits).repeat_interleave(n, dim=0)


def _prefill_padded(model, cache, prompt_ids: list[list[int]], n: int, attn: torch.Tensor, pad_id: int
                    ) -> torch.Tensor:
    """One left-padded batch through the model, its cache then repeated ``n`` times (for cache layers
    `_prefill_each` cannot fill, e.g. sliding-window ones). Returns the last logits of every row."""
    input_ids = torch.full(attn.shape, pad_id, dtype=torch.long)
    for i, p in enumerate(prompt_ids):
        input_ids[i, attn.shape[1] - len(p):] = torch.tensor(p, dtype=torch.long)
    pos = (attn.cumsum(-1) - 1).clamp_(min=0)
    out = model(input_ids=input_ids.to(attn.device), attention_mask=attn, position_ids=pos, cache=cache,
                use_cache=True, logits_to_keep=1)
    cache.batch_repeat_interleave(n)
    return out.logits[:, -1, :].repeat_interleave(n, dim=0)


@torch.inference_mode()
def generate(model, prompt_ids: list[list[int]], *, n: int, max_new_tokens: int, temperature: float,
             top_p: float, stop_ids: set[int], pad_id: int, seeds: list[list[int]] | None = None
             ) -> list[list[Generation]]:
    """Sample ``n`` continuations for each tokenized prompt. Returns ``[prompt][sample]``.

    Each prompt is prefilled once, alone, into the left-padded cache rows of its ``n`` samples.
    ``seeds[i][j]`` seeds sample j of prompt i (None: torch's global generator).
    """
    device = next(model.parameters()).device
    width = max(len(p) for p in prompt_ids)
    attn = torch.zeros((len(prompt_ids), width), dtype=torch.long)
    for i, p in enumerate(prompt_ids):
        attn[i, width - len(p):] = 1
    attn = attn.to(device)
    cache = _preallocated_cache(model, width + max_new_tokens)
    if cache.layers and all(isinstance(layer, _PreallocatedLayer) for layer in cache.layers):
        logits = _prefill_each(model, cache, prompt_ids, n, device)
    else:
        logits = _prefill_padded(model, cache, prompt_ids, n, attn, pad_id)
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
