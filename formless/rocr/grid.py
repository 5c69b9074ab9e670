"""Keep an edited matrix on the quantization grid its weights were published on.

Many checkpoints are published quantized (the default model ships as GGUF Q4_1): their dense
weights sit exactly on a block grid. ROCR's update is mostly smaller than half a grid step, so a
user who converts the edited model back to that format rounds most of it away and the concept
returns (measured: Q4_1 brought back 10 points of the designed-on concepts' facts). Here the
edited matrix is put back on the *same* grid (each 32-value block keeps its scale and offset) by
GPTQ's sequential rounding (Frantar et al. 2023): each column is rounded to its block's nearest
level and its error is spread over the columns not yet rounded, weighted by the inverse of
``H = E[a a^T] + w K K^T`` (generic text's second moment, from the ROCR statistics, plus the
concept's own keys), aiming at what the update does on the concept's keys and what the original
does on generic text (``rounding_target``). Re-quantizing the result to that format then changes
nothing: the elements that set each block's scale keep their codes, so the block's scale and
offset come out the same (checked: the round trip is bit for bit, or the grid is not used).

Only llama.cpp's 32-value block formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) are recognised; a matrix on
no such grid (a float16 checkpoint) is edited as before."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from formless.attacks.quantizers import GGUF_BLOCK, _gguf_round_trip

# qtype: (bytes per block, has an offset m, lowest code, highest code, code offset)
# value = d * (code + code_offset) [+ m], as gguf's dequantizers compute it in float32
FORMATS: dict[str, tuple[int, bool, int, int, int]] = {
    "Q4_0": (18, False, 0, 15, -8),
    "Q4_1": (20, True, 0, 15, 0),
    "Q5_0": (22, False, 0, 31, -16),
    "Q5_1": (24, True, 0, 31, 0),
    "Q8_0": (34, False, -127, 127, 0),
}
PROBE_ROWS = 4  # a type is tried on a few rows first: most matrices are on no grid


@dataclass
class BlockGrid:
    """One matrix's grid: per (row, block) scale ``d`` and offset ``m`` (float32), the original
    codes, and which elements set their block's scale (they keep their codes)."""

    qtype: str
    d: torch.Tensor  # rows x blocks
    m: torch.Tensor  # rows x blocks (zeros for the symmetric types)
    codes: torch.Tensor  # rows x cols, int64
    fixed: torch.Tensor  # rows x cols, bool
    _columns: tuple[torch.Tensor, torch.Tensor] | None = field(default=None, repr=False)

    @property
    def low(self) -> int:
        return FORMATS[self.qtype][2]

    @property
    def high(self) -> int:
        return FORMATS[self.qtype][3]

    def values(self, codes: torch.Tensor) -> torch.Tensor:
        """The float32 weights ``codes`` (rows x cols) stand for, computed as gguf dequantizes."""
        d, m = self.columns()
        return d * (codes + FORMATS[self.qtype][4]).to(torch.float32) + m

    def nearest(self, target: torch.Tensor, col: int | slice = slice(None)) -> torch.Tensor:
        """Per row, the code of column(s) ``col`` whose level is nearest ``target`` (fixed elements
        keep theirs)."""
        d, m = self.columns()
        d, m = d[:, col], m[:, col]
        safe = torch.where(d == 0, torch.ones_like(d), d)
        code = torch.round((target.to(torch.float32) - m) / safe) - FORMATS[self.qtype][4]
        code = code.clamp(self.low, self.high).to(torch.int64)
        return torch.where(self.fixed[:, col], self.codes[:, col], code)

    def level(self, code: torch.Tensor, col: int) -> torch.Tensor:
        """The float32 value of ``code`` (one per row) in column ``col``."""
        d, m = self.columns()
        return d[:, col] * (code + FORMATS[self.qtype][4]).to(torch.float32) + m[:, col]

    def columns(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Scale and offset of every element's block (rows x cols), computed once."""
        if self._columns is None:
            block = torch.arange(self.codes.shape[1]) // GGUF_BLOCK
            self._columns = (self.d[:, block].contiguous(), self.m[:, block].contiguous())
        return self._columns


def find_grid(weight: torch.Tensor) -> BlockGrid | None:
    """The block grid ``weight`` (rows along the GGUF row: out x in for a Linear) sits on exactly, or
    None. The coarsest format whose round trip leaves every value bit for bit wins."""
    w = weight.detach().to(torch.float32).cpu()
    if w.dim() != 2 or w.shape[1] % GGUF_BLOCK:
        return None
    from gguf import GGMLQuantizationType, quants

    for qtype in FORMATS:
        probe = w[:PROBE_ROWS]
        if not torch.equal(_gguf_round_trip(probe, qtype), probe):
            continue
        # the whole matrix quantized once: its round trip decides, its blocks give the grid
        packed = quants.quantize(w.numpy(), GGMLQuantizationType[qtype])
        back = quants.dequantize(packed, GGMLQuantizationType[qtype]).reshape(w.shape)
        if np.array_equal(back.astype(np.float32), w.numpy()):
            return _grid_of(w, qtype, packed)
    return None


def _grid_of(w: torch.Tensor, qtype: str, packed: np.ndarray) -> BlockGrid:
    size, has_m, low, high, offset = FORMATS[qtype]
    rows, cols = w.shape
    packed = packed.reshape(rows, cols // GGUF_BLOCK, size)
    d = torch.from_numpy(np.ascontiguousarray(packed[..., 0:2]).view(np.float16).astype(np.float32)[..., 0])
    m = (
        torch.from_numpy(np.ascontiguousarray(packed[..., 2:4]).view(np.float16).astype(np.float32)[..., 0])
        if has_m
        else torch.zeros_like(d)
    )
    block = torch.arange(cols) // GGUF_BLOCK
    safe = torch.where(d == 0, torch.ones_like(d), d)
    codes = (torch.round((w - m[:, block]) / safe[:, block]) - offset).clamp(low, high).to(torch.int64)
    # the elements that set a block's scale on re-quantization: its minimum and maximum (offset
    # formats) or its largest magnitude (symmetric ones); they keep their codes
    blocks = w.view(rows, -1, GGUF_BLOCK)
    fixed = torch.zeros(rows, cols // GGUF_BLOCK, GGUF_BLOCK, dtype=torch.bool)
    if has_m:
        fixed.scatter_(2, blocks.argmin(-1, keepdim=True), True)
        fixed.scatter_(2, blocks.argmax(-1, keepdim=True), True)
    else:
        fixed.scatter_(2, blocks.abs().argmax(-1, keepdim=True), True)
    return BlockGrid(qtype, d, m, codes, fixed.view(rows, cols))


def _upper_factor_of_inverse(hessian: torch.Tensor) -> torch.Tensor:
    """The upper Cholesky factor ``U`` of ``hessian^-1`` (``hessian^-1 = U^T U``) from one Cholesky
    factorisation and one triangular inverse: with ``J`` the reversal, ``J H J = L L^T`` gives
    ``H^-1 = (J L^-T J)(J L^-1 J)``, and ``J L^-1 J`` is upper triangular with a positive diagonal."""
    flipped = torch.linalg.cholesky(hessian.flip(0, 1))
    eye = torch.eye(hessian.shape[0], dtype=hessian.dtype, device=hessian.device)
    return torch.linalg.solve_triangular(flipped, eye, upper=False).flip(0, 1)


@dataclass
class InverseFactor:
    """``hessian^-1`` in GPTQ's column order (decreasing ``hessian`` diagonal): ``order`` and the
    upper factor ``upper`` of the permuted inverse (``H_p^-1 = U^T U``), float32."""

    order: torch.Tensor
    upper: torch.Tensor

    @classmethod
    def of(cls, hessian: torch.Tensor) -> InverseFactor:
        order = torch.argsort(torch.diagonal(hessian), descending=True)
        permuted = hessian[order][:, order].to(torch.float32)
        return cls(order, _upper_factor_of_inverse(permuted))

    def solve(self, x: torch.Tensor) -> torch.Tensor:
        """``hessian^-1 x`` for ``x`` (cols x r): ``P^T U^T U P x``."""
        out = torch.empty_like(x, dtype=torch.float32)
        out[self.order] = self.upper.T @ (self.upper @ x[self.order].to(torch.float32))
        return out


def gptq_codes(
    target: torch.Tensor, grid: BlockGrid, hessian: torch.Tensor | InverseFactor, block: int = 32
) -> torch.Tensor:
    """Codes on ``grid`` for ``target`` (rows x cols) chosen column by column, each rounding error
    spread over the columns still to round through the Cholesky factor of ``hessian^-1`` (GPTQ),
    columns taken in order of decreasing ``hessian`` diagonal. Minimises ``||(Q - target) X||``
    for inputs whose second moment is ``hessian`` far better than rounding each value alone.
    Float32, as GPTQ runs; the work is laid out column-major so each step reads contiguous rows.
    ``block``: columns whose errors are spread among themselves one by one before one matrix product
    passes them on to the rest (GPTQ's lazy batch); 32 rather than GPTQ's 128 halves this function's
    time on two CPU threads (measured 0.137 -> 0.072 s on a 576 x 1536 matrix: each one-column
    update of a long block made the threads meet), and changes nothing on one (0.082 s both)."""
    rows, cols = target.shape
    factor = hessian if isinstance(hessian, InverseFactor) else InverseFactor.of(hessian)
    order, upper = factor.order, factor.upper
    d, m = (t.T[order].contiguous() for t in grid.columns())  # cols x rows, in the rounding order
    # a fixed element's bounds are its own code; level(code) = d * code + (m + d * offset)
    fixed, original = grid.fixed.T[order], grid.codes.T[order].to(torch.float32)
    low = torch.where(fixed, original, torch.full_like(original, grid.low)).contiguous()
    high = torch.where(fixed, original, torch.full_like(original, grid.high)).contiguous()
    inverse_d = torch.where(d == 0, torch.ones_like(d), d).reciprocal()
    base = m + d * FORMATS[grid.qtype][4]
    w = target.to(torch.float32).T[order].contiguous()  # cols x rows
    codes = torch.empty(cols, rows, dtype=torch.float32)
    for start in range(0, cols, block):
        stop = min(start + block, cols)
        part = w[start:stop].clone()
        errors = torch.empty_like(part)
        u = upper[start:stop, start:stop]
        for j in range(stop - start):
            c = start + j
            code = torch.round((part[j] - base[c]) * inverse_d[c]).clamp_(low[c], high[c])
            codes[c] = code
            error = torch.sub(part[j], torch.addcmul(base[c], d[c], code), out=errors[j]).div_(u[j, j])
            part[j:].addr_(u[j, j:], error, alpha=-1)
        w[stop:] -= upper[start:stop, stop:].T @ errors
    out = torch.empty(cols, rows, dtype=torch.int64)
    out[order] = codes.to(torch.int64)
    return out.T.contiguous()


def key_term(keys: torch.Tensor, key_weight: float) -> torch.Tensor:
    """``key_weight * K^ K^T / n``: the keys (d_ff x n) scaled to a unit mean square entry, like a
    generic token's activation in ``S / mean(diag S)``, all together worth ``key_weight`` times the
    generic text."""
    k = _unit_keys(keys)
    return key_weight * (k @ k.T) / max(1, k.shape[1])


def _unit_keys(keys: torch.Tensor) -> torch.Tensor:
    """Each key (a column) scaled to a unit mean square entry, float32."""
    k = keys.to(torch.float32)
    return k / (k.norm(dim=0, keepdim=True) / k.shape[0] ** 0.5).clamp_min(1e-12)


def grid_hessian(second_moment: torch.Tensor, keys: torch.Tensor, key_weight: float) -> torch.Tensor:
    """``S / mean(diag S) + key_term + damping``: generic text's second moment ``S`` (the ROCR
    statistics', ``LayerStatistics.second_moment``, scaled to a unit mean diagonal) plus the
    concept's keys (``key_term``), with 1% of the mean diagonal added (GPTQ's damping). Float32."""
    s = second_moment.to(torch.float32)
    h = s / torch.diagonal(s).mean().clamp_min(1e-12) + key_term(keys, key_weight)
    h.diagonal().add_(0.01 * float(torch.diagonal(h).mean()))
    return h


def rounding_target(
    original: torch.Tensor,
    edited: torch.Tensor,
    hessian: torch.Tensor | InverseFactor,
    keys: torch.Tensor,
    key_weight: float,
) -> torch.Tensor:
    """What the rounding aims at: the original on generic text, the edit on the concept's keys.
    ``T = W + (E - W) C H^-1`` (``C = key_term``, ``H = grid_hessian``) minimises
    ``tr((T - W)(H - C)(T - W)^T) + tr((T - E) C (T - E)^T)``. The solved update is already small on
    generic text (it lives where generic text has little variance), but not nothing; aiming at
    ``E`` itself would keep that part too and pay for it in grid steps. ``C`` is low-rank
    (``key_term``'s scaled keys), so only ``H^-1`` times the keys is solved for."""
    factor = hessian if isinstance(hessian, InverseFactor) else InverseFactor.of(hessian)
    k = _unit_keys(keys)  # as key_term
    update = (edited - original).to(torch.float32)
    pulled = (update @ k) @ factor.solve(k).T  # (E - W) K^ (H^-1 K^)^T
    return original.to(torch.float32) + key_weight / max(1, k.shape[1]) * pulled


@dataclass
class Snapped:
    qtype: str
    weight: torch.Tensor  # float32, on the grid
    key_error: float  # ||(snapped - edited) K|| / ||(edited - original) K||
    rounded_error: float  # the same for plain nearest rounding, for comparison


def snap_to_grid(
    original: torch.Tensor,
    edited: torch.Tensor,
    grid: BlockGrid,
    second_moment: torch.Tensor,
    keys: torch.Tensor,
    key_weight: float,
) -> Snapped | None:
    """``edited`` put back on ``original``'s grid (both rows x cols, out x in), GPTQ-rounding
    ``rounding_target`` with the Hessian ``grid_hessian`` (generic text's ``second_moment`` from the
    ROCR statistics, and the concept's ``keys``); None when the result would not survive
    re-quantization bit for bit (then the caller keeps ``edited``)."""
    factor = InverseFactor.of(grid_hessian(second_moment, keys, key_weight))
    codes = gptq_codes(rounding_target(original, edited, factor, keys, key_weight), grid, factor)
    snapped = grid.values(codes)
    if not torch.equal(_gguf_round_trip(snapped, grid.qtype), snapped):
        return None
    k = keys.to(torch.float32)
    wanted = float(((edited - original) @ k).norm())
    plain = grid.values(grid.nearest(edited))
    scale = max(wanted, 1e-12)
    return Snapped(
        grid.qtype,
        snapped,
        float(((snapped - edited) @ k).norm()) / scale,
        float(((plain - edited) @ k).norm()) / scale,
    )
