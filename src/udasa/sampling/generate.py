"""Batched autoregressive sampling with per-token log-probs, in one short loop.

Why our own loop instead of ``model.generate``: we need the temperature-1 log-prob of every
sampled token (read from the same logits that drove the sampling, no second forward pass),
reproducible draws per (prompt, sample) whatever the batch composition, a prompt prefilled
once and shared by its n samples, and finished rows dropped from the batch as they end.

Random numbers are counter-based: the uniform number that draws token t of a row is a hash of
(the row's seed, t), computed with integer tensor ops on the model's device. Draws therefore do
not depend on which rows share a batch, need no per-row generator objects (no Python work per
row and step), and are the same integers on every device.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import torch
from transformers.cache_utils import DynamicLayer

_MASK32 = 0xFFFFFFFF


@dataclass
class Generation:
    token_ids: list[int] = field(default_factory=list)
    token_logprobs: list[float] = field(default_factory=list)  # log p(token) at temperature 1
    finish_reason: str = "length"  # "stop" (an end-of-turn token) or "length" (max_new_tokens hit)


def sample_seed(seed: int, prompt_id: str, index: int) -> int:
    """A seed for one (prompt, sample) pair, independent of batching and of resume order."""
    digest = hashlib.sha256(f"{seed}\x00{prompt_id}\x00{index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def _mul32(x: torch.Tensor, c: int) -> torch.Tensor:
    """(x * c) mod 2**32 for x in [0, 2**32), split in 16-bit halves so no int64 product overflows."""
    return (x * (c & 0xFFFF) + (((x * (c >> 16)) & 0xFFFF) << 16)) & _MASK32


def _mix32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer finaliser (Wellons' "lowbias32"): every input bit flips about half the output bits."""
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def counter_uniform(keys: torch.Tensor, step: int) -> torch.Tensor:
    """One uniform number in [0, 1) per row (float64, 53 random bits) from its 63-bit seed and the step.

    A pure function of (key, step): the same on CPU and GPU and for any batch the row sits in.
    """
    lo, hi = keys & _MASK32, (keys >> 32) & _MASK32
    s = _mix32(torch.full_like(lo, (step * 0x9E3779B9 + 0x7F4A7C15) & _MASK32))
    h1 = _mix32(lo ^ _mix32(hi ^ s))
    h2 = _mix32(h1 ^ 0x85EBCA6B)
    return ((h1 >> 5) * (1 << 26) + (h2 >> 6)).to(torch.float64) * 2.0 ** -53


