import os

import pytest
import torch

torch.set_num_threads(1)  # two threads on a busy 2-core machine slow torch 5-25x


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory):
    """A random 2-layer Llama with a byte-level BPE tokenizer and ChatML template (~1 s to build)."""
    from udasa.testing import build_tiny_model

    return str(build_tiny_model(tmp_path_factory.mktemp("tiny") / "model"))


@pytest.fixture(scope="session")
def tiny_policy(tiny_model_path):
    from udasa.sampling import Policy

    return Policy(tiny_model_path)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Never let a test write into the user's cache; the embedded model cache is shared per session."""
    if "UDASA_CACHE" not in os.environ:
        monkeypatch.setenv("UDASA_CACHE", str(tmp_path_factory.getbasetemp() / "udasa-cache"))


def pytest_collection_modifyitems(config, items):
    # integration tests need the real embedded models; they run unless UDASA_SKIP_INTEGRATION=1
    if os.environ.get("UDASA_SKIP_INTEGRATION") == "1":
        skip = pytest.mark.skip(reason="UDASA_SKIP_INTEGRATION=1")
        for item in items:
            if "integration" in item.keywords:
                item.add_marker(skip)
