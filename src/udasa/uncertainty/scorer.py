"""The scoring stage: samples.jsonl in, scores.jsonl out (one record per prompt, resumable)."""
from __future__ import annotations

import dataclasses

import os
from pathlib import Path
from typing import Iterable, Iterator


from udasa.errors import InputError, finite_number
from udasa.faults import failpoint
import numpy as np

from udasa.io import JsonlAppender, check_distinct, iter_jsonl, require
from udasa.models import model_fingerprint
from udasa.resume import SCHEMAS, check_input_unchanged, check_same_producer, content_hash
from udasa.uncertainty import functional as F
from udasa.uncertainty.config import ScoreConfig
from udasa.uncertainty.estimators import build_estimators, compute_stats, embed_spec, get_embedder, \
    required_statistics
from udasa.uncertainty.specs import load_spec

PASS_THROUGH = ("model", "model_fingerprint", "sampling", "sources", "format")  # and "spec" when a record names it


def check_sample(rec: dict, *, path: str, line: int, model: str | None = None) -> dict:
    """Check one samples.jsonl record and return the fields scoring needs; errors name file, line and field."""
    require(rec, "id", (str, int), path=path, line=line)
    prompt = require(rec, "prompt", str, path=path, line=line)
    responses = require(rec, "responses", list, path=path, line=line, nonempty=True)
    n = len(responses)
    if not all(isinstance(x, str) for x in responses):
        raise InputError("must be a list of strings", path=path, line=line, field="responses")
    if "logprob_mean" not in rec and "token_logprobs" not in rec:
        raise InputError("missing (no 'logprob_mean' nor 'token_logprobs': the factual axis needs the sampler's "
                         "log-probs; produce samples with `udasa sample`)", path=path, line=line, field="logprob_mean")
    if "logprob_mean" in rec:
        lpm = require(rec, "logprob_mean", list, path=path, line=line)
    else:
        tl = require(rec, "token_logprobs", list, path=path, line=line)
        if len(tl) != n or not all(isinstance(t, list) and all(finite_number(x) for x in t) for t in tl):
            raise InputError(f"must be {n} lists of finite numbers", path=path, line=line, field="token_logprobs")
        lpm = [sum(t) / len(t) if t else 0.0 for t in tl]
    if len(lpm) != n or not all(finite_number(x) for x in lpm):
        raise InputError(f"must be {n} finite numbers (one per response)", path=path, line=line,
                         field="logprob_mean")
    if "num_tokens" in rec:
        nt = require(rec, "num_tokens", list, path=path, line=line)
        if len(nt) != n or not all(isinstance(x, int) and x >= 0 for x in nt):
            raise InputError(f"must be {n} non-negative integers", path=path, line=line, field="num_tokens")
    elif "token_logprobs" in rec:
        nt = [len(t) for t in rec["token_logprobs"]]
    else:
        raise InputError("missing", path=path, line=line, field="num_tokens")
    if model is not None and rec.get("model") != model:
        raise InputError(f"samples come from model {rec.get('model')!r}, not {model!r} as asked; "
                         "score samples of the model you name (or leave the model unset)",
                         path=path, line=line, field="model")
    messages = rec.get("messages") or [{"role": "user", "content": prompt}]
    out = {"id": str(rec["id"]), "prompt": prompt, "messages": messages, "responses": responses,
           "num_tokens": nt, "logprob_mean": [float(x) for x in lpm]}
    out.update({k: rec[k] for k in PASS_THROUGH if k in rec})
    if "spec" in rec:
        out["spec"] = require(rec, "spec", str, path=path, line=line, nonempty=True)
    return out


