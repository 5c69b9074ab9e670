"""llama.cpp's K-quants (Q4_K, Q5_K, Q6_K) in NumPy, because the ``gguf`` package only decodes them.

Q4_K_M is the GGUF people download most, and ``llama-quantize`` (C++) is the only producer; building
it here takes ~20 minutes. This module follows the reference quantizers of ggml
(``quantize_row_q{4,5,6}_K_ref`` in ``ggml-quants.c``, the path ``llama-quantize`` takes without an
importance matrix) step by step, vectorised over blocks:

- Q4_K / Q5_K: super-blocks of 256 values in 8 sub-blocks of 32; each sub-block gets a scale and a
  minimum from a weighted least-squares search over 21 (Q4) or 16 (Q5) candidate grids
  (``make_qkx2_quants``, weights ``rms + |x|``); scales and minima are stored as 6-bit multiples of
  two fp16 super-block factors, and the values re-quantized against the stored scales.
- Q6_K: 16 sub-blocks of 16, signed 6-bit values; each sub-block's scale from ``make_qx_quants``
  (weights ``x²``, 19 candidate grids), stored as int8 multiples of one fp16 factor.

Output is the packed GGML block layout, so ``gguf.quants.dequantize`` (an independent decoder) reads
it back; the tests check that, and pin this vectorised code to a plain per-block transliteration.
Arithmetic is float32 with sums taken in element order, as in the C code. A build of llama.cpp
that contracts ``a*b + c`` into fused multiply-adds can round a value lying on a rounding tie the
other way, so bytes are the reference algorithm's, not promised identical to every binary's.
"""

from __future__ import annotations

import numpy as np

QK_K = 256
VERSION = 1  # part of the cache key of audits that used these quantizers: bump when output changes
GROUP_MAX_EPS = np.float32(1e-15)
F32 = np.float32

# bytes per 256-value block, as ggml lays them out
BLOCK_BYTES = {"Q4_K": 144, "Q5_K": 176, "Q6_K": 210}


def nearest_int(x: np.ndarray) -> np.ndarray:
    """ggml's ``nearest_int``: float32 round-half-to-even (the 1.5·2²³ trick), as int32."""
    return np.rint(x.astype(F32, copy=False)).astype(np.int32)


def _sum(a: np.ndarray) -> np.ndarray:
    """Float32 sum over the last axis in element order (NumPy's own sum is pairwise)."""
    total = a[..., 0].astype(F32, copy=True)
    for i in range(1, a.shape[-1]):
        total += a[..., i]
    return total


def _fp16(x: np.ndarray) -> np.ndarray:
    """fp32 -> stored fp16 (round to nearest even) and the fp32 value read back."""
    h = x.astype(np.float16)
    return h, h.astype(F32)


# ---------------------------------------------------------------- per-sub-block scale searches


