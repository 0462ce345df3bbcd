"""The data-split rules: one module decides what training, evaluation and the evaluators may read."""
import subprocess
import sys

import pytest

from udasa.data import imdb_prefixes, load_prompts
from udasa.data import splits
from udasa.errors import InputError


def test_imdb_dev_openings_are_held_out_of_training():
    train, dev = imdb_prefixes("train"), imdb_prefixes("dev")
    assert len(dev) == splits.IMDB_DEV and len(train) + len(dev) == 4000
    assert not {r["id"] for r in train} & {r["id"] for r in dev}
    assert [r["id"] for r in load_prompts("imdb-train")[:64]] == [r["id"] for r in train[:64]]  # stable order


@pytest.mark.parametrize("name", splits.EVAL_ONLY)
def test_evaluation_sets_are_refused_as_training_prompts(name):
    with pytest.raises(InputError, match=f"'{name}' is an evaluation set"):
        splits.training_prompts(name)


def test_hh_training_prompts_are_the_policy_part_only():
    rows = splits.training_prompts("hh-harmless")
    assert len(rows) >= 600  # enough harmful requests for the harmlessness experiment
    assert {r["id"] for r in rows} <= splits.policy_hh_ids()
    assert not {r["id"] for r in rows} & splits.evaluator_ids()


def test_udasa_sample_data_follows_the_same_rules(tmp_path):
    r = subprocess.run([sys.executable, "-m", "udasa.cli", "sample", "--data", "advbench", "--out",
                        str(tmp_path / "s.jsonl")], capture_output=True, text=True)
    assert r.returncode == 2 and "'advbench' is an evaluation set" in r.stderr and "Traceback" not in r.stderr
