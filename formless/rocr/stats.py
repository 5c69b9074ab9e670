"""Second-moment statistics of MLP-projection inputs over generic text, computed once and cached.

``S_l = E[a a^T]`` over every token of the corpus, stored as its eigendecomposition so that any
threshold gives the null-space basis instantly. Cache entries are keyed by the model's weight
hash, the corpus fingerprint and the token budget, written atomically, and checked on load
(shapes and a checksum); a corrupt entry is reported and rebuilt.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import save_file

from formless.models.cache import atomic_file, cache_dir, read_tensors
from formless.models.loading import LoadedModel
from formless.models.prompts import right_pad
from formless.progress import track
from formless.rocr.activations import _Stop
from formless.rocr.corpus import Corpus
from formless.rocr.update import null_space_basis

log = logging.getLogger(__name__)
FORMAT = "1"


@dataclass
class LayerStatistics:
    layer: int
    eigenvalues: torch.Tensor  # ascending, float32
    eigenvectors: torch.Tensor  # d_ff x d_ff, columns
    n_tokens: int
    moment: torch.Tensor | None = field(default=None, repr=False, compare=False)

    def second_moment(self) -> torch.Tensor:
        """``S = V diag(max(lambda, 0)) V^T`` (float32, d_ff x d_ff), rebuilt from the stored
        eigendecomposition so that an edit reads the same matrix whether the statistics were just
        computed or read from the cache; built once and cached with them (the grid rounding's
        Hessian starts from it: a 1536^3 product, 0.05 s a layer, kept out of every edit)."""
        if self.moment is None:
            vectors = self.eigenvectors
            self.moment = ((vectors * self.eigenvalues.clamp_min(0)) @ vectors.T).contiguous()
        return self.moment

    def basis(self, threshold: float) -> torch.Tensor:
        return null_space_basis(self.eigenvalues, self.eigenvectors, threshold)

    def null_dim(self, threshold: float) -> int:
        return int((self.eigenvalues < threshold).sum())


def _checksum(values: torch.Tensor, vectors: torch.Tensor) -> str:
    h = hashlib.sha256(values.contiguous().numpy().tobytes())
    h.update(vectors.contiguous().numpy().tobytes())
    return h.hexdigest()


def _save(path: Path, st: LayerStatistics) -> None:
    moment = st.second_moment()
    meta = {
        "format": FORMAT,
        "layer": str(st.layer),
        "n_tokens": str(st.n_tokens),
        "checksum": _checksum(st.eigenvalues, st.eigenvectors),
        "moment_checksum": _checksum(moment, moment[:0]),
    }
    tensors = {"eigenvalues": st.eigenvalues, "eigenvectors": st.eigenvectors, "second_moment": moment}
    with atomic_file(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)


def _load(path: Path, layer: int, d_ff: int) -> LayerStatistics | None:
    """The cached entry, or None (with a warning) when it is missing or fails any check."""
    if not path.exists():
        return None
    try:
        tensors, meta = read_tensors(path)
        values, vectors = tensors["eigenvalues"], tensors["eigenvectors"]
        ok = (
            meta.get("format") == FORMAT
            and meta.get("layer") == str(layer)
            and values.shape == (d_ff,)
            and vectors.shape == (d_ff, d_ff)
            and meta.get("checksum") == _checksum(values, vectors)
        )
        # an entry written before the moment was stored builds it when first asked
        moment = tensors.get("second_moment")
        if moment is not None:
            ok = ok and moment.shape == (d_ff, d_ff)
            ok = ok and meta.get("moment_checksum") == _checksum(moment, moment[:0])
        if ok:
            return LayerStatistics(layer, values, vectors, int(meta["n_tokens"]), moment)
        reason = "failed its checks"
    except Exception as exc:  # any unreadable file is treated the same way
        reason = f"is unreadable ({type(exc).__name__})"
    log.warning("statistics cache %s %s; rebuilding it", path, reason)
    path.unlink(missing_ok=True)
    return None


def _render_documents(loaded: LoadedModel, corpus: Corpus, max_doc_tokens: int) -> list[list[int]]:
    """Token ids per document; even documents chat-formatted (when possible), odd ones plain text."""
    tok = loaded.tokenizer
    out = []
    for i, doc in enumerate(corpus.documents):
        if i % 2 == 0 and loaded.has_chat_template and doc.prompt:
            text = tok.apply_chat_template(
                [{"role": "user", "content": doc.prompt}, {"role": "assistant", "content": doc.text}],
                tokenize=False,
            )
            ids = tok(text, add_special_tokens=False)["input_ids"]
        else:
            text = f"{doc.prompt}\n{doc.text}" if doc.prompt else doc.text
            ids = tok(text, add_special_tokens=True)["input_ids"]
        out.append(list(ids)[:max_doc_tokens])
    return out


def _world() -> tuple[int, int]:
    """(rank, number of processes) of an initialised torch.distributed group, else (0, 1)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _batches(loaded: LoadedModel, corpus: Corpus, max_tokens: int, batch_size: int) -> list[list[list[int]]]:
    """The documents within the token budget, sorted by length (less padding), in batches."""
    docs = _render_documents(loaded, corpus, max_doc_tokens=256)
    chosen, total = [], 0
    for ids in docs:
        if total >= max_tokens:
            break
        chosen.append(ids)
        total += len(ids)
    chosen.sort(key=len)
    return [chosen[i : i + batch_size] for i in range(0, len(chosen), batch_size)]


