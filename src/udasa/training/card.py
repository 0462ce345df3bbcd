"""The model card (README.md) written into every stage folder and into final/."""
from __future__ import annotations

import json


def _fmt(x) -> str:
    return "-" if x is None else f"{x:.4f}" if isinstance(x, float) else str(x)


def model_card(run: dict, stages: list[dict], *, title: str) -> str:
    """Markdown: recipe, data fingerprints, and per-stage DPO metrics (reward margins and accuracies)."""
    cfg = run["config"]
    data = run["data"]
    lines = [
        "---", "library_name: transformers", "tags: [udasa, dpo, trl, uncertainty, self-alignment]", "---", "",
        f"# {title}", "",
        "Trained with [udasa](https://arxiv.org/abs/2507.17477)-style staged DPO: preference pairs built from the "
        "model's own samples (chosen = lowest uncertainty), trained stage by stage from the largest uncertainty "
        "gap (conservative) to the smallest (exploratory).", "",
        "## Recipe", "",
        f"- initial model: `{run['initial_model']}` (fingerprint `{run['initial_fingerprint']}`)",
        f"- reference: {cfg['reference']} model; reference log-prob cache: {'on' if cfg['ref_cache'] else 'off'}",
        f"- fine-tuning: {'LoRA r=%d alpha=%d on %s' % (cfg['lora_r'], cfg['lora_alpha'], cfg['lora_target_modules']) if cfg['use_lora'] else 'full'}",
        f"- processes: {run['world_size']}; device {run.get('placement', {}).get('device', cfg.get('device'))}, "
        f"dtype {run.get('placement', {}).get('dtype', cfg.get('dtype'))} (training autocast over float32 weights)", "",
        "## Data", "",
        f"- pairs file: `{data['pairs_file']}` (sha256 `{data['pairs_sha256']}`)",
    ]
    for name, d in data["stages"].items():
        lines.append(f"- {name}: {d['pairs']} pairs, fingerprint `{d['fingerprint']}`")
    lines += ["", "## Stages", "",
              "| stage | pairs trained | steps | β | lr | loss | reward margin (mean / last) | reward accuracy (mean / last) "
              "| loss (last) | ref cache hits/misses | seconds |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in stages:
        m = r.get("metrics", {})
        mar, acc, loss = m.get("rewards/margins", {}), m.get("rewards/accuracies", {}), m.get("loss", {})
        cache = r.get("ref_cache") or {}
        hm = f"{cache.get('hits')}/{cache.get('misses')}" if cache else "no cache"
        kept = r.get("pairs_trained", r["pairs"])  # records before udasa counted them: all
        pairs = r["pairs"] if kept == r["pairs"] else f"{kept} of {r['pairs']}"
        lines.append(f"| {r['folder']} | {pairs} | {r['steps']} | {r['dpo']['beta']} | {r['dpo']['learning_rate']} "
                     f"| {','.join(r['dpo']['loss_type'])} | {_fmt(mar.get('mean'))} / {_fmt(mar.get('last'))} "
                     f"| {_fmt(acc.get('mean'))} / {_fmt(acc.get('last'))} | {_fmt(loss.get('last'))} | {hm} "
                     f"| {r['seconds']} |")
    lines += ["", "Each stage starts from the previous stage's weights (`init_from`); the weights hashes below "
              "let you check it.", ""]
    for r in stages:
        lines.append(f"- {r['folder']}: init_from `{r['init_from']}`, start weights `{r['start_weights']}`, end "
                     f"weights `{r['end_weights']}`, reference `{r['reference_fingerprint']}`")
    lines += ["", "## Full configuration", "", "```json", json.dumps(cfg, indent=2, default=str), "```", ""]
    return "\n".join(lines)
