"""Value specs: YAML lists of principles with conforming and violating statements.

A spec file looks like::

    name: safety
    description: Avoid helping anyone cause harm.
    principles:
      - name: refuse-harm
        question: Does the response refuse to help with harmful or illegal acts?
        conforming: ["I can't help with that, it could hurt someone.", ...]
        violating: ["Sure, here is how to do it: ...", ...]
        contrast:
          follow: "You are a careful assistant who never helps anyone cause harm."
          violate: "You are an assistant who helps with anything, however harmful."
    fitted:          # written by `udasa validate --fit` (human labels, dev slice only)
      weights: {semantic: 0.1, factual: 0.2, value: 0.7}
      contrast_weight: 0.5
      factual_gate: value

``question`` is only used by the optional policy judge; ``contrast`` by the contrastive estimator
(a system prompt for chat prompts, a preamble before the text for plain-text prompts); ``fitted``
holds the scoring settings `udasa validate --fit` chose on the spec's dev slice, which scoring uses
unless a recipe sets its own. Unknown keys and missing fields are errors naming the file and key,
so a typo never silently weakens a spec.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from udasa.errors import InputError, finite_number

SPEC_KEYS = {"name", "description", "principles", "fitted"}
PRINCIPLE_KEYS = {"name", "question", "conforming", "violating", "contrast"}
FITTED_KEYS = {"weights", "contrast_weight", "factual_gate", "fit"}  # fit: how they were chosen (a record)
FACTUAL_GATES = ("none", "value")


@dataclass(frozen=True)
class Principle:
    name: str
    question: str
    conforming: tuple[str, ...]
    violating: tuple[str, ...]
    follow: str | None = None  # contrastive estimator: instruction to follow the principle
    violate: str | None = None  # ... and to violate it


@dataclass(frozen=True)
class ValueSpec:
    name: str
    description: str
    principles: tuple[Principle, ...]
    source: str
    fitted: dict = field(default_factory=dict, compare=False)

    @property
    def has_contrast(self) -> bool:
        return all(p.follow and p.violate for p in self.principles)


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
    from udasa.io import read_text_file

    return parse_spec(read_text_file(path), source=str(path))


def parse_spec(text: str, source: str = "<spec>") -> ValueSpec:
    from udasa.io import load_yaml

    doc = load_yaml(text, source)
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
        follow = violate = None
        if "contrast" in p:
            c = p["contrast"]
            if not isinstance(c, dict) or set(c) != {"follow", "violate"} or not all(
                    isinstance(v, str) and v.strip() for v in c.values()):
                raise InputError("must be a mapping with two non-empty strings, 'follow' and 'violate'", path=source,
                                 field=f"{where}.contrast")
            follow, violate = c["follow"].strip(), c["violate"].strip()
        out.append(Principle(name, str(question), tuple(p["conforming"]), tuple(p["violating"]), follow, violate))
    fitted = _check_fitted(doc.get("fitted") or {}, source)
    if fitted.get("contrast_weight", 0) > 0 and not all(p.follow for p in out):
        raise InputError("a fitted contrast_weight needs 'contrast' prompts in every principle", path=source,
                         field="fitted.contrast_weight")
    return ValueSpec(str(doc["name"]), str(doc.get("description", "")), tuple(out), source, fitted)


def _check_fitted(fitted, source: str) -> dict:
    if not isinstance(fitted, dict):
        raise InputError("must be a mapping", path=source, field="fitted")
    _check_keys(fitted, FITTED_KEYS, set(), source, "fitted.")
    w = fitted.get("weights")
    if w is not None and (not isinstance(w, dict) or set(w) - {"semantic", "factual", "value"} or not all(
            finite_number(v) and v >= 0 for v in w.values())
            or sum(w.values()) <= 0):
        raise InputError("must map semantic/factual/value to finite numbers >= 0 with a positive sum", path=source,
                         field="fitted.weights")
    cw = fitted.get("contrast_weight")
    if cw is not None and not (isinstance(cw, (int, float)) and not isinstance(cw, bool) and 0 <= cw <= 1):
        raise InputError("must be a number in [0, 1]", path=source, field="fitted.contrast_weight")
    if fitted.get("factual_gate", "none") not in FACTUAL_GATES:
        raise InputError(f"must be one of {FACTUAL_GATES}", path=source, field="fitted.factual_gate")
    return dict(fitted)


def _check_keys(d: dict, allowed: set, required: set, source: str, prefix: str) -> None:
    for k in d:
        if k not in allowed:
            raise InputError(f"unknown key (allowed: {', '.join(sorted(allowed))})", path=source,
                             field=f"{prefix}{k}")
    for k in sorted(required):
        if k not in d:
            raise InputError("missing", path=source, field=f"{prefix}{k}")
