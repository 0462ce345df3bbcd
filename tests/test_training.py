"""Staged DPO on the tiny model: stage chaining, reference, cache reuse, resume, LoRA, bad input."""
import json
from pathlib import Path

import pytest

from udasa.errors import InputError
from udasa.models import model_fingerprint
from udasa.training import TrainConfig, train

TEXTS = ["I cannot help with that request.", "Paris is the capital of France.", "Please be careful and stay safe.",
         "Sure, here is how to do it.", "Terrible film, boring and bad.", "The answer is 42."]
STAGES = ["conservative", "moderate", "exploratory"]


def write_pairs(path, n_per_stage=4, stages=STAGES, indices=None):
    recs = []
    for s, label in enumerate(stages):
        for j in range(n_per_stage):
            i = s * n_per_stage + j
            recs.append({"id": f"p{i}", "prompt": f"question {i}?",
                         "messages": [{"role": "user", "content": f"question {i}?"}],
                         "chosen": TEXTS[i % 6], "rejected": TEXTS[(i + 1) % 6] + " no", "chosen_index": 0,
                         "rejected_index": 1, "u_chosen": 0.1, "u_rejected": 0.5, "delta_u": 0.4, "stage": label,
                         "stage_index": (indices or list(range(len(stages))))[s], "score_key": "u"})
    Path(path).write_text("".join(json.dumps(r) + "\n" for r in recs))
    return path


def cfg(model, tmp_path, **kw):
    base = dict(model=model, learning_rate=1e-3, per_device_train_batch_size=2, max_length=64,
                ref_cache_dir=str(tmp_path / "refcache"))
    return TrainConfig(**{**base, **kw})


def stage_rec(out, name):
    return json.loads((Path(out) / name / "udasa_stage.json").read_text())


def first_log(out, stage_index):
    rows = [json.loads(x) for x in (Path(out) / "train_log.jsonl").read_text().splitlines()]
    return next(r for r in rows if r["event"] == "log" and r["stage_index"] == stage_index)


def test_three_stages_chain_reference_and_cache(tiny_model_path, tmp_path):
    from transformers import AutoModelForCausalLM

    from udasa.training.ref_cache import weights_hash

    pairs = write_pairs(tmp_path / "pairs.jsonl")
    out = tmp_path / "run1"
    final = train(pairs, out, cfg(tiny_model_path, tmp_path))
    names = ["stage-1-conservative", "stage-2-moderate", "stage-3-exploratory"]
    recs = [stage_rec(out, n) for n in names]
    initial = AutoModelForCausalLM.from_pretrained(tiny_model_path)
    s1 = AutoModelForCausalLM.from_pretrained(out / names[0])
    # each stage starts from the previous one's saved weights
    assert recs[0]["start_weights"] == weights_hash(initial)
    assert recs[1]["start_weights"] == weights_hash(s1) == recs[0]["end_weights"] != recs[0]["start_weights"]
    assert recs[2]["start_weights"] == recs[1]["end_weights"]
    assert recs[1]["init_from"] == str(out / names[0])
    # the reference stays the initial model: its fingerprint, and rewards are non-zero at stage 2's first step
    fp = model_fingerprint(tiny_model_path)
    assert all(r["reference_fingerprint"] == fp for r in recs)
    # policy == reference at the very start (up to padding noise), not at stage 2's start
    assert abs(first_log(out, 0)["rewards/chosen"]) < 1e-4
    assert abs(first_log(out, 1)["rewards/chosen"]) > 1e-3
    assert [r["ref_cache"]["misses"] for r in recs] == [4, 4, 4]
    # outputs: HF folders, model card with per-stage DPO metrics, log lines per step and per stage end
    for n in names + ["final"]:
        assert (out / n / "model.safetensors").exists() and (out / n / "tokenizer.json").exists()
    card = (final / "README.md").read_text()
    assert "reward margin" in card and all(n in card for n in names)
    assert weights_hash(AutoModelForCausalLM.from_pretrained(final)) == recs[2]["end_weights"]
    log = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    assert sum(r["event"] == "stage_end" for r in log) == 3
    assert sum(r["event"] == "log" for r in log) == 6 and all("rewards/margins" in r for r in log
                                                                 if r["event"] == "log")
    assert not list(out.glob("*/checkpoints"))

    # an ablation over the same pairs (reverse order) shares the reference: every row is a cache hit
    rev = write_pairs(tmp_path / "rev.jsonl", indices=[2, 1, 0])
    out2 = tmp_path / "run2"
    train(rev, out2, cfg(tiny_model_path, tmp_path))
    recs2 = [stage_rec(out2, n) for n in ["stage-1-exploratory", "stage-2-moderate", "stage-3-conservative"]]
    assert [r["ref_cache"] for r in recs2] == [{"hits": 4, "misses": 0, "file": recs[0]["ref_cache"]["file"]}] * 3

    # reference = previous stage: the reference moves, so stage 2 starts with zero rewards
    out3 = tmp_path / "run3"
    train(pairs, out3, cfg(tiny_model_path, tmp_path, reference="previous"))
    assert abs(first_log(out3, 1)["rewards/chosen"]) < 1e-4
    assert stage_rec(out3, names[1])["reference_fingerprint"] == model_fingerprint(out3 / names[0])


