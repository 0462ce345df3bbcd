"""A tiny random chat model and tokenizer, built in about a second, for tests and dry runs.

Tests across the project use it through the ``tiny_model`` fixture (tests/conftest.py); it lives
in the package so that `udasa run` on a test recipe can use it too.
"""
from __future__ import annotations

from pathlib import Path

CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CORPUS = [
    "The quick brown fox jumps over the lazy dog.", "I cannot help with that request.",
    "Sure, here is how to do it: first, second, third.", "Paris is the capital of France.",
    "This movie was wonderful, great acting and a lovely story.", "Terrible film, boring and bad.",
    "Please be careful and stay safe.", "What is the answer? The answer is 42.",
    "user assistant system hello thanks sorry yes no maybe",
]


def build_tiny_model(path: str | Path, *, seed: int = 0, vocab_size: int = 320, hidden: int = 32,
                     layers: int = 2) -> Path:
    """Write a random Llama model with a byte-level BPE tokenizer and a ChatML template to ``path``."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    path = Path(path)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(CORPUS * 4, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                   pad_token="<|endoftext|>", unk_token="<|endoftext|>")
    fast.chat_template = CHAT_TEMPLATE
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(fast), hidden_size=hidden, intermediate_size=2 * hidden,
                      num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=512, tie_word_embeddings=True,
                      bos_token_id=fast.bos_token_id, eos_token_id=fast.eos_token_id, pad_token_id=fast.pad_token_id)
    model = LlamaForCausalLM(cfg)
    model.generation_config.eos_token_id = fast.eos_token_id
    model.save_pretrained(path, safe_serialization=True)
    fast.save_pretrained(path)
    return path

# Scoring settings that ignore a spec's fitted values (equal weights, embedding value axis, no gate): for tests
# of the estimators themselves, which must not change when `udasa validate --fit` rewrites a spec.
UNFITTED = {"weights": {"semantic": 1.0, "factual": 1.0, "value": 1.0}, "contrast_weight": 0.0, "factual_gate": "none"}