class _SpecScoring:
    """What scoring needs per value spec: the spec, its statement embeddings, the settings in effect for it
    (its own fitted ones unless the config sets them) and, lazily, its policy judge and contrastive estimator."""

    def __init__(self, scorer: "Scorer", name: str):
        cfg = scorer.cfg
        self.spec = load_spec(name)
        self.spec_emb = embed_spec(self.spec, scorer.embedder, cfg.embed_batch_size)
        self.effective = cfg.effective if name == cfg.spec else cfg.effective_for(name)
        self.estimators = build_estimators(cfg, name)
        # validation: also compute the contrastive estimator's part when u does not use it (for its own row and
        # for `--fit`, which recombines parts); the semantic clusters always need the semantic embeddings
        extra = ("semantic_emb",) + (("contrast_prob",) if scorer.all_parts and self.spec.has_contrast else ())
        self.needed = required_statistics(self.estimators, extra)
        self.want_contrast = "contrast_prob" in self.needed
        self.judge = self.contrast = None
        self.cache = _PartsCache(self.parts_settings(scorer)) if cfg.cache_parts else None

    def parts_settings(self, scorer: "Scorer") -> dict:
        """Everything besides the sample record that shapes the estimators' parts (not the weights, gate,
        contrast weight or normalisation, which only combine them)."""
        from dataclasses import asdict

        cfg = scorer.cfg
        out = {"spec": [asdict(p) for p in self.spec.principles], "embedder": scorer.embedder_id,
               **{k: getattr(cfg, k) for k in ("semantic_input", "value_input", "support_threshold",
                                                "value_temperature", "cluster_threshold")}}
        if cfg.estimators is not None:  # which parts exist, and the settings that shape them (not the weights)
            out["estimators"] = sorted([e.name, {k: getattr(e, k) for k in e.part_settings}] for e in self.estimators)
        if "judge_prob" in self.needed:
            out["judge"] = {"model": cfg.model}
        if self.want_contrast:
            out["contrast"] = {"model": cfg.model, **{k: getattr(cfg, k) for k in (
                "contrast_temperature", "contrast_max_context", "contrast_max_response")}}
        return out


class _PartsCache:
    """Each record's estimator parts and semantic clusters, keyed by (the sample record, the settings that shape
    them), in ``$UDASA_CACHE/score-parts/``: re-scoring the same samples with other weights, factual gate or
    contrast weight reads them instead of running the embedder or the policy again. Append-only; concurrent
    writers take turns."""

    def __init__(self, settings: dict):
        from udasa.models import cache_dir

        self.path = cache_dir() / "score-parts" / f"{content_hash(settings)}.jsonl"
        self._rows: dict[str, dict] | None = None

    def get(self, key: str) -> dict | None:
        if self._rows is None:
            self._rows = {r["key"]: r for _, r in iter_jsonl(self.path, partial_tail_ok=True)} \
                if self.path.exists() else {}
        return self._rows.get(key)

    def put(self, rows: list[dict]) -> None:
        with JsonlAppender(self.path, key="key", wait=True) as w:
            w.write([r for r in rows if r["key"] not in w.done])
        if self._rows is not None:
            self._rows.update({r["key"]: r for r in rows})


