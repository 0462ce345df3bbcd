"""Reading prompts: JSONL files ({"id","prompt"} or {"id","messages"}) or in-memory rows.

A record with ``"format": "plain"`` is a text to continue (e.g. an IMDb review opening), fed to the
model as is, without the chat template; the default ``"chat"`` is a user turn.
"""
from __future__ import annotations

from typing import Iterable, Iterator

from udasa.errors import InputError
from udasa.io import check_messages, iter_jsonl, prompt_format, require

MAX_PROMPT_CHARS = 1_000_000


def normalize_prompt(rec: dict, *, path: str, line: int) -> dict:
    """Check one prompt record and return ``{id, prompt, messages}`` (messages end with a user turn)."""
    if "id" not in rec:
        raise InputError("missing", path=path, line=line, field="id")
    pid = rec["id"]
    if isinstance(pid, bool) or not isinstance(pid, (str, int)) or (isinstance(pid, str) and not pid.strip()):
        raise InputError(f"must be a non-empty string or an integer, got {pid!r}"[:200], path=path, line=line,
                         field="id")
    if "messages" in rec:
        messages = check_messages(rec, path=path, line=line)
        prompt = rec.get("prompt") if isinstance(rec.get("prompt"), str) else messages[-1]["content"]
    elif "prompt" in rec:
        prompt = require(rec, "prompt", str, path=path, line=line, nonempty=True)
        messages = [{"role": "user", "content": prompt}]
    else:
        raise InputError("missing (a prompt record needs 'prompt' or 'messages')", path=path, line=line,
                         field="prompt")
    size = sum(len(m["content"]) for m in messages)
    if size > MAX_PROMPT_CHARS:
        raise InputError(f"is {size:,} characters long; prompts are limited to {MAX_PROMPT_CHARS:,} (a model reads a "
                         "few thousand tokens; longer texts would be cut anyway)", path=path, line=line,
                         field="messages" if "messages" in rec else "prompt")
    fmt = prompt_format(rec, path=path, line=line)
    if fmt == "plain" and len(messages) != 1:
        raise InputError("a plain-text record is one text, not a dialogue (a system message or earlier turns would "
                         "be dropped)", path=path, line=line, field="format")
    out = {"id": str(pid), "prompt": prompt, "messages": messages}
    if fmt == "plain":
        out["format"] = "plain"
    if "spec" in rec:  # the value spec that judges this prompt's responses (scoring), if not the run's
        out["spec"] = require(rec, "spec", str, path=path, line=line, nonempty=True)
    return out


def read_prompts(source: str | Iterable[dict], *, name: str = "<prompts>") -> Iterator[dict]:
    """Stream checked prompt records from a JSONL path or any iterable of dicts (e.g. a ``datasets.Dataset``).

    Duplicate ids are an error that names both lines.
    """
    if isinstance(source, str) or hasattr(source, "__fspath__"):
        path = str(source)
        rows = ((ln, rec) for ln, rec in iter_jsonl(path) if rec is not None)
    else:
        path = name
        rows = enumerate(source, start=1)
    seen: dict[str, int] = {}
    for line, rec in rows:
        if not isinstance(rec, dict):
            raise InputError(f"expected a mapping, got {type(rec).__name__}", path=path, line=line)
        p = normalize_prompt(rec, path=path, line=line)
        if p["id"] in seen:
            raise InputError(f"duplicate id {p['id']!r} (first on line {seen[p['id']]})"[:300], path=path, line=line,
                             field="id")
        seen[p["id"]] = line
        yield p
