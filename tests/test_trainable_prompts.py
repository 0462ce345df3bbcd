"""scripts/trainable_prompts.py: the prompts whose pairs DPO trains (TRL drops a prompt of max_length tokens)."""
import json
import subprocess
import sys
from pathlib import Path

from transformers import AutoTokenizer

from udasa.testing import build_tiny_model

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import trainable_prompts  # noqa: E402


def test_keeps_prompts_under_max_length_and_drops_those_that_fill_it(tmp_path):
    model = build_tiny_model(tmp_path / "tiny")
    tok = AutoTokenizer.from_pretrained(model)
    short = {"id": "a-0", "prompt": "Hi"}
    long = {"id": "b-0", "messages": [{"role": "user", "content": "tell me a story " * 20},
                                      {"role": "assistant", "content": "once upon a time " * 20},
                                      {"role": "user", "content": "go on"}]}
    n = trainable_prompts.prompt_tokens(tok, short)
    assert n < trainable_prompts.prompt_tokens(tok, long)
    assert trainable_prompts.trainable(tok, [short, long], n + 1) == [short]
    assert trainable_prompts.trainable(tok, [short, long], n) == []  # a prompt of exactly max_length is dropped

    src = tmp_path / "prompts.jsonl"
    src.write_text(json.dumps(short) + "\n" + json.dumps(long) + "\n")
    out = tmp_path / "kept.jsonl"
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "trainable_prompts.py"), str(src), "--max-length",
                           str(n + 1), "--model", str(model), "--out", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == ["a-0"]
    assert '"b": "0 of 1"' in done.stdout
