"""The quantization attack: RTN maths pinned by hand and by an independent reference, model-level passes."""

from __future__ import annotations

import math

import pytest
import torch
import transformers
from hypothesis import given, settings
from hypothesis import strategies as st

from formless.attacks import quantize as quantize_module
from formless.attacks.quantize import (
    QuantizationError,
    QuantizationReport,
    bitsandbytes_available,
    load_bitsandbytes,
    quantize_model_,
    quantize_weight,
    quantized_copy,
)
from formless.errors import FormlessError

# ---------------------------------------------------------------- hand-worked examples


def test_hand_worked_4bit_groups_of_4():
    # bits=4: integers in [-8, 7], qmax = 7. Scales are powers of two and the ties binary-exact,
    # so float rounding cannot move a value across a tie.
    w = torch.tensor(
        [
            # group 1: absmax 0.875 -> scale 0.875 / 7 = 0.125
            #   0.875/0.125 = 7 -> 7 -> 0.875;  -0.3/0.125 = -2.4 -> -2 -> -0.25
            #   0.2/0.125 = 1.6 -> 2 -> 0.25;    0.3125/0.125 = 2.5 -> 2 (half to even) -> 0.25
            0.875, -0.3, 0.2, 0.3125,
            # group 2: absmax 0.4375 -> scale 0.0625
            #   -0.4375 -> -7 -> -0.4375;  0.09375/0.0625 = 1.5 -> 2 (half to even) -> 0.125
            #   0.03125/0.0625 = 0.5 -> 0 (half to even) -> 0.0;  0.1/0.0625 = 1.6 -> 2 -> 0.125
            -0.4375, 0.09375, 0.03125, 0.1,
            # group 3: all zero -> scale 0 -> zeros, no NaN
            0.0, 0.0, 0.0, 0.0,
        ]
    )  # fmt: skip
    expected = torch.tensor([0.875, -0.25, 0.25, 0.25, -0.4375, 0.125, 0.0, 0.125, 0.0, 0.0, 0.0, 0.0])
    assert torch.equal(quantize_weight(w, bits=4, group_size=4), expected)
    # the same row inside a 2-D [out, in] weight, groups run along the last dim
    assert torch.equal(quantize_weight(w.reshape(1, 12), 4, 4), expected.reshape(1, 12))


def test_hand_worked_padding_and_negative_tie():
    # in=6 with group_size 4: groups [0:4] and [4:6] (the last one padded with zeros, then cut).
    # group 1: absmax 0.875 -> scale 0.125; -0.3125/0.125 = -2.5 -> -2 (half to even) -> -0.25
    #          -0.4375/0.125 = -3.5 -> -4 (half to even) -> -0.5; 0.0 -> 0
    # group 2: absmax 0.25 -> scale 0.25/7; 0.25 -> 7 -> 0.25; 0.0 -> 0 (the padding never counts)
    w = torch.tensor([[-0.875, -0.3125, -0.4375, 0.0, 0.25, 0.0]])
    q = quantize_weight(w, bits=4, group_size=4)
    assert q.shape == (1, 6)
    assert torch.allclose(q, torch.tensor([[-0.875, -0.25, -0.5, 0.0, 0.25, 0.0]]), atol=1e-7)


def test_hand_worked_8bit():
    # bits=8: qmax = 127. absmax 7.9375 = 127/16 -> scale 1/16 = 0.0625
    # 1.03125/0.0625 = 16.5 -> 16 (half to even) -> 1.0; -0.1/0.0625 = -1.6 -> -2 -> -0.125
    w = torch.tensor([[7.9375, 1.03125, -0.1, 0.0]])
    assert torch.equal(quantize_weight(w, bits=8, group_size=4), torch.tensor([[7.9375, 1.0, -0.125, 0.0]]))


