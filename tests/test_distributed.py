"""Two CPU processes (gloo) train the tiny model: each sees different pairs, both end with the same weights."""
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_training import write_pairs  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_shard_data_and_agree(tiny_model_path, tmp_path):
    udasa = shutil.which("udasa", path=str(Path(sys.executable).parent))
    if udasa is None:
        pytest.skip("the udasa console script is not installed")
    pairs = write_pairs(tmp_path / "pairs.jsonl")  # 3 stages x 4 pairs; batch 1 per process -> 2 steps a stage
    out = tmp_path / "out"
    # the same `udasa train` command, started by torch's launcher (what `accelerate launch` uses on GPUs)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
           str(_free_port()), udasa, "train", "--pairs", str(pairs), "--out", str(out), "--model", tiny_model_path,
           "--batch-size", "1", "--learning-rate", "1e-3", "--max-length", "64", "--ref-cache-dir",
           str(tmp_path / "cache"), "--record-batches", "--threads", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert json.loads((out / "run.json").read_text())["world_size"] == 2

    from transformers import AutoModelForCausalLM

    from udasa.training.ref_cache import weights_hash

    for stage in ["stage-1-conservative", "stage-2-moderate", "stage-3-exploratory"]:
        seen, final = {}, {}
        for rank in (0, 1):
            rows = [json.loads(x) for x in (out / stage / f"batches.rank{rank}.jsonl").read_text().splitlines()]
            seen[rank] = [e for r in rows if "examples" in r for e in r["examples"]]
            final[rank] = next(r["final_weights"] for r in rows if "final_weights" in r)
        assert len(seen[0]) == len(seen[1]) == 2
        assert not set(seen[0]) & set(seen[1])  # different pairs on each process
        assert len(set(seen[0]) | set(seen[1])) == 4  # together: the whole stage
        assert final[0] == final[1]  # identical weights after the stage
        assert weights_hash(AutoModelForCausalLM.from_pretrained(out / stage)) == final[0]  # and that is what was saved
    cache = list((tmp_path / "cache").glob("*.jsonl"))
    assert len(cache) == 1 and len({json.loads(x)["key"] for x in cache[0].read_text().splitlines()}) == 12


def test_vllm_backend_missing_is_a_clear_error(tmp_path):
    import importlib.util

    from udasa.errors import InputError
    from udasa.sampling import SampleConfig, sample

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vllm is installed")
    (tmp_path / "p.jsonl").write_text('{"id": "a", "prompt": "hi"}\n')
    with pytest.raises(InputError, match=r"udasa\[vllm\]"):
        sample(str(tmp_path / "p.jsonl"), tmp_path / "s.jsonl", SampleConfig(backend="vllm"))
    assert not (tmp_path / "s.jsonl").exists()


def test_vllm_backend_same_schema(tiny_model_path, tmp_path):
    pytest.importorskip("vllm")
    import torch

    if not torch.cuda.is_available():
        pytest.skip("vllm needs a GPU")
    from udasa.sampling import SampleConfig, sample

    (tmp_path / "p.jsonl").write_text('{"id": "a", "prompt": "hi"}\n{"id": "b", "prompt": "yes?"}\n')
    hf = sample(str(tmp_path / "p.jsonl"), tmp_path / "hf.jsonl", SampleConfig(model=tiny_model_path, n=2,
                                                                                max_new_tokens=8), progress=False)
    vl = sample(str(tmp_path / "p.jsonl"), tmp_path / "vl.jsonl", SampleConfig(model=tiny_model_path, n=2,
                                                                                max_new_tokens=8, backend="vllm"),
                progress=False)
    a = [json.loads(x) for x in Path(hf).read_text().splitlines()]
    b = [json.loads(x) for x in Path(vl).read_text().splitlines()]
    assert [set(r) for r in a] == [set(r) for r in b]
    for r in b:
        assert len(r["responses"]) == 2 and all(len(t) == n for t, n in zip(r["token_logprobs"], r["num_tokens"]))
        assert all(lp <= 0 for t in r["token_logprobs"] for lp in t)
