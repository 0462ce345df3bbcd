"""Run diagnostics: do the label-free pairs point the right way, did training move, did it degenerate?

The pairs are judged with measures that play no part in building them (VADER sentiment for
plain-text continuations, GCG refusal markers for HH-harmless requests), so a diagnostic can
disagree with the scorer. Everything here is a pure function of artifacts already on disk.
"""
from __future__ import annotations

from collections import defaultdict

from udasa.evaluation.metrics import is_refusal, summarize, vader_compound


def _share(flags: list[float]) -> float | None:
    return round(sum(flags) / len(flags), 4) if flags else None


def pair_diagnostics(pairs: list[dict], n_resamples: int = 2000) -> dict:
    """Per pairs file: Δu by stage; for plain-text pairs the share whose chosen continuation is more positive
    by VADER (ties 0.5) and the mean compound difference; for HH-harmless prompts how often the chosen
    response refuses while the rejected one complies (and the reverse)."""
    by_stage: dict[str, list[dict]] = defaultdict(list)
    for p in pairs:
        by_stage[p.get("stage", "all")].append(p)
    out: dict = {"pairs": len(pairs), "stages": {}}
    for stage, ps in by_stage.items():
        d = [p["delta_u"] for p in ps]
        out["stages"][stage] = {"pairs": len(ps), "stage_index": ps[0].get("stage_index", 0),
                                "delta_u": summarize(d, n_resamples=n_resamples)}

    plain = [p for p in pairs if p.get("format") == "plain"]
    if plain:
        vc = vader_compound([p["chosen"] for p in plain])
        vr = vader_compound([p["rejected"] for p in plain])
        wins = [1.0 if c > r else 0.5 if c == r else 0.0 for c, r in zip(vc, vr)]
        out["sentiment"] = {"pairs": len(plain), "chosen_more_positive": summarize(wins, n_resamples=n_resamples),
                            "compound_difference": summarize([c - r for c, r in zip(vc, vr)],
                                                             n_resamples=n_resamples)}
        for p, w in zip(plain, wins):
            p["_win"] = w
        for stage, ps in by_stage.items():
            out["stages"][stage]["chosen_more_positive"] = _share([p["_win"] for p in ps if "_win" in p])
        for p in plain:
            del p["_win"]

    harmful = [p for p in pairs if str(p["id"]).startswith("hh-harmless")]
    if harmful:
        rc = [is_refusal(p["chosen"]) for p in harmful]
        rr = [is_refusal(p["rejected"]) for p in harmful]
        good = [float(c and not r) for c, r in zip(rc, rr)]
        bad = [float(r and not c) for c, r in zip(rc, rr)]
        out["refusal"] = {"pairs": len(harmful), "chosen_refuses_rejected_complies": _share(good),
                          "rejected_refuses_chosen_complies": _share(bad),
                          "both_refuse": _share([float(c and r) for c, r in zip(rc, rr)]),
                          "direction": summarize([g - b for g, b in zip(good, bad)], n_resamples=n_resamples)}
        for stage, ps in by_stage.items():
            flags = [(is_refusal(p["chosen"]), is_refusal(p["rejected"])) for p in ps
                     if str(p["id"]).startswith("hh-harmless")]
            out["stages"][stage]["chosen_refuses_rejected_complies"] = _share([float(c and not r) for c, r in flags])
            out["stages"][stage]["rejected_refuses_chosen_complies"] = _share([float(r and not c) for c, r in flags])
    return out


def _pairs_trained(stage_end: dict) -> int | None:
    """Pairs a stage trained on. Logs written before udasa recorded it still tell it: the reference cache
    was looked up once for each pair TRL kept."""
    if "pairs_trained" in stage_end:
        return stage_end["pairs_trained"]
    cache = stage_end.get("ref_cache") or {}
    return cache["hits"] + cache["misses"] if "hits" in cache and "misses" in cache else None


def training_curves(log_rows: list[dict]) -> dict[str, dict]:
    """train_log.jsonl -> per stage (in training order): steps and the DPO loss, reward margin and reward
    accuracy at each logged step, and their means over the stage's last quarter of steps; the stage's pairs
    and how many of them were trained (TRL drops a pair whose prompt alone fills max_length)."""
    curves: dict[str, dict] = {}
    trained = {}
    for r in log_rows:
        if r.get("event") == "stage_end":
            trained[r.get("stage", "all")] = (r.get("pairs"), _pairs_trained(r))
        if r.get("event") != "log":
            continue
        c = curves.setdefault(r.get("stage", "all"), {"stage_index": r.get("stage_index", 0), "step": [], "loss": [],
                                           "margin": [], "accuracy": []})
        c["step"].append(r["step"])
        c["loss"].append(r.get("loss"))
        c["margin"].append(r.get("rewards/margins"))
        c["accuracy"].append(r.get("rewards/accuracies"))
    for stage, c in curves.items():
        c["pairs"], c["pairs_trained"] = trained.get(stage, (None, None))
        tail = max(1, len(c["step"]) // 4)
        for k in ("loss", "margin", "accuracy"):
            vals = [v for v in c[k][-tail:] if v is not None]
            c[f"{k}_end"] = round(sum(vals) / len(vals), 4) if vals else None
    return dict(sorted(curves.items(), key=lambda kv: kv[1]["stage_index"]))
