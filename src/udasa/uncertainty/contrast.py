"""Contrastive value estimator: the policy's own likelihood of a response under opposite instructions.

For each principle k of a spec with a ``contrast`` pair (an instruction to follow the principle and
one to violate it), and each response y to prompt x::

    m_k(y) = mean_t log p(y_t | follow_k, x, y_<t)  -  mean_t log p(y_t | violate_k, x, y_<t)
    P_k(y) = sigmoid(m_k(y) / T),      P_contrast(y) = mean_k P_k(y)

A response the policy finds more likely when told to follow the principle than when told to
violate it conforms (DLMA's contrastive self-rewarding, Liu et al. 2024, with per-token means so
that length does not decide). For chat prompts the instruction is a system message; for plain-text
prompts (a review opening to continue) it is a preamble before the text, separated by a blank line.

Cost: one forward pass of the context per (prompt, principle, side), whose cache the n responses of
the prompt then share (`shared_prefix_logprobs`), so the prompt is never run once per response.
"""
from __future__ import annotations

import numpy as np

class ContrastiveJudge:
    """``max_context``: the last tokens of instruction + prompt kept (the end holds the request being answered);
    ``max_response``: the first tokens of each response judged. Both bound the cost of long dialogues."""

    def __init__(self, policy, spec, temperature: float = 0.1, max_context: int = 256, max_response: int = 128):
        if not spec.has_contrast:
            from udasa.errors import InputError

            raise InputError(f"spec '{spec.name}' has no 'contrast' prompts for every principle ({spec.source}); "
                             "add them or set contrast_weight: 0", field="contrast_weight")
        self.policy, self.spec, self.temperature = policy, spec, temperature
        self.max_context, self.max_response = max_context, max_response

    def _context(self, record: dict, instruction: str) -> list[int]:
        tok = self.policy.tokenizer
        if record.get("format") == "plain":
            ids = tok(f"{instruction}\n\n{record['prompt']}", add_special_tokens=False)["input_ids"]
        else:
            from udasa.policy import chat_token_ids

            turns = [m for m in record["messages"] if m["role"] != "system"]
            ids = chat_token_ids(tok, [{"role": "system", "content": instruction}] + turns)
        return ids[-self.max_context:]

    def margins(self, records: list[dict]) -> list[np.ndarray]:
        """Per record, the (n responses, K principles) array of mean log-prob margins m_k (nats per token)."""
        from udasa.sampling.logprobs import shared_prefix_logprobs

        tok = self.policy.tokenizer
        out = []
        for r in records:
            conts = [tok(y, add_special_tokens=False)["input_ids"][:self.max_response] for y in r["responses"]]
            m = np.zeros((len(conts), len(self.spec.principles)))
            for k, p in enumerate(self.spec.principles):
                means = []
                for instruction in (p.follow, p.violate):
                    lps = shared_prefix_logprobs(self.policy.model, self._context(r, instruction), conts,
                                                 pad_id=tok.pad_token_id)
                    means.append(np.array([float(np.mean(x)) if x else 0.0 for x in lps]))
                m[:, k] = means[0] - means[1]
            out.append(m)
        return out

    def probs(self, records: list[dict]) -> list[np.ndarray]:
        """Per record, P_contrast per response: the mean over principles of sigmoid(m_k / T)."""
        return [contrast_probability(m, self.temperature) for m in self.margins(records)]


def contrast_probability(margins: np.ndarray, temperature: float) -> np.ndarray:
    """mean_k sigmoid(m_k / T) for an (n, K) array of margins."""
    return (1.0 / (1.0 + np.exp(-np.asarray(margins, dtype=float) / temperature))).mean(axis=1)
