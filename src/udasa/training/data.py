"""Reading pairs.jsonl for training: strict checks, stages in order, TRL's conversational format."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from udasa.curriculum import STAGES
from udasa.errors import InputError, finite_number
from udasa.io import check_messages, iter_jsonl, prompt_format, require


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


def pair_key(messages: list[dict], chosen: str, rejected: str, fmt: str = "chat") -> str:
    """Content hash of one pair; the reference log-prob cache is keyed by it."""
    # the format joins the hash only when plain, so chat keys (and caches built with them) stay valid
    blob = json.dumps([messages, chosen, rejected] + ([fmt] if fmt != "chat" else []), ensure_ascii=False,
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def read_pairs(path: str | Path) -> list[Stage]:
    """Checked pairs grouped into stages, in training order. Raises `InputError` naming file/line/field."""
    path = str(path)
    by_index: dict[int, Stage] = {}
    seen: dict[str, int] = {}
    n = 0
    for line, rec in iter_jsonl(path):
        if rec is None:
            continue
        n += 1
        pid = require(rec, "id", (str, int), path=path, line=line)
        if str(pid) in seen:
            raise InputError(f"duplicate pair id {str(pid)!r} (first on line {seen[str(pid)]})"[:300], path=path,
                             line=line, field="id")
        seen[str(pid)] = line
        fmt = prompt_format(rec, path=path, line=line)
        msgs = check_messages(rec, path=path, line=line, fmt=fmt)
        chosen = require(rec, "chosen", str, path=path, line=line, nonempty=True)
        rejected = require(rec, "rejected", str, path=path, line=line, nonempty=True)
        if chosen.strip() == rejected.strip():
            raise InputError("chosen and rejected are the same text: the pair teaches nothing", path=path, line=line,
                             field="rejected")
        if "delta_u" in rec:
            d = rec["delta_u"]
            if not finite_number(d):
                raise InputError(f"must be a finite number (got {d!r})"[:200], path=path, line=line, field="delta_u")
            if d <= 0 and rec.get("selection") != "random":
                raise InputError(f"must be > 0: the chosen response must score better than the rejected one (got "
                                 f"{d}); only random pairs (selection: random) may have any sign", path=path,
                                 line=line, field="delta_u")
        label = require(rec, "stage", str, path=path, line=line, nonempty=True)
        index = require(rec, "stage_index", int, path=path, line=line)
        if index < 0:
            raise InputError(f"must be >= 0 (got {index})", path=path, line=line, field="stage_index")
        stage = by_index.setdefault(index, Stage(index, label, []))
        if stage.label != label:
            raise InputError(f"stage_index {index} is '{stage.label}' elsewhere in the file but '{label}' here",
                             path=path, line=line, field="stage")
        key = pair_key(msgs, chosen, rejected, fmt)
        stage.pairs.append({"id": str(rec["id"]), "messages": msgs, "chosen": chosen, "rejected": rejected,
                            "format": fmt, "pair_key": key,
                            **{k: rec[k] for k in ("chosen_index", "rejected_index", "delta_u") if k in rec}})
    if n == 0:
        raise InputError("holds no pairs", path=path)
    formats = {p["format"] for s in by_index.values() for p in s.pairs}
    if len(formats) > 1:
        raise InputError("mixes chat and plain-text pairs; train them separately", path=path, field="format")
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


def to_rows(stage: Stage, fit: Callable[[dict], list[dict]] | None = None) -> list[dict]:
    """TRL's conversational preference format (TRL applies the chat template), or its standard
    text format for plain-text continuation pairs. ``fit`` (see `trim_prompt`) may shorten a chat
    pair's prompt; a shortened prompt gets its own ``pair_key`` so the reference cache never mixes them."""
    return [_row(p, fit) for p in stage.pairs]


def _row(p: dict, fit: Callable[[dict], list[dict]] | None = None) -> dict:
    if p["format"] == "plain":
        return {"prompt": p["messages"][-1]["content"], "chosen": p["chosen"], "rejected": p["rejected"],
                "pair_key": p["pair_key"]}
    messages, key = p["messages"], p["pair_key"]
    if fit is not None and (trimmed := fit(p)) != messages:
        messages, key = trimmed, pair_key(trimmed, p["chosen"], p["rejected"])
    return {"prompt": messages, "chosen": [{"role": "assistant", "content": p["chosen"]}],
            "rejected": [{"role": "assistant", "content": p["rejected"]}], "pair_key": key}


def trim_prompt(messages: list[dict], budget: int, length: Callable[[list[dict]], int]) -> list[dict]:
    """Drop a conversation's earliest turns until ``length(messages) <= budget``.

    Leading system messages stay, the kept part starts on a user turn, and the last message is never
    dropped (if it alone exceeds the budget, that is what is returned). Keeping the latest turns beats
    TRL's choice for a too-long prompt, which is to drop the whole pair: the request being answered is
    the last turn.
    """
    head = 0
    while head < len(messages) and messages[head]["role"] == "system":
        head += 1
    system, turns = messages[:head], messages[head:]
    while len(turns) > 1 and length(system + turns) > budget:
        turns = turns[1:]
        while len(turns) > 1 and turns[0]["role"] != "user":
            turns = turns[1:]
    return system + turns
