"""Dev sweep: forget each concept with ROCR options, audit a subset of forms, save per-form counts."""

import json
import sys

from _counts import audit_counts, forget_and_audit, summary_line, sweep_args

from formless.knowledge import load

names, out, opts, forms, done = sweep_args(sys.argv)
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
for name in names:
    if name in done:
        continue
    o = dict(opts)
    kind = kb.concept(name).kind
    if kind_targets and kind in KIND_TARGETS:
        o.update(redirect=KIND_TARGETS[kind][0], redirect_average=KIND_TARGETS[kind][1:])
    print(name, kind, o, flush=True)
    outcome, report, seconds = forget_and_audit(name, o, forms, kb=kb, fast=True)
    rec = {
        "forget_s": seconds,
        "rel": [u["relative_norm"] for u in outcome.manifest.get("layer_updates", [])],
        **audit_counts(report),
        "probes": [p.model_dump() for p in report.probes if p.concept == name],
        # every neighbour and general fact the reference answers, with what the edited model says
        "retain_probes": [
            p.model_dump()
            for p in report.probes
            if p.concept != name and p.before.hit and p.after is not None
        ],
    }
    done[name] = rec
    out.write_text(json.dumps(done))
    print(summary_line(name, opts, rec), flush=True)