class Scorer:
    """A loaded embedder, specs and estimators; `score_records` scores in-memory sample records.

    Each record is judged by its own ``spec`` when it names one (a recipe's prompt source can), else by the
    config's ``spec``."""

    def __init__(self, config: ScoreConfig | None = None, *, embedder=None, judge_policy=None,
                 all_parts: bool = False):
        self.cfg = config or ScoreConfig()
        self.embedder = embedder if embedder is not None else get_embedder(self.cfg.embedder, self.cfg.device)
        # what the parts cache keys the embedder by: its weights for a real model, else its name
        self.embedder_id = self.cfg.embedder if self.cfg.embedder == "bow" or embedder is not None \
            else f"{self.cfg.embedder}@{model_fingerprint(self.cfg.embedder)}"
        if embedder is not None:
            self.cfg = dataclasses.replace(self.cfg, cache_parts=False)  # an embedder we cannot identify
        self.all_parts = all_parts
        self._policy = judge_policy  # the model the judge and the contrastive estimator read
        self._specs: dict[str, _SpecScoring] = {}
        self.spec = self.for_spec(self.cfg.spec).spec

    def for_spec(self, name: str) -> _SpecScoring:
        if name not in self._specs:
            self._specs[name] = _SpecScoring(self, name)
        return self._specs[name]

    def policy_for(self, model_name: str | None):
        if self._policy is None:
            from udasa.policy import Policy

            self._policy = Policy(self.cfg.model or model_name, device=self.cfg.device, dtype=self.cfg.dtype)
        return self._policy

    def judge_for(self, ss: _SpecScoring, model_name: str | None):
        if "judge_prob" not in ss.needed:
            return None
        if ss.judge is None:
            from udasa.uncertainty.judge import PolicyJudge

            pol = self.policy_for(model_name)
            ss.judge = PolicyJudge(pol.model, pol.tokenizer, ss.spec, self.cfg.judge_batch_size)
        return ss.judge

    def contrast_for(self, ss: _SpecScoring, model_name: str | None):
        if not ss.want_contrast:
            return None
        if ss.contrast is None:
            from udasa.uncertainty.contrast import ContrastiveJudge

            ss.contrast = ContrastiveJudge(self.policy_for(model_name), ss.spec, self.cfg.contrast_temperature,
                                           self.cfg.contrast_max_context, self.cfg.contrast_max_response)
        return ss.contrast

    def score_records(self, records: list[dict], *, checked: bool = False) -> list[dict]:
        """Score a list of sample dicts (the samples.jsonl schema); returns scores.jsonl records in input order."""
        if not checked:
            records = [check_sample(r, path="<records>", line=i + 1, model=self.cfg.model)
                       for i, r in enumerate(records)]
        out: dict[int, dict] = {}
        for s in range(0, len(records), self.cfg.batch_prompts):
            batch = list(enumerate(records[s:s + self.cfg.batch_prompts], start=s))
            for name in dict.fromkeys(r.get("spec") or self.cfg.spec for _, r in batch):
                group = [(i, r) for i, r in batch if (r.get("spec") or self.cfg.spec) == name]
                ss = self.for_spec(name)
                found = self._parts(group, ss)
                out.update({i: self._score_one(r, found[i], ss) for i, r in group})
        return [out[i] for i in range(len(records))]

    def _parts(self, group: list[tuple[int, dict]], ss: _SpecScoring) -> dict[int, dict]:
        """Parts and clusters of each record: from the cache, else computed (one embedder call for the rest)."""
        keys = {i: content_hash([sample_hash(r), ss.cache.path.stem]) for i, r in group} if ss.cache else {}
        found = {i: ss.cache.get(keys[i]) for i, _ in group} if ss.cache else {}
        todo = [(i, r) for i, r in group if found.get(i) is None]
        if todo:
            model = todo[0][1].get("model")
            stats = compute_stats([r for _, r in todo], self.cfg, self.embedder, ss.spec_emb,
                                  self.judge_for(ss, model), self.contrast_for(ss, model), ss.needed)
            fresh = []
            for (i, _), st in zip(todo, stats):
                parts = {}
                for e in ss.estimators:
                    mine = e.parts(st)
                    if set(mine) & set(parts):
                        raise ValueError(f"estimator {e.name!r} names parts another estimator names: "
                                         f"{sorted(set(mine) & set(parts))}")
                    parts.update({k: [float(x) for x in v] for k, v in mine.items()})
                labels = F.greedy_clusters(st["semantic_emb"], self.cfg.cluster_threshold).tolist()
                found[i] = {"key": keys.get(i), "parts": parts, "clusters": labels}
                fresh.append(found[i])
            if ss.cache:
                ss.cache.put(fresh)
        return found

    def _score_one(self, rec: dict, found: dict, ss: _SpecScoring) -> dict:
        eff = ss.effective
        parts = {k: np.asarray(v, dtype=np.float64) for k, v in found["parts"].items()}
        value = next((e for e in ss.estimators if e.name == "value"), None)
        conforms = value.conforms(parts) if value is not None else None
        comp = {e.name: e.axis(parts, conforms) for e in ss.estimators}
        norm = {a: F.normalize(x, self.cfg.normalization) for a, x in comp.items()}
        u = F.combine(norm, eff["weights"])
        labels = np.asarray(found["clusters"])
        r5 = lambda xs: [F.safe_float(x) for x in xs]  # noqa: E731
        out = {k: rec[k] for k in ("id", "prompt", "messages", "responses", "num_tokens", "logprob_mean")}
        out.update({
            "components": {a: r5(x) for a, x in comp.items()},
            "normalized": {a: r5(x) for a, x in norm.items()},
            "u": r5(u),
            "parts": {k: r5(v) for k, v in parts.items()},
            "weights": dict(eff["weights"]),
            "spec": ss.spec.name,
            "semantic_entropy": F.safe_float(F.cluster_entropy(labels)),
            "semantic_clusters": labels.tolist(),
        })
        for k in PASS_THROUGH:
            out[k] = rec.get(k)
        for k in ("sources", "format"):
            if out[k] is None:
                out.pop(k)
        out["scoring"] = self.cfg.settings()
        out["schema"] = SCHEMAS["scores"]
        out["sample_hash"] = sample_hash(rec)
        return out