def test_group_larger_than_row_and_2bit():
    # group_size 128 > in=3: one group per row. bits=2: integers in [-2, 1], qmax = 1 -> scale = absmax.
    # row 1: absmax 2 -> scale 2: [2, -0.9, 1.1] / 2 = [1, -0.45, 0.55] -> [1, 0, 1] -> [2, 0, 2]
    # row 2: absmax 1 -> scale 1: [-1, 0.5, 0.4] -> [-1, 0 (half to even), 0]
    w = torch.tensor([[2.0, -0.9, 1.1], [-1.0, 0.5, 0.4]])
    assert torch.equal(quantize_weight(w, bits=2), torch.tensor([[2.0, 0.0, 2.0], [-1.0, 0.0, 0.0]]))


def test_dtype_preserved_and_input_untouched():
    torch.manual_seed(0)
    w = torch.randn(8, 40, dtype=torch.bfloat16)
    before = w.clone()
    q = quantize_weight(w, 4, 16)
    assert q.dtype == torch.bfloat16 and q.shape == w.shape
    assert torch.equal(w, before)
    # computed in float32, then cast: same as quantizing the float32 copy and casting
    assert torch.equal(q, quantize_weight(w.float(), 4, 16).to(torch.bfloat16))


# ---------------------------------------------------------------- properties vs an independent reference


def reference_scales(w: torch.Tensor, bits: int, group_size: int) -> torch.Tensor:
    """Per-element scale, group by group with plain Python loops (independent of the implementation)."""
    qmax = 2 ** (bits - 1) - 1
    out = torch.empty_like(w, dtype=torch.float64)
    rows, cols = w.shape
    for r in range(rows):
        for start in range(0, cols, group_size):
            group = [float(x) for x in w[r, start : start + group_size]]
            scale = max(abs(x) for x in group) / qmax
            out[r, start : start + group_size] = scale
    return out


def random_weight(seed: int, rows: int, cols: int, magnitude: float, zero_row: bool) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(rows, cols, generator=g) * magnitude
    w[0, 0] *= 20  # an outlier, as real weights have
    if zero_row:
        w[-1] = 0.0
    return w


weights = st.builds(
    random_weight,
    seed=st.integers(0, 2**31 - 1),
    rows=st.integers(1, 6),
    cols=st.integers(1, 70),
    magnitude=st.sampled_from([1e-3, 0.02, 1.0, 50.0]),
    zero_row=st.booleans(),
)


@settings(max_examples=60, deadline=None)
@given(w=weights, bits=st.sampled_from([4, 8]), group_size=st.sampled_from([1, 4, 7, 16, 32, 128]))
def test_error_at_most_half_a_step(w, bits, group_size):
    # group sizes 7 and 16/32 do or do not divide cols depending on the draw; 128 > every cols drawn
    q = quantize_weight(w, bits, group_size)
    assert q.shape == w.shape and torch.isfinite(q).all()
    scale = reference_scales(w, bits, group_size)
    err = (w.double() - q.double()).abs()
    assert (err <= scale / 2 * (1 + 1e-5) + 1e-12).all()
    # values land on the grid of integer multiples of the group's scale, within [-qmax-1, qmax]
    qmax = 2 ** (bits - 1) - 1
    nonzero = scale > 0
    k = q.double()[nonzero] / scale[nonzero]
    assert torch.allclose(k, k.round(), atol=1e-3)
    assert (k.round() >= -qmax - 1).all() and (k.round() <= qmax).all()
    assert (q[~nonzero] == 0).all()


@settings(max_examples=40, deadline=None)
@given(w=weights, bits=st.sampled_from([2, 3, 4, 8]), group_size=st.sampled_from([3, 8, 32, 128]))
def test_idempotent(w, bits, group_size):
    q = quantize_weight(w, bits, group_size)
    assert torch.allclose(quantize_weight(q, bits, group_size), q, rtol=1e-6, atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), group_size=st.sampled_from([8, 32, 128]))