@torch.no_grad()
def _accumulate(
    loaded: LoadedModel, layers: Sequence[int], batches: Sequence[list[list[int]]]
) -> tuple[dict[int, torch.Tensor], int]:
    """({layer: sum of a a^T over every token, float64 on that layer's device}, token count)."""
    model, adapter = loaded.model, loaded.adapter
    _, d_ff = adapter.dims(model)
    device = loaded.device
    # Each layer's sum lives on that layer's device (models spread over several GPUs).
    sums: dict[int, torch.Tensor] = {}
    mask_holder: list[torch.Tensor] = []

    def hook(layer):
        def fn(_module, args):
            x = args[0]
            a = x[mask_holder[-1].to(x.device)].double()
            if layer not in sums:
                sums[layer] = torch.zeros(d_ff, d_ff, dtype=torch.float64, device=x.device)
            sums[layer].addmm_(a.T, a)

        return fn

    deepest = max(layers)
    handles = [
        adapter.mlp_out_module(model, layer).register_forward_pre_hook(hook(layer)) for layer in layers
    ]

    def stop(_m, _a, _o):
        raise _Stop

    handles.append(adapter.mlp_out_module(model, deepest).register_forward_hook(stop))
    n_tokens = 0
    pad = loaded.tokenizer.pad_token_id or 0
    try:
        for batch in track(batches, "statistics", total=len(batches)):
            ids, mask = right_pad(batch, pad)
            mask = mask.bool()
            mask_holder.append(mask.to(device))
            n_tokens += int(mask.sum())
            with contextlib.suppress(_Stop):
                model(input_ids=ids.to(device), attention_mask=mask.long().to(device), use_cache=False)
    finally:
        for h in handles:
            h.remove()
    for layer in layers:  # a shard without any batch still takes part in the all-reduce
        sums.setdefault(layer, torch.zeros(d_ff, d_ff, dtype=torch.float64, device=device))
    return sums, n_tokens


def _save_shard(path: Path, total: torch.Tensor, n_tokens: int) -> None:
    total = total.cpu().contiguous()
    meta = {"format": FORMAT, "n_tokens": str(n_tokens), "checksum": _checksum(total, total[:0])}
    with atomic_file(path) as tmp:
        save_file({"sum": total}, str(tmp), metadata=meta)


def _load_shard(path: Path, d_ff: int) -> tuple[torch.Tensor, int] | None:
    """A shard's cached (sum, token count), or None when missing or failing a check."""
    if not path.exists():
        return None
    try:
        tensors, meta = read_tensors(path)
        total = tensors["sum"]
        if (
            meta.get("format") == FORMAT
            and total.shape == (d_ff, d_ff)
            and meta.get("checksum") == _checksum(total, total[:0])
        ):
            return total, int(meta["n_tokens"])
    except Exception:  # unreadable: recomputed like a missing one
        pass
    log.warning("statistics shard %s failed its checks; recomputing it", path)
    path.unlink(missing_ok=True)
    return None


