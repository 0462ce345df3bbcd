"""Contrastive value estimator: the policy's own likelihood of a response under opposite instructions.

For each principle k of a spec with a ``contrast`` pair (an instruction to follow the principle and
one to violate it), and each response y to prompt x::

    m_k(y) = mean_t log p(y_t | follow_k, x, y_<t)  -  mean_t log p(y_t | violate_k, x, y_<t)
    P_k(y) = sigmoid(m_k(y) / T),      P_contrast(y) = mean_k P_k(y)

A response the policy finds more likely when told to follow the principle than when told to
violate it conforms (DLMA's contrastive self-rewarding, Liu et al. 2024, with per-token means so
that length does not decide). For chat prompts the instruction is a system message placed after
the dialogue, right before the answer; for plain-text prompts (a review opening to continue) it is a
preamble before the text, separated by a blank line.

Cost: the dialogue runs once per prompt; each (principle, side) runs only its instruction on a copy
of the dialogue's KV cache, and the prompt's n responses then run as one batch on it
(`branched_logprobs`). Responses are judged on their first `max_response` tokens.
"""
from __future__ import annotations

import numpy as np

class ContrastiveJudge:
    """``max_context``: the last tokens of instruction + prompt kept (the end holds the request being answered);
    ``max_response``: the first tokens of each response judged. Both bound the cost of long dialogues."""

    def __init__(self, policy, spec, temperature: float = 0.1, max_context: int = 128, max_response: int = 24):
        if not spec.has_contrast:
            from udasa.errors import InputError

            raise InputError(f"spec '{spec.name}' has no 'contrast' prompts for every principle ({spec.source}); "
                             "add them or set contrast_weight: 0", field="contrast_weight")
        self.policy, self.spec, self.temperature = policy, spec, temperature
        self.max_context, self.max_response = max_context, max_response

    def _contexts(self, record: dict) -> tuple[list[int], list[list[int]]]:
        """(a prefix shared by every instruction, one suffix per (principle, side) in order follow_1, violate_1,
        follow_2, ...): the full context of a variant is prefix + suffix."""
        tok = self.policy.tokenizer
        instructions = [i for p in self.spec.principles for i in (p.follow, p.violate)]
        if record.get("format") == "plain":  # a preamble frames the text: nothing before it to share
            return [], [tok(f"{i}\n\n{record['prompt']}", add_special_tokens=False)["input_ids"][-self.max_context:]
                        for i in instructions]
        from udasa.policy import chat_token_ids

        turns = [m for m in record["messages"] if m["role"] != "system"]
        prefix = tok.apply_chat_template(turns, add_generation_prompt=False, tokenize=True)
        prefix = list(prefix if isinstance(prefix, list) else prefix["input_ids"])
        # the instruction comes as a system message after the dialogue, right before the answer, so that the
        # dialogue (the long part) is computed once for every principle and side
        full = [chat_token_ids(tok, turns + [{"role": "system", "content": i}]) for i in instructions]
        if not all(f[:len(prefix)] == prefix for f in full):  # a template that renders otherwise: no sharing
            return [], [f[-self.max_context:] for f in full]
        keep = max(1, self.max_context - max(len(f) - len(prefix) for f in full))
        return prefix[max(0, len(prefix) - keep):], [f[len(prefix):] for f in full]

    def margins(self, records: list[dict]) -> list[np.ndarray]:
        """Per record, the (n responses, K principles) array of mean log-prob margins m_k (nats per token)."""
        from udasa.sampling.logprobs import branched_logprobs, shared_prefix_logprobs

        tok = self.policy.tokenizer
        out = []
        for r in records:
            conts = [tok(y, add_special_tokens=False)["input_ids"][:self.max_response] for y in r["responses"]]
            prefix, suffixes = self._contexts(r)
            if prefix:
                lps = branched_logprobs(self.policy.model, prefix, suffixes, conts, pad_id=tok.pad_token_id)
            else:
                lps = [shared_prefix_logprobs(self.policy.model, s, conts, pad_id=tok.pad_token_id) for s in suffixes]
            means = np.array([[float(np.mean(x)) if x else 0.0 for x in per] for per in lps])  # (2K, n)
            out.append((means[0::2] - means[1::2]).T)
        return out

    def probs(self, records: list[dict]) -> list[np.ndarray]:
        """Per record, P_contrast per response: the mean over principles of sigmoid(m_k / T)."""
        return [contrast_probability(m, self.temperature) for m in self.margins(records)]


def contrast_probability(margins: np.ndarray, temperature: float) -> np.ndarray:
    """mean_k sigmoid(m_k / T) for an (n, K) array of margins."""
    return (1.0 / (1.0 + np.exp(-np.asarray(margins, dtype=float) / temperature))).mean(axis=1)
