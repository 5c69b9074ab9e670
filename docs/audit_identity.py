"""The unedited model audited against itself: what the retain figures read when nothing was edited.

    python docs/audit_identity.py "<concepts>" fast|f32 OUT.json [forms]

Each concept is audited in its own run with an empty cache (forms: question unless given), so the
reference and the audited model are the same weights; every neighbour or general fact reported
lost is the audit's own noise. Summary of the measured runs: docs/audit_identity.json.
"""

import json
import sys
import tempfile
import time

from formless.audit.run import AuditSettings, run_audit
from formless.knowledge import load

names = sys.argv[1].split(",")
fast = sys.argv[2] == "fast"
out = sys.argv[3]
forms = sys.argv[4].split(",") if len(sys.argv) > 4 else ["question"]
kb = load()
res = {}
for name in names:
    with tempfile.TemporaryDirectory() as cache:
        t = time.perf_counter()
        r = run_audit(
            "smollm2-135m-instruct",
            kb=kb,
            concepts=[name],
            reference="smollm2-135m-instruct",
            settings=AuditSettings(quantize=(), fast=fast, forms=forms),
            cache=cache,
        )
    d = r.model_dump(mode="json")
    res[name] = {
        "neighbours": d["retain"]["neighbours"],
        "general": d["retain"]["general"],
        "probes": d["probes"],
        "s": time.perf_counter() - t,
    }
    n, g = d["retain"]["neighbours"], d["retain"]["general"]
    kept = f"neigh {n['still_answered']} / {n['known']} gen {g['still_answered']} / {g['known']}"
    print(name, kept, flush=True)
    with open(out, "w") as f:
        json.dump(res, f)