def iter_samples(path: str | os.PathLike, model: str | None = None) -> Iterator[dict]:
    """Stream checked sample records; all must come from one model (the first record's, unless named),
    with one set of weights (its fingerprint)."""
    first_model, first_fp = model, None
    for line, rec in iter_jsonl(path):
        if rec is None:
            continue
        s = check_sample(rec, path=str(path), line=line, model=first_model)
        if first_model is None and "model" in rec:
            first_model = rec["model"]
        fp = rec.get("model_fingerprint")
        if first_fp is None:
            first_fp = fp
        elif fp != first_fp:
            raise InputError(f"mixes samples of two models: weights {fp} here, {first_fp} on the first line; "
                             "score the samples of one model per file", path=str(path), line=line,
                             field="model_fingerprint")
        yield s


def sample_hash(sample: dict) -> str:
    """What a scores record was computed from: the checked sample record (texts, log-probs, model)."""
    return content_hash({k: sample.get(k) for k in ("id", "messages", "responses", "num_tokens", "logprob_mean",
                                                    "model_fingerprint", "format", "sources", "spec")})


def _unscored(samples: Iterable[dict], writer: JsonlAppender, out_path) -> Iterator[dict]:
    for s in samples:
        if s["id"] in writer.done:
            check_input_unchanged(writer.remembered.get(s["id"]), sample_hash(s), path=out_path, item=s["id"],
                                  what="the sample record of prompt")
        else:
            yield s


def _batched(it: Iterable[dict], size: int) -> Iterator[list[dict]]:
    batch = []
    for x in it:
        batch.append(x)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def score(samples_path: str | os.PathLike, out_path: str | os.PathLike, config: ScoreConfig | None = None, *,
          scorer: Scorer | None = None, progress: bool = True, **overrides) -> Path:
    """Score every prompt of ``samples_path`` and append one record per prompt to ``out_path`` (resumable).

    Keyword overrides set `ScoreConfig` fields: ``score("s.jsonl", "u.jsonl", spec="helpful")``.
    The input is checked in full before any work (a bad line fails fast), then streamed.
    """
    from tqdm.auto import tqdm

    cfg = config or (scorer.cfg if scorer else ScoreConfig())
    if overrides:
        cfg = dataclasses.replace(cfg, **overrides)
    total = sum(1 for _ in iter_samples(samples_path, cfg.model))
    if total == 0:
        raise InputError("holds no samples", path=str(samples_path))
    check_distinct(out_path, samples=samples_path)
    scorer = scorer if scorer is not None and scorer.cfg == cfg else Scorer(cfg)
    first = next(iter_samples(samples_path, cfg.model))
    meta = {"schema": SCHEMAS["scores"], "scoring": cfg.settings(), "model_fingerprint": first.get("model_fingerprint")}
    with JsonlAppender(out_path, key="id", remember=lambda r: r.get("sample_hash")) as writer:
        check_same_producer(writer.first, meta, path=out_path, what="scores",
                            defaults={"scoring": ScoreConfig(spec=cfg.spec).settings()})
        bar = tqdm(total=total, initial=len(writer.done), desc="scoring", unit="prompt", disable=not progress)
        pending = _unscored(iter_samples(samples_path, cfg.model), writer, out_path)
        for batch in _batched(pending, cfg.batch_prompts):
            writer.write(scorer.score_records(batch, checked=True))
            bar.update(len(batch))
            failpoint("score.batch")
        bar.close()
    return Path(out_path)
