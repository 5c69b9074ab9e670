"""Named quantization schemes: the registry, GGUF formats against the gguf package, bitsandbytes against
its own loaded path, one-line CLI errors, and the audit's per-scheme report."""

from __future__ import annotations

import importlib.metadata
import json

import numpy as np
import pytest
import torch
from test_audit import KB
from test_cli_errors import run
from tiny import save_tiny_model

from formless import cli
from formless.attacks import kquants, quantizers
from formless.attacks.quantize import QuantizationError, bitsandbytes_available, load_bitsandbytes
from formless.attacks.quantizers import (
    DEFAULT_SCHEMES,
    GGUF,
    SCHEMES,
    get_quantizer,
    gguf_tensors,
    parse_schemes,
    scheme_names,
)
from formless.audit import run as audit_run
from formless.audit.run import AuditSettings, run_audit
from formless.knowledge import build
from formless.models import load_model
from formless.reports import write_report

gguf = pytest.importorskip("gguf")
from gguf import GGMLQuantizationType, quants  # noqa: E402

GGUF_SCHEMES = [n for n in SCHEMES if n.startswith("gguf-") and type(SCHEMES[n]) is GGUF]  # legacy types
needs_bnb = pytest.mark.skipif(
    not bitsandbytes_available(), reason="bitsandbytes is not installed (pip install 'formless[quant]')"
)


def round_trip(w: torch.Tensor, qtype: str) -> torch.Tensor:
    kind = GGMLQuantizationType[qtype]
    a = w.detach().float().contiguous().numpy()
    return torch.from_numpy(np.asarray(quants.dequantize(quants.quantize(a, kind), kind)).reshape(a.shape))


# ---------------------------------------------------------------- registry


def test_registry_names_aliases_and_errors():
    assert GGUF_SCHEMES == ["gguf-q4_0", "gguf-q4_1", "gguf-q5_0", "gguf-q5_1", "gguf-q8_0"]
    assert {"rtn8", "rtn4", "bnb-nf4", "bnb-fp4", "bnb-int8"} <= set(scheme_names())
    assert get_quantizer("8").name == "rtn8" and get_quantizer(4).name == "rtn4"
    assert get_quantizer(" GGUF-Q4_1 ").name == "gguf-q4_1"
    assert get_quantizer("rtn4", group_size=32).group_size == 32
    assert get_quantizer("rtn4").cache_key() == "q4g128"  # the prefix cached before named schemes
    gguf_version = importlib.metadata.version("gguf")
    assert get_quantizer("gguf-q4_0").cache_key() == f"gguf-q4_0@{gguf_version}+kquants{kquants.VERSION}"
    assert parse_schemes("none") == parse_schemes("") == ()
    assert parse_schemes(cli.DEFAULT_QUANTIZE) == DEFAULT_SCHEMES == AuditSettings().quantize
    assert parse_schemes("8, rtn8,gguf-q8_0,") == ("rtn8", "gguf-q8_0")
    unknown = "unknown quantization scheme 'q4'.*gguf-q4_1.*bnb-nf4"
    with pytest.raises(QuantizationError, match=unknown) as exc:
        parse_schemes("rtn8,q4")
    assert "\n" not in str(exc.value)
    assert {"gptq-4bit", "awq-4bit", "gguf-q4_k_m", "gguf-q5_k_m", "gguf-q6_k"} <= set(scheme_names())
    assert parse_schemes("gguf-q4_k_m") == ("gguf-q4_k_m",)  # K-quants need nothing beyond gguf
    assert get_quantizer("gguf-q4_k_m").cache_key().endswith("+kquants1")


def test_missing_package_names_the_pip_command(monkeypatch):
    monkeypatch.setattr(quantizers, "bitsandbytes_available", lambda: False)
    for name in ("bnb-nf4", "bnb-fp4", "bnb-int8"):
        with pytest.raises(QuantizationError, match=r"pip install 'formless\[quant\]'.*bitsandbytes>=0.45"):
            parse_schemes(f"rtn8,{name}")
    with pytest.raises(QuantizationError, match="not installed"):
        audit_run.quantization_attacks(AuditSettings(quantize=("bnb-nf4",)))


