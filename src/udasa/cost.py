"""What a recipe will cost before it runs: tokens to sample and DPO pair-steps, times this machine's rates.

`udasa check` prints the estimate. Rates come from ``udasa check --measure`` (a short sampling and training
run with the recipe's model and settings, kept in ``$UDASA_CACHE/rates.json`` per model and device) or,
until that has run, from the reference figures below, measured with one torch thread on the 2-core CPU
this project is developed on (docs/BENCHMARKS.md).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass

from udasa.models import cache_dir

# SmolLM2-135M, float32, one thread of a 2-core x86_64 CPU (docs/BENCHMARKS.md, 2026-11-30)
REFERENCE = {"sample_tokens_per_s": 95.0, "train_s_per_pair_token": 21.0 / (8 * 2 * 53),
             "source": "reference: SmolLM2-135M on one thread of a 2-core CPU"}
# Scoring re-reads every sampled response with the policy (the contrastive estimator, two system prompts) and
# embeds it, so it costs about what sampling did: 1.06x on recipes/sentiment.yaml (432 s / 407 s) and about
# 1.25x on recipes/harmless.yaml (~75 / ~60 min; long multi-turn prompts), stage tables of docs/RESULTS.md.
SCORE_OVER_SAMPLE = 1.2


@dataclass
class Estimate:
    sample_tokens: int
    eval_tokens: int
    pair_steps: int  # pairs x epochs, summed over every trained model
    pair_tokens: int  # the same, in tokens (chosen + rejected sequences)
    hours: float  # everything, scoring included
    rates: dict
    score_hours: float = 0.0

    def lines(self) -> list[str]:
        return [f"sampling: up to {self.sample_tokens:,} tokens; evaluation: up to {self.eval_tokens:,} generated "
                f"tokens; training: {self.pair_steps:,} pair-steps ({self.pair_tokens:,} tokens through DPO)",
                f"estimated compute: {self.hours:.1f} h at {self.rates['sample_tokens_per_s']:.0f} sampled tokens/s "
                f"and {1000 * self.rates['train_s_per_pair_token']:.1f} ms per trained token ({self.rates['source']}), "
                f"of which scoring {self.score_hours:.1f} h (about {SCORE_OVER_SAMPLE:g}x the sampling time)"]


def rates_key(model: str, device: str) -> str:
    return f"{model}@{device}"


def load_rates(model: str, device: str) -> dict:
    path = cache_dir() / "rates.json"
    try:
        saved = json.loads(path.read_text()) if path.exists() else {}
    except (OSError, json.JSONDecodeError):
        saved = {}
    return saved.get(rates_key(model, device), REFERENCE)


def estimate(recipe, n_prompts: int, rates: dict | None = None) -> Estimate:
    """Upper bounds: every response runs to its budget, one pair per prompt."""
    from udasa.evaluation.task import load_task

    s, t, e = recipe.stage_config("sample"), recipe.stage_config("train"), recipe.stage_config("eval")
    rates = rates or load_rates(recipe.model, recipe.device)
    sample_tokens = n_prompts * s.n * s.max_new_tokens
    prompt_tokens = 10 if all(p.data and p.data.startswith("imdb") for p in recipe.prompts) else 80
    seq = min(prompt_tokens + s.max_new_tokens, t.max_length or 10 ** 9)
    dpo_models = len(recipe.select.candidates) if recipe.select else 1
    dpo_models += sum(v.method == "dpo" for v in recipe.baselines)
    sft_models = sum(v.method != "dpo" for v in recipe.baselines)
    per_round = n_prompts if recipe.rounds == 1 or recipe.reuse_prompts else \
        (recipe.prompts_per_round or n_prompts // recipe.rounds)
    per_model = per_round * t.num_train_epochs if t.max_steps <= 0 else t.max_steps * t.per_device_train_batch_size * 3
    pair_steps = int(per_model * (dpo_models + sft_models / 2)) + int(per_model) * (recipe.rounds - 1)
    sample_tokens = per_round * s.n * s.max_new_tokens * recipe.rounds
    evals = [e] * (1 + bool(recipe.eval_base) + (2 if recipe.eval_stages else 0) + recipe.rounds - 1)
    evals += [recipe.stage_config("eval", v.eval) for v in recipe.baselines]
    eval_tokens = 0
    for ec in evals:
        for task in ec.tasks:
            spec = load_task(task)
            if spec.kind == "generate":
                eval_tokens += min(ec.limit or 10 ** 9, ec.sizes.get(task, spec.size)) * spec.max_new_tokens
    if recipe.select:
        dev = load_task(recipe.select.task)
        eval_tokens += e.sizes.get(dev.name, dev.size) * dev.max_new_tokens * len(recipe.select.candidates)
    pair_tokens = pair_steps * 2 * seq
    score_seconds = SCORE_OVER_SAMPLE * sample_tokens / rates["sample_tokens_per_s"]
    seconds = ((sample_tokens + eval_tokens) / rates["sample_tokens_per_s"] + score_seconds
               + pair_tokens * rates["train_s_per_pair_token"])
    return Estimate(sample_tokens, eval_tokens, pair_steps, pair_tokens, seconds / 3600, rates, score_seconds / 3600)


def measure(recipe) -> dict:
    """Time a short sampling run and a few DPO steps with the recipe's model, settings and device."""
    import tempfile
    from pathlib import Path

    from udasa.io import atomic_write_json
    from udasa.policy import Policy
    from udasa.sampling import SampleConfig, respond
    from udasa.training import train

    s = recipe.stage_config("sample")
    policy = Policy(recipe.model, device=recipe.device, dtype=recipe.dtype)
    cfg = SampleConfig(model=recipe.model, n=4, max_new_tokens=24, temperature=s.temperature, top_p=s.top_p,
                       device=recipe.device, dtype=recipe.dtype)
    per_batch = max(1, s.batch_size // cfg.n)  # the recipe's batch shape: rates depend on it
    prompts = [{"id": f"m{i}", "prompt": f"Write a few sentences about topic number {i}."} for i in range(per_batch)]
    respond(policy, prompts[:1], cfg)  # warm-up
    t0 = time.perf_counter()
    recs = respond(policy, prompts, cfg)
    tok_s = sum(sum(r["num_tokens"]) for r in recs) / (time.perf_counter() - t0)
    work = Path(tempfile.mkdtemp(prefix="udasa-measure-"))
    pairs = [{"id": f"p{i}", "messages": r["messages"], "chosen": r["responses"][0] or "yes",
              "rejected": r["responses"][1] or "no", "delta_u": 0.1, "stage": "all", "stage_index": 0}
             for i, r in enumerate(recs) if r["responses"][0].strip() != r["responses"][1].strip()]
    (work / "pairs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
    tcfg = recipe.stage_config("train", {"max_steps": 2, "per_device_train_batch_size": 2, "save_steps": 100,
                                         "ref_cache_dir": str(work / "cache")})
    train(work / "pairs.jsonl", work / "out", tcfg)
    rec = json.loads((work / "out" / "stage-1-all" / "udasa_stage.json").read_text())
    seq = sum(len(policy.tokenizer(p["chosen"])["input_ids"]) + 30 for p in pairs[:4]) / max(1, min(4, len(pairs)))
    rates = {"sample_tokens_per_s": round(tok_s, 1),
             "train_s_per_pair_token": rec["train_runtime_s"] / rec["steps"] / (2 * 2 * seq),
             "source": f"measured {time.strftime('%Y-%m-%d')} with `udasa check --measure`"}
    path = cache_dir() / "rates.json"
    saved = json.loads(path.read_text()) if path.exists() else {}
    saved[rates_key(recipe.model, recipe.device)] = rates
    atomic_write_json(path, saved)
    return rates
