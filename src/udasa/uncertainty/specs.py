"""Value specs: YAML lists of principles with conforming and violating statements.

A spec file looks like::

    name: safety
    description: Avoid helping anyone cause harm.
    principles:
      - name: refuse-harm
        question: Does the response refuse to help with harmful or illegal acts?
        conforming: ["I can't help with that, it could hurt someone.", ...]
        violating: ["Sure, here is how to do it: ...", ...]

``question`` is only used by the optional policy judge. Unknown keys and missing fields are
errors naming the file and key, so a typo never silently weakens a spec.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from udasa.errors import InputError

SPEC_KEYS = {"name", "description", "principles"}
PRINCIPLE_KEYS = {"name", "question", "conforming", "violating"}


@dataclass(frozen=True)
class Principle:
    name: str
    question: str
    conforming: tuple[str, ...]
    violating: tuple[str, ...]


@dataclass(frozen=True)
class ValueSpec:
    name: str
    description: str
    principles: tuple[Principle, ...]
    source: str


def builtin_specs() -> list[str]:
    """Names of the specs shipped in ``udasa/specs``."""
    return sorted(p.name[:-5] for p in resources.files("udasa").joinpath("specs").iterdir()
                  if p.name.endswith(".yaml"))


def load_spec(name_or_path: str | os.PathLike) -> ValueSpec:
    """A shipped spec by name (``safety``, ``helpful``, ``honest``, ``positive-sentiment``) or a YAML path."""
    key = str(name_or_path)
    if key in builtin_specs():
        return parse_spec(resources.files("udasa").joinpath("specs", key + ".yaml").read_text("utf-8"),
                          source=f"udasa/specs/{key}.yaml")
    path = Path(key).expanduser()
    if not path.is_file():
        raise InputError(f"spec {key!r} is neither a shipped spec ({', '.join(builtin_specs())}) nor a YAML file",
                         field="spec")
    return parse_spec(path.read_text("utf-8"), source=str(path))


def parse_spec(text: str, source: str = "<spec>") -> ValueSpec:
    import yaml

    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise InputError(f"invalid YAML: {e}", path=source) from None
    if not isinstance(doc, dict):
        raise InputError("a spec must be a mapping with 'name' and 'principles'", path=source)
    _check_keys(doc, SPEC_KEYS, {"name", "principles"}, source, "")
    principles = doc["principles"]
    if not isinstance(principles, list) or not principles:
        raise InputError("must be a non-empty list", path=source, field="principles")
    out, seen = [], set()
    for i, p in enumerate(principles):
        where = f"principles[{i}]"
        if not isinstance(p, dict):
            raise InputError("must be a mapping", path=source, field=where)
        _check_keys(p, PRINCIPLE_KEYS, {"name", "conforming", "violating"}, source, where + ".")
        for side in ("conforming", "violating"):
            st = p[side]
            if not isinstance(st, list) or not st or not all(isinstance(s, str) and s.strip() for s in st):
                raise InputError("must be a non-empty list of non-empty strings", path=source,
                                 field=f"{where}.{side}")
        name = str(p["name"])
        if name in seen:
            raise InputError(f"duplicate principle name {name!r}", path=source, field=f"{where}.name")
        seen.add(name)
        question = p.get("question") or f"Does the response follow the principle '{name}'?"
        out.append(Principle(name, str(question), tuple(p["conforming"]), tuple(p["violating"])))
    return ValueSpec(str(doc["name"]), str(doc.get("description", "")), tuple(out), source)


def _check_keys(d: dict, allowed: set, required: set, source: str, prefix: str) -> None:
    for k in d:
        if k not in allowed:
            raise InputError(f"unknown key (allowed: {', '.join(sorted(allowed))})", path=source,
                             field=f"{prefix}{k}")
    for k in sorted(required):
        if k not in d:
            raise InputError("missing", path=source, field=f"{prefix}{k}")
