"""Reading pairs.jsonl for training: strict checks, stages in order, TRL's conversational format."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from udasa.curriculum import STAGES
from udasa.errors import InputError
from udasa.io import iter_jsonl, require


@dataclass
class Stage:
    index: int  # training order, 0 first
    label: str  # conservative / moderate / exploratory / all
    pairs: list[dict]

    @property
    def name(self) -> str:
        """Folder name, e.g. ``stage-1-conservative``."""
        return f"stage-{self.index + 1}-{self.label}"

    def fingerprint(self) -> str:
        """Content hash of the stage's pairs (order-independent)."""
        h = hashlib.sha256()
        for k in sorted(p["pair_key"] for p in self.pairs):
            h.update(k.encode())
        return h.hexdigest()[:16]


def pair_key(messages: list[dict], chosen: str, rejected: str) -> str:
    """Content hash of one pair; the reference log-prob cache is keyed by it."""
    blob = json.dumps([messages, chosen, rejected], ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def read_pairs(path: str | Path) -> list[Stage]:
    """Checked pairs grouped into stages, in training order. Raises `InputError` naming file/line/field."""
    path = str(path)
    by_index: dict[int, Stage] = {}
    n = 0
    for line, rec in iter_jsonl(path):
        if rec is None:
            continue
        n += 1
        require(rec, "id", (str, int), path=path, line=line)
        msgs = require(rec, "messages", list, path=path, line=line, nonempty=True)
        for j, m in enumerate(msgs):
            if not (isinstance(m, dict) and m.get("role") in ("system", "user", "assistant")
                    and isinstance(m.get("content"), str)):
                raise InputError("must be {role: system|user|assistant, content: str}", path=path, line=line,
                                 field=f"messages[{j}]")
        if msgs[-1]["role"] != "user":
            raise InputError("the last message must be from the user", path=path, line=line, field="messages")
        chosen = require(rec, "chosen", str, path=path, line=line, nonempty=True)
        rejected = require(rec, "rejected", str, path=path, line=line, nonempty=True)
        label = require(rec, "stage", str, path=path, line=line, nonempty=True)
        index = require(rec, "stage_index", int, path=path, line=line)
        if index < 0:
            raise InputError(f"must be >= 0 (got {index})", path=path, line=line, field="stage_index")
        stage = by_index.setdefault(index, Stage(index, label, []))
        if stage.label != label:
            raise InputError(f"stage_index {index} is '{stage.label}' elsewhere in the file but '{label}' here",
                             path=path, line=line, field="stage")
        stage.pairs.append({"id": str(rec["id"]), "messages": msgs, "chosen": chosen, "rejected": rejected,
                            "pair_key": pair_key(msgs, chosen, rejected)})
    if n == 0:
        raise InputError("holds no pairs", path=path)
    stages = [by_index[i] for i in sorted(by_index)]
    expected = list(range(len(stages)))
    if [s.index for s in stages] != expected:
        missing = sorted(set(range(max(by_index) + 1)) - set(by_index))
        raise InputError(f"stage_index values {missing} have no pairs (stages must be 0..k-1 with no gaps)",
                         path=path, field="stage_index")
    labels = [s.label for s in stages]
    if any(lab in STAGES for lab in labels) and len(stages) < len(STAGES):
        missing = [lab for lab in STAGES if lab not in labels]
        raise InputError(f"stage(s) {missing} have no pairs (found {labels}); build pairs from more prompts, "
                         "with another split, or with --curriculum none", path=path, field="stage")
    return stages


def to_rows(stage: Stage) -> list[dict]:
    """TRL's conversational preference format; TRL applies the chat template itself."""
    return [{"prompt": p["messages"], "chosen": [{"role": "assistant", "content": p["chosen"]}],
             "rejected": [{"role": "assistant", "content": p["rejected"]}], "pair_key": p["pair_key"]}
            for p in stage.pairs]
