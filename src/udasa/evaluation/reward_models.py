"""Evaluator reward models: Bradley-Terry heads on frozen all-MiniLM-L6-v2 embeddings.

Trained on human preference labels (the vendored HH-RLHF harmless / helpful pairs) and used only
to *evaluate*: no training stage may import this module's scores. The training signal of udasa
(semantic / factual / value uncertainty) never judges an evaluation, but both use MiniLM
embeddings as features; docs/evaluation.md discusses that shared backbone.

Model: reward r(x, y) = w . phi(x, y) with phi = [e(y), e(x) * e(y)] (unit-norm MiniLM embeddings
of the last user turn x and the response y; the product term lets the reward depend on the
prompt). Bradley-Terry: P(chosen > rejected) = sigmoid(r(x, y_c) - r(x, y_r)), fitted as an
L2-regularised logistic regression without intercept on feature differences (both orientations).

Split (fixed, by a salted hash of the pair id; the rules live in `udasa.data.splits`): 40% train the
reward models, 20% measure their held-out pairwise accuracy, 40% are left for policy training prompts.
"""
from __future__ import annotations

import hashlib
import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from udasa.data.splits import HH_SPLIT_RULE, HH_SPLIT_SALT, HH_SUBSETS, hh_split
from udasa.models import DEFAULT_EMBEDDER, cache_dir, load_embedder, model_fingerprint

SUBSETS = HH_SUBSETS
FEATURES_VERSION = "bt-minilm-v1"  # bump when phi or the fitting changes: invalidates the cache
C_GRID = (0.01, 0.1, 1.0, 10.0)


def features(prompts: Sequence[str], responses: Sequence[str], embedder=None, batch_size: int = 64) -> np.ndarray:
    """phi(x, y) = [e(y), e(x) * e(y)], shape (n, 2 * dim), float32."""
    emb = embedder or load_embedder()
    uniq_p = list(dict.fromkeys(prompts))
    ep = emb.encode(uniq_p, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True)
    ep = ep[[uniq_p.index(p) for p in prompts]] if len(uniq_p) != len(prompts) else ep
    er = emb.encode(list(responses), batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True)
    return np.concatenate([er, ep * er], axis=1).astype(np.float32)


def pairwise_accuracy(w: np.ndarray, f_chosen: np.ndarray, f_rejected: np.ndarray) -> list[float]:
    """Per pair: 1 if the chosen response scores higher, 0.5 on a tie, else 0."""
    d = (f_chosen - f_rejected) @ w
    return [1.0 if v > 0 else (0.5 if v == 0 else 0.0) for v in d.tolist()]


