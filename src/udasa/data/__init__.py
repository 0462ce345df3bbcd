"""Vendored public data sets (see each folder's PROVENANCE.txt and LICENSE).

Every loader returns plain dicts with a stable, globally unique ``id`` so that stages can
check that evaluation prompts never appear in training.
"""
from __future__ import annotations

import csv
import gzip
import json
import random
import re
from functools import lru_cache
from pathlib import Path

DATA_DIR = Path(__file__).parent
DATASETS = ("hh-harmless", "hh-helpful", "truthfulqa", "advbench", "self-instruct-seed",
            "self-instruct-user", "imdb-train", "imdb-dev", "imdb-test")

_TURN = re.compile(r"\n\n(Human|Assistant): ")


def parse_hh_dialogue(text: str) -> list[dict]:
    """Split an HH-RLHF transcript ("\\n\\nHuman: ...\\n\\nAssistant: ...") into chat messages."""
    parts = _TURN.split(text)
    messages = []
    # parts = [preamble, role, content, role, content, ...]
    for role, content in zip(parts[1::2], parts[2::2]):
        messages.append({"role": "user" if role == "Human" else "assistant", "content": content.strip()})
    return messages


@lru_cache(maxsize=None)
def _hh(subset: str) -> tuple[dict, ...]:
    path = DATA_DIR / "hh_rlhf" / f"{subset}-base_test.jsonl.gz"
    out = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for i, line in enumerate(f):
            rec = json.loads(line)
            chosen = parse_hh_dialogue(rec["chosen"])
            rejected = parse_hh_dialogue(rec["rejected"])
            if not chosen or chosen[-1]["role"] != "assistant" or not rejected or rejected[-1]["role"] != "assistant":
                continue
            context = chosen[:-1]
            if context != rejected[:-1] or not context or context[-1]["role"] != "user":
                continue  # a few upstream pairs differ before the last turn; they are not clean pairs
            out.append({"id": f"hh-{subset}-{i}", "messages": context, "prompt": context[-1]["content"],
                        "chosen": chosen[-1]["content"], "rejected": rejected[-1]["content"]})
    return tuple(out)


def hh_rlhf(subset: str = "harmless") -> list[dict]:
    """HH-RLHF test pairs: ``{id, messages (the dialogue before the answer), prompt (last user turn), chosen, rejected}``."""
    if subset not in ("harmless", "helpful"):
        raise ValueError(f"HH-RLHF subset must be 'harmless' or 'helpful', got {subset!r}")
    return [dict(r) for r in _hh(subset)]


def truthfulqa() -> list[dict]:
    """TruthfulQA MC (817 items): ``{id, question, mc1_targets, mc2_targets}`` (answer -> 0/1)."""
    with open(DATA_DIR / "truthfulqa" / "mc_task.json", encoding="utf-8") as f:
        items = json.load(f)
    return [{"id": f"truthfulqa-{i}", **it} for i, it in enumerate(items)]


def advbench() -> list[dict]:
    """AdvBench harmful behaviours (520): ``{id, prompt, target}``."""
    with open(DATA_DIR / "advbench" / "harmful_behaviors.csv", encoding="utf-8", newline="") as f:
        return [{"id": f"advbench-{i}", "prompt": r["goal"], "target": r["target"]}
                for i, r in enumerate(csv.DictReader(f))]


def self_instruct(split: str = "user") -> list[dict]:
    """Self-Instruct prompts: ``seed`` (175 seed tasks) or ``user`` (252 user-oriented).

    The prompt is the instruction followed by the first instance's input, when it has one.
    """
    fname = {"seed": "seed_tasks.jsonl", "user": "user_oriented_instructions.jsonl"}[split]
    out = []
    with open(DATA_DIR / "self_instruct" / fname, encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            inst = rec.get("instances") or [{}]
            inp = (inst[0].get("input") or "").strip()
            prompt = rec["instruction"].strip() + (f"\n\n{inp}" if inp else "")
            out.append({"id": f"self-instruct-{rec['id']}", "prompt": prompt,
                        "reference": inst[0].get("output", "")})
    return out


def imdb(split: str = "test") -> list[dict]:
    """IMDb reviews subset: ``{id, label, rating, text}`` (train: 4000, test: 2000)."""
    fname = {"train": "imdb_train_4000.jsonl.gz", "test": "imdb_test_2000.jsonl.gz"}[split]
    out = []
    with gzip.open(DATA_DIR / "imdb" / fname, "rt", encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            text = rec["text"].replace("<br />", " ").replace("<br/>", " ")
            out.append({"id": f"imdb-{split}-{rec['label']}-{rec['id']}", "label": rec["label"],
                        "rating": rec["rating"], "text": text})
    return out


def imdb_prefixes(split: str = "test", n: int | None = None, seed: int = 0, min_words: int = 2,
                  max_words: int = 8) -> list[dict]:
    """Review openings of 2-8 words (as in the DPO paper's controlled-sentiment task): ``{id, prompt}``.

    ``split``: "test" (the 2,000 test reviews), "train" or "dev". The train reviews are shuffled once
    (fixed seed); the last ``splits.IMDB_DEV`` openings of that order are "dev", the others "train".
    The DPO paper cuts 2-8 *tokens*; we cut whole words so the prefix is tokenizer-independent.
    """
    from udasa.data.splits import IMDB_DEV

    if split not in ("train", "dev", "test"):
        raise ValueError(f"IMDb split must be 'train', 'dev' or 'test', got {split!r}")
    rng = random.Random(seed)
    rows = imdb("test" if split == "test" else "train")
    rng.shuffle(rows)
    out = []
    for r in rows:
        k = rng.randint(min_words, max_words)
        out.append({"id": r["id"], "prompt": " ".join(r["text"].split()[:k]), "label": r["label"]})
    if split != "test":
        out = out[:-IMDB_DEV] if split == "train" else out[-IMDB_DEV:]
    return out[:n] if n is not None else out


def load_prompts(name: str) -> list[dict]:
    """Any vendored set as ``{id, prompt, ...}`` prompt records (answers dropped where there are any)."""
    if name in ("hh-harmless", "hh-helpful"):
        return [{"id": r["id"], "prompt": r["prompt"], "messages": r["messages"]} for r in hh_rlhf(name[3:])]
    if name == "truthfulqa":
        return [{"id": r["id"], "prompt": r["question"]} for r in truthfulqa()]
    if name == "advbench":
        return [{"id": r["id"], "prompt": r["prompt"]} for r in advbench()]
    if name in ("self-instruct-seed", "self-instruct-user"):
        return [{"id": r["id"], "prompt": r["prompt"]} for r in self_instruct(name.rsplit("-", 1)[1])]
    if name in ("imdb-train", "imdb-dev", "imdb-test"):  # review openings to continue, not questions
        return [{**r, "format": "plain"} for r in imdb_prefixes(name.split("-")[1])]
    raise ValueError(f"unknown data set {name!r}; choose from {', '.join(DATASETS)}")
