"""The prompts whose pairs DPO would train: those whose chat-templated prompt alone is shorter than max_length.

    python scripts/trainable_prompts.py runs/harmless/prompts.jsonl --max-length 160 --out FILE

TRL drops a pair whose prompt alone fills ``max_length`` tokens (docs/RESULTS.md, harmless), so sampling and
scoring such a prompt again in a later round costs time and trains nothing. The count per source is printed.
"""
from __future__ import annotations

import argparse
import collections
import json
from pathlib import Path

from udasa.io import atomic_write_jsonl, read_jsonl


def prompt_tokens(tok, rec: dict) -> int:
    messages = rec.get("messages") or [{"role": "user", "content": rec["prompt"]}]
    return len(tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                       return_dict=True)["input_ids"])


def trainable(tok, rows: list[dict], max_length: int) -> list[dict]:
    """The rows whose prompt, as the chat template renders it for generation, is under ``max_length`` tokens."""
    return [r for r in rows if prompt_tokens(tok, r) < max_length]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("prompts", type=Path)
    ap.add_argument("--max-length", type=int, required=True)
    ap.add_argument("--model", default="smollm2-135m-instruct", help="whose tokenizer and chat template count")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    from transformers import AutoTokenizer

    from udasa.models import resolve_model_path
    tok = AutoTokenizer.from_pretrained(resolve_model_path(a.model))
    rows = [rec for _, rec in read_jsonl(a.prompts)]
    keep = trainable(tok, rows, a.max_length)
    source = lambda r: r["id"].rsplit("-", 1)[0]  # noqa: E731
    kept, total = collections.Counter(map(source, keep)), collections.Counter(map(source, rows))
    atomic_write_jsonl(a.out, keep)
    print(json.dumps({s: f"{kept[s]} of {total[s]}" for s in total}), f"-> {len(keep)} prompts in {a.out}")


if __name__ == "__main__":
    main()
