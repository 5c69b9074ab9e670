"""Process entry points for the multi-process tests: importable by ``spawn`` (tests/ is on the path)."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.multiprocessing as mp


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _entry(rank: int, world: int, port: int, fn: Callable, args: tuple) -> None:
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        fn(rank, world, *args)
        dist.barrier()
    finally:
        dist.destroy_process_group()


def spawn(fn: Callable, args: tuple, world: int = 2, timeout: float = 300) -> None:
    """Run ``fn(rank, world, *args)`` in ``world`` gloo processes; fail (never hang) after ``timeout``."""
    ctx = mp.start_processes(
        _entry, args=(world, free_port(), fn, args), nprocs=world, join=False, start_method="spawn"
    )
    deadline = time.monotonic() + timeout
    while not ctx.join(timeout=5):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                if p.is_alive():
                    p.terminate()
            raise TimeoutError(f"{fn.__name__} did not finish in {timeout} s")


def stats_worker(rank: int, world: int, model_dir: str, corpus_file: str, out: str) -> None:
    """Statistics over a corpus split across the processes: computed, resumed from the shard cache
    alone, then through the cached public entry point; rank 0 writes what the test compares."""
    from safetensors.torch import save_file

    from formless.models import load_model
    from formless.rocr import stats
    from formless.rocr.corpus import load_corpus

    loaded = load_model(model_dir, device="cpu")
    corpus = load_corpus(corpus_file)
    shards = Path(out) / "shards"
    first = stats._compute(loaded, [1, 2], corpus, max_tokens=5000, shards=shards)

    def forbidden(*_args, **_kwargs):
        raise AssertionError("a complete shard cache must not be recomputed")

    original, stats._accumulate = stats._accumulate, forbidden
    try:
        resumed = stats._compute(loaded, [1, 2], corpus, max_tokens=5000, shards=shards)
    finally:
        stats._accumulate = original
    cached, _ = stats.layer_statistics(loaded, [1, 2], corpus, max_tokens=5000, cache=Path(out) / "cache")
    if rank == 0:
        tensors = {}
        for name, result in (("first", first), ("resumed", resumed), ("cached", cached)):
            for layer, st in result.items():
                tensors[f"{name}.{layer}.values"] = st.eigenvalues
                tensors[f"{name}.{layer}.vectors"] = st.eigenvectors
                tensors[f"{name}.{layer}.n_tokens"] = torch.tensor(st.n_tokens)
        save_file(tensors, str(Path(out) / "dist.safetensors"))
