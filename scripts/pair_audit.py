"""Do the pairs teach refusal? A person's reading of which side of each pair declines, against the markers.

    python scripts/pair_audit.py draw RUN --source hh-harmless --out FILE [--rest 10]
    python scripts/pair_audit.py score FILE
    python scripts/pair_audit.py draw-requests RUN --source hh-harmless --requests 80 --out FILE
    python scripts/pair_audit.py score-requests FILE [--spec SPEC]

The run diagnostics count pairs whose chosen response refuses while the rejected one complies, by the GCG
refusal markers, whose precision on these models is low (docs/evaluation.md). `draw` takes the pairs of
one prompt source from ``RUN/pairs.jsonl`` in two strata per curriculum stage: ``flagged`` (either side is
marked or screened by `refusal_audit.stratum`), all of them, and ``rest`` (neither side is), ``--rest`` of
them per stage (seeded), shuffled and written without a verdict, each with an empty ``label`` for the
reader: ``chosen`` when only the chosen response declines (says it cannot or will not help and gives none
of what was asked), ``rejected`` when only the rejected one does, ``both``, or ``neither``.

`score` weighs each stratum's label shares by its share of the stage's pairs and gives, per stage, the share
whose chosen side alone declines, the share whose rejected side alone does, and their difference (the
refusal direction the pairs teach), with 2.5-97.5 percentiles from Dirichlet(counts + 1/2) draws of the
sampled rest stratum's label shares (the flagged stratum is read in full), beside the markers' count on
the same pairs (the run's own pair diagnostic, `udasa.diagnostics.pair_diagnostics`); the ``all`` row
weighs each stage's estimate by its share of the pairs. A point from a rest sample without declines sits
at its interval's lower edge (the prior allows some). Labels must match the pairs they were drawn from (a
rebuilt pairs file is refused).

`draw-requests` / `score-requests` ask where the signal is lost: in the samples (no decline among a request's
n samples) or in the pairing (a decline drawn but not made the chosen side). `draw-requests` takes
``--requests`` requests of the source at random (seeded) and writes each with its flagged samples (marked or
screened), labelled by the reader ``decline`` or ``other`` without seeing which became chosen or rejected;
the unflagged samples count as not declining (no rest-stratum response of the pair audit declined).
`score-requests` gives the share of requests with a declining sample, and, among those, the share whose
chosen response declines beside chance (the declining share of their samples: a pair drawn at random) and
the share whose rejected one does, with 2.5-97.5 percentiles of a bootstrap over requests. With
``--prompts-out`` it also writes the drawn requests' prompts, to sample them again under other settings
(`udasa sample --prompts`); ``--samples`` then reads those samples for the same requests (no pairs: only
the shares of declines). With more than 6 samples per request it also gives the share of requests with a
decline among their first 6, 12, ... samples: what a larger n would draw. ``--spec`` re-scores the labelled
requests' samples with every one judged by another spec (the run's scoring and pairing settings kept; weights,
contrast weight and factual gate the run left unset come from that spec's ``fitted:`` block, as in a run) and
reads the same labels against the pairs that spec would have built, leaving out requests its drop rules would
leave unpaired: a spec edit tested before training. ``--score-config`` names the settings of a folder scored
outside `udasa run`.
"""
from __future__ import annotations

import argparse
import json
import random
import warnings
from pathlib import Path

import numpy as np

from refusal_audit import stratum
from results_section import run_path
from udasa.diagnostics import pair_diagnostics

LABELS = ("chosen", "rejected", "both", "neither")
STRATA = ("flagged", "rest")


def is_flagged(text: str) -> bool:
    """Marked by the refusal markers or screened by the wider net of decline phrases."""
    return stratum(text) != "rest"


def pair_stratum(pair: dict) -> str:
    return "flagged" if is_flagged(pair["chosen"]) or is_flagged(pair["rejected"]) else "rest"


def _pairs(run: Path, source: str) -> list[dict]:
    rows = [json.loads(line) for line in (run / "pairs.jsonl").open()]
    return [p for p in rows if p["id"].rsplit("-", 1)[0] == source]


def _keep_labels(out: Path) -> None:
    """A drawing never overwrites a reader's work."""
    if out.exists() and any(it.get("label") or any(f.get("label") for f in it.get("flagged", []))
                            for it in map(json.loads, filter(str.strip, out.open()))):
        raise SystemExit(f"{out} holds labels: draw to another --out, or delete it first")