def make_qkx2_quants(
    x: np.ndarray, w: np.ndarray, nmax: int, rmin: float, rdelta: float, nstep: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Affine grid ``scale * L - min`` for each row of ``x`` (rows, n), minimising the weighted
    squared error over ``nstep + 1`` candidate grids: (scale, min >= 0, L uint8)."""
    x, w = x.astype(F32, copy=False), w.astype(F32, copy=False)
    lo = np.minimum(x.min(axis=1), F32(0))
    hi = x.max(axis=1)
    flat = hi == lo
    span = np.where(flat, F32(1), hi - lo)
    sum_w = _sum(w)
    sum_x = _sum(w * x)
    iscale = F32(nmax) / span
    scale = F32(1) / iscale
    L = np.clip(nearest_int(iscale[:, None] * (x - lo[:, None])), 0, nmax)
    diff = scale[:, None] * L.astype(F32) + lo[:, None] - x
    best = _sum(w * (diff * diff))
    mins = lo.copy()  # the C updates its ``min`` on every better grid, and later grids start from it
    for step in range(nstep + 1):
        span = hi - mins
        span = np.where(flat | (span == 0), F32(1), span)
        iscale = (F32(rmin) + F32(rdelta) * F32(step) + F32(nmax)) / span
        Laux = np.clip(nearest_int(iscale[:, None] * (x - mins[:, None])), 0, nmax)
        Lf = Laux.astype(F32)
        sum_l = _sum(w * Lf)
        sum_l2 = _sum(w * Lf * Lf)
        sum_xl = _sum(w * Lf * x)
        D = sum_w * sum_l2 - sum_l * sum_l
        ok = D > 0
        Dsafe = np.where(ok, D, F32(1))
        this_scale = (sum_w * sum_xl - sum_x * sum_l) / Dsafe
        this_min = (sum_l2 * sum_x - sum_l * sum_xl) / Dsafe
        positive = this_min > 0
        l2safe = np.where(sum_l2 > 0, sum_l2, F32(1))
        this_scale = np.where(positive, sum_xl / l2safe, this_scale)
        this_min = np.where(positive, F32(0), this_min)
        diff = this_scale[:, None] * Lf + this_min[:, None] - x
        err = _sum(w * (diff * diff))
        better = ok & (err < best)
        L = np.where(better[:, None], Laux, L)
        best = np.where(better, err, best)
        scale = np.where(better, this_scale, scale)
        mins = np.where(better, this_min, mins)
    L = np.where(flat[:, None], 0, L)
    scale = np.where(flat, F32(0), scale)
    mins = np.where(flat, lo, mins)
    return scale.astype(F32), (-mins).astype(F32), L.astype(np.uint8)


def make_qx_quants(x: np.ndarray, nmax: int) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric grid ``scale * (L - nmax)`` for each row of ``x``, weights ``x²`` (rmse_type 1),
    19 candidate grids around ``-nmax / max``: (scale, L uint8 in [0, 2·nmax))."""
    x = x.astype(F32, copy=False)
    first = np.argmax(np.abs(x), axis=1)  # first index of the largest |x|, as the C loop's '>'
    vmax = x[np.arange(x.shape[0]), first]
    zero = np.abs(vmax) < GROUP_MAX_EPS
    vsafe = np.where(zero, F32(1), vmax)
    w = x * x

    def grid(iscale: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        li = np.clip(nearest_int(iscale[:, None] * x), -nmax, nmax - 1)
        lf = li.astype(F32)
        return li, _sum(w * x * lf), _sum(w * lf * lf)

    li, sumlx, suml2 = grid(F32(-nmax) / vsafe)
    scale = np.where(suml2 != 0, sumlx / np.where(suml2 != 0, suml2, F32(1)), F32(0))
    best = scale * sumlx
    L = li + nmax
    for step in range(-9, 10):
        if step == 0:
            continue
        li, sumlx, suml2 = grid(-(F32(nmax) + F32(0.1) * F32(step)) / vsafe)
        better = (suml2 > 0) & (sumlx * sumlx > best * suml2)
        L = np.where(better[:, None], li + nmax, L)
        scale = np.where(better, sumlx / np.where(suml2 > 0, suml2, F32(1)), scale)
        best = np.where(better, scale * sumlx, best)
    L = np.where(zero[:, None], 0, L)
    scale = np.where(zero, F32(0), scale)
    return scale.astype(F32), L.astype(np.uint8)


# ---------------------------------------------------------------- Q4_K / Q5_K


def _affine_head(d16: np.ndarray, m16: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """The bytes every Q4_K / Q5_K block starts with: fp16 d, fp16 dmin, 12 packed scale bytes."""
    nb = d16.shape[0]
    return np.concatenate([d16.view(np.uint8).reshape(nb, 2), m16.view(np.uint8).reshape(nb, 2), scales], 1)


def _pack_scales_k4(ls: np.ndarray, lm: np.ndarray) -> np.ndarray:
    """8 six-bit scales and 8 six-bit minima per block into ggml's 12 bytes (``get_scale_min_k4``)."""
    s = np.zeros((ls.shape[0], 12), dtype=np.uint8)
    s[:, 0:4] = ls[:, 0:4] | ((ls[:, 4:8] >> 4) << 6)
    s[:, 4:8] = lm[:, 0:4] | ((lm[:, 4:8] >> 4) << 6)
    s[:, 8:12] = (ls[:, 4:8] & 0xF) | ((lm[:, 4:8] & 0xF) << 4)
    return s


def _quantize_k_affine(x: np.ndarray, nmax: int, rmin: float, nstep: int) -> tuple:
    """The part Q4_K and Q5_K share: (d, dmin fp16 per block; packed scales; L (blocks, 256))."""
    blocks = x.reshape(-1, QK_K).astype(F32, copy=False)
    nb = blocks.shape[0]
    sub = blocks.reshape(nb * 8, 32)
    av = np.sqrt(_sum(sub * sub) / F32(32))
    weights = av[:, None] + np.abs(sub)
    scales, mins, L = make_qkx2_quants(sub, weights, nmax, rmin, 0.1, nstep)
    scales, mins, L = scales.reshape(nb, 8), mins.reshape(nb, 8), L.reshape(nb, QK_K)
    max_scale = np.maximum(scales.max(axis=1), F32(0))
    max_min = np.maximum(mins.max(axis=1), F32(0))
    inv_scale = np.where(max_scale > 0, F32(63) / np.where(max_scale > 0, max_scale, F32(1)), F32(0))
    inv_min = np.where(max_min > 0, F32(63) / np.where(max_min > 0, max_min, F32(1)), F32(0))
    # uint8_t ls = nearest_int(...); ls = MIN(63, ls): wrap to a byte first, as the C does
    ls = np.minimum(63, nearest_int(inv_scale[:, None] * scales).astype(np.uint8))
    lm = np.minimum(63, nearest_int(inv_min[:, None] * mins).astype(np.uint8))
    d16, d = _fp16(max_scale / F32(63))
    m16, dmin = _fp16(max_min / F32(63))
    # re-quantize every value against the scales as stored (a zero scale keeps the search's L)
    sd = d[:, None] * ls.astype(F32)
    sm = dmin[:, None] * lm.astype(F32)
    sd_full = np.repeat(sd, 32, axis=1)
    sm_full = np.repeat(sm, 32, axis=1)
    nonzero = sd_full != 0
    requant = np.clip(nearest_int((blocks + sm_full) / np.where(nonzero, sd_full, F32(1))), 0, nmax)
    L = np.where(nonzero, requant, L).astype(np.uint8)
    return d16, m16, _pack_scales_k4(ls, lm), L


def quantize_q4_k(x: np.ndarray) -> np.ndarray:
    """Rows whose length is a multiple of 256 -> Q4_K bytes, (rows, cols/256·144)."""
    rows = x.shape[0]
    d16, m16, scales, L = _quantize_k_affine(x, 15, -1.0, 20)
    nb = L.shape[0]
    pairs = L.reshape(nb, 4, 2, 32)  # 64-value chunks: low nibble = first 32, high = next 32
    qs = (pairs[:, :, 0, :] | (pairs[:, :, 1, :] << 4)).reshape(nb, 128)
    return np.concatenate([_affine_head(d16, m16, scales), qs], 1).reshape(rows, -1)


def quantize_q5_k(x: np.ndarray) -> np.ndarray:
    """Rows whose length is a multiple of 256 -> Q5_K bytes, (rows, cols/256·176)."""
    rows = x.shape[0]
    d16, m16, scales, L = _quantize_k_affine(x, 31, -0.5, 15)
    nb = L.shape[0]
    chunks = L.reshape(nb, 4, 2, 32)
    low = chunks & 0xF
    qs = (low[:, :, 0, :] | (low[:, :, 1, :] << 4)).reshape(nb, 128)
    high = (chunks >> 4) & 1  # bit 2c (first half) and 2c+1 (second half) of qh[l], chunk c
    shifts = (2 * np.arange(4)[:, None] + np.arange(2)[None, :]).astype(np.uint8)  # (4, 2)
    qh = np.zeros((nb, 32), dtype=np.uint8)
    for c in range(4):
        for h in range(2):
            qh |= (high[:, c, h, :] << shifts[c, h]).astype(np.uint8)
    return np.concatenate([_affine_head(d16, m16, scales), qh, qs], 1).reshape(rows, -1)


# ---------------------------------------------------------------- Q6_K


def quantize_q6_k(x: np.ndarray) -> np.ndarray:
    """Rows whose length is a multiple of 256 -> Q6_K bytes, (rows, cols/256·210)."""
    rows = x.shape[0]
    blocks = x.reshape(-1, QK_K).astype(F32, copy=False)
    nb = blocks.shape[0]
    scales, L = make_qx_quants(blocks.reshape(nb * 16, 16), 32)
    scales, L = scales.reshape(nb, 16), L.reshape(nb, QK_K).astype(np.int32)
    first = np.argmax(np.abs(scales), axis=1)
    max_scale = scales[np.arange(nb), first]
    empty = np.abs(max_scale) < GROUP_MAX_EPS
    iscale = F32(-128) / np.where(empty, F32(1), max_scale)
    d16, d = _fp16(F32(1) / iscale)
    sc = np.minimum(127, nearest_int(iscale[:, None] * scales)).astype(np.int8)
    sd = np.repeat(d[:, None] * sc.astype(F32), 16, axis=1)
    nonzero = sd != 0
    requant = np.clip(nearest_int(blocks / np.where(nonzero, sd, F32(1))), -32, 31) + 32
    L = np.where(nonzero, requant, L).astype(np.uint8)
    q = L.reshape(nb, 2, 4, 32)  # two 128-value halves, four 32-value quarters
    ql = np.concatenate(
        [(q[:, :, 0] & 0xF) | ((q[:, :, 2] & 0xF) << 4), (q[:, :, 1] & 0xF) | ((q[:, :, 3] & 0xF) << 4)],
        axis=2,
    ).reshape(nb, 128)
    qh = (
        (q[:, :, 0] >> 4) | ((q[:, :, 1] >> 4) << 2) | ((q[:, :, 2] >> 4) << 4) | ((q[:, :, 3] >> 4) << 6)
    ).reshape(nb, 64)
    out = np.concatenate([ql, qh, sc.view(np.uint8), d16.view(np.uint8).reshape(nb, 2)], axis=1)
    out[empty] = 0  # a block of (near) zeros is stored as all-zero bytes, as the C's memset
    return out.reshape(rows, -1)


QUANTIZERS = {"Q4_K": quantize_q4_k, "Q5_K": quantize_q5_k, "Q6_K": quantize_q6_k}


def quantize(x: np.ndarray, qtype: str) -> np.ndarray:
    """A 2-D float array (rows a multiple of 256 wide) -> packed ``qtype`` blocks, uint8."""
    if x.ndim != 2 or x.shape[1] % QK_K:
        raise ValueError(f"{qtype} needs a 2-D array with rows a multiple of {QK_K} wide, got {x.shape}")
    return QUANTIZERS[qtype](np.ascontiguousarray(x, dtype=F32))