def test_small_edits_snap_back(seed, group_size):
    """Why this attack matters: an edit smaller than half a step is erased by rounding."""
    g = torch.Generator().manual_seed(seed)
    base = quantize_weight(torch.randn(4, 96, generator=g) * 0.02, 4, group_size)
    scale = reference_scales(base, 4, group_size).float()
    delta = (torch.rand(base.shape, generator=g) - 0.5) * 0.8 * scale  # |delta| < 0.4 step
    at_absmax = base.abs() >= scale * 7 * (1 - 1e-6)  # keep each group's abs-max (hence its scale) fixed
    delta[at_absmax] = 0.0
    assert torch.allclose(quantize_weight(base + delta, 4, group_size), base, rtol=1e-5, atol=1e-9)


def test_8bit_error_much_smaller_than_4bit():
    torch.manual_seed(1)
    w = torch.randn(64, 256) * 0.02
    e8 = (w - quantize_weight(w, 8)).abs().mean()
    e4 = (w - quantize_weight(w, 4)).abs().mean()
    # the step is 127/7 ~ 18x finer at 8 bits
    assert e8 * 10 < e4


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize("bits", [0, 1, 5, 16, 4.0, True, "4"])
def test_bad_bits(bits):
    with pytest.raises(ValueError, match=r"bits must be one of 2, 3, 4, 8"):
        quantize_weight(torch.ones(2, 4), bits)


@pytest.mark.parametrize("group_size", [0, -1, 2.5, None])
def test_bad_group_size(group_size):
    with pytest.raises(ValueError, match="group_size must be a positive integer"):
        quantize_weight(torch.ones(2, 4), 4, group_size)


def test_bad_weights():
    with pytest.raises(QuantizationError, match="floating-point"):
        quantize_weight(torch.ones(2, 4, dtype=torch.int64), 8)
    with pytest.raises(QuantizationError, match="NaN or inf"):
        quantize_weight(torch.tensor([[1.0, float("nan")]]), 8)
    with pytest.raises(QuantizationError, match="shape"):
        quantize_weight(torch.tensor(1.0), 8)


def test_errors_are_formless_errors():
    # the CLI shows FormlessError messages as one line instead of a traceback
    assert issubclass(QuantizationError, FormlessError) and issubclass(QuantizationError, ValueError)


# ---------------------------------------------------------------- model level


def tiny_llama() -> transformers.LlamaForCausalLM:
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=128,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
    )
    return transformers.LlamaForCausalLM(config).eval()


PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def test_quantized_copy_llama():
    model = tiny_llama()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    qmodel, report = quantized_copy(model, 8)

    for k, v in model.state_dict().items():  # the original is untouched
        assert torch.equal(v, before[k]), k
    qstate = qmodel.state_dict()
    for k, v in before.items():
        if any(p in k for p in PROJECTIONS) and k.endswith("weight"):
            assert not torch.equal(qstate[k], v), k
            assert torch.equal(qstate[k], quantize_weight(v, 8, 128)), k
        else:  # embeddings, lm_head, norms: full precision
            assert torch.equal(qstate[k], v), k

    # per layer: q 64x64, k and v 32x64 (2 kv heads of 16), o 64x64, gate/up 128x64, down 64x128
    per_layer = 4096 + 2048 + 2048 + 4096 + 3 * 8192
    assert report == QuantizationReport(
        bits=8,
        group_size=128,
        modules=2 * 7,
        parameters=2 * per_layer,
        mean_abs_error=report.mean_abs_error,
        method="rtn-absmax-symmetric-int8-g128",
    )
    errors = [(qstate[k] - v).abs().sum() for k, v in before.items() if not torch.equal(qstate[k], v)]
    assert math.isclose(report.mean_abs_error, float(sum(errors)) / report.parameters, rel_tol=1e-4)
    assert 0 < report.mean_abs_error < 1e-3


