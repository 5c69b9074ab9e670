"""ROCR speed and memory on this machine: statistics time, edit time per concept, peak memory.

Statistics are computed from scratch in a temporary cache (then reloaded once to time the cached
path); edit time per concept excludes model load and statistics, as the target is stated.

    python benchmarks/rocr_speed.py [--model smollm2-135m-instruct]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time

import psutil
import torch

from formless.api import make_config
from formless.models import load_model
from formless.rocr import apply_rocr, layer_statistics
from formless.rocr.corpus import load_corpus

CONCEPTS = [
    "Harry Potter",
    "Albert Einstein",
    "Eiffel Tower",
    "William Shakespeare",
    "Isaac Newton",
    "Leonardo da Vinci",
    "Michael Jordan",
    "The Beatles",
    "Star Wars",
    "Mount Everest",
]


def rss_gib() -> float:
    return psutil.Process().memory_info().rss / 2**30


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    args = parser.parse_args()
    print(f"torch threads: {torch.get_num_threads()}, cpu: {psutil.cpu_count()} cores")
    start = time.perf_counter()
    loaded = load_model(args.model)
    print(f"model load: {time.perf_counter() - start:.1f}s, RSS after load {rss_gib():.2f} GiB")
    config = make_config()
    layers = config.resolved_layers(loaded.adapter.num_layers(loaded.model))
    config = config.model_copy(update={"layers": layers})
    corpus = load_corpus(config.corpus)
    with tempfile.TemporaryDirectory() as cache:
        stats, seconds = layer_statistics(loaded, layers, corpus, max_tokens=config.stats_tokens, cache=cache)
        start = time.perf_counter()
        layer_statistics(loaded, layers, corpus, max_tokens=config.stats_tokens, cache=cache)
        cached = time.perf_counter() - start
    tokens = next(iter(stats.values())).n_tokens
    print(f"statistics: {seconds:.1f}s for {tokens} tokens, layers {layers} (from cache: {cached:.2f}s)")
    originals = {i: loaded.adapter.weight(loaded.model, i).detach().clone() for i in layers}
    times = []
    for name in CONCEPTS:
        result = apply_rocr(loaded, [name], config, stats)
        times.append(result.seconds)
        with torch.no_grad():
            for i, w in originals.items():
                loaded.adapter.weight(loaded.model, i).copy_(w)
    start = time.perf_counter()
    multi = apply_rocr(loaded, CONCEPTS, config, stats)
    print(
        f"edit per concept: median {statistics.median(times):.3f}s, min {min(times):.3f}s, "
        f"max {max(times):.3f}s over {len(times)} concepts"
    )
    print(f"all {len(times)} concepts in one edit: {multi.seconds:.3f}s")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"peak RSS: {peak:.2f} GiB")


if __name__ == "__main__":
    main()