def test_resume_from_finished_stage_and_checkpoint(tiny_model_path, tmp_path, monkeypatch):
    from udasa.training import ref_cache

    pairs = write_pairs(tmp_path / "pairs.jsonl")
    out = tmp_path / "run"
    c = cfg(tiny_model_path, tmp_path, save_steps=1)
    orig = ref_cache.UdasaDPOTrainer.training_step

    def killed(self, model, inputs, *a, **k):
        if self.args.seed == 1 and self.state.global_step == 1:  # stage 2, after its first checkpoint
            raise KeyboardInterrupt
        return orig(self, model, inputs, *a, **k)

    monkeypatch.setattr(ref_cache.UdasaDPOTrainer, "training_step", killed)
    with pytest.raises(KeyboardInterrupt):
        train(pairs, out, c)
    assert (out / "stage-1-conservative" / "udasa_stage.json").exists()
    assert not (out / "stage-2-moderate" / "udasa_stage.json").exists()
    assert (out / "stage-2-moderate" / "checkpoints" / "checkpoint-1").is_dir()
    s1 = stage_rec(out, "stage-1-conservative")
    monkeypatch.setattr(ref_cache.UdasaDPOTrainer, "training_step", orig)
    train(pairs, out, c)
    assert stage_rec(out, "stage-1-conservative") == s1  # not retrained
    s2 = stage_rec(out, "stage-2-moderate")
    assert s2["resumed_from_checkpoint"].endswith("checkpoint-1") and s2["steps"] == 2
    assert s2["start_weights"] == s1["end_weights"]
    with pytest.raises(InputError, match="other"):
        train(pairs, out, cfg(tiny_model_path, tmp_path, beta=0.5))  # a different recipe into the same folder


def test_lora_merged_final_and_adapter(tiny_model_path, tmp_path):
    from transformers import AutoModelForCausalLM
    from typer.testing import CliRunner

    from udasa.cli import app
    from udasa.training.ref_cache import weights_hash

    pairs = write_pairs(tmp_path / "pairs.jsonl", n_per_stage=2)
    out = tmp_path / "lora"
    res = CliRunner().invoke(app, ["train", "--pairs", str(pairs), "--out", str(out), "--model", tiny_model_path,
                                   "--lora", "--lora-targets", "q_proj,v_proj", "--learning-rate", "1e-2",
                                   "--batch-size", "2", "--max-length", "64", "--ref-cache-dir",
                                   str(tmp_path / "rc"), "--stage-override", "moderate.beta=0.3"])
    assert res.exit_code == 0, res.output
    recs = [stage_rec(out, n) for n in ["stage-1-conservative", "stage-2-moderate", "stage-3-exploratory"]]
    assert recs[1]["dpo"]["beta"] == 0.3 and recs[0]["dpo"]["beta"] == 0.1
    assert recs[1]["start_weights"] == recs[0]["end_weights"] != recs[0]["start_weights"]
    final = AutoModelForCausalLM.from_pretrained(out / "final")  # plain HF folder, merged weights
    assert weights_hash(final) == recs[2]["end_weights"]
    assert (out / "final" / "adapter" / "adapter_model.safetensors").exists()
    assert not (out / "stage-2-moderate" / "ref").exists()
    assert not list(out.rglob("*.bin")) and not list(out.rglob("*.pt"))