def test_logits_8bit_close_4bit_further():
    model = tiny_llama()
    ids = torch.randint(0, 128, (2, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        base = model(ids).logits
        rel = {}
        for bits in (8, 4):
            qmodel, _ = quantized_copy(model, bits)
            rel[bits] = float((qmodel(ids).logits - base).norm() / base.norm())
    assert rel[8] < 0.03  # ~0.007 measured
    assert rel[4] > 5 * rel[8]  # ~0.11 measured
    assert rel[4] < 0.5


def test_in_place_and_custom_skip():
    model = tiny_llama()
    original_q = model.model.layers[0].self_attn.q_proj.weight.detach().clone()
    report = quantize_model_(model, 4, group_size=32, skip=("self_attn", "lm_head", "embed"))
    assert report.modules == 2 * 3  # only the MLP projections
    assert torch.equal(model.model.layers[0].self_attn.q_proj.weight, original_q)
    # a single string is one name, not a set of characters
    report = quantize_model_(model, 4, group_size=32, skip="mlp")
    assert report.modules == 2 * 4 + 1  # attention projections and the lm_head
    with pytest.raises(QuantizationError, match="no nn.Linear or Conv1D"):
        quantize_model_(torch.nn.Sequential(torch.nn.ReLU()), 8)


def test_gpt2_conv1d_grouped_along_input_dim():
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        n_layer=1, n_embd=32, n_head=2, vocab_size=64, n_positions=32, bos_token_id=0, eos_token_id=0
    )
    model = transformers.GPT2LMHeadModel(config).eval()
    qmodel, report = quantized_copy(model, 4, group_size=8)
    assert report.modules == 4  # c_attn, attn.c_proj, c_fc, mlp.c_proj
    assert report.parameters == 32 * 96 + 32 * 32 + 32 * 128 + 128 * 32
    for name in ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"):
        w = model.get_submodule(f"transformer.h.0.{name}").weight  # Conv1D: [in, out]
        q = qmodel.get_submodule(f"transformer.h.0.{name}").weight
        assert isinstance(model.get_submodule(f"transformer.h.0.{name}"), transformers.pytorch_utils.Conv1D)
        assert torch.equal(q, quantize_weight(w.T, 4, 8).T), name
        assert not torch.equal(q, quantize_weight(w, 4, 8)), name  # grouping along the other axis differs
    # tied lm_head / wte stay full precision
    assert torch.equal(qmodel.lm_head.weight, model.lm_head.weight)
    assert torch.equal(qmodel.transformer.wte.weight, model.transformer.wte.weight)


def test_bad_bits_fail_before_copy(monkeypatch):
    def no_copy(_):
        raise AssertionError("copied before validating")

    monkeypatch.setattr(quantize_module.copy, "deepcopy", no_copy)
    with pytest.raises(ValueError, match="bits must be one of"):
        quantized_copy(torch.nn.Linear(4, 4), 6)


# ---------------------------------------------------------------- bitsandbytes loading (CPU or CUDA)


def test_bitsandbytes_unavailable_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(quantize_module, "bitsandbytes_available", lambda: False)
    with pytest.raises(QuantizationError, match=r"pip install 'formless\[quant\]'"):
        load_bitsandbytes(tmp_path, 8)
    with pytest.raises(QuantizationError, match="bits=4 \\(NF4/FP4\\) or bits=8"):
        load_bitsandbytes(tmp_path, 3)
    with pytest.raises(QuantizationError, match="nf4 and fp4"):
        load_bitsandbytes(tmp_path, 4, quant_type="int4")


def test_bitsandbytes_available_needs_no_cuda(monkeypatch):
    """bitsandbytes >= 0.45 runs on CPU: availability is whether it imports, not whether there is a GPU."""
    import importlib.util

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert bitsandbytes_available() is (importlib.util.find_spec("bitsandbytes") is not None)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    assert bitsandbytes_available() is False
