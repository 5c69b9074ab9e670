"""Dev sweep: forget each concept with ROCR options, audit a subset of forms, save per-form counts."""

import json
import sys
import tempfile
import time
from pathlib import Path

from _counts import audit_counts

from formless.api import forget, make_config
from formless.audit.run import AuditSettings, run_audit
from formless.knowledge import load
from formless.models import load_model

names = sys.argv[1].split(",")
out = Path(sys.argv[2])
opts = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
forms = sys.argv[4].split(",") if len(sys.argv) > 4 and sys.argv[4] else None
kb = load()
KIND_TARGETS = {
    "place": ["Orlin Falls", "Mount Kolbeck", "Ferreau Bay", "Brannick Tower", "Lake Maltrey"],
    "work": [
        "The Vasquire Chronicles",
        "Temra's Garden",
        "The Ferreau Affair",
        "Brannick Road",
        "The Maltrey Saga",
    ],
    "organisation": [
        "Vasquire Industries",
        "Kolbeck Records",
        "Ferreau Holdings",
        "The Brannick Society",
        "Maltrey Systems",
    ],
    "thing": [
        "the Vasquire engine",
        "Kolbeck glass",
        "the Ferreau cipher",
        "Brannick ore",
        "the Maltrey lens",
    ],
    "event": [
        "the Vasquire Accord",
        "the Battle of Kolbeck",
        "the Ferreau Games",
        "the Brannick Uprising",
        "the Maltrey Crisis",
    ],
}
kind_targets = opts.pop("kind_targets", False)
done = json.loads(out.read_text()) if out.exists() else {}
for name in names:
    if name in done:
        continue
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        loaded = load_model("smollm2-135m-instruct")
        o = dict(opts)
        kind = kb.concept(name).kind
        if kind_targets and kind in KIND_TARGETS:
            o.update(redirect=KIND_TARGETS[kind][0], redirect_average=KIND_TARGETS[kind][1:])
        print(name, kind, o, flush=True)
        outcome = forget(
            name, model=loaded, out=Path(tmp) / "m", method="rocr", config=make_config(None, **o)
        )
        t1 = time.perf_counter() - t
        report = run_audit(
            Path(tmp) / "m", kb=kb, settings=AuditSettings(quantize=(), fast=True, forms=forms)
        )
    rec = {
        "forget_s": t1,
        "rel": outcome.manifest.get("edit", {}).get("relative_norms")
        if isinstance(outcome.manifest.get("edit"), dict)
        else None,
        **audit_counts(report),
        "probes": [p.model_dump() for p in report.probes if p.concept == name],
    }
    done[name] = rec
    out.write_text(json.dumps(done))
    print(
        name,
        opts,
        "overall",
        rec["overall"],
        "neigh",
        rec["neigh"],
        "gen",
        rec["general"],
        "kl",
        rec["kl"],
        flush=True,
    )
