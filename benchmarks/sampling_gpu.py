"""udasa's sampler against `model.generate` on one accelerator, in one run, same model and settings.

    python benchmarks/sampling_gpu.py [--rows 64 512 --prompt-tokens 64 --new-tokens 128 --dtype bfloat16 --write]

The model is SmolLM2-135M (real weights when the embedded model is installed, else a random-weight model
of exactly its shape: hidden 576, 30 layers, 9 heads, 3 KV heads, intermediate 1536, vocab 49152, tied
embeddings). Speed does not depend on the weights when every row runs to the full length, so no stop
token is used. Reports tokens/s of both, their ratio, and the fraction of the memory-bandwidth bound
reached: per decode step the weights and the filled KV cache are read once, so the bound is
``peak bandwidth / (weight bytes + mean KV bytes per step)`` steps per second.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import machine, write_section  # noqa: E402


def smollm2_shaped(dtype, device):
    """The embedded SmolLM2-135M when it is installed, else a random model of its exact shape."""
    from transformers import LlamaConfig, LlamaForCausalLM

    try:
        from udasa.models import load_policy

        model, _ = load_policy("smollm2-135m-instruct", dtype=str(dtype).replace("torch.", ""))
        return model.to(device).eval(), "SmolLM2-135M-Instruct (real weights)"
    except Exception:  # the weights package is not on this machine: the same shape, random weights
        cfg = LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                          num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=8192,
                          tie_word_embeddings=True, rope_theta=100000.0)
        torch.manual_seed(0)
        with torch.device(device):
            model = LlamaForCausalLM(cfg).to(dtype)
        return model.eval(), "random weights, SmolLM2-135M shape"


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_native(model, rows, prompt_tokens, new_tokens, device, reps=2):
    from udasa.sampling.generate import generate

    prompts = [[int(x) for x in torch.randint(100, 40000, (prompt_tokens,))] for _ in range(rows)]
    kw = dict(n=1, max_new_tokens=new_tokens, temperature=1.0, top_p=0.95, stop_ids=set(), pad_id=0,
              seeds=[[i] for i in range(rows)])
    generate(model, prompts, **kw)  # warm-up: compiles the decode step, captures the graph
    best = float("inf")
    for _ in range(reps):
        sync(device)
        t0 = time.perf_counter()
        out = generate(model, prompts, **kw)
        sync(device)
        best = min(best, time.perf_counter() - t0)
    tokens = sum(len(g.token_ids) for per in out for g in per)
    return tokens / best, best


def time_generate(model, rows, prompt_tokens, new_tokens, device, reps=2):
    ids = torch.randint(100, 40000, (rows, prompt_tokens), device=device)
    kw = dict(attention_mask=torch.ones_like(ids), do_sample=True, top_p=0.95, temperature=1.0,
              max_new_tokens=new_tokens, min_new_tokens=new_tokens, pad_token_id=0)
    model.generate(ids, **kw)
    best = float("inf")
    for _ in range(reps):
        sync(device)
        t0 = time.perf_counter()
        model.generate(ids, **kw)
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return rows * new_tokens / best, best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, nargs="+", default=[64, 512])
    ap.add_argument("--prompt-tokens", type=int, default=64)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--peak-bandwidth", type=float, default=4.8e12, help="bytes/s of the device (H200: 4.8e12)")
    ap.add_argument("--write", action="store_true", help="write the figures into docs/BENCHMARKS.md")
    a = ap.parse_args()
    from udasa.device import resolve_device

    device = resolve_device(a.device)
    dtype = getattr(torch, a.dtype)
    model, what = smollm2_shaped(dtype, device)
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    cfg = model.config
    kv_per_token = 2 * cfg.num_hidden_layers * cfg.num_key_value_heads * (cfg.hidden_size // cfg.num_attention_heads) \
        * torch.tensor([], dtype=dtype).element_size()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    rows_out = []
    for rows in a.rows:
        native, ns = time_native(model, rows, a.prompt_tokens, a.new_tokens, device)
        gen, gs = time_generate(model, rows, a.prompt_tokens, a.new_tokens, device)
        mean_len = a.prompt_tokens + a.new_tokens / 2
        step_bytes = weight_bytes + rows * mean_len * kv_per_token
        bound = a.peak_bandwidth / step_bytes * rows  # tokens/s if every step only read memory at peak
        rows_out.append(f"| {rows} | {native:,.0f} | {gen:,.0f} | **{native / gen:.2f}x** | "
                        f"{1000 * ns / a.new_tokens:.1f} ms | {100 * native / bound:.1f}% |")
    cmd = "python benchmarks/sampling_gpu.py " + " ".join(sys.argv[1:])
    body = f"""Command: `{cmd}` on {name} ({machine()}, {time.strftime('%Y-%m-%d')}).
Model: {what}, {a.dtype}; {a.prompt_tokens}-token prompts, {a.new_tokens} new tokens per row (no stop token),
temperature 1, top-p 0.95. Best of two timed runs after a warm-up (which compiles and captures the decode step).

| rows | udasa tokens/s | `generate` tokens/s | udasa / generate | udasa ms per step | of the bandwidth bound |
|---|---|---|---|---|---|
""" + "\n".join(rows_out) + f"""

Bandwidth bound: {a.peak_bandwidth / 1e12:.1f} TB/s peak over the bytes a decode step must read (weights
{weight_bytes / 1e6:.0f} MB plus the KV cache of every row at its mean length)."""
    print(body)
    if a.write:
        write_section("GPU sampling throughput", body)


if __name__ == "__main__":
    main()