def test_audit_settings_keys():
    settings = AuditSettings(quantize=(8, "rtn8", "gguf-q4_1", "4"), group_size=64)
    attacks = audit_run.quantization_attacks(settings)
    assert [k for k, _ in attacks] == ["8bit", "rtn8", "gguf-q4_1", "rtn4"]  # legacy ints keep "8bit"
    assert attacks[0][1].group_size == 64 and attacks[0][1].bits == 8
    with pytest.raises(QuantizationError, match="unknown quantization scheme '5'"):
        audit_run.quantization_attacks(AuditSettings(quantize=(5,)))


# ---------------------------------------------------------------- GGUF


@pytest.mark.parametrize("name", GGUF_SCHEMES)
def test_gguf_round_trips_like_the_gguf_package(tiny, name):
    scheme = SCHEMES[name]
    before = {k: v.clone() for k, v in tiny.model.state_dict().items()}
    q, summary = scheme.quantize_with_summary(tiny)
    assert all(torch.equal(v, before[k]) for k, v in tiny.model.state_dict().items())  # original untouched
    qstate = q.model.state_dict()
    roles = {f"{n}.weight": role for n, _, _, role in gguf_tensors(tiny.model)}
    # the tiny Llama is untied: its embedding gets the scheme's type, lm_head the output type (Q8_0)
    assert roles["model.embed_tokens.weight"] == "token_embd" and roles["lm_head.weight"] == "output"
    n = len(roles)
    assert summary["tensors"] == ({"Q8_0": n} if scheme.qtype == "Q8_0" else {scheme.qtype: n - 1, "Q8_0": 1})
    for key, w in before.items():
        if key in roles:
            expected = round_trip(w, scheme.tensor_type(roles[key], w.shape[-1]))
            assert torch.equal(qstate[key], expected), key
        else:  # norms (1-D): left as they are, as llama.cpp keeps them in F32
            assert w.dim() == 1 and torch.equal(qstate[key], w), key
    # re-quantizing a quantized model changes nothing
    again = scheme.quantize(q)
    for key, w in again.model.state_dict().items():
        assert torch.equal(w, qstate[key]), key


def test_gguf_gpt2_conv1d_and_tied_embedding(tmp_path):
    model = load_model(str(save_tiny_model("gpt2", tmp_path / "gpt2")), device="cpu")
    q = SCHEMES["gguf-q4_0"].quantize(model)
    for name in ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"):
        w = model.model.get_submodule(f"transformer.h.0.{name}").weight  # Conv1D: [in, out]
        got = q.model.get_submodule(f"transformer.h.0.{name}").weight
        assert torch.equal(got, round_trip(w.T, "Q4_0").T), name  # blocks run along the input dim
    # wte is tied to lm_head: llama.cpp gives it the output type; position embeddings stay
    assert torch.equal(q.model.transformer.wte.weight, round_trip(model.model.transformer.wte.weight, "Q8_0"))
    assert q.model.lm_head.weight is q.model.transformer.wte.weight
    assert torch.equal(q.model.transformer.wpe.weight, model.model.transformer.wpe.weight)


