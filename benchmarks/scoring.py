"""Scoring cost next to sampling cost, for the same samples.

    python benchmarks/scoring.py [--prompts 16 --n 4 --max-new-tokens 64 --threads 1 --write]

Samples ``--prompts`` HH-helpful prompts ``--n`` times with the policy, then scores them with
the embedding scorer (MiniLM embeddings of prompt+response, response and every sentence) and,
apart, with the contrastive estimator (the policy's teacher-forced log-probs of every response
under each principle's two instructions, the prompt run once per instruction and shared by its
n responses); reports the wall times and their ratio to sampling. Model loading is excluded.
"""
from __future__ import annotations

import argparse
import sys
import time

import torch

sys.path.insert(0, __import__("os").path.dirname(__file__))
from common import machine, write_section  # noqa: E402

from udasa.data import load_prompts  # noqa: E402
from udasa.sampling import Policy, SampleConfig, respond  # noqa: E402
from udasa.uncertainty import ScoreConfig, Scorer  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--write", action="store_true", help="write the figures into docs/BENCHMARKS.md")
    ap.add_argument("--judge-check", type=int, default=0, help="only run judge_check on this many AdvBench requests")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.judge_check:
        print(judge_check(a.judge_check, a.model))
        return

    prompts = load_prompts("hh-helpful")[: a.prompts]
    cfg = SampleConfig(model=a.model, n=a.n, max_new_tokens=a.max_new_tokens, batch_size=32)
    t0 = time.perf_counter()
    policy = Policy(a.model)
    scorer = Scorer(ScoreConfig(spec="helpful", cache_parts=False))  # time the estimators, not the cache
    load_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    per = max(1, cfg.batch_size // cfg.n)
    records = []
    for i in range(0, len(prompts), per):
        records += respond(policy, prompts[i:i + per], cfg)
    sample_s = time.perf_counter() - t0
    tokens = sum(sum(r["num_tokens"]) for r in records)

    t0 = time.perf_counter()
    scored = scorer.score_records(records)
    score_s = time.perf_counter() - t0
    sentences = sum(len(s) for r in scored for s in r["responses"] if s)  # characters, for scale

    from udasa.uncertainty.contrast import ContrastiveJudge
    cfg_s = scorer.cfg
    judge = ContrastiveJudge(policy, scorer.spec, cfg_s.contrast_temperature, cfg_s.contrast_max_context,
                             cfg_s.contrast_max_response)
    t0 = time.perf_counter()
    judge.margins(records)
    contrast_s = time.perf_counter() - t0
    k = len(scorer.spec.principles)

    cmd = (f"python benchmarks/scoring.py --prompts {a.prompts} --n {a.n} --max-new-tokens {a.max_new_tokens} "
           f"--threads {a.threads} --write")
    body = f"""
`{cmd}` ({machine()}; shared machine, so absolute times vary with load; the ratio is the point).

| step | wall time | per prompt |
|---|---|---|
| sampling {a.prompts} prompts x {a.n} ({tokens} tokens, SmolLM2-135M) | {sample_s:.1f} s | {sample_s / a.prompts:.2f} s |
| scoring the same {a.prompts * a.n} responses (3 axes, MiniLM, no judge) | {score_s:.1f} s | {score_s / a.prompts:.3f} s |
| **embedding scoring / sampling** | **{100 * score_s / sample_s:.1f}%** | |
| contrastive estimator on the same responses ({k} principles x 2 instructions, teacher-forced, first {cfg_s.contrast_max_response} tokens) | {contrast_s:.1f} s | {contrast_s / a.prompts:.3f} s |
| **contrastive estimator / sampling** | **{100 * contrast_s / sample_s:.1f}%** | |

Model loading ({load_s:.1f} s for policy + embedder + spec embeddings) is excluded from both. Scoring
embeds each response twice (with and without the prompt) and each of its sentences once
({sentences} response characters in all), in one embedder call per batch of prompts.
"""
    print(body)
    if a.write:
        write_section("Scoring cost", body)




def judge_check(n: int = 20, model: str = "smollm2-135m-instruct") -> str:
    """Is the value axis (embedding, and the optional policy judge) able to tell a refusal from compliance?

    On the first ``n`` AdvBench requests, a fixed refusal and AdvBench's own compliant target
    ("Sure, here is ...") are scored on the safety spec; reports how often the refusal gets the
    higher P(conforms), for the embedding estimator and for the policy judge alone.
    """
    import numpy as np

    from udasa.data import advbench
    from udasa.uncertainty import load_spec
    from udasa.uncertainty.judge import PolicyJudge

    rows = advbench()[:n]
    refusal = "I'm sorry, but I can't help with that. It could hurt people and may be illegal."
    recs = [{"id": r["id"], "prompt": r["prompt"], "responses": [refusal, r["target"] + "."],
             "num_tokens": [10, 10], "logprob_mean": [-1.0, -1.0]} for r in rows]
    emb = Scorer(ScoreConfig(spec="safety")).score_records(recs)
    e_ok = [o["components"]["value"][0] < o["components"]["value"][1] for o in emb]
    pol = Policy(model)
    jp = PolicyJudge(pol.model, pol.tokenizer, load_spec("safety")).probs(recs)
    j_ok = [p[0] > p[1] for p in jp]
    j_all = np.concatenate(jp)
    return (f"`python benchmarks/scoring.py --judge-check {n}`: refusal judged more conforming to `safety` than "
            f"AdvBench's compliant target on {sum(e_ok)}/{n} requests with the embedding estimator and "
            f"{sum(j_ok)}/{n} with the {model} P(Yes) judge alone (judge P(Yes): mean {j_all.mean():.2f}, "
            f"range {j_all.min():.2f}-{j_all.max():.2f}).")


if __name__ == "__main__":
    main()
