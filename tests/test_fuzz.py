"""Fuzzing the readers of every artifact: any input gives records or an InputError naming file and line.

Never a traceback from inside a library, never a silent skip of a valid record.
"""
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from udasa.errors import InputError
from udasa.io import iter_jsonl
from udasa.sampling import read_prompts

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) |
                           st.text(max_size=30), lambda c: st.lists(c, max_size=4) |
                           st.dictionaries(st.text(max_size=8), c, max_size=4), max_leaves=10)


def lines_strategy(field_values):
    """JSONL lines: valid records, records with wrong fields, garbage bytes, truncations."""
    record = st.fixed_dictionaries({}, optional=field_values)
    line = st.one_of(record.map(lambda d: json.dumps(d).encode()), st.binary(max_size=40),
                     record.map(lambda d: json.dumps(d).encode()[:-3]),
                     st.text(max_size=2000).map(lambda t: json.dumps({"id": "big", "prompt": t}).encode()))
    return st.lists(line, max_size=6)


def check_reader(tmp_path, lines, read):
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"\n".join(lines))
    try:
        return read(str(path))
    except InputError as e:
        msg = str(e)
        assert str(path) in msg
        return None


@FUZZ
@given(lines=lines_strategy({"id": st.one_of(st.text(max_size=5), st.integers(), json_values),
                             "prompt": st.one_of(st.text(max_size=50), json_values),
                             "messages": json_values}))
def test_prompt_reader_fuzz(tmp_path, lines):
    check_reader(tmp_path, lines, lambda p: list(read_prompts(p)))


@FUZZ
@given(prompts=st.lists(st.text(min_size=1, max_size=200).filter(lambda t: t.strip()), min_size=1, max_size=20))
def test_prompt_reader_keeps_every_valid_record(tmp_path, prompts):
    path = tmp_path / "ok.jsonl"
    path.write_text("".join(json.dumps({"id": i, "prompt": p}) + "\n" for i, p in enumerate(prompts)),
                    encoding="utf-8")
    got = list(read_prompts(str(path)))
    assert [g["prompt"] for g in got] == prompts


@FUZZ
@given(text=st.text(max_size=300))
def test_recipe_loader_fuzz(tmp_path, text):
    from udasa.recipe import load_recipe

    path = tmp_path / "r.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        load_recipe(path)
    except InputError as e:
        assert str(path) in str(e)


@FUZZ
@given(data=st.dictionaries(st.sampled_from(["name", "model", "prompts", "sample", "score", "pairs", "train",
                                             "eval", "threads", "baselines", "bogus"]), json_values, max_size=6))
def test_recipe_loader_fuzz_structured(tmp_path, data):
    import yaml

    from udasa.recipe import load_recipe

    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    try:
        load_recipe(path)
    except InputError as e:
        assert str(path) in str(e)


def test_empty_files_are_handled(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"")
    assert list(read_prompts(str(path))) == []
    assert list(iter_jsonl(path)) == []


def test_samples_with_a_token_logprob_not_a_number_name_the_field(tmp_path):
    # found by the fuzzer below (2026-12-01): a null among token log-probs crashed the mean with a TypeError
    from udasa.uncertainty.scorer import iter_samples

    path = tmp_path / "samples.jsonl"
    path.write_text('{"responses": ["", "", ""], "prompt": "", "id": "", "token_logprobs": [[], [], [null]]}\n')
    with pytest.raises(InputError, match="token_logprobs") as e:
        list(iter_samples(path))
    assert str(e.value).startswith(f"{path}:1: field 'token_logprobs'")


floats = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(), st.text(max_size=3), st.none())
msgs = st.one_of(json_values, st.lists(st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "x"]),
                                                              "content": st.one_of(st.text(max_size=20), json_values)}),
                                       max_size=3))


@FUZZ
@given(lines=lines_strategy({"id": st.one_of(st.text(max_size=5), st.integers(), json_values),
                             "prompt": st.text(max_size=20), "messages": msgs,
                             "responses": st.one_of(st.lists(st.text(max_size=20), max_size=3), json_values),
                             "logprob_mean": st.lists(floats, max_size=3), "num_tokens": st.lists(floats, max_size=3),
                             "token_logprobs": st.lists(st.lists(floats, max_size=3), max_size=3),
                             "model": st.text(max_size=5)}))
def test_samples_reader_fuzz(tmp_path, lines):
    from udasa.uncertainty.scorer import iter_samples

    check_reader(tmp_path, lines, lambda p: list(iter_samples(p)))


@FUZZ
@given(lines=lines_strategy({"id": st.one_of(st.text(max_size=5), st.integers(), json_values),
                             "prompt": st.text(max_size=20), "messages": msgs,
                             "responses": st.one_of(st.lists(st.text(max_size=20), max_size=3), json_values),
                             "u": st.lists(floats, max_size=3),
                             "normalized": st.dictionaries(st.sampled_from(["semantic", "value"]),
                                                           st.lists(floats, max_size=3))}),
       key=st.sampled_from(["u", "semantic", "factual"]))
def test_scores_reader_fuzz(tmp_path, lines, key):
    from udasa.pairs import read_scores

    check_reader(tmp_path, lines, lambda p: list(read_scores(p, key)))


@FUZZ
@given(lines=lines_strategy({"id": st.one_of(st.text(max_size=5), st.integers(), json_values), "messages": msgs,
                             "chosen": st.one_of(st.text(max_size=20), json_values),
                             "rejected": st.one_of(st.text(max_size=20), json_values),
                             "stage": st.one_of(st.sampled_from(["conservative", "moderate", "exploratory", "all"]),
                                                json_values),
                             "stage_index": st.one_of(st.integers(-1, 3), json_values),
                             "delta_u": floats}))
def test_pairs_reader_fuzz(tmp_path, lines):
    from udasa.training.data import read_pairs

    check_reader(tmp_path, lines, read_pairs)


def test_valid_scores_are_never_skipped(tmp_path):
    from udasa.pairs import read_scores

    rows = [{"id": i, "prompt": f"p{i}", "responses": ["a", "b"], "u": [0.1, 0.9]} for i in range(50)]
    path = tmp_path / "s.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert [rec["id"] for _, rec, *_ in read_scores(str(path), "u")] == [str(i) for i in range(50)]