def q4_1_grid_weight(seed: int, rows: int = 8, cols: int = 64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return round_trip(torch.randn(rows, cols, generator=g) * 0.05, "Q4_1")


@pytest.mark.parametrize("seed", range(5))
def test_q4_1_grid_weights_unchanged_and_small_edits_undone(tiny, seed):
    """The default model's weights sit on the Q4_1 grid: gguf-q4_1 leaves them alone, and an edit
    smaller than half a grid step comes back undone."""
    layer = tiny.model.model.layers[0].mlp.down_proj  # [32, 64]
    on_grid = q4_1_grid_weight(seed, *layer.weight.shape)
    with torch.no_grad():
        layer.weight.copy_(on_grid)
    q = SCHEMES["gguf-q4_1"].quantize(tiny)
    assert torch.equal(q.model.model.layers[0].mlp.down_proj.weight, on_grid)

    # each block of 32: d = (max - min) / 15; keep the min and max, move the rest by < 0.4 step
    blocks = on_grid.reshape(-1, 32)
    lo, hi = blocks.min(1, keepdim=True).values, blocks.max(1, keepdim=True).values
    step = (hi - lo) / 15
    g = torch.Generator().manual_seed(100 + seed)
    delta = (torch.rand(blocks.shape, generator=g) - 0.5) * 0.8 * step
    delta[(blocks == lo) | (blocks == hi)] = 0.0
    edited = (blocks + delta).reshape(on_grid.shape)
    assert (edited != on_grid).float().mean() > 0.8
    with torch.no_grad():
        layer.weight.copy_(edited)
    q = SCHEMES["gguf-q4_1"].quantize(tiny)
    assert torch.equal(q.model.model.layers[0].mlp.down_proj.weight, on_grid)
    # Q4_0 has another grid: the same weights move
    q0 = SCHEMES["gguf-q4_0"].quantize(tiny)
    assert not torch.equal(q0.model.model.layers[0].mlp.down_proj.weight, on_grid)


def test_gguf_refuses_rows_llama_cpp_refuses():
    model = torch.nn.Sequential(torch.nn.Linear(24, 8))
    with pytest.raises(QuantizationError, match="rows of 24 values.*multiple of 32"):
        SCHEMES["gguf-q8_0"].apply_(model)


# ---------------------------------------------------------------- bitsandbytes


@needs_bnb
@pytest.mark.parametrize("name", ["bnb-nf4", "bnb-fp4"])
def test_bnb_4bit_in_memory_equals_the_loaded_path(tiny, tiny_dir, name):
    import bitsandbytes.functional as F

    scheme = SCHEMES[name]
    q, summary = scheme.quantize_with_summary(tiny)
    loaded = load_bitsandbytes(tiny_dir, 4, quant_type=scheme.quant_type, device_map="cpu")
    real = dict(loaded.named_modules())
    for module in real.values():
        # On CPUs with AVX512-BF16 bitsandbytes 0.50 repacks 4-bit weights for a bf16 kernel at the
        # first forward, which fails on layers narrower than one 64-value block (this tiny model's
        # 32) and computes in bf16: compare against its generic CPU path, as on other machines.
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False
    converted = 0
    for mod_name, module in q.model.named_modules():
        if type(real.get(mod_name)).__name__ == "Linear4bit":
            w = real[mod_name].weight
            assert torch.equal(module.weight, F.dequantize_4bit(w.data, w.quant_state)), mod_name
            converted += 1
    assert converted == summary["tensors"][scheme.quant_type] == 28  # 7 projections x 4 layers
    assert torch.equal(q.model.lm_head.weight, tiny.model.lm_head.weight)  # kept, as transformers does
    ids = tiny.tokenizer(["Harry Potter is a wizard"], return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.equal(q.model(ids).logits, loaded(ids).logits)


@needs_bnb
def test_bnb_int8_in_memory_equals_the_loaded_path(tiny, tiny_dir):
    q, summary = SCHEMES["bnb-int8"].quantize_with_summary(tiny)
    loaded = load_bitsandbytes(tiny_dir, 8, device_map="cpu")
    types = {type(m).__name__ for m in q.model.modules()}
    assert "Linear8bitLt" in types and summary["tensors"] == {"int8": 28}
    assert type(tiny.model.model.layers[0].mlp.up_proj) is torch.nn.Linear  # original untouched
    ids = tiny.tokenizer(["Harry Potter is a wizard", "Paris is"], return_tensors="pt", padding=True)
    with torch.no_grad():
        ours, theirs = q.model(**ids).logits, loaded(**ids).logits
        dense = tiny.model(**ids).logits
    assert torch.equal(ours, theirs)  # activations are quantized too: not a weight-only fake
    assert not torch.equal(ours, dense)


# ---------------------------------------------------------------- CLI


def test_cli_quantize_errors_are_one_line(tiny_dir, monkeypatch, capsys):
    base = ["audit", str(tiny_dir), "-c", "Harry Potter", "--reference", str(tiny_dir), "--quantize"]
    cases = [
        ("gguf-q9_9", "unknown quantization scheme 'gguf-q9_9'"),
        ("bnb-nf4", "pip install 'formless[quant]'"),
    ]
    monkeypatch.setattr(quantizers, "bitsandbytes_available", lambda: False)
    for value, message in cases:
        code, out, err = run([*base, value], capsys)
        assert code == 2, (value, out, err)
        lines = [line for line in err.strip().splitlines() if line.strip()]
        assert len(lines) == 1 and message in err, (value, err)
    code, _, err = run(["demo", "--quantize", "int4"], capsys)
    assert code == 2 and "unknown quantization scheme 'int4'" in err


# ---------------------------------------------------------------- the audit report


def test_audit_reports_each_scheme_two_ways(tiny_dir, cache, tmp_path, monkeypatch):
    kb = build([_kb_file(tmp_path)])
    schemes = ("rtn8", "gguf-q4_1", 4) + (("bnb-nf4",) if bitsandbytes_available() else ())
    settings = AuditSettings(quantize=schemes, forms=["question", "multiple_choice"], fluency=False)

    def audit():
        model = str(tiny_dir)
        return run_audit(
            model, kb=kb, concepts=["Harry Potter"], reference=model, settings=settings, cache=cache
        )

    report = audit()
    assert list(report.quantization) == ["rtn8", "gguf-q4_1", "4bit", *schemes[3:]]
    for key, q in report.quantization.items():
        assert q.scheme == {"4bit": "rtn4"}.get(key, key) and q.method
        d = q.details
        assert d["parameters"] > 0 and d["mean_abs_error"] > 0 and d["tensors"]
        assert set(q.per_form) == {"question", "multiple_choice"}
        own = q.over_quantized_reference
        assert {"overall", "per_form"} <= set(own.model_dump())
        # the same facts unquantized: the audited model is the reference, so it keeps every one the
        # quantized reference knows, as the quantized copy (= the quantized reference) does
        assert own.unquantized_kept == own.overall.known
        assert own.shift in (None, 0.0) and own.shift_interval in (None, [0.0, 0.0])
        assert "probability_ratio" in own.overall.model_dump()
        assert "reference_quantized_probability_ratio" in q.model_dump()
        # audited model == reference: the quantized copy answers exactly as the quantized reference
        assert q.overall.residual == q.reference_quantized_keeps
        assert own.overall.residual in (None, 1.0)
        assert own.overall.probability_ratio in (None, 1.0)
        for k in ("quantize", "score", "reference"):
            assert report.run.seconds[f"quantized_{key}_{k}"] >= 0
    assert report.quantization["gguf-q4_1"].details["tensors"] == {"Q4_1": 29, "Q8_0": 1}

    # the quantized reference's scores are cached per scheme (the reference's cache) and the quantized
    # audited copy's too (the audited model's): the second audit quantizes nothing
    calls = []
    for name in schemes[1:2]:
        original = SCHEMES[name].quantize_with_summary
        monkeypatch.setattr(
            type(SCHEMES[name]), "quantize_with_summary", lambda self, m, f=original: calls.append(m) or f(m)
        )
    second = audit()
    assert calls == []
    assert report.model_dump(exclude={"run"}) == second.model_dump(exclude={"run"})
    text = (write_report(second, tmp_path / "r") / "report.md").read_text()
    assert "After gguf-q4_1 quantization:" in text and "of what the quantized reference still knows" in text


def _kb_file(tmp_path):
    path = tmp_path / "kb.json"
    path.write_text(json.dumps(KB))
    return path