def _shard_sums(
    loaded: LoadedModel,
    layers: Sequence[int],
    batches: Sequence[list[list[int]]],
    rank: int,
    world: int,
    shards: Path | None,
) -> tuple[dict[int, torch.Tensor], int]:
    """This process's sums over its batches (every ``world``-th, from ``rank``), read from its
    shard cache where complete: a run interrupted after some processes finished their shards
    resumes with only the missing ones recomputed."""
    _, d_ff = loaded.adapter.dims(loaded.model)
    files = (
        {layer: shards / f"rank{rank}-of-{world}" / f"layer_{layer}.safetensors" for layer in layers}
        if shards
        else {}
    )
    cached = {layer: _load_shard(f, d_ff) for layer, f in files.items()}
    if files and all(c is not None for c in cached.values()):
        counts = {c[1] for c in cached.values() if c is not None}
        if len(counts) == 1:
            return {layer: c[0] for layer, c in cached.items() if c is not None}, counts.pop()
    sums, n_tokens = _accumulate(loaded, layers, batches[rank::world])
    for layer, f in files.items():
        _save_shard(f, sums[layer], n_tokens)
    return sums, n_tokens


@torch.no_grad()
def _compute(
    loaded: LoadedModel,
    layers: Sequence[int],
    corpus: Corpus,
    max_tokens: int,
    batch_size: int = 8,
    shards: Path | None = None,
) -> dict[int, LayerStatistics]:
    """Second moments and their eigendecomposition. Inside a torch.distributed group (e.g. under
    ``accelerate launch``) each process runs every ``world``-th batch and the sums of outer
    products and the token counts are all-reduced in float64, so every process gets the moment of
    the whole corpus; the sum is the same as one process's up to the order of float64 additions."""
    batches = _batches(loaded, corpus, max_tokens, batch_size)
    rank, world = _world()
    if world == 1:
        sums, n_tokens = _accumulate(loaded, layers, batches)
    else:
        import torch.distributed as dist

        sums, n_tokens = _shard_sums(loaded, layers, batches, rank, world, shards)
        # gloo reduces CPU tensors, NCCL only GPU ones: reduce where the backend can
        where = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else None
        count = torch.tensor([float(n_tokens)], dtype=torch.float64, device=where)
        dist.all_reduce(count)
        n_tokens = int(count.item())
        for layer in layers:
            moved = sums[layer].to(where or sums[layer].device)
            dist.all_reduce(moved)
            sums[layer] = moved
    result = {}
    for layer in layers:
        second_moment = (sums[layer] / max(n_tokens, 1)).cpu()
        values, vectors = torch.linalg.eigh(second_moment)
        result[layer] = LayerStatistics(
            layer, values.float().contiguous(), vectors.float().contiguous(), n_tokens
        )
    return result


def layer_statistics(
    loaded: LoadedModel,
    layers: Sequence[int],
    corpus: Corpus,
    *,
    max_tokens: int = 40_000,
    cache: str | os.PathLike | None = None,
    use_cache: bool = True,
) -> tuple[dict[int, LayerStatistics], float]:
    """Statistics for ``layers`` (from the cache where valid) and the seconds spent computing."""
    _, d_ff = loaded.adapter.dims(loaded.model)
    folder = (
        cache_dir(cache)
        / "stats"
        / loaded.weights_hash().split(":")[-1][:20]
        / f"{corpus.fingerprint}-{max_tokens}"
    )
    found: dict[int, LayerStatistics] = {}
    if use_cache:
        for layer in layers:
            st = _load(folder / f"layer_{layer}.safetensors", layer, d_ff)
            if st is not None:
                found[layer] = st
    missing = [layer for layer in layers if layer not in found]
    seconds = 0.0
    if missing:
        start = time.perf_counter()
        shards = folder / "shards" if use_cache else None
        computed = _compute(loaded, missing, corpus, max_tokens, shards=shards)
        seconds = time.perf_counter() - start
        rank, world = _world()
        for layer, st in computed.items():
            if use_cache and rank == 0:  # one writer; the others wait below, then read the same
                _save(folder / f"layer_{layer}.safetensors", st)
            found[layer] = st
        if world > 1:
            import torch.distributed as dist

            dist.barrier()
            if use_cache:  # the final entry exists now; a shard is d_ff^2 float64 per layer: drop it
                shutil.rmtree(folder / "shards" / f"rank{rank}-of-{world}", ignore_errors=True)
    return {layer: found[layer] for layer in layers}, seconds
