"""One samples.jsonl record builder for both backends; the vLLM adapter is tested without vLLM installed."""
from types import SimpleNamespace

import pytest

from udasa.sampling import SampleConfig, respond
from udasa.sampling.records import sample_record
from udasa.sampling.vllm_backend import _record, vllm_prompt_ids

PROMPTS = [{"id": "chat", "prompt": "Hello there", "messages": [{"role": "user", "content": "Hello there"}]},
           {"id": "plain", "prompt": "This movie was", "messages": [{"role": "user", "content": "This movie was"}],
            "format": "plain"}]


def _fake_vllm_output(native: dict, stop_id: int) -> SimpleNamespace:
    """What vLLM would return for the same draws: text, token ids, per-token logprob dicts, finish reasons."""
    outs = []
    for text, lps, fin in zip(native["_raw_texts"], native["token_logprobs"], native["finish_reasons"]):
        ids = list(range(100, 100 + len(lps))) + ([stop_id] if fin == "stop" else [])
        steps = [{t: SimpleNamespace(logprob=lp)} for t, lp in zip(ids, lps + [-0.01] * (fin == "stop"))]
        outs.append(SimpleNamespace(text=text, token_ids=ids, logprobs=steps, stop_reason=None,
                                    finish_reason="stop" if fin == "stop" else "length"))
    return SimpleNamespace(outputs=outs)


@pytest.mark.parametrize("keep", [True, False])
def test_vllm_records_match_the_native_schema_for_chat_and_plain_prompts(tiny_policy, keep):
    cfg = SampleConfig(model=tiny_policy.name, n=3, max_new_tokens=6, keep_token_logprobs=True)
    native = respond(tiny_policy, PROMPTS, cfg)
    for p, rec in zip(PROMPTS, native):
        # texts as decoded, before the chat path strips them (a plain continuation keeps its leading space)
        rec["_raw_texts"] = [(" " if p.get("format") == "plain" else "  ") + t for t in rec["responses"]]
        ids = vllm_prompt_ids(tiny_policy.tokenizer, p, cfg)
        assert ids == tiny_policy.encode(p["messages"], plain=p.get("format") == "plain", max_new_tokens=6)
        out = _fake_vllm_output(rec, next(iter(tiny_policy.stop_ids)))
        cfg_k = SampleConfig(model=tiny_policy.name, n=3, max_new_tokens=6, keep_token_logprobs=keep)
        got = _record(p, ids, out, cfg_k)
        want = sample_record(p, ids, rec["_raw_texts"], rec["token_logprobs"], rec["finish_reasons"], cfg_k)
        assert got == want
        assert set(got) == set(rec) - {"_raw_texts"} - ({"token_logprobs"} if not keep else set())
        assert got.get("format") == p.get("format")
        if p.get("format") == "plain":
            assert all(r.startswith(" ") for r in got["responses"])  # a continuation keeps its leading space
