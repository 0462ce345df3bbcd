"""Which vendored prompts each part of udasa may read: the one place for the data-split rules.

- **HH-RLHF** pairs are split for good by a salted hash of their id: ``rm-train`` (40%) trains the
  evaluator reward models, ``rm-test`` (20%) measures their held-out accuracy, ``policy`` (40%) is
  what policy training may sample from (its prompts only: the human answers are never read).
- **IMDb** train reviews: the last `IMDB_DEV` openings of the fixed shuffled order are the *dev* split
  (``imdb-dev``: hyperparameters are chosen there); the others (``imdb-train``) are training prompts.
  IMDb test reviews are evaluation only.
- **AdvBench, Self-Instruct user-oriented, TruthfulQA** are evaluation only.

`training_prompts` applies these rules to a named set (the pipeline, ``udasa sample --data`` and any
other training-side reader use it), and `training_eval_overlap` double-checks a prompt list by text
against everything evaluation and the evaluators read.
"""
from __future__ import annotations

import hashlib
from functools import lru_cache

HH_SUBSETS = ("harmless", "helpful")
HH_SPLIT_SALT = "udasa-hh-split-v1"
HH_SPLIT_RULE = "sha256(salt, id) % 10: 0-3 rm-train, 4-5 rm-test, 6-9 policy"
IMDB_DEV = 500
EVAL_ONLY = ("advbench", "self-instruct-user", "truthfulqa", "imdb-test", "imdb-dev")


def hh_split(pair_id: str) -> str:
    """'rm-train' (40%), 'rm-test' (20%) or 'policy' (40%) for an HH-RLHF pair id; fixed forever."""
    b = int.from_bytes(hashlib.sha256(f"{HH_SPLIT_SALT}\x00{pair_id}".encode()).digest()[:8], "little") % 10
    return "rm-train" if b < 4 else ("rm-test" if b < 6 else "policy")


@lru_cache(maxsize=None)
def _hh_ids(parts: tuple[str, ...]) -> frozenset[str]:
    from udasa.data import hh_rlhf

    return frozenset(r["id"] for s in HH_SUBSETS for r in hh_rlhf(s) if hh_split(r["id"]) in parts)


def rm_train_ids() -> set[str]:
    """HH-RLHF pair ids whose human labels train the evaluator reward models."""
    return set(_hh_ids(("rm-train",)))


def evaluator_ids() -> set[str]:
    """All HH-RLHF ids the evaluators touch (train + held-out test); kept out of policy training."""
    return set(_hh_ids(("rm-train", "rm-test")))


def policy_hh_ids() -> set[str]:
    """HH-RLHF ids whose prompts policy training may use (disjoint from `evaluator_ids`)."""
    return set(_hh_ids(("policy",)))


def training_prompts(name: str) -> list[dict]:
    """The prompts of vendored set ``name`` that training may use, or an error for evaluation-only sets."""
    from udasa.data import DATASETS, load_prompts
    from udasa.errors import InputError

    if name in EVAL_ONLY:
        train_sets = ", ".join(d for d in DATASETS if d not in EVAL_ONLY)
        raise InputError(f"'{name}' is an evaluation set; training prompts come from {train_sets} "
                         "(see udasa/data/splits.py)", field="data")
    rows = load_prompts(name)
    if name.startswith("hh-"):
        allowed = _hh_ids(("policy",))
        rows = [r for r in rows if r["id"] in allowed]
    return rows


def eval_prompt_texts() -> dict[str, str]:
    """Every prompt any evaluation task or evaluator reads: normalised text -> id."""
    from udasa.data import advbench, hh_rlhf, imdb, imdb_prefixes, self_instruct, truthfulqa

    texts = {}
    for r in advbench() + self_instruct("user"):
        texts[_norm(r["prompt"])] = r["id"]
    for r in truthfulqa():
        texts[_norm(r["question"])] = r["id"]
    for r in imdb("test"):
        texts[_norm(r["text"])] = r["id"]
    for r in imdb_prefixes("dev"):
        texts[_norm(r["prompt"])] = r["id"]
    reserved = _hh_ids(("rm-train", "rm-test"))
    for sub in HH_SUBSETS:
        for r in hh_rlhf(sub):
            if r["id"] in reserved:
                texts[_norm(r["prompt"])] = r["id"]
    return texts


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def training_eval_overlap(rows: list[dict]) -> set[str]:
    """Ids of training prompts whose text (or id) is an evaluation or evaluator prompt."""
    texts = eval_prompt_texts()
    ids = set(texts.values())
    return {r["id"] for r in rows if _norm(r["prompt"]) in texts or r["id"] in ids}
