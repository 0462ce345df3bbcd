"""The command line is generated from the config dataclasses: every setting is a flag, documented as in
docs/recipes.md, and every stage command takes --config FILE (flags override it)."""
import dataclasses
import json
import sys

import pytest

from udasa.cli import app
from udasa.cli.options import config_options, field_docs, parse_value
from udasa.evaluation.runner import EvalConfig
from udasa.sampling.config import SampleConfig
from udasa.training.config import TrainConfig
from udasa.uncertainty.config import ScoreConfig


def flags_of(command_name: str) -> set[str]:
    import typer.main

    cmd = typer.main.get_command(app).commands[command_name]
    return {opt for p in cmd.params for opt in p.opts + p.secondary_opts}


@pytest.mark.parametrize("command, cls, skip", [("sample", SampleConfig, ()), ("score", ScoreConfig, ()),
                                                ("train", TrainConfig, ()), ("eval", EvalConfig, ()),
                                                ("validate", ScoreConfig, ("model", "device", "dtype"))])
def test_every_config_field_is_a_documented_flag(command, cls, skip):
    flags = flags_of(command)
    docs = field_docs(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        assert "--" + f.name.replace("_", "-") in flags, f"{command}: --{f.name} missing"
        assert docs.get(f.name), f"{cls.__name__}.{f.name} has no documentation"
    assert "--config" in flags or command == "validate"


def test_field_docs_join_continuation_lines_and_shared_entries():
    docs = field_docs(TrainConfig)
    assert docs["lora_r"] == docs["lora_alpha"] == docs["lora_dropout"]
    assert docs["reference"].startswith('"initial"') and "stage starts from" in docs["reference"]


def test_list_and_mapping_flags_take_shorthands_or_yaml():
    assert parse_value("harmless,helpful", tuple[str, ...], "--tasks") == ["harmless", "helpful"]
    assert parse_value("sentiment=512,helpful=64", dict[str, int], "--sizes") == {"sentiment": 512, "helpful": 64}
    assert parse_value("{semantic: 1, value: 2}", dict[str, float], "--weights") == {"semantic": 1, "value": 2}
    assert parse_value("sigmoid,ipo", str | list[str], "--loss-type") == ["sigmoid", "ipo"]
    assert parse_value("sigmoid", str | list[str], "--loss-type") == "sigmoid"


def test_config_file_then_flags(tmp_path, capsys, monkeypatch, tiny_model_path):
    from udasa.cli.options import build_config

    gen = config_options(ScoreConfig)
    cfg_file = tmp_path / "score.yaml"
    cfg_file.write_text("spec: helpful\nembedder: bow\nweights: {semantic: 1}\n")
    cfg = build_config(gen, {"normalization": "minmax"}, cfg_file)
    assert (cfg.spec, cfg.embedder, cfg.normalization) == ("helpful", "bow", "minmax")
    assert cfg.effective["weights"]["semantic"] == 1.0
    cfg = build_config(gen, {"spec": "safety"}, cfg_file)
    assert cfg.spec == "safety"  # the flag wins
    cfg_file.write_text("spec: helpful\nspecc: typo\n")
    from udasa.errors import InputError
    with pytest.raises(InputError, match="unknown key; did you mean 'spec'"):
        build_config(gen, {}, cfg_file)
    # end to end: the new scoring settings reach the scorer from the command line
    samples = tmp_path / "s.jsonl"
    samples.write_text(json.dumps({"id": "a", "prompt": "hi", "responses": ["x y", "z w", "q"], "num_tokens": [2, 2, 1],
                                   "logprob_mean": [-1, -2, -3], "model": "m"}) + "\n")
    from udasa.cli import main
    monkeypatch.setattr(sys, "argv", ["udasa", "score", "--samples", str(samples), "--out", str(tmp_path / "u.jsonl"),
                                      "--config", str(tmp_path / "c.yaml")])
    (tmp_path / "c.yaml").write_text("embedder: bow\nspec: helpful\n")
    monkeypatch.setattr(sys, "argv", sys.argv + ["--factual-gate", "value", "--token-weight", "0.25"])
    with pytest.raises(SystemExit) as e:
        main()
    assert e.value.code == 0
    rec = json.loads((tmp_path / "u.jsonl").read_text())
    assert rec["scoring"]["factual_gate"] == "value" and rec["scoring"]["token_weight"] == 0.25
    assert rec["spec"] == "helpful"
