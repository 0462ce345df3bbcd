"""How often a sample is the same when its prompt is batched differently (as after a resume or with another
--batch-size): the same prompts and seeds sampled all in one batch and one prompt at a time.

    python benchmarks/batch_invariance.py [--data imdb-train --prompts 16 --n 4 --max-new-tokens 48]

Draws are counter-based, so every difference comes from float rounding: batched matrix products with
other shapes round differently, and a draw near the boundary between two tokens can flip.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import machine  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--data", default="imdb-train")
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    from udasa.data.splits import training_prompts
    from udasa.policy import Policy
    from udasa.sampling import SampleConfig, respond

    pol = Policy(a.model)
    cfg = SampleConfig(model=a.model, n=a.n, max_new_tokens=a.max_new_tokens)
    prompts = training_prompts(a.data)[:a.prompts]
    together = respond(pol, prompts, cfg)
    alone = [respond(pol, [p], cfg)[0] for p in prompts]
    same, total, diverge = 0, 0, []
    for x, y in zip(together, alone):
        for a_lp, b_lp, a_t, b_t in zip(x["token_logprobs"], y["token_logprobs"], x["responses"], y["responses"]):
            total += 1
            same += a_t == b_t
            k = next((i for i, (p, q) in enumerate(zip(a_lp, b_lp)) if abs(p - q) > 1e-3), None)
            if a_t != b_t:
                diverge.append(k if k is not None else min(len(a_lp), len(b_lp)))
    print(f"`python benchmarks/batch_invariance.py {' '.join(sys.argv[1:])}` ({machine()}): {same}/{total} samples "
          f"identical between one batch of {len(prompts)} prompts and one prompt at a time; the others diverge at "
          f"token {diverge} of {a.max_new_tokens}")


if __name__ == "__main__":
    main()
