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
