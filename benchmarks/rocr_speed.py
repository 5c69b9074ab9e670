"""ROCR speed and memory on this machine: statistics time, edit time per concept, peak memory.

Statistics are computed from scratch in a temporary cache (then reloaded once to time the cached
path); edit time per concept excludes model load and statistics, as the target is stated. Each
concept is also edited with ``grid="off"`` (the update as solved, not put back on the weights'
quantization grid: what the grid rounding costs) and with ``protect_famous`` (the shipped famous
names kept), alternating; the first protected edit reads the names' keys, the others find them
cached.

    python benchmarks/rocr_speed.py [--model smollm2-135m-instruct] [--json results.json] [--smoke]

--smoke: two concepts on a tiny random model (benchmarks/_smoke.py).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import tempfile
import time
from pathlib import Path

import _smoke
import psutil
import torch

from formless.api import make_config
from formless.models import load_model
from formless.models.cache import atomic_file
from formless.rocr import apply_rocr, layer_statistics
from formless.rocr.corpus import load_corpus
from formless.rocr.edit import UnsafeEditError

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
    _smoke.add_arguments(parser)
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    _smoke.resolve(args)
    args.json = _smoke.output(args, args.json, "rocr_speed.json")
    concepts = CONCEPTS[:2] if args.smoke else CONCEPTS
    print(f"torch threads: {torch.get_num_threads()}, cpu: {psutil.cpu_count()} cores")
    start = time.perf_counter()
    loaded = load_model(args.model)
    load_seconds = time.perf_counter() - start
    print(f"model load: {load_seconds:.1f}s, RSS after load {rss_gib():.2f} GiB")
    config = make_config()
    layers = config.resolved_layers(loaded.adapter.num_layers(loaded.model))
    config = config.model_copy(update={"layers": layers})
    corpus = load_corpus(config.corpus)
    keys_cache = tempfile.TemporaryDirectory()
    with tempfile.TemporaryDirectory() as cache:
        stats, seconds = layer_statistics(loaded, layers, corpus, max_tokens=config.stats_tokens, cache=cache)
        start = time.perf_counter()
        layer_statistics(loaded, layers, corpus, max_tokens=config.stats_tokens, cache=cache)
        cached = time.perf_counter() - start
    tokens = next(iter(stats.values())).n_tokens
    print(f"statistics: {seconds:.1f}s for {tokens} tokens, layers {layers} (from cache: {cached:.2f}s)")
    originals = {i: loaded.adapter.weight(loaded.model, i).detach().clone() for i in layers}
    # the same edit with the shipped famous names protected, alternating with it concept by concept
    protecting = config.model_copy(update={"protect_famous": True})
    solved = config.model_copy(update={"grid": "off"})
    times, off_times, protected_times = [], [], []
    for name in concepts:
        for cfg, out in ((config, times), (solved, off_times), (protecting, protected_times)):
            result = apply_rocr(loaded, [name], cfg, stats, protect_cache=Path(keys_cache.name))
            out.append(result.seconds)
            with torch.no_grad():
                for i, w in originals.items():
                    loaded.adapter.weight(loaded.model, i).copy_(w)
    keys_cache.cleanup()
    # the first protected edit reads the famous names' keys (then cached per model, like statistics)
    rows = (
        ("edit per concept", times),
        ("with grid off (the update as solved)", off_times),
        ("with protect_famous, keys cached", protected_times[1:]),
    )
    for label, values in rows:
        print(
            f"{label}: median {statistics.median(values):.3f}s, min {min(values):.3f}s, "
            f"max {max(values):.3f}s over {len(values)} concepts"
        )
    print(f"with protect_famous, first edit (reads and caches the protected keys): {protected_times[0]:.3f}s")
    # ten concepts in one edit add up to a larger update: the guard may fall back to the names' last
    # tokens (its note says so; the time includes the refused first solve) or refuse it
    start = time.perf_counter()
    refused = None
    try:
        multi = apply_rocr(loaded, concepts, config, stats)
        multi_seconds = time.perf_counter() - start
        note = "".join(f" ({n})" for n in multi.notes)
    except UnsafeEditError as error:
        multi_seconds = time.perf_counter() - start
        refused = f"the update of layer {error.layer} would be {error.relative:.2f} of its weight's norm"
        refused += f" (limit {error.limit:g})"
        note = f" (computed, then refused by the update-norm guard: {refused})"
    print(f"all {len(times)} concepts in one edit: {multi_seconds:.3f}s{note}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"peak RSS: {peak:.2f} GiB")
    if args.json:
        data = {
            "model": args.model,
            "threads": torch.get_num_threads(),
            "load_seconds": round(load_seconds, 3),
            "layers": layers,
            "statistics_tokens": tokens,
            "statistics_seconds": round(seconds, 3),
            "statistics_cached_seconds": round(cached, 3),
            "edit_seconds": dict(zip(concepts, (round(t, 4) for t in times))),
            "edit_median_seconds": round(statistics.median(times), 4),
            "grid_off_edit_seconds": dict(zip(concepts, (round(t, 4) for t in off_times))),
            "grid_off_median_seconds": round(statistics.median(off_times), 4),
            "protect_famous_edit_seconds": dict(zip(concepts, (round(t, 4) for t in protected_times))),
            "protect_famous_cached_median_seconds": round(statistics.median(protected_times[1:]), 4),
            "all_in_one_edit_seconds": round(multi_seconds, 4),
            "all_in_one_refused": refused,
            "peak_rss_gib": round(peak, 3),
        }
        with atomic_file(args.json) as tmp:
            tmp.write_text(json.dumps(data, indent=1))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
