"""gptq-4bit and awq-4bit (GPTQModel, optional): the one-line error without the package, through the
installed entry point; with it, a real 4-bit quantization whose dense copy computes what GPTQModel's
own quantized model computes."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tiny import save_tiny_model, tiny_tokenizer

from formless.attacks import calibrated
from formless.attacks.quantize import QuantizationError
from formless.attacks.quantizers import SCHEMES, parse_schemes
from formless.models import load_model

HAS_GPTQMODEL = importlib.util.find_spec("gptqmodel") is not None
SCHEMES_4BIT = ["gptq-4bit", "awq-4bit"]
MISSING = (
    "error: --quantize {} needs gptqmodel, which is not installed (or does not load) here: "
    "pip install 'formless[gptq]' (or pip install 'gptqmodel>=7.6,<7.7')"
)


def _entry_point() -> str:
    beside = Path(sys.executable).with_name("formless")
    if not beside.exists():
        pytest.fail("the `formless` console script is not installed next to this Python (pip install .)")
    return str(beside)


@pytest.mark.skipif(
    HAS_GPTQMODEL, reason="gptqmodel is installed here: the missing-package error cannot show"
)
@pytest.mark.parametrize("name", SCHEMES_4BIT)
def test_missing_gptqmodel_is_one_line_through_the_entry_point(tiny_dir, tmp_path, name):
    env = {**os.environ, "FORMLESS_CACHE": str(tmp_path / "cache"), "COLUMNS": "200"}
    args = ["audit", str(tiny_dir), "-c", "Harry Potter", "--reference", str(tiny_dir)]
    done = subprocess.run(
        [_entry_point(), *args, "--quantize", f"rtn8,{name}"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
    )
    assert done.returncode == 2, done.stderr
    assert [line for line in done.stderr.splitlines() if line.strip()] == [MISSING.format(name)]
    assert "Traceback" not in done.stdout + done.stderr
    with pytest.raises(QuantizationError, match=r"pip install 'formless\[gptq\]'"):
        parse_schemes(name)


# ---------------------------------------------------------------- with GPTQModel installed

needs_gptqmodel = pytest.mark.skipif(
    not HAS_GPTQMODEL, reason="gptqmodel is not installed (pip install 'formless[gptq]')"
)
GROUP = 32


@pytest.fixture(scope="module")
def tiny64(tmp_path_factory):
    """A tiny random Llama whose projections have 64 or 128 rows (GPTQModel's AWQ needs multiples of 64)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = tiny_tokenizer(True)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=256,
    )
    path = tmp_path_factory.mktemp("tiny64") / "llama"
    LlamaForCausalLM(config).save_pretrained(path)
    tok.save_pretrained(path)
    return load_model(str(path), device="cpu")


@pytest.mark.slow
@needs_gptqmodel
@pytest.mark.parametrize("name", SCHEMES_4BIT)
def test_real_4bit_quantization_matches_gptqmodel(tiny64, monkeypatch, name):
    scheme = dataclasses.replace(SCHEMES[name], documents=16, max_tokens=64)  # a quick calibration
    before = {k: v.clone() for k, v in tiny64.model.state_dict().items()}
    runs: list[calibrated.Calibrated] = []
    real = calibrated.gptqmodel_quantize
    monkeypatch.setattr(
        calibrated, "gptqmodel_quantize", lambda *a, **k: runs.append(real(*a, **k)) or runs[-1]
    )
    q, summary = scheme.quantize_with_summary(tiny64)

    assert all(torch.equal(v, before[k]) for k, v in tiny64.model.state_dict().items())  # original untouched
    assert summary["tensors"] == {f"{scheme.algorithm}-int4": 14}  # 7 projections x 2 layers
    assert summary["calibration"]["samples"] == 16 and summary["group_size"] == GROUP
    [done] = runs
    packed = {n: m for n, m in done.model.named_modules() if calibrated.is_quantized_linear(m)}
    assert len(packed) == 14 and all(".layers." in n for n in packed)
    for name_, module in packed.items():
        w = q.model.get_submodule(name_).weight.detach()
        original = before[f"{name_}.weight"]
        assert (w - original).abs().mean() > 1e-4, name_  # really changed
        # every group of 32 along the input: at most 16 values, on the grid zero + k * scale (k = 0..15),
        # with the scale GPTQModel stored (float16) for that group
        groups = w.reshape(w.shape[0], -1, GROUP)  # [out, n_groups, 32]
        scales = module.scales.float().t().unsqueeze(-1)  # GPTQModel keeps [n_groups, out]
        steps = (groups - groups.amin(-1, keepdim=True)) / scales
        assert torch.allclose(steps, steps.round(), atol=1e-2), name_
        assert steps.round().max() <= 15
        assert max(len(set(g.tolist())) for g in groups.reshape(-1, GROUP)) <= 16
        # layer by layer, the dense weight computes GPTQModel's quantized forward
        x = torch.randn(5, w.shape[1], generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            theirs = module(x.to(next(done.model.parameters()).dtype)).float()
            ours = torch.nn.functional.linear(x, w)
        atol = 1e-5 if scheme.algorithm == "gptq" else 2e-3 * float(ours.abs().max())  # AWQ: float16 kernel
        assert torch.allclose(theirs, ours, atol=atol), (name_, float((theirs - ours).abs().max()))
    # the whole model: the dense copy's logits are GPTQModel's (AWQ ran its model in float16)
    ids = tiny64.tokenizer(
        ["Harry Potter is a wizard", "Paris is the capital"], return_tensors="pt", padding=True
    )
    with torch.no_grad():
        theirs, ours = done.model(**ids).logits.float(), q.model(**ids).logits
        dense = tiny64.model(**ids).logits
    tolerance = 1e-5 if scheme.algorithm == "gptq" else 5e-3 * float(ours.abs().max())
    assert torch.allclose(theirs, ours, atol=tolerance), float((theirs - ours).abs().max())
    assert (ours - dense).abs().max() > 10 * tolerance  # and it is not the unquantized model
    if scheme.algorithm == "awq":  # AWQ moved its scales into the norms: they come back too
        assert summary["rescaled"] and all("layernorm" in k for k in summary["rescaled"])
    else:
        assert "rescaled" not in summary


@needs_gptqmodel
def test_awq_refuses_rows_gptqmodel_cannot_take(tmp_path):
    model = load_model(str(save_tiny_model("llama", tmp_path / "llama")), device="cpu")  # 32-row projections
    with pytest.raises(QuantizationError, match="32 output rows; GPTQModel's AWQ needs a multiple of 64"):
        SCHEMES["awq-4bit"].quantize(model)