def fit_bradley_terry(f_chosen: np.ndarray, f_rejected: np.ndarray, *, seed: int = 0) -> tuple[np.ndarray, float]:
    """Weights of a BT head by logistic regression on feature differences; C chosen by 5-fold CV."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold, cross_val_score

    d = f_chosen - f_rejected
    x = np.concatenate([d, -d])
    y = np.concatenate([np.ones(len(d)), np.zeros(len(d))])
    # folds must keep both orientations of a pair together, else CV leaks: group by pair index
    groups = np.concatenate([np.arange(len(d)), np.arange(len(d))])
    best = max(C_GRID, key=lambda c: cross_val_score(
        LogisticRegression(C=c, fit_intercept=False, max_iter=2000), x, y, groups=groups,
        cv=GroupKFold(n_splits=5)).mean())
    clf = LogisticRegression(C=best, fit_intercept=False, max_iter=2000, random_state=seed).fit(x, y)
    return clf.coef_[0].astype(np.float32), float(best)


@dataclass
class RewardModel:
    """A trained evaluator head. ``score`` returns one reward (logit units) per (prompt, response)."""

    name: str
    weights: np.ndarray
    meta: dict
    device: str = "cpu"  # where the embedder under the head runs

    def score(self, prompts: Sequence[str], responses: Sequence[str], embedder=None) -> list[float]:
        if not responses:
            return []
        emb = embedder or load_embedder(self.meta.get("embedder", DEFAULT_EMBEDDER), self.device)
        return [float(v) for v in features(prompts, responses, emb) @ self.weights]


def _data_fingerprint() -> str:
    from udasa.data import DATA_DIR

    h = hashlib.sha256(f"{FEATURES_VERSION}\x00{HH_SPLIT_SALT}\x00{HH_SPLIT_RULE}".encode())
    for s in SUBSETS:
        h.update((DATA_DIR / "hh_rlhf" / f"{s}-base_test.jsonl.gz").read_bytes())
    return h.hexdigest()[:16]


def rm_cache_dir(embedder_name: str = DEFAULT_EMBEDDER, max_pairs: int | None = None) -> Path:
    """Where the heads live: keyed by the data, the split, the feature version and the embedder weights."""
    cap = f"-max{max_pairs}" if max_pairs else ""
    return cache_dir() / "evaluators" / f"{_data_fingerprint()}-{model_fingerprint(embedder_name)}{cap}"


def train_reward_models(embedder_name: str = DEFAULT_EMBEDDER, out: Path | None = None,
                        max_pairs: int | None = None, device: str = "cpu") -> dict[str, RewardModel]:
    """Fit both heads on the rm-train split, measure them on rm-test, save safetensors + JSON metadata.

    ``max_pairs`` caps the pairs per split and subset (quick tests only: weaker heads, own cache key).
    """
    from safetensors.numpy import save_file

    from udasa.data import hh_rlhf
    from udasa.evaluation.metrics import summarize

    out = out or rm_cache_dir(embedder_name, max_pairs)
    emb = load_embedder(embedder_name, device)
    t0 = time.time()
    feats = {}
    for s in SUBSETS:
        rows = hh_rlhf(s)
        for part in ("rm-train", "rm-test"):
            sel = [r for r in rows if hh_split(r["id"]) == part][:max_pairs]
            prompts = [r["prompt"] for r in sel]
            feats[s, part] = (features(prompts, [r["chosen"] for r in sel], emb),
                              features(prompts, [r["rejected"] for r in sel], emb))
    t_embed = time.time() - t0
    models = {}
    for s in SUBSETS:
        t1 = time.time()
        w, c = fit_bradley_terry(*feats[s, "rm-train"])
        acc = {o: summarize(pairwise_accuracy(w, *feats[o, "rm-test"])) for o in SUBSETS}
        meta = {
            "name": f"{s}_rm", "trained_on": f"HH-RLHF {s}-base (vendored test file), rm-train split",
            "n_train_pairs": int(len(feats[s, "rm-train"][0])), "n_test_pairs": int(len(feats[s, "rm-test"][0])),
            "heldout_accuracy": acc[s], "cross_accuracy": {f"{o}_test": acc[o] for o in SUBSETS if o != s},
            "train_accuracy": summarize(pairwise_accuracy(w, *feats[s, "rm-train"]))["mean"],
            "max_pairs": max_pairs, "C": c, "features": FEATURES_VERSION, "embedder": embedder_name,
            "embedder_fingerprint": model_fingerprint(embedder_name), "data_fingerprint": _data_fingerprint(),
            "split": HH_SPLIT_RULE, "command": TRAIN_COMMAND,
            "embed_seconds_all_heads": round(t_embed, 1), "fit_seconds": round(time.time() - t1, 1),
        }
        out.mkdir(parents=True, exist_ok=True)
        save_file({"weights": w}, str(out / f"{s}_rm.safetensors"))
        (out / f"{s}_rm.json").write_text(json.dumps(meta, indent=2) + "\n")
        models[s] = RewardModel(f"{s}_rm", w, meta, device)
    return models


SHIPPED_DIR = Path(__file__).parent / "heads"  # package data: `udasa evaluators train` writes it
TRAIN_COMMAND = "udasa evaluators train"


def _load_dir(d: Path, device: str) -> dict[str, RewardModel] | None:
    from safetensors.numpy import load_file

    if not all((d / f"{s}_rm.safetensors").exists() and (d / f"{s}_rm.json").exists() for s in SUBSETS):
        return None
    return {s: RewardModel(f"{s}_rm", load_file(str(d / f"{s}_rm.safetensors"))["weights"],
                           json.loads((d / f"{s}_rm.json").read_text()), device) for s in SUBSETS}


def shipped_heads_match(embedder_name: str = DEFAULT_EMBEDDER) -> bool:
    """The heads shipped with udasa fit this data, split, feature version and embedder weights."""
    metas = [SHIPPED_DIR / f"{s}_rm.json" for s in SUBSETS]
    if not all(m.exists() for m in metas):
        return False
    want = {"data_fingerprint": _data_fingerprint(), "embedder_fingerprint": model_fingerprint(embedder_name)}
    return all({k: json.loads(m.read_text()).get(k) for k in want} == want for m in metas)


def load_reward_models(embedder_name: str = DEFAULT_EMBEDDER, max_pairs: int | None = None,
                       device: str = "cpu", retrain: bool = False) -> dict[str, RewardModel]:
    """The two evaluator heads ({'harmless', 'helpful'}).

    The heads shipped with udasa (``evaluation/heads/``, written by ``udasa evaluators train``) are used
    when they match the vendored data and the embedder; otherwise (or with ``retrain``, or a ``max_pairs``
    cap for quick tests) heads are trained into the cache on first use (minutes) and reused from there.
    """
    if max_pairs is None and not retrain and shipped_heads_match(embedder_name):
        return _load_dir(SHIPPED_DIR, device)
    d = rm_cache_dir(embedder_name, max_pairs)
    models = None if retrain else _load_dir(d, device)
    if models is None:
        if max_pairs is None:
            warnings.warn("the evaluator heads shipped with udasa do not match this data or embedder; training new "
                          f"ones into {d} (minutes; `{TRAIN_COMMAND}` refreshes the shipped ones)")
        models = train_reward_models(embedder_name, d, max_pairs, device)
    return models