def pick_tokens(logits: torch.Tensor, temperature: float, top_p: float, u: torch.Tensor | None = None,
                candidates: int = 256) -> torch.Tensor:
    """Choose one token per row: greedy at temperature 0, else nucleus sampling by inverse CDF.

    ``u`` holds each row's uniform number (from `counter_uniform`; None draws from torch's global
    generator). Sorting the whole vocabulary is the sampler's largest cost after the model itself,
    so each row sorts only its top ``candidates`` tokens when those already hold ``top_p`` of the
    mass (exactly the same nucleus), then 16x as many; only rows whose nucleus is wider still sort
    everything.
    """
    if temperature <= 0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    u = torch.rand(len(logits), dtype=torch.float64, device=logits.device) if u is None else u.to(logits.device)
    vocab = probs.shape[-1]
    out = torch.empty(len(probs), dtype=torch.long, device=probs.device)
    rows = torch.arange(len(probs), device=probs.device)
    for k in (candidates, 16 * candidates, vocab):
        k = min(k, vocab)
        if top_p >= 1.0 and k < vocab:
            continue
        sub = probs if len(rows) == len(probs) else probs[rows]
        sorted_p, order = sub.topk(k, dim=-1) if k < vocab else sub.sort(dim=-1, descending=True)
        fits = sorted_p.sum(-1) >= top_p if k < vocab else torch.ones(len(rows), dtype=torch.bool,
                                                                        device=probs.device)
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
             top_p: float, stop_ids: set[int], pad_id: int, seeds: list[list[int]] | None = None,
             static: bool | None = None) -> list[list[Generation]]:
    """Sample ``n`` continuations for each tokenized prompt. Returns ``[prompt][sample]``.

    Two decode paths draw the same tokens (the same counter-based draws, up to float rounding):
    the dynamic one (the CPU default) prefills each prompt once, alone, into the left-padded cache rows
    of its ``n`` samples and drops finished rows from the batch; the static one (``static``, the GPU
    default) keeps every shape fixed (a `StaticCache`, finished rows masked instead of dropped) so that
    the decode step can be captured as a CUDA graph (`static_decoder`). ``seeds[i][j]`` seeds sample j
    of prompt i (None: torch's global generator). Tokens and log-probs stay in tensors on the model's
    device until the end: neither loop does any work per row.
    """
    device = next(model.parameters()).device
    if static if static is not None else device.type == "cuda":
        return _generate_static(model, prompt_ids, n=n, max_new_tokens=max_new_tokens, temperature=temperature,
                                top_p=top_p, stop_ids=stop_ids, pad_id=pad_id, seeds=seeds)
    width = max(len(p) for p in prompt_ids)
    rows = len(prompt_ids) * n
    # the mask of every position a row will ever attend to; each step passes the filled prefix
    attn = torch.zeros((len(prompt_ids), width + max_new_tokens), dtype=torch.long)
    for i, p in enumerate(prompt_ids):
        attn[i, width - len(p):] = 1
    attn = attn.to(device)
    cache = _preallocated_cache(model, width + max_new_tokens)
    if cache.layers and all(isinstance(layer, _PreallocatedLayer) for layer in cache.layers):
        logits = _prefill_each(model, cache, prompt_ids, n, device)
    else:
        logits = _prefill_padded(model, cache, prompt_ids, n, attn[:, :width], pad_id)
    attn = attn.repeat_interleave(n, dim=0)
    next_pos = attn[:, :width].sum(-1)  # position of the next token in each row

    out = _Outputs(rows, max_new_tokens, seeds, temperature, stop_ids, pad_id, device)
    alive = torch.arange(rows, device=device)  # global row index of each live batch row
    for step in range(max_new_tokens):
        tok, done = out.step(logits, step, alive, temperature, top_p)
        if step == max_new_tokens - 1:
            break
        keep = (~done).nonzero().squeeze(-1)
        if keep.numel() == 0:
            break
        if keep.numel() < len(alive):
            cache.batch_select_indices(keep)
            alive, tok, attn, next_pos = alive[keep], tok[keep], attn[keep], next_pos[keep]
        logits = model(input_ids=tok.unsqueeze(-1), attention_mask=attn[:, :width + step + 1],
                       position_ids=next_pos.unsqueeze(-1), cache=cache, use_cache=True).logits[:, -1, :]
        next_pos = next_pos + 1
    return out.results(n, len(prompt_ids))


class _Outputs:
    """What one `generate` call draws and keeps, per row, on the device: the draw keys, the tokens, their
    temperature-1 log-probs, the response lengths and which rows ended with a stop token."""

    def __init__(self, rows: int, max_new_tokens: int, seeds, temperature: float, stop_ids: set[int], pad_id: int,
                 device):
        self.keys = None
        if seeds is not None and temperature > 0:
            self.keys = torch.tensor([s for per in seeds for s in per], dtype=torch.long, device=device)
        self.pad_id, self.max_new_tokens = pad_id, max_new_tokens
        self.tokens = torch.full((rows, max_new_tokens), pad_id, dtype=torch.long, device=device)
        self.logps = torch.zeros((rows, max_new_tokens), dtype=torch.float32, device=device)
        self.lengths = torch.full((rows,), max_new_tokens, dtype=torch.long, device=device)
        self.done = torch.zeros(rows, dtype=torch.bool, device=device)
        self.stop = torch.tensor(sorted(stop_ids), dtype=torch.long, device=device)

    def step(self, logits: torch.Tensor, step: int, rows: torch.Tensor, temperature: float, top_p: float):
        """Draw token ``step`` for the batch rows ``rows`` (global indices); rows already done draw padding.
        Returns the tokens and which of these rows are done now."""
        logits = logits.float()
        tok = pick_tokens(logits, temperature, top_p,
                          counter_uniform(self.keys[rows], step) if self.keys is not None else None)
        was_done = self.done[rows]
        tok = torch.where(was_done, torch.full_like(tok, self.pad_id), tok)
        self.tokens[rows, step] = tok
        self.logps[rows, step] = logits.gather(-1, tok.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)
        ended = torch.isin(tok, self.stop) & ~was_done
        self.lengths[rows[ended]] = step  # the end-of-turn token is not part of the response
        self.done[rows[ended]] = True
        return tok, self.done[rows]

    def results(self, n: int, prompts: int) -> list[list[Generation]]:
        tokens, logps = self.tokens.cpu().tolist(), self.logps.cpu().tolist()
        stopped = (self.lengths < self.max_new_tokens).tolist()
        results = [Generation(tokens[r][:k], logps[r][:k], "stop" if s else "length")
                   for r, (k, s) in enumerate(zip(self.lengths.tolist(), stopped))]
        return [results[i * n:(i + 1) * n] for i in range(prompts)]


