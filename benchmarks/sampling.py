"""Sampler throughput: batched udasa sampler vs naive one-prompt-at-a-time `generate`, against the machine's limit.

    python benchmarks/sampling.py [--prompts 16 --n 4 --max-new-tokens 64 --threads 2 --write]

Limit: a generated token costs ~2 x parameters FLOPs (attention over the short context is small
next to it), so tokens/s x 2P / (matmul FLOP/s measured here) is the fraction of the machine used.
"""
from __future__ import annotations

import argparse
import sys
import time

import torch

sys.path.insert(0, __import__("os").path.dirname(__file__))
from common import machine, matmul_flops, write_section  # noqa: E402

from udasa.data import load_prompts  # noqa: E402
from udasa.sampling import Policy, SampleConfig, respond  # noqa: E402


def batched(policy, prompts, cfg):
    """What the pipeline runs: `udasa.sampling.sample` (length-bucketed batches, JSONL written as it goes)."""
    import tempfile

    from udasa.io import iter_jsonl
    from udasa.sampling import sample

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        out = sample(prompts, f"{tmp}/samples.jsonl", cfg, policy=policy, progress=False)
        seconds = time.perf_counter() - start
        tokens = sum(sum(r["num_tokens"]) for _, r in iter_jsonl(out))
    return tokens, seconds


def naive(policy, prompts, cfg):
    """What a first script would do: model.generate per prompt and sample, scores kept for log-probs."""
    from udasa.policy import chat_token_ids

    tok, model = policy.tokenizer, policy.model
    start, tokens = time.perf_counter(), 0
    for p in prompts:
        ids = torch.tensor([chat_token_ids(tok, [{"role": "user", "content": p["prompt"]}])])
        for _ in range(cfg.n):
            out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=True,
                                 temperature=cfg.temperature, top_p=cfg.top_p, max_new_tokens=cfg.max_new_tokens,
                                 output_logits=True, return_dict_in_generate=True, pad_token_id=tok.pad_token_id,
                                 eos_token_id=list(policy.stop_ids))
            new = out.sequences[0, ids.shape[1]:]
            logp = torch.log_softmax(torch.stack(out.logits, 1)[0].float(), -1)
            logp.gather(-1, new[: logp.shape[0]].unsqueeze(-1))
            tokens += int((~torch.isin(new, torch.tensor(sorted(policy.stop_ids)))).sum())
    return tokens, time.perf_counter() - start


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--naive-prompts", type=int, default=4)
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--write", action="store_true", help="write the figures into docs/BENCHMARKS.md")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    policy = Policy(a.model)
    params = sum(p.numel() for p in policy.model.parameters())
    prompts = load_prompts("self-instruct-seed")[: a.prompts]
    cfg = SampleConfig(model=a.model, n=a.n, max_new_tokens=a.max_new_tokens, batch_size=a.batch_size)
    respond(policy, prompts[:1], SampleConfig(model=a.model, n=1, max_new_tokens=4))  # warm-up
    flops = matmul_flops()
    bt, bs = batched(policy, prompts, cfg)
    nt, ns = naive(policy, prompts[: a.naive_prompts], cfg)
    b_tps, n_tps = bt / bs, nt / ns
    frac = b_tps * 2 * params / flops
    cmd = "python benchmarks/sampling.py " + " ".join(sys.argv[1:])
    body = f"""Command: `{cmd}` ({machine()}, {time.strftime('%Y-%m-%d')}).
Model {a.model} ({params / 1e6:.0f}M parameters), {a.n} samples per prompt, up to {a.max_new_tokens} new tokens,
Self-Instruct seed prompts, temperature 1, top-p 0.95.

| sampler | prompts | generated tokens | seconds | tokens/s |
|---|---|---|---|---|
| udasa `sample()` (batches of {a.batch_size} sequences by prompt length, shared prefill, in-place KV cache, finished rows dropped) | {a.prompts} | {bt} | {bs:.1f} | {b_tps:.1f} |
| naive `model.generate`, one prompt and one sample at a time | {a.naive_prompts} | {nt} | {ns:.1f} | {n_tps:.1f} |

Speed-up of the batched sampler: **{b_tps / n_tps:.1f}x**.
Machine limit measured in the same run: float32 matmul {flops / 1e9:.1f} GFLOP/s; at 2 x {params / 1e6:.0f}M FLOPs per
token that is {flops / (2 * params):.0f} tokens/s. The batched sampler reaches **{100 * frac:.0f}%** of that limit."""
    print(body)
    if a.write:
        write_section("Sampling throughput", body)


if __name__ == "__main__":
    main()
