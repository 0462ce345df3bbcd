"""Where the decode loop spends its time: torch profiler, top operators by self CPU time.

    python benchmarks/sampling_profile.py [--old COMMIT] [--prompts 16 --max-new-tokens 24 --threads 1]

``--old`` profiles `udasa.sampling.generate` as it was at that commit (see sampling_ab.py).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import machine  # noqa: E402
from sampling_ab import decode_inputs, load_old  # noqa: E402

import udasa.sampling.generate as new_generate  # noqa: E402
from udasa.sampling import Policy  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--old", help="profile the sampler of this git commit instead")
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--max-new-tokens", type=int, default=24)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rows", type=int, default=12)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    mod = load_old(a.old) if a.old else new_generate
    pol = Policy("smollm2-135m-instruct")
    ids, kw = decode_inputs(pol, a.prompts, a.n, a.max_new_tokens)
    print(f"python benchmarks/sampling_profile.py {' '.join(sys.argv[1:])} ({machine()})")
    start = time.perf_counter()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        out = mod.generate(pol.model, ids, **kw)
    seconds = time.perf_counter() - start
    tokens = sum(len(g.token_ids) for r in out for g in r)
    print(f"{tokens} tokens in {seconds:.1f} s ({tokens / seconds:.1f} tokens/s, profiler on)")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=a.rows))


if __name__ == "__main__":
    main()
