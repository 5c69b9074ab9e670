"""An edit kept on the quantization grid its weights were published on (formless.rocr.grid)."""

from __future__ import annotations

import pytest
import torch

from formless.attacks.quantizers import _gguf_round_trip
from formless.rocr.grid import FORMATS, find_grid, gptq_codes, grid_hessian, rounding_target, snap_to_grid

pytest.importorskip("gguf")


def _on_grid(qtype: str, rows: int = 6, cols: int = 96, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return _gguf_round_trip(torch.randn(rows, cols, generator=g) * 0.05, qtype)


@pytest.mark.parametrize("qtype", list(FORMATS))
def test_a_matrix_on_a_block_grid_is_recognised_and_its_codes_give_it_back(qtype):
    w = _on_grid(qtype)
    grid = find_grid(w)
    assert grid is not None and grid.qtype == qtype
    assert torch.equal(grid.values(grid.codes), w)  # bit for bit, computed as gguf dequantizes
    # each block keeps the elements that set its scale: the extremes (offset formats) or the
    # largest magnitude (symmetric ones)
    per_block = grid.fixed.view(w.shape[0], -1, 32).sum(-1)
    assert bool(((per_block >= 1) & (per_block <= 2)).all())


def test_a_matrix_on_no_grid_is_left_alone():
    assert find_grid(torch.randn(4, 64)) is None
    assert find_grid(_on_grid("Q4_1")[:, :40]) is None  # rows not whole blocks


def test_gptq_with_no_correlation_between_inputs_is_plain_rounding():
    w = _on_grid("Q4_1")
    grid = find_grid(w)
    target = w + 0.3 * torch.randn(w.shape, generator=torch.Generator().manual_seed(1)) * grid.columns()[0]
    codes = gptq_codes(target, grid, torch.eye(w.shape[1], dtype=torch.float64))
    assert torch.equal(codes, grid.nearest(target))


def _gptq_by_dense_inverses(target: torch.Tensor, grid, hessian: torch.Tensor) -> torch.Tensor:
    """GPTQ written the slow way, as Frantar et al. derive it (Optimal Brain Quantization): round the
    next column, then move every column not yet rounded by -(error / [H_F^-1]_jj) [H_F^-1]_j,:,
    with H_F^-1 the inverse of the Hessian over the columns still free, inverted afresh each step."""
    w = target.to(torch.float64).clone()
    order = torch.argsort(torch.diagonal(hessian), descending=True).tolist()
    codes = torch.empty(target.shape, dtype=torch.int64)
    free = list(order)
    while free:
        j = free[0]
        inverse = torch.linalg.inv(hessian[free][:, free].to(torch.float64))
        code = grid.nearest(w[:, j], j)
        codes[:, j] = code
        error = (w[:, j] - grid.level(code, j).to(torch.float64)) / inverse[0, 0]
        w[:, free] -= error.unsqueeze(1) * inverse[0].unsqueeze(0)
        free = free[1:]
    return codes


def test_gptq_codes_match_the_rounding_derived_with_dense_inverses():
    torch.manual_seed(0)
    w = _on_grid("Q4_1", rows=5, cols=64)
    grid = find_grid(w)
    a = torch.randn(64, 200, dtype=torch.float64)
    hessian = a @ a.T / 200 + 0.1 * torch.eye(64, dtype=torch.float64)
    target = w + 0.4 * torch.randn(w.shape) * grid.columns()[0]
    fast = gptq_codes(target, grid, hessian, block=16)  # blocks of columns: the lazy updates run too
    assert torch.equal(fast, _gptq_by_dense_inverses(target, grid, hessian))


@pytest.mark.parametrize("qtype", ["Q4_0", "Q4_1", "Q8_0"])
def test_an_update_smaller_than_the_grid_step_survives_on_the_grid_and_re_quantization(qtype):
    """Plain rounding of a small rank-one update gives the original back (what re-quantizing the
    edited model does); GPTQ rounding keeps what it does to the concept's keys, and the result
    re-quantizes to itself."""
    torch.manual_seed(0)
    w = _on_grid(qtype, rows=16, cols=128)
    grid = find_grid(w)
    key = torch.randn(128, 1)
    out = torch.randn(16, 1)
    step = float(grid.columns()[0].abs().mean())
    delta = 0.2 * step * out @ key.T / float(key.abs().mean())  # most entries below half a step
    generic = torch.randn(128, 300, dtype=torch.float64)
    keys = key + 0.05 * torch.randn(128, 4)  # the concept in a few contexts
    snapped = snap_to_grid(w, w + delta, grid, generic @ generic.T / 300, keys, key_weight=1.0)
    assert snapped is not None and snapped.qtype == qtype
    assert torch.equal(_gguf_round_trip(snapped.weight, qtype), snapped.weight)
    assert snapped.rounded_error > 0.5  # plain rounding loses most of the update on the keys
    assert snapped.key_error < 0.5 * snapped.rounded_error
    k = keys.to(torch.float32)
    wanted = float((delta @ k).norm())
    assert float(((snapped.weight - w - delta) @ k).norm()) == pytest.approx(
        snapped.key_error * wanted, rel=1e-4
    )


def test_grid_hessian_is_the_scaled_sum_it_documents():
    torch.manual_seed(0)
    a = torch.randn(8, 50, dtype=torch.float64)
    s = a @ a.T / 50
    keys = torch.randn(8, 3, dtype=torch.float64)
    h = grid_hessian(s, keys, key_weight=2.0)
    unit = keys / (keys.norm(dim=0, keepdim=True) / 8**0.5)
    expected = s / torch.diagonal(s).mean() + 2.0 * unit @ unit.T / 3
    expected += 0.01 * torch.diagonal(expected).mean() * torch.eye(8, dtype=torch.float64)
    # computed in float32 from float64 inputs: agreement to float32 rounding of O(1) entries
    torch.testing.assert_close(h.double(), expected, rtol=1e-5, atol=1e-6)


def test_the_rounding_target_is_the_original_on_generic_text_and_the_edit_on_the_keys():
    """T = W + (E - W) C H^-1 zeroes the gradient of tr((T - W)(H - C)(T - W)^T) +
    tr((T - E) C (T - E)^T): (T - W)(H - C) + (T - E) C = 0 (float32 inputs, O(1) terms)."""
    torch.manual_seed(0)
    a = torch.randn(16, 80, dtype=torch.float64)
    keys = torch.randn(16, 3)
    w, e = torch.randn(4, 16), torch.randn(4, 16)
    h = grid_hessian(a @ a.T / 80, keys, key_weight=1.0)
    from formless.rocr.grid import key_term

    c = key_term(keys, 1.0)
    t = rounding_target(w, e, h, keys, key_weight=1.0)
    gradient = (t - w) @ (h - c) + (t - e) @ c
    assert float(gradient.abs().max()) < 1e-4 * float(((e - w) @ c).abs().max())


def test_an_edit_of_weights_on_a_grid_stays_on_it_and_one_off_the_grid_does_not(
    tiny_dir, corpus_file, tmp_path
):
    """The tiny model's edited projection put on the Q4_1 grid first (as a model published in
    that format is): the default edit writes a matrix that re-quantizes to itself and records the
    grid; ``grid="off"`` writes the update as solved, which re-quantizing would round off."""
    from formless.api import make_config
    from formless.models import load_model
    from formless.rocr.corpus import load_corpus
    from formless.rocr.edit import apply_rocr
    from formless.rocr.stats import layer_statistics

    def gridded():
        loaded = load_model(str(tiny_dir))
        weight = loaded.adapter.weight(loaded.model, 2)
        with torch.no_grad():
            weight.copy_(_gguf_round_trip(weight.detach(), "Q4_1"))
        return loaded, weight.detach().clone()

    written = {}
    for grid in ("auto", "off"):
        loaded, before = gridded()
        stats, _ = layer_statistics(
            loaded, [2], load_corpus(str(corpus_file)), max_tokens=1000, cache=tmp_path / grid
        )
        config = make_config(layers=[2], max_relative_norm=1e9, threshold=0.5, grid=grid)
        edit = apply_rocr(loaded, ["Harry Potter"], config, stats).layer_edits[0]
        after = loaded.adapter.weight(loaded.model, 2).detach().clone()
        assert not torch.equal(after, before)
        torch.testing.assert_close(
            after - before, edit.delta, rtol=0, atol=1e-6
        )  # the delta recorded is written
        # the share recorded is the written change against the weight before it
        assert edit.relative_norm == pytest.approx(float((after - before).norm() / before.norm()), rel=1e-5)
        written[grid] = (edit, after)
    edit, after = written["auto"]
    assert edit.grid == "Q4_1" and edit.solved_relative_norm is not None
    assert torch.equal(_gguf_round_trip(after, "Q4_1"), after)
    assert edit.grid_key_error < edit.grid_rounded_error
    solved, off = written["off"]
    assert solved.grid is None and solved.solved_relative_norm is None
    assert not torch.equal(_gguf_round_trip(off, "Q4_1"), off)
    # the guard reads the same solved update either way
    assert edit.solved_relative_norm == pytest.approx(solved.relative_norm, rel=1e-5)
