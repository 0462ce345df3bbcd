"""The embedded model's conversion: the GGUF file is parsed once for tokenizer, config and weights."""
from pathlib import Path

import gguf
import numpy as np
import pytest

from udasa.models import _gguf_parsed_once


def _tiny_gguf(path: Path) -> Path:
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_string("tokenizer.ggml.model", "gpt2")
    w.add_tensor("token_embd.weight", np.arange(8, dtype=np.float32).reshape(2, 4))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_gguf_reader_is_shared_inside_the_conversion_and_restored_after(tmp_path):
    path = _tiny_gguf(tmp_path / "m.gguf")
    original = gguf.GGUFReader
    with _gguf_parsed_once():
        a, b = gguf.GGUFReader(str(path)), gguf.GGUFReader(Path(path))  # str and Path name one file
        assert a is b
        assert a.tensors[0].name == "token_embd.weight"
        assert gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, 2) is gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, 2)
    assert gguf.GGUFReader is original
    assert gguf.GGUFReader(str(path)) is not gguf.GGUFReader(str(path))


def test_the_shared_reader_is_released_when_the_conversion_fails(tmp_path):
    original = gguf.GGUFReader
    with pytest.raises(RuntimeError, match="conversion failed"):
        with _gguf_parsed_once():
            raise RuntimeError("conversion failed")
    assert gguf.GGUFReader is original
