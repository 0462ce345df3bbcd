"""A/B of the decode loop: `udasa.sampling.generate` now vs at an earlier commit, same prompts and seeds.

    python benchmarks/sampling_ab.py --old 12bbb10 [--prompts 16 --max-new-tokens 48 --rounds 2 --threads 1]

Rounds alternate old and new so that a change in machine load hits both. Also checks that both
draw the same tokens (the per-sample seeds make them comparable).
"""
from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import machine  # noqa: E402

import udasa.sampling.generate as new_generate  # noqa: E402
from udasa.data import load_prompts  # noqa: E402
from udasa.sampling import Policy  # noqa: E402
from udasa.policy import chat_token_ids  # noqa: E402


def load_old(commit: str):
    src = subprocess.run(["git", "show", f"{commit}:src/udasa/sampling/generate.py"], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).parents[1]).stdout
    path = Path(tempfile.mkdtemp()) / "old_generate.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("old_generate", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["old_generate"] = mod  # its dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def decode_inputs(pol, n_prompts: int, n: int, max_new_tokens: int) -> tuple[list[list[int]], dict]:
    """Token ids of the first Self-Instruct seed prompts and the `generate` arguments both scripts use."""
    prompts = load_prompts("self-instruct-seed")[:n_prompts]
    ids = [chat_token_ids(pol.tokenizer, [{"role": "user", "content": p["prompt"]}]) for p in prompts]
    kw = dict(n=n, max_new_tokens=max_new_tokens, temperature=1.0, top_p=0.95, stop_ids=pol.stop_ids,
              pad_id=pol.tokenizer.pad_token_id, seeds=[[i * 100 + j for j in range(n)] for i in range(len(ids))])
    return ids, kw


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--old", required=True, help="git commit of the old sampler")
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    old = load_old(a.old)
    pol = Policy("smollm2-135m-instruct")
    ids, kw = decode_inputs(pol, a.prompts, a.n, a.max_new_tokens)
    ids = sorted(ids, key=len)  # the old sampler padded every prompt to the longest
    setting = machine()
    speed, outs = {"old": [], "new": []}, {}
    for _ in range(a.rounds):
        for name, mod in (("old", old), ("new", new_generate)):
            start = time.perf_counter()
            out = mod.generate(pol.model, ids, **kw)
            seconds = time.perf_counter() - start
            speed[name].append(sum(len(g.token_ids) for r in out for g in r) / seconds)
            outs[name] = [g.token_ids for r in out for g in r]
    same = sum(x == y for x, y in zip(outs["old"], outs["new"]))
    print(f"python benchmarks/sampling_ab.py {' '.join(sys.argv[1:])} ({setting})")
    print(f"tokens/s per round: old {[round(x, 1) for x in speed['old']]}, new {[round(x, 1) for x in speed['new']]}; "
          f"new/old {sum(speed['new']) / sum(speed['old']):.2f}x; identical samples {same} of {len(outs['new'])}")


if __name__ == "__main__":
    main()
