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


def check_same_producer(old: dict | None, new: dict, *, path, what: str, defaults: dict | None = None) -> None:
    """Refuse to resume ``path`` when what produced its existing content (``old``: its first record or its
    run file) differs from what would produce the rest (``new``) in any key of ``new``.

    ``defaults`` maps a key whose value is a settings mapping to that mapping's defaults: a setting a later
    udasa added is no difference while it keeps its default (it cannot have changed what was written)."""
    if old is None:
        return
    if "schema" in new and "schema" not in old:
        raise InputError(f"holds {what} written by an older udasa (no schema); it cannot be resumed safely: "
                         "use another output or delete it", path=str(path))
    diff = changed(old, new, defaults)
    if diff:
        shown = "; ".join(f"{k}: {_short(old.get(k))} now {_short(new[k])}" for k in diff)
        raise InputError(f"holds {what} made with other settings: {shown}; use another output or delete it",
                         path=str(path))


def changed(old: dict, new: dict, defaults: dict | None = None) -> list[str]:
    """The keys of ``new`` whose value differs in ``old`` (see `check_same_producer` for ``defaults``)."""
    defaults = defaults or {}
    return sorted(k for k in new if not _same(old.get(k), new[k], defaults.get(k)))


def check_input_unchanged(recorded: str | None, current: str, *, path, item: str, what: str) -> None:
    """Refuse a resume in which an input already processed into ``path`` has changed under the same id."""
    if recorded != current:
        raise InputError(f"{what} {item!r} differs from the one this file was made from (same id, other content); "
                         "use another output or delete it", path=str(path))


def _same(old, new, default: dict | None) -> bool:
    if old == new:
        return True
    if default is None or not isinstance(old, dict) or not isinstance(new, dict):
        return False
    added = set(new) - set(old)
    return all(new[k] == default.get(k) for k in added) and all(old[k] == new.get(k) for k in old)


def _short(v, limit: int = 120) -> str:
    s = json.dumps(v, sort_keys=True, default=str)
    return s if len(s) <= limit else s[:limit] + "..."
