"""ROCR's statistics over a corpus split across processes (gloo, CPU) equal one process's.

The sums of outer products are float64 and all-reduced in float64; the two runs add the same
per-batch terms in a different order, so the second moments agree to ~n_batches * eps64 relative
(checked at 1e-12 of the largest entry). The eigenbasis is compared through projectors onto the
directions below a threshold placed in a wide spectral gap: eigenvectors themselves are only
defined up to sign (and rotation within near-equal eigenvalues), projectors are not.
"""

from __future__ import annotations

import pytest
import torch
from dist_workers import spawn, stats_worker
from safetensors.torch import load_file

from formless.models import load_model
from formless.rocr import stats
from formless.rocr.corpus import load_corpus

LAYERS = [1, 2]


def _projector(values: torch.Tensor, vectors: torch.Tensor, threshold: float) -> torch.Tensor:
    u = vectors[:, values < threshold].double()
    return u @ u.T


def _gap_threshold(values: torch.Tensor) -> float:
    """The geometric middle of the widest relative gap between consecutive positive eigenvalues."""
    v = values.double().clamp_min(1e-30)
    ratios = v[1:] / v[:-1]
    i = int(ratios.argmax())
    return float((v[i] * v[i + 1]).sqrt())


@pytest.fixture(scope="module")
def two_process_result(tiny_dir, corpus_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("dist-stats")
    spawn(stats_worker, (str(tiny_dir), str(corpus_file), str(out)), world=2, timeout=300)
    return out


def test_split_corpus_gives_the_same_second_moment_and_basis(two_process_result, tiny_dir, corpus_file):
    loaded = load_model(str(tiny_dir), device="cpu")
    corpus = load_corpus(str(corpus_file))
    batches = stats._batches(loaded, corpus, 5000, 8)
    assert len(batches) >= 4, "too few batches: both processes must get several"
    sums, n_tokens = stats._accumulate(loaded, LAYERS, batches)
    one = stats._compute(loaded, LAYERS, corpus, max_tokens=5000)
    got = load_file(str(two_process_result / "dist.safetensors"))
    for layer in LAYERS:
        moment = sums[layer] / n_tokens
        for name in ("first", "resumed", "cached"):
            assert int(got[f"{name}.{layer}.n_tokens"]) == n_tokens
            values, vectors = got[f"{name}.{layer}.values"], got[f"{name}.{layer}.vectors"]
            # the float32 eigendecomposition rebuilds the float64 moment to float32 precision
            rebuilt = (vectors.double() * values.double()) @ vectors.double().T
            assert (rebuilt - moment).abs().max() <= 1e-5 * moment.abs().max()
            threshold = _gap_threshold(one[layer].eigenvalues)
            p_one = _projector(one[layer].eigenvalues, one[layer].eigenvectors, threshold)
            p_two = _projector(values, vectors, threshold)
            assert 0 < int(p_one.trace().round()) < moment.shape[0]
            assert (p_one - p_two).abs().max() <= 1e-4, (name, layer)
        torch.testing.assert_close(got[f"first.{layer}.values"], one[layer].eigenvalues, rtol=1e-5, atol=1e-7)
    assert not any((two_process_result / "cache").rglob("rank*-of-2")), (
        "shard files left after the final cache"
    )


def test_shard_sums_add_up_to_the_one_process_sum(tiny_dir, corpus_file, tmp_path):
    """The float64 arithmetic itself: the two shards' sums, as written to the shard cache, add up to
    the one-process sum (no all-reduce involved: catches a shard that skips or repeats a batch)."""
    loaded = load_model(str(tiny_dir), device="cpu")
    corpus = load_corpus(str(corpus_file))
    batches = stats._batches(loaded, corpus, 5000, 8)
    sums, n_tokens = stats._accumulate(loaded, LAYERS, batches)
    parts = [stats._shard_sums(loaded, LAYERS, batches, r, 2, tmp_path) for r in (0, 1)]
    assert parts[0][1] + parts[1][1] == n_tokens and min(parts[0][1], parts[1][1]) > 0
    for layer in LAYERS:
        total = parts[0][0][layer] + parts[1][0][layer]
        assert (total - sums[layer]).abs().max() <= 1e-12 * sums[layer].abs().max()
        cached = stats._load_shard(
            tmp_path / "rank1-of-2" / f"layer_{layer}.safetensors", sums[layer].shape[0]
        )
        assert cached is not None and torch.equal(cached[0], parts[1][0][layer])
