"""Wall time of a full single-concept audit (every form, neighbour + general + fluency retain sets,
no quantization) of a ROCR-edited default model on this CPU, with the reference results cached.

The first audit fills the reference cache (timed too); the second is the figure the target is
about (≤ 60 s). Both run in one process, one after the other.

    python benchmarks/audit_speed.py [--concept "Harry Potter"] [--model smollm2-135m-instruct]
        [--json timings.json] [--smoke]

--smoke: the same two audits on a tiny random model (benchmarks/_smoke.py).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import _smoke
import psutil
import torch

from formless.api import forget
from formless.audit.run import AuditSettings, run_audit
from formless.knowledge import load
from formless.models.cache import atomic_file


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    _smoke.add_arguments(parser)
    parser.add_argument("--concept", default="Harry Potter")
    parser.add_argument("--json", type=Path, help="write the timings here")
    args = parser.parse_args()
    _smoke.resolve(args)
    args.json = _smoke.output(args, args.json, "audit_speed.json")
    results = {"model": args.model, "concept": args.concept, "threads": torch.get_num_threads()}
    print(f"torch threads: {torch.get_num_threads()}, cpu: {psutil.cpu_count()} cores")
    kb = load()
    with tempfile.TemporaryDirectory() as tmp:
        audit_cache = Path(tmp) / "cache"  # empty reference cache; models come from the usual cache
        edited = Path(tmp) / "edited"
        forget(args.concept, model=args.model, out=edited)
        settings = AuditSettings(quantize=())
        for key, label in (
            ("cold", "cold (reference scored, then cached)"),
            ("warm", "warm (reference from cache)"),
        ):
            start = time.perf_counter()
            report = run_audit(edited, kb=kb, settings=settings, cache=_cache_with_models(audit_cache))
            wall = time.perf_counter() - start
            n = len(report.probes)
            parts = ", ".join(f"{k} {v:.1f}s" for k, v in report.run.seconds.items() if k != "total")
            print(f"{label}: {wall:.1f}s for {n} probes in {len(report.forms)} forms ({parts})")
            results[key] = {
                "seconds": round(wall, 3),
                "probes": n,
                "forms": len(report.forms),
                "parts": report.run.seconds,
            }
    results["rss_gib"] = round(psutil.Process().memory_info().rss / 2**30, 3)
    print(f"peak RSS: {results['rss_gib']:.2f} GiB (current)")
    if args.json:
        with atomic_file(args.json) as tmp:
            tmp.write_text(json.dumps(results, indent=1))
        print(f"wrote {args.json}")


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