_DECODERS: dict = {}  # (model id, rows, cache length) -> compiled decode step


def static_decoder(model, compile_step: bool):
    """The decode step ``(tokens, positions, mask, cache position, cache) -> last logits``; on a GPU compiled
    with ``torch.compile(mode="reduce-overhead")``, i.e. replayed as a CUDA graph (shapes never change)."""
    def step(tok, pos, mask, cache_position, cache):
        return model(input_ids=tok, position_ids=pos, attention_mask=mask, cache_position=cache_position,
                     cache=cache, use_cache=True).logits[:, -1, :]

    if not compile_step:
        return step
    key = id(model)
    if key not in _DECODERS:
        _DECODERS[key] = torch.compile(step, mode="reduce-overhead", fullgraph=False)
    return _DECODERS[key]


def _generate_static(model, prompt_ids: list[list[int]], *, n: int, max_new_tokens: int, temperature: float,
                     top_p: float, stop_ids: set[int], pad_id: int, seeds: list[list[int]] | None
                     ) -> list[list[Generation]]:
    """Fixed shapes end to end: rows = prompts x n, cache length = longest prompt + budget; finished rows keep
    running (masked) so that the decode step is one graph."""
    from transformers import StaticCache

    device = next(model.parameters()).device
    width = max(len(p) for p in prompt_ids)
    rows, length = len(prompt_ids) * n, width + max_new_tokens
    ids = torch.full((rows, width), pad_id, dtype=torch.long)
    mask = torch.ones((rows, length), dtype=torch.long)  # pads 0; the causal mask hides positions not yet written
    for i, p in enumerate(prompt_ids):
        ids[i * n:(i + 1) * n, width - len(p):] = torch.tensor(p, dtype=torch.long)
        mask[i * n:(i + 1) * n, :width - len(p)] = 0
    ids, mask = ids.to(device), mask.to(device)
    pos = (mask[:, :width].cumsum(-1) - 1).clamp_(min=0)
    cache = StaticCache(config=model.config, max_cache_len=length)
    logits = model(input_ids=ids, attention_mask=mask, position_ids=pos, cache=cache, use_cache=True,
                   cache_position=torch.arange(width, device=device), logits_to_keep=1).logits[:, -1, :]
    next_pos = pos[:, -1] + 1
    decode = static_decoder(model, compile_step=device.type == "cuda")

    out = _Outputs(rows, max_new_tokens, seeds, temperature, stop_ids, pad_id, device)
    every = torch.arange(rows, device=device)
    for step in range(max_new_tokens):
        tok, done = out.step(logits, step, every, temperature, top_p)
        if step == max_new_tokens - 1 or (step % 8 == 7 and bool(done.all())):  # one host sync every 8 steps
            break
        logits = decode(tok.unsqueeze(-1), next_pos.unsqueeze(-1), mask,
                        torch.tensor([width + step], device=device), cache)
        next_pos = next_pos + 1
    return out.results(n, len(prompt_ids))