def test_bad_input_fails_before_training(tiny_model_path, tmp_path):
    two = write_pairs(tmp_path / "two.jsonl", stages=["conservative", "moderate"])
    with pytest.raises(InputError, match="exploratory"):
        train(two, tmp_path / "o", cfg(tiny_model_path, tmp_path))
    gap = write_pairs(tmp_path / "gap.jsonl", stages=["conservative", "exploratory"], indices=[0, 2])
    with pytest.raises(InputError, match="no pairs"):
        train(gap, tmp_path / "o", cfg(tiny_model_path, tmp_path))
    pairs = write_pairs(tmp_path / "pairs.jsonl")
    with pytest.raises(InputError, match="model"):
        train(pairs, tmp_path / "o", cfg(str(tmp_path / "nope"), tmp_path))
    with pytest.raises(InputError, match=r"'c_attn'.*not in"):
        train(pairs, tmp_path / "o", cfg(tiny_model_path, tmp_path, use_lora=True, lora_target_modules=["c_attn"]))
    lines = (tmp_path / "pairs.jsonl").read_text().splitlines()
    bad = json.loads(lines[2])
    bad["rejected"] = ""
    lines[2] = json.dumps(bad)
    (tmp_path / "bad.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=r"bad.jsonl:3: field 'rejected'"):
        train(tmp_path / "bad.jsonl", tmp_path / "o", cfg(tiny_model_path, tmp_path))
    with pytest.raises(InputError, match="dpo_kwargs"):
        train(pairs, tmp_path / "o", cfg(tiny_model_path, tmp_path, dpo_kwargs={"not_a_field": 1}))
    with pytest.raises(InputError, match="stage_overrides"):
        TrainConfig(stage_overrides={"moderate": {"gamma": 1}})
    assert not (tmp_path / "o").exists()  # nothing was trained or written


def test_plain_text_pairs_train_on_the_text_not_a_chat(tiny_model_path, tmp_path):
    # continuation pairs (the sentiment task): TRL's standard text format, no chat template
    from udasa.training.data import read_pairs, to_rows

    path = write_pairs(tmp_path / "plain.jsonl", n_per_stage=2)
    recs = [dict(json.loads(x), format="plain") for x in path.read_text().splitlines()]
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    stages = read_pairs(path)
    row = to_rows(stages[0])[0]
    assert row["prompt"] == recs[0]["messages"][-1]["content"] and row["chosen"] == recs[0]["chosen"]
    chat = write_pairs(tmp_path / "chat.jsonl", n_per_stage=2)
    assert to_rows(read_pairs(chat)[0])[0]["prompt"] == recs[0]["messages"]
    # same texts, different format: different reference-cache keys
    assert stages[0].pairs[0]["pair_key"] != read_pairs(chat)[0].pairs[0]["pair_key"]
    final = train(path, tmp_path / "out", cfg(tiny_model_path, tmp_path))
    assert (final / "model.safetensors").exists()
    mixed = tmp_path / "mixed.jsonl"
    other_ids = [dict(json.loads(x), id="c-" + json.loads(x)["id"]) for x in chat.read_text().splitlines()]
    mixed.write_text(path.read_text() + "".join(json.dumps(r) + "\n" for r in other_ids))
    with pytest.raises(InputError, match="mixes chat and plain"):
        read_pairs(mixed)


def test_lora_start_does_not_depend_on_what_the_process_did_before(tiny_model_path, tmp_path):
    """The adapter's random init is seeded by the config, so a run resumed in a fresh process at the training
    stage trains the same model as one that sampled and scored first."""
    import torch

    pairs = write_pairs(tmp_path / "pairs.jsonl", n_per_stage=2, stages=["all"])
    ends = []
    for i, noise in enumerate([1, 12345]):
        torch.manual_seed(noise)  # stands for whatever used the global RNG earlier in the process
        torch.rand(10)
        out = tmp_path / f"o{i}"
        train(pairs, out, cfg(tiny_model_path, tmp_path, use_lora=True, lora_target_modules=["q_proj", "v_proj"]))
        ends.append(stage_rec(out, "stage-1-all")["end_weights"])
    assert ends[0] == ends[1]


def test_skip_stages_trains_the_other_stages_as_the_full_run_does(tiny_model_path, tmp_path):
    """Dropping the exploratory stage is the full run stopped after its moderate stage: same seeds per stage,
    same weights, and final/ is the moderate stage."""
    pairs = write_pairs(tmp_path / "pairs.jsonl", n_per_stage=2)
    full, cut = tmp_path / "full", tmp_path / "cut"
    train(pairs, full, cfg(tiny_model_path, tmp_path, max_steps=1))
    train(pairs, cut, cfg(tiny_model_path, tmp_path, max_steps=1, skip_stages=["exploratory"]))
    assert sorted(p.name for p in cut.iterdir() if p.is_dir()) == ["final", "stage-1-conservative", "stage-2-moderate"]
    for name in ("stage-1-conservative", "stage-2-moderate"):
        assert stage_rec(cut, name)["end_weights"] == stage_rec(full, name)["end_weights"]
    from transformers import AutoModelForCausalLM

    from udasa.training.ref_cache import weights_hash

    assert weights_hash(AutoModelForCausalLM.from_pretrained(cut / "final")) == \
        stage_rec(full, "stage-2-moderate")["end_weights"] != stage_rec(full, "stage-3-exploratory")["end_weights"]
    assert json.loads((cut / "run.json").read_text())["config"]["skip_stages"] == ["exploratory"]
    with pytest.raises(InputError, match="skip_stages"):
        train(pairs, tmp_path / "none", cfg(tiny_model_path, tmp_path, skip_stages=STAGES))
    with pytest.raises(InputError, match="unknown stage"):
        cfg(tiny_model_path, tmp_path, skip_stages=["exploration"])


def test_pairs_whose_prompt_fills_max_length_are_counted_or_trimmed(tiny_model_path, tmp_path):
    """TRL drops a pair whose prompt alone fills max_length: the stage records how many it trained and
    warns; trim_long_prompts drops the earliest turns instead and trains every pair."""
    pairs = write_pairs(tmp_path / "pairs.jsonl", n_per_stage=4, stages=["all"])
    recs = [json.loads(x) for x in pairs.read_text().splitlines()]
    long_turn = "tell me more about it " * 40  # far beyond max_length = 64 tokens
    for r in recs[:2]:
        r["messages"] = [{"role": "user", "content": long_turn}, {"role": "assistant", "content": "ok"},
                         {"role": "user", "content": r["prompt"]}]
    pairs.write_text("".join(json.dumps(r) + "\n" for r in recs))

    out = tmp_path / "as-is"
    with pytest.warns(UserWarning, match=r"2 of 4 pairs have a prompt of max_length \(64\)"):
        train(pairs, out, cfg(tiny_model_path, tmp_path, max_steps=1))
    rec = stage_rec(out, "stage-1-all")
    assert (rec["pairs"], rec["pairs_trained"], rec["prompts_trimmed"], rec["ref_cache"]["misses"]) == (4, 2, 0, 2)

    out = tmp_path / "trimmed"
    train(pairs, out, cfg(tiny_model_path, tmp_path, max_steps=1, trim_long_prompts=True))
    rec = stage_rec(out, "stage-1-all")
    # the trimmed prompts are new sequences: their reference numbers are computed, not taken from the cache
    assert (rec["pairs"], rec["pairs_trained"], rec["prompts_trimmed"], rec["ref_cache"]["misses"]) == (4, 4, 2, 2)


def test_trim_prompt_keeps_the_system_message_and_the_latest_turns():
    from udasa.training.data import trim_prompt

    def turn(role, n):
        return {"role": role, "content": "x" * n}

    msgs = [turn("system", 1), turn("user", 5), turn("assistant", 5), turn("user", 3), turn("assistant", 2),
            turn("user", 4)]
    length = lambda m: sum(len(x["content"]) for x in m)  # noqa: E731
    assert trim_prompt(msgs, 100, length) == msgs
    assert trim_prompt(msgs, 10, length) == [msgs[0], msgs[3], msgs[4], msgs[5]]  # starts on a user turn
    assert trim_prompt(msgs, 6, length) == [msgs[0], msgs[5]]
    assert trim_prompt(msgs, 2, length) == [msgs[0], msgs[5]]  # the last turn is never dropped
    assert trim_prompt(msgs[1:], 4, length) == [msgs[5]]

    # a trimmed prompt is another sequence: it must not share the untrimmed pair's reference-cache key
    from udasa.training.data import Stage, pair_key, to_rows

    p = {"format": "chat", "messages": msgs, "chosen": "a", "rejected": "b", "pair_key": pair_key(msgs, "a", "b")}
    row, = to_rows(Stage(0, "all", [p]), lambda q: trim_prompt(q["messages"], 6, length))
    assert row["prompt"] == [msgs[0], msgs[5]]
    assert row["pair_key"] == pair_key([msgs[0], msgs[5]], "a", "b") != p["pair_key"]
    assert to_rows(Stage(0, "all", [p]))[0] == {**row, "prompt": msgs, "pair_key": p["pair_key"]}


def test_fitter_trims_just_enough_for_prompt_and_the_longer_response(tiny_model_path):
    from transformers import AutoTokenizer

    from udasa.training.trainer import _fitter

    tok = AutoTokenizer.from_pretrained(tiny_model_path)

    def length(messages, response):
        text = tok.apply_chat_template(messages + [{"role": "assistant", "content": response}], tokenize=False)
        return len(tok(text, add_special_tokens=False)["input_ids"])

    turns = []
    for k in range(6):
        turns += [{"role": "user", "content": f"question number {k} about the weather"},
                  {"role": "assistant", "content": f"answer number {k}"}]
    pair = {"messages": turns + [{"role": "user", "content": "and tomorrow?"}],
            "chosen": "Sunny.", "rejected": "It will rain all day long, with strong winds from the west."}
    budget = length(pair["messages"][-5:], pair["rejected"])  # room for the last two exchanges and the last turn
    kept = _fitter(tok, budget)(pair)
    assert kept == pair["messages"][-5:]
    assert max(length(kept, pair["chosen"]), length(kept, pair["rejected"])) <= budget
    # the longer response sets the budget: with room for the shorter one only, more turns would have stayed
    assert _fitter(tok, length(pair["messages"][-7:], pair["chosen"]))(pair) != pair["messages"][-7:]
    assert _fitter(tok, 10_000)(pair) == pair["messages"]
