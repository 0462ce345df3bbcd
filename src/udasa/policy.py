"""The policy: a loaded causal LM, its tokenizer and device, and the three things stages ask of it.

Sampling, evaluation, validation and the policy judge all go through `Policy`:

- ``encode``: token ids of a chat prompt (the chat template applied) or of a plain text to continue;
  user text never becomes control tokens (see `check_no_control_tokens`);
- ``generate``: n sampled (or greedy) continuations per prompt with their temperature-1 log-probs;
- ``logprobs``: teacher-forced log-probs of given continuations.
"""
from __future__ import annotations

import warnings

from udasa.device import Placement
from udasa.errors import InputError
from udasa.models import load_policy


def chat_token_ids(tokenizer, messages: list[dict], system_prompt: str | None = None) -> list[int]:
    """Token ids of ``messages`` through the chat template, ending with the assistant header."""
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


def control_tokens(tokenizer) -> list[str]:
    """The tokenizer's special and added control strings (e.g. ``<|im_start|>``), longest first."""
    names = set(getattr(tokenizer, "all_special_tokens", []) or [])
    for tok in (getattr(tokenizer, "added_tokens_decoder", None) or {}).values():
        if getattr(tok, "special", False):
            names.add(str(tok))
    return sorted((n for n in names if n), key=len, reverse=True)


def check_no_control_tokens(tokenizer, messages: list[dict], where: str = "") -> None:
    """Refuse message text that spells a control token: the chat template would turn it into a real turn
    boundary (a prompt could then write the assistant's part itself)."""
    specials = control_tokens(tokenizer)
    for j, m in enumerate(messages):
        for s in specials:
            if s in m["content"]:
                raise InputError(f"contains the control token {s!r}; user text cannot hold the model's control "
                                 f"tokens{' (' + where + ')' if where else ''}", field=f"messages[{j}].content")


class Policy:
    """A causal LM on one device, with its tokenizer."""

    def __init__(self, model_name: str, trust_remote_code: bool = False, model=None, tokenizer=None, *,
                 device: str = "auto", dtype: str = "auto"):
        self.name = model_name
        if model is None:
            self.placement = Placement.of(device, dtype)
            model, tokenizer = load_policy(model_name, trust_remote_code=trust_remote_code,
                                           dtype=self.placement.describe()["dtype"])
            model.to(self.placement.device)
        else:  # an in-memory model (tests, benchmarks): it stays where it is
            p = next(model.parameters())
            self.placement = Placement(p.device, p.dtype)
        self.model, self.tokenizer = model, tokenizer
        self.stop_ids = stop_token_ids(tokenizer, model)
        self.context = int(getattr(model.config, "max_position_embeddings", 2048) or 2048)
        self.truncated = 0

    @property
    def device(self):
        return self.placement.device

    def encode(self, messages: list[dict], *, plain: bool = False, system_prompt: str | None = None,
               max_new_tokens: int = 0, max_prompt_tokens: int | None = None, where: str = "") -> list[int]:
        """Token ids of a chat prompt, or of the text itself when ``plain`` (a continuation prompt).

        Prompts longer than ``max_prompt_tokens`` (default: the context minus ``max_new_tokens``) are cut
        from the left with a warning, keeping the question's end and the assistant header.
        """
        check_no_control_tokens(self.tokenizer, messages, where)
        if plain:
            ids = self.tokenizer(messages[-1]["content"], add_special_tokens=False)["input_ids"]
        else:
            ids = chat_token_ids(self.tokenizer, messages, system_prompt)
        limit = max_prompt_tokens or max(1, self.context - max_new_tokens)
        if len(ids) > limit:
            self.truncated += 1
            warnings.warn(f"prompt of {len(ids)} tokens cut to its last {limit} (context {self.context})")
            ids = ids[-limit:]
        return ids

    def generate(self, prompt_ids: list[list[int]], seeds: list[list[int]] | None, *, n: int, max_new_tokens: int,
                 temperature: float, top_p: float):
        """``[prompt][sample]`` `Generation`s (token ids, temperature-1 log-probs, finish reason)."""
        from udasa.sampling.generate import generate

        return generate(self.model, prompt_ids, n=n, max_new_tokens=max_new_tokens, temperature=temperature,
                        top_p=top_p, stop_ids=self.stop_ids, pad_id=self.tokenizer.pad_token_id, seeds=seeds)

    def logprobs(self, contexts: list[list[int]], continuations: list[list[int]], batch_size: int = 16):
        """Teacher-forced log p(token) of each continuation after its context (temperature 1)."""
        from udasa.sampling.logprobs import continuation_logprobs

        return continuation_logprobs(self.model, contexts, continuations, pad_id=self.tokenizer.pad_token_id,
                                     batch_size=batch_size)

    def decode(self, token_ids: list[int]) -> str:
        return self.tokenizer.decode(token_ids, skip_special_tokens=True)