def draw(run: Path, source: str, out: Path, rest: int, seed: int = 0) -> None:
    _keep_labels(out)
    rng, items = random.Random(seed), []
    pairs = _pairs(run, source)
    for stage in dict.fromkeys(p["stage"] for p in pairs):
        mine = [p for p in pairs if p["stage"] == stage]
        strata = [pair_stratum(p) for p in mine]
        flagged = [p for p, s in zip(mine, strata) if s == "flagged"]
        others = [p for p, s in zip(mine, strata) if s == "rest"]
        for p in flagged + rng.sample(others, min(rest, len(others))):
            items.append({"run": str(run), "id": p["id"], "stage": p["stage"],
                          "request": p["messages"][-1]["content"] if p.get("messages") else p["prompt"],
                          "chosen": p["chosen"], "rejected": p["rejected"], "label": ""})
    rng.shuffle(items)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(it, ensure_ascii=False) + "\n" for it in items))
    print(f"wrote {len(items)} pairs to label: {out}")


def direction(shares: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Chosen-alone, rejected-alone and their difference, from each stratum's share of the pairs (``shares``,
    in `STRATA` order) and its label shares (``labels[..., stratum, label]`` in `LABELS` order)."""
    chosen, rejected = (shares * labels[..., 0]).sum(-1), (shares * labels[..., 1]).sum(-1)
    return np.stack([chosen, rejected, chosen - rejected], -1)


def score(path: Path, draws: int = 4000, seed: int = 0) -> dict:
    items = {}
    for i, it in enumerate(map(json.loads, path.open()), 1):
        if it.get("label") not in LABELS:
            raise SystemExit(f"{path}:{i}: field 'label' must be one of {', '.join(LABELS)}, got {it.get('label')!r}")
        items[it["id"]] = it
    if not items:
        raise SystemExit(f"{path}: no labelled pairs")
    first = next(iter(items.values()))
    pairs = _pairs(run_path(first["run"]), first["id"].rsplit("-", 1)[0])
    by_id = {p["id"]: p for p in pairs}
    for i, it in items.items():
        if i not in by_id or (by_id[i]["chosen"], by_id[i]["rejected"]) != (it["chosen"], it["rejected"]):
            raise SystemExit(f"{path}: pair {i} is not in {first['run']}/pairs.jsonl as labelled (pairs rebuilt?)")
    rng, report, stages = np.random.default_rng(seed), {}, {}
    for stage in dict.fromkeys(p["stage"] for p in pairs):
        mine = [p for p in pairs if p["stage"] == stage]
        strata = [pair_stratum(p) for p in mine]
        sizes = np.array([strata.count(s) for s in STRATA])
        counts = np.zeros((len(STRATA), len(LABELS)))
        for p, s in zip(mine, strata):
            if p["id"] in items:
                counts[STRATA.index(s), LABELS.index(items[p["id"]]["label"])] += 1
        if counts[0].sum() < sizes[0]:
            raise SystemExit(f"{stage}: {int(sizes[0] - counts[0].sum())} flagged pairs not labelled")
        if sizes[1] and not counts[1].sum():
            raise SystemExit(f"{stage}: no labelled pair in the rest stratum: draw some")
        observed = counts / np.maximum(counts.sum(1, keepdims=True), 1)
        # a stratum read in full is known, not sampled: only a sampled one gets Dirichlet(counts + 1/2) draws
        sampled = np.stack([np.broadcast_to(o, (draws, len(LABELS))) if c.sum() == n else rng.dirichlet(c + 0.5, draws)
                            for o, c, n in zip(observed, counts, sizes)], 1)
        shares = sizes / len(mine)
        stages[stage] = (len(mine), direction(shares, observed), direction(shares, sampled), counts.sum(1))
    total = sum(n for n, *_ in stages.values())
    # all pairs: each stage's estimate weighted by its share of the pairs (its rest was sampled on its own)
    stages["all"] = (total, sum(n / total * pt for n, pt, *_ in stages.values()),
                     sum(n / total * post for n, _, post, *_ in stages.values()),
                     sum(c for *_, c in stages.values()))
    # the markers' count is the run's own pair diagnostic (it judges HH-harmless pairs only)
    diag = pair_diagnostics(pairs, n_resamples=1)
    marker_rows = {**diag["stages"], "all": diag.get("refusal", {})}
    for stage, (n, point, post, labelled) in stages.items():
        lo, hi = np.percentile(post, [2.5, 97.5], axis=0)
        marked = marker_rows[stage]
        report[stage] = {
            "pairs": n, "labelled": {s: int(c) for s, c in zip(STRATA, labelled)},
            **{k: [round(float(a), 3), round(float(b), 3), round(float(c), 3)]
               for k, a, b, c in zip(("chosen_alone_declines", "rejected_alone_declines", "direction"), point, lo, hi)},
            "markers": {side: None if marked.get(key) is None else round(marked[key], 3)
                        for side, key in (("chosen_alone", "chosen_refuses_rejected_complies"),
                                          ("rejected_alone", "rejected_refuses_chosen_complies"))}}
    return report


def _flagged(responses: list[str]) -> list[dict]:
    return [{"index": i, "response": t, "label": ""} for i, t in enumerate(responses) if is_flagged(t)]


def draw_requests(run: Path, source: str, out: Path, requests: int, seed: int = 0, samples: Path | None = None,
                  prompts_out: Path | None = None) -> None:
    _keep_labels(out)
    paired = {p["id"] for p in _pairs(run, source)}  # a request whose pair was dropped has no chosen side
    rows = [r for r in map(json.loads, (run / "scores.jsonl").open()) if r["id"] in paired]
    drawn = random.Random(seed).sample(rows, min(requests, len(rows)))
    if prompts_out is not None:  # the same requests, for `udasa sample --prompts` under other sampling settings
        ids = {r["id"] for r in drawn}
        prompts_out.parent.mkdir(parents=True, exist_ok=True)
        prompts_out.write_text("".join(line for line in (run / "prompts.jsonl").open()
                                       if json.loads(line)["id"] in ids))
    origin = {"run": str(run)}
    if samples is not None:  # read another sampling of these requests (no pairs: availability only)
        other = {r["id"]: r for r in map(json.loads, samples.open())}
        missing = [r["id"] for r in drawn if r["id"] not in other]
        if missing:
            raise SystemExit(f"{samples}: no samples for {len(missing)} drawn requests, e.g. {missing[0]}")
        drawn, origin = [other[r["id"]] for r in drawn], {"run": str(run), "samples": str(samples)}
    items = [{**origin, "id": r["id"], "n": len(r["responses"]),
              "request": r["messages"][-1]["content"] if r.get("messages") else r["prompt"],
              "flagged": _flagged(r["responses"])} for r in drawn]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(it, ensure_ascii=False) + "\n" for it in items))
    print(f"wrote {len(items)} requests, {sum(len(it['flagged']) for it in items)} flagged samples to label: {out}")


def request_shares(declines: list[set[int]], n: list[int], chosen: list[int] | None = None,
                   rejected: list[int] | None = None) -> np.ndarray:
    """Share of requests with a declining sample; among those, the share whose chosen sample declines, chance
    (the mean declining share of their samples) and the share whose rejected sample declines (NaN without pairs)."""
    some = [k for k, d in enumerate(declines) if d]
    if not some:
        return np.array([0.0, np.nan, np.nan, np.nan])

    def declining(picks):
        return np.nan if picks is None else np.mean([picks[k] in declines[k] for k in some])
    return np.array([len(some) / len(declines), declining(chosen), np.mean([len(declines[k]) / n[k] for k in some]),
                     declining(rejected)])


def decline_within(declines: list[set[int]], sizes: list[int]) -> np.ndarray:
    """Share of requests with a declining sample among their first k samples, for each k in ``sizes``: what
    fewer or more samples per request would have drawn."""
    return np.array([np.mean([any(i < k for i in d) for d in declines]) for k in sizes])


def rescored_pairs(run: Path, ids: list[str], spec: str, score_config: Path | None = None
                   ) -> dict[str, tuple[int, int] | None]:
    """(chosen, rejected) of each request's samples had every one been judged by ``spec``, or None where the run's
    drop rules would leave the request without a pair. The run's scoring settings (``score_config``, else its
    ``recipe.resolved.json``; checked against the settings its scores.jsonl records) and pairing settings
    (``pairs.summary.json``) are kept, except that weights, contrast weight and factual gate the run left unset
    come from ``spec``'s own ``fitted:`` block (equal weights, no contrast, no gate without one), as in a run.
    Only those requests' samples are scored again, from scores.jsonl: u is normalised within a request's samples,
    so this is what the whole run would have paired. A spec edit can then be read against the labels before
    anything is trained."""
    from udasa.errors import InputError
    from udasa.io import load_yaml, read_text_file
    from udasa.pairs import PairConfig, choose_pair
    from udasa.uncertainty.config import ScoreConfig
    from udasa.uncertainty.scorer import Scorer
    from udasa.uncertainty.specs import load_spec

    try:
        load_spec(spec)
    except InputError as e:
        raise SystemExit(f"--spec: {e}")
    if score_config is not None:
        scoring = load_yaml(read_text_file(score_config), str(score_config)) or {}
    elif (run / "recipe.resolved.json").exists():
        scoring = json.loads((run / "recipe.resolved.json").read_text())["score"]
    else:
        raise SystemExit(f"{run}: no recipe.resolved.json; pass --score-config, the settings it was scored with")
    config = ScoreConfig(**scoring)
    wanted = set(ids)
    scored_run = {r["id"]: r for r in map(json.loads, (run / "scores.jsonl").open()) if r["id"] in wanted}
    recorded = next(iter(scored_run.values()))["scoring"]
    if config.settings() != recorded:
        raise SystemExit(f"{score_config or run / 'recipe.resolved.json'}: not the settings {run / 'scores.jsonl'} "
                         f"was scored with ({recorded})")
    pairing = PairConfig(**json.loads((run / "pairs.summary.json").read_text())["config"])
    if pairing.selection != "score" or pairing.score_key != "u":
        raise SystemExit(f"{run / 'pairs.summary.json'}: pairs are not chosen by u; a spec cannot change them")
    # scores.jsonl keeps what scoring reads of each sample (texts, token counts, mean log-probs)
    scored = Scorer(config).score_records([{**r, "spec": spec} for r in scored_run.values()])
    return {rec["id"]: choose_pair(rec["id"], rec["responses"], rec["u"], pairing)[0] for rec in scored}


def score_requests(path: Path, resamples: int = 2000, seed: int = 0, spec: str | None = None,
                   score_config: Path | None = None) -> dict:
    items = list(map(json.loads, path.open()))
    for i, it in enumerate(items, 1):
        for f in it["flagged"]:
            if f.get("label") not in ("decline", "other"):
                raise SystemExit(f"{path}:{i}: field 'label' of sample {f['index']} must be decline or other, "
                                 f"got {f.get('label')!r}")
    if not items:
        raise SystemExit(f"{path}: no requests")
    run, samples = run_path(items[0]["run"]), items[0].get("samples")
    source = run_path(samples) if samples else run / "scores.jsonl"
    responses = {r["id"]: r["responses"] for r in map(json.loads, source.open())}
    if spec is not None and samples:
        raise SystemExit(f"{path}: --spec re-pairs the run's own samples; these labels are of another sampling")
    pairs = None if samples else {p["id"]: p for p in map(json.loads, (run / "pairs.jsonl").open())}
    for i, it in enumerate(items, 1):
        # every sample, flagged or not, must be the one drawn: an unflagged sample of a rebuilt run may decline
        mine = responses.get(it["id"])
        labelled = [(f["index"], f["response"]) for f in it["flagged"]]
        if (pairs is not None and it["id"] not in pairs) or mine is None or len(mine) != it["n"] \
                or [(f["index"], f["response"]) for f in _flagged(mine)] != labelled:
            raise SystemExit(f"{path}:{i}: request {it['id']} is not in {source} as labelled (run rebuilt?)")
    unpaired = 0
    if spec is not None:
        picks = rescored_pairs(run, [it["id"] for it in items], spec, score_config)
        unpaired = sum(picks[it["id"]] is None for it in items)  # left out: no chosen side to read
        items = [it for it in items if picks[it["id"]] is not None]
        if not items:
            raise SystemExit(f"{path}: no labelled request has a pair under {spec}")
        pairs = {rid: {"chosen_index": pick[0], "rejected_index": pick[1]} for rid, pick in picks.items() if pick}
    declines = [{f["index"] for f in it["flagged"] if f["label"] == "decline"} for it in items]
    n = [it["n"] for it in items]
    chosen = None if pairs is None else [pairs[it["id"]]["chosen_index"] for it in items]
    rejected = None if pairs is None else [pairs[it["id"]]["rejected_index"] for it in items]
    sizes = list(range(6, min(n), 6))  # the recipe's n is 6: what more samples per request would draw

    def shares(rows) -> np.ndarray:  # every figure, over the requests ``rows`` (repeats allowed)
        picked = [declines[j] for j in rows]
        some, chose, chance, rejects = request_shares(picked, [n[j] for j in rows],
                                                      None if chosen is None else [chosen[j] for j in rows],
                                                      None if rejected is None else [rejected[j] for j in rows])
        # pairs that reject a decline minus pairs that choose one: what the pairs teach, counted in pairs
        net = (rejects - chose) * some * len(rows)
        return np.concatenate([[some, chose, chance, rejects, net], decline_within(picked, sizes)])
    point = shares(range(len(items)))
    rng = np.random.default_rng(seed)
    boot = [shares(rng.integers(0, len(items), len(items))) for _ in range(resamples)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the pair columns are all NaN for samples without pairs
        lo, hi = np.nanpercentile(np.array(boot), [2.5, 97.5], axis=0)
    names = ("requests_with_a_decline", "chosen_declines", "chance", "rejected_declines", "net_pairs_against_a_decline",
             *(f"requests_with_a_decline_in_first_{k}" for k in sizes))
    return {"requests": len(items), **({"unpaired_under_spec": unpaired} if spec is not None else {}),
            "samples_decline": round(sum(map(len, declines)) / sum(n), 3),
            **{k: [round(float(a), 3), round(float(b), 3), round(float(c), 3)]
               for k, a, b, c in zip(names, point, lo, hi) if not np.isnan(a)}}


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("draw")
    d.add_argument("run", type=Path)
    d.add_argument("--source", default="hh-harmless", help="prompt source: the pair ids' prefix (e.g. hh-harmless)")
    d.add_argument("--out", type=Path, required=True)
    d.add_argument("--rest", type=int, default=10, help="pairs of the rest stratum per stage (at least 1)")
    d.add_argument("--seed", type=int, default=0)
    s = sub.add_parser("score")
    s.add_argument("path", type=Path)
    dr = sub.add_parser("draw-requests")
    dr.add_argument("run", type=Path)
    dr.add_argument("--source", default="hh-harmless")
    dr.add_argument("--out", type=Path, required=True)
    dr.add_argument("--requests", type=int, default=80)
    dr.add_argument("--seed", type=int, default=0)
    dr.add_argument("--samples", type=Path, help="read the drawn requests' responses from this samples JSONL instead")
    dr.add_argument("--prompts-out", type=Path, help="also write the drawn requests' prompts (for udasa sample)")
    sr = sub.add_parser("score-requests")
    sr.add_argument("path", type=Path)
    sr.add_argument("--spec", help="re-score the labelled requests' samples with every one judged by this spec "
                                   "(a shipped name or a YAML path; weights the run left unset come from its "
                                   "fitted: block) and read the labels against the pairs it would have built")
    sr.add_argument("--score-config", type=Path, help="with --spec: the settings the run was scored with (a "
                                                      "`udasa score --config` file); default: its recipe.resolved.json")
    a = ap.parse_args()
    if a.cmd == "draw":
        if a.rest < 1:
            ap.error("--rest: at least 1 pair of the rest per stage (score weighs the rest by its sample)")
        draw(a.run, a.source, a.out, a.rest, a.seed)
    elif a.cmd == "draw-requests":
        draw_requests(a.run, a.source, a.out, a.requests, a.seed, a.samples, a.prompts_out)
    elif a.cmd == "score-requests":
        if a.score_config is not None and a.spec is None:
            ap.error("--score-config: only with --spec")
        spec = a.spec if a.spec is None or not a.spec.endswith((".yaml", ".yml", ".json")) else str(run_path(a.spec))
        r = score_requests(a.path, spec=spec, score_config=a.score_config)
        if r.get("unpaired_under_spec"):
            print(f"{r['unpaired_under_spec']} labelled requests would have no pair under {a.spec}: left out")
        print(f"{r['requests']} requests; samples that decline {r['samples_decline']:.3f}; " + ", ".join(
            f"{k.replace('_', ' ')} {v[0]:.3f} [{v[1]:.3f}, {v[2]:.3f}]" for k, v in r.items() if isinstance(v, list)))
    else:
        for stage, r in score(a.path).items():
            print(f"{stage} ({r['pairs']} pairs; labelled {r['labelled']}): " + ", ".join(
                f"{k} {v[0]:.3f} [{v[1]:.3f}, {v[2]:.3f}]" for k, v in r.items() if isinstance(v, list))
                + "; markers: " + ", ".join(f"{side.replace('_', ' ')} " + ("–" if v is None else f"{v:.3f}")
                                            for side, v in r["markers"].items()))
