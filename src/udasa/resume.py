"""Refusing to continue an artifact under other settings: the one check every resumable stage uses.

A resumable artifact (samples, scores, validation items, evaluation generations, a training run)
records what produced it: a ``schema`` version, the model fingerprint, the settings, and per record
a hash of the input it was made from. Resuming compares all of it; any difference, or an artifact
without these fields (an older udasa wrote it), is an `InputError` that names the file and what
differs, never a silent mix of two runs in one file.
"""
from __future__ import annotations

import hashlib
import json

from udasa.errors import InputError

SCHEMAS = {"samples": "udasa.samples/2", "scores": "udasa.scores/2", "generations": "udasa.generations/2"}


def content_hash(obj) -> str:
    """A short, stable hash of JSON-able content (key order does not matter)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()[:16]


def check_same_producer(old: dict | None, new: dict, *, path, what: str) -> None:
    """Refuse to resume ``path`` when what produced its existing content (``old``: its first record or its
    run file) differs from what would produce the rest (``new``) in any key of ``new``."""
    if old is None:
        return
    if "schema" in new and "schema" not in old:
        raise InputError(f"holds {what} written by an older udasa (no schema); it cannot be resumed safely: "
                         "use another output or delete it", path=str(path))
    diff = sorted(k for k in new if old.get(k) != new[k])
    if diff:
        shown = "; ".join(f"{k}: {_short(old.get(k))} now {_short(new[k])}" for k in diff)
        raise InputError(f"holds {what} made with other settings: {shown}; use another output or delete it",
                         path=str(path))


def check_input_unchanged(recorded: str | None, current: str, *, path, item: str, what: str) -> None:
    """Refuse a resume in which an input already processed into ``path`` has changed under the same id."""
    if recorded != current:
        raise InputError(f"{what} {item!r} differs from the one this file was made from (same id, other content); "
                         "use another output or delete it", path=str(path))


def _short(v, limit: int = 120) -> str:
    s = json.dumps(v, sort_keys=True, default=str)
    return s if len(s) <= limit else s[:limit] + "..."
