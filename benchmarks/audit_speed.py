"""Wall time of a full single-concept audit (every form, neighbour + general + fluency retain sets,
no quantization) of a ROCR-edited default model on this CPU, with the reference results cached.

The first audit fills the reference cache (timed too); the second is the figure the target is
about (≤ 60 s). Both run in one process, one after the other.

    python benchmarks/audit_speed.py [--concept "Harry Potter"] [--model smollm2-135m-instruct]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import psutil
import torch

from formless.api import forget
from formless.audit.run import AuditSettings, run_audit
from formless.knowledge import load


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--concept", default="Harry Potter")
    args = parser.parse_args()
    print(f"torch threads: {torch.get_num_threads()}, cpu: {psutil.cpu_count()} cores")
    kb = load()
    with tempfile.TemporaryDirectory() as tmp:
        audit_cache = Path(tmp) / "cache"  # empty reference cache; models come from the usual cache
        edited = Path(tmp) / "edited"
        forget(args.concept, model=args.model, out=edited)
        settings = AuditSettings(quantize=())
        for label in ("cold (reference scored, then cached)", "warm (reference from cache)"):
            start = time.perf_counter()
            report = run_audit(edited, kb=kb, settings=settings, cache=_cache_with_models(audit_cache))
            wall = time.perf_counter() - start
            n = len(report["probes"])
            parts = ", ".join(f"{k} {v:.1f}s" for k, v in report["run"]["seconds"].items() if k != "total")
            print(f"{label}: {wall:.1f}s for {n} probes in {len(report['forms'])} forms ({parts})")
    print(f"peak RSS: {psutil.Process().memory_info().rss / 2**30:.2f} GiB (current)")


def _cache_with_models(audit_cache: Path) -> Path:
    """A cache dir whose models/statistics link to the user's cache, but with its own audit entries."""
    from formless.models.cache import cache_dir

    audit_cache.mkdir(parents=True, exist_ok=True)
    for sub in ("models", "gguf", "stats"):
        link, target = audit_cache / sub, cache_dir() / sub
        if target.exists() and not link.exists():
            link.symlink_to(target)
    return audit_cache


if __name__ == "__main__":
    main()
