"""Issue #13's directions "keys from model-written descriptions" and "aliases and sub-names": the
concept is forgotten together with the descriptions the reference itself gives of it ("the
physicist born in Bern") or the other names it answers the concept's questions under ("Einstein"),
each redirected like a name in the same edit (its specific tokens, every key context); then the
concept alone is audited.

Both come from ``elicit_concept`` on the unedited model (its own kept facts and verified aliases,
never the audit's records): what a user who holds only the name could derive.

python docs/ablation/elicited_keys.py descriptions|aliases "<names>" OUT.json '<ROCR options>' <forms>
"""

import json
import sys
import tempfile
import time
from pathlib import Path

from _counts import audit_counts, summary_line, sweep_args

from formless.api import forget, make_config
from formless.audit.run import AuditSettings, run_audit
from formless.knowledge import load
from formless.knowledge.elicit import elicit_concept
from formless.models import load_model

mode = sys.argv.pop(1)
assert mode in ("descriptions", "aliases"), mode
names, out, opts, forms, done = sweep_args(sys.argv)
kb = load()
for name in names:
    if name in done:
        continue
    loaded = load_model("smollm2-135m-instruct")
    started = time.perf_counter()
    elicited, report = elicit_concept(loaded, name, kind=kb.concept(name).kind, languages=())
    elicit_s = time.perf_counter() - started
    if mode == "descriptions":
        added = [d for d in [report.description, *report.other_descriptions] if d]
    else:
        added = list(elicited.aliases)
    print(name, f"{mode}:", added, flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        outcome = forget([name, *added], model=loaded, out=Path(tmp) / "m", config=make_config(None, **opts))
        seconds = time.perf_counter() - started
        settings = AuditSettings(quantize=(), fast=True, forms=forms)
        audited = run_audit(Path(tmp) / "m", kb=kb, settings=settings, concepts=[name])
    rec = {
        mode: added,
        "elicit_s": elicit_s,
        "forget_s": seconds,
        "notes": outcome.manifest.get("notes"),
        "rel": [u["relative_norm"] for u in outcome.manifest.get("layer_updates", [])],
        **audit_counts(audited),
        "probes": [p.model_dump() for p in audited.probes if p.concept == name],
    }
    done[name] = rec
    out.write_text(json.dumps(done))
    print(summary_line(name, opts, rec), flush=True)
