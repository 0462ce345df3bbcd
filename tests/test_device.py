"""One device and dtype setting: resolution, validation, and where the recipe puts it."""
import pytest
import torch

from udasa.device import Placement, check_device_name, resolve_device, resolve_dtype
from udasa.errors import InputError
from udasa.recipe import load_recipe


def test_auto_resolves_to_the_cpu_with_float32_without_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_dtype("auto", torch.device("cpu")) == torch.float32
    assert Placement.of("auto", "auto").describe() == {"device": "cpu", "dtype": "float32"}


def test_auto_picks_the_first_gpu_in_bfloat16_when_there_is_one(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert resolve_device("auto") == torch.device("cuda", 0)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    assert resolve_dtype("auto", torch.device("cuda", 0)) == torch.bfloat16
    with pytest.raises(InputError, match="'cuda:2' does not exist: 2 CUDA device"):
        resolve_device("cuda:2")


def test_explicit_settings_and_clear_errors(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_dtype("bfloat16", torch.device("cpu")) == torch.bfloat16
    with pytest.raises(InputError, match="no CUDA device"):
        resolve_device("cuda")
    for bad in ("gpu", "cuda:", "cuda:x", "CPU", "", 3):
        with pytest.raises(InputError, match="must be auto, cpu, cuda or cuda:N"):
            check_device_name(bad)
    with pytest.raises(InputError, match="must be one of auto, float32, bfloat16, float16"):
        resolve_dtype("fp8", torch.device("cpu"))


def test_recipe_device_and_dtype_reach_every_stage_and_are_validated(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("name: t\ndevice: cpu\ndtype: float32\nprompts: [{data: self-instruct-seed, limit: 2}]\n"
                    "eval: {device: auto}\n")
    r = load_recipe(path)
    for section in ("sample", "score", "train"):
        cfg = r.stage_config(section)
        assert (cfg.device, cfg.dtype) == ("cpu", "float32"), section
    assert r.stage_config("eval").device == "auto"  # a stage's own setting wins
    path.write_text("name: t\ndevice: tpu\nprompts: [{data: self-instruct-seed, limit: 2}]\n")
    with pytest.raises(InputError, match=r"r.yaml:2: field 'device': must be auto, cpu, cuda or cuda:N"):
        load_recipe(path)


def test_training_precision_follows_the_placement(monkeypatch):
    from udasa.training.config import TrainConfig

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    args = TrainConfig(device="cpu").precision_args()
    assert args == {"bf16": False, "fp16": False, "dataloader_pin_memory": False, "use_cpu": True}
    assert TrainConfig(device="cpu", dtype="bfloat16").precision_args()["bf16"] is True
