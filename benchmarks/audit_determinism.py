"""What changes an audit: the same ROCR edit audited under different torch thread counts, batch
sizes and precisions, each from an empty reference cache, compared probe by probe with the default
run (2 threads, batch 32, float32).

    python benchmarks/audit_determinism.py [--concept "Harry Potter"] [--forms question,cloze,...]
        [--json docs/audit_determinism.json] [--smoke]

For every variant it prints how many probes changed their verdict (reference or audited model),
how many residual figures moved, and the largest change of an answer probability. A verdict that
flips is a near-tie in greedy decoding or option likelihood, where float summation order (threads,
padding inside a batch, bf16) decides.
--smoke: the same comparison on a tiny random model (benchmarks/_smoke.py).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import _smoke
import torch
from audit_speed import _cache_with_models

from formless.api import forget
from formless.audit.report import AuditReport
from formless.audit.run import AuditSettings, run_audit
from formless.knowledge import load
from formless.models.cache import atomic_file

DEFAULT_FORMS = "question,paraphrase,cloze,completion,multiple_choice,true_false,reverse"
VARIANTS = {  # name: (threads, batch size, bf16)
    "default (2 threads, batch 32, fp32)": (2, 32, False),
    "default again": (2, 32, False),
    "1 thread": (1, 32, False),
    "batch 7": (2, 7, False),
    "bf16 (--fast)": (2, 32, True),
}


def _compare(base: AuditReport, other: AuditReport) -> dict:
    """Probe-level and figure-level differences between two audit reports of the same probes."""
    a = {p.key: p for p in base.probes}
    b = {p.key: p for p in other.probes}
    assert a.keys() == b.keys(), "the two audits asked different probes"
    flips_ref = sum(a[k].before.hit != b[k].before.hit for k in a)
    flips_after = sum(
        (a[k].after and a[k].after.hit) != (b[k].after and b[k].after.hit)
        for k in a
        if a[k].before.hit and b[k].before.hit
    )
    deltas = [
        abs(x.probability - y.probability)
        for k in a
        for x, y in ((a[k].before, b[k].before), (a[k].after, b[k].after))
        if x and y and x.probability is not None and y.probability is not None
    ]
    forms, others = base.forget.per_form, other.forget.per_form
    moved = [f for f in forms if forms[f].residual != (others[f].residual if f in others else None)]
    return {
        "probes": len(a),
        "reference_verdicts_changed": flips_ref,
        "audited_verdicts_changed": flips_after,
        "max_probability_change": round(max(deltas, default=0.0), 6),
        "forms_whose_residual_moved": moved,
        "identical": flips_ref == 0 and flips_after == 0 and not moved and max(deltas, default=0.0) == 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    _smoke.add_arguments(parser)
    parser.add_argument("--concept", default="Harry Potter")
    parser.add_argument("--forms", default=DEFAULT_FORMS)
    parser.add_argument("--json", type=Path, help="write the comparison here")
    args = parser.parse_args()
    _smoke.resolve(args)
    args.json = _smoke.output(args, args.json, "audit_determinism.json")
    forms = [f for f in args.forms.split(",") if f]
    kb = load()
    reports, seconds = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        edited = Path(tmp) / "edited"
        forget(args.concept, model=args.model, out=edited)
        for i, (name, (threads, batch, fast)) in enumerate(VARIANTS.items()):
            torch.set_num_threads(threads)
            settings = AuditSettings(forms=forms, quantize=(), fluency=False, batch_size=batch, fast=fast)
            start = time.perf_counter()
            cache = _cache_with_models(Path(tmp) / f"cache{i}")  # empty reference cache per variant
            reports[name] = run_audit(edited, kb=kb, settings=settings, cache=cache)
            seconds[name] = round(time.perf_counter() - start, 1)
    torch.set_num_threads(2)
    names = list(VARIANTS)
    base = reports[names[0]]
    results = {
        "model": args.model,
        "concept": args.concept,
        "forms": forms,
        "torch": torch.__version__,
        "seconds": seconds,
        "against_default": {n: _compare(base, reports[n]) for n in names[1:]},
    }
    print(f"{len(base.probes)} probes, concept {args.concept!r}, forms {','.join(forms)}")
    print(
        "| variant | reference verdicts changed | audited verdicts changed | max |Δp| | residual moved in |"
    )
    print("|---|---|---|---|---|")
    for name, diff in results["against_default"].items():
        print(
            f"| {name} | {diff['reference_verdicts_changed']} | {diff['audited_verdicts_changed']} | "
            f"{diff['max_probability_change']:.2g} | {', '.join(diff['forms_whose_residual_moved']) or '–'} |"
        )
    if args.json:
        with atomic_file(args.json) as tmp_file:
            tmp_file.write_text(json.dumps(results, indent=1))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
