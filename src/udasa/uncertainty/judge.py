"""Optional value judge: the policy's own P("Yes") to "Does this response follow the principle?".

One forward pass per (response, principle) question, reading the next-token distribution
after the assistant header; P(Yes) is renormalised over {Yes, No} so a model that prefers to
answer with other words still gives a usable number. Off by default: on SmolLM2-135M it
measured as noise (docs/RESULTS.md), but larger policies may judge themselves usefully.
"""
from __future__ import annotations

import numpy as np

TEMPLATE = ("Here is a request and a response.\n\nRequest: {prompt}\n\nResponse: {response}\n\n"
            "Question: {question} Answer Yes or No.")


class PolicyJudge:
    def __init__(self, model, tokenizer, spec, batch_size: int = 16, max_chars: int = 1500):
        self.model, self.tok, self.spec = model, tokenizer, spec
        self.batch_size, self.max_chars = batch_size, max_chars
        self.yes = self._first_ids(["Yes", " Yes", "yes"])
        self.no = self._first_ids(["No", " No", "no"])

    def _first_ids(self, words: list[str]) -> list[int]:
        return sorted({self.tok(w, add_special_tokens=False)["input_ids"][0] for w in words})

    def probs(self, records: list[dict]) -> list[np.ndarray]:
        """Per record, P(Yes) per response averaged over the spec's principles."""
        from udasa.policy import chat_token_ids

        seqs = []
        for r in records:
            for resp in r["responses"]:
                for p in self.spec.principles:
                    msg = TEMPLATE.format(prompt=r["prompt"][-self.max_chars:], response=resp[:self.max_chars],
                                          question=p.question)
                    seqs.append(chat_token_ids(self.tok, [{"role": "user", "content": msg}]))
        flat = self._yes_prob(seqs)
        out, k, m = [], 0, len(self.spec.principles)
        for r in records:
            n = len(r["responses"])
            out.append(flat[k:k + n * m].reshape(n, m).mean(axis=1))
            k += n * m
        return out

    def _yes_prob(self, seqs: list[list[int]]) -> np.ndarray:
        import torch

        res = np.zeros(len(seqs))
        device = next(self.model.parameters()).device
        pad = self.tok.pad_token_id
        with torch.inference_mode():
            for s in range(0, len(seqs), self.batch_size):
                chunk = seqs[s:s + self.batch_size]
                width = max(len(c) for c in chunk)
                ids = torch.full((len(chunk), width), pad, dtype=torch.long)
                attn = torch.zeros_like(ids)
                for i, c in enumerate(chunk):  # left padding: the last position is the next token
                    ids[i, width - len(c):] = torch.tensor(c)
                    attn[i, width - len(c):] = 1
                pos = (attn.cumsum(-1) - 1).clamp(min=0)
                logits = self.model(input_ids=ids.to(device), attention_mask=attn.to(device),
                                    position_ids=pos.to(device), logits_to_keep=1).logits[:, -1].float()
                p = torch.softmax(logits, dim=-1)
                y, n = p[:, self.yes].sum(-1), p[:, self.no].sum(-1)
                res[s:s + len(chunk)] = (y / (y + n).clamp(min=1e-12)).cpu().numpy()
        return res
