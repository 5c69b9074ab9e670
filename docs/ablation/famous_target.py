"""Design concepts only: ROCR redirected to the averaged representation of well-known names of the
concept's kind (formless.rocr.protect.FAMOUS_NAMES), or a mix with the default's made-up names; each
edit audited in float32.

    python docs/ablation/famous_target.py "<names>" OUT.json default|famous|mix <forms>
"""

import json
import sys
from pathlib import Path

from _counts import audit_counts, forget_and_audit, summary_line

from formless.knowledge import load
from formless.rocr.config import UNKNOWN_NAMES
from formless.rocr.protect import FAMOUS_NAMES as F
from formless.rocr.protect import protected_names

BY_KIND = {"person": F[:60], "place": F[60:85], "work": F[85:104], "organisation": F[104:114]}
names, out, mode = sys.argv[1].split(","), Path(sys.argv[2]), sys.argv[3]
forms = sys.argv[4].split(",")
kb = load()
done = json.loads(out.read_text()) if out.exists() else {}
for name in names:
    if name in done:
        continue
    kind = kb.concept(name).kind
    famous = protected_names(BY_KIND.get(kind, F), [name])
    if mode == "famous":
        opts = {"redirect": famous[0], "redirect_average": list(famous[1:])}
    elif mode == "mix":  # as many made-up names as famous ones: half each in the average
        k = len(famous) // len(UNKNOWN_NAMES)
        opts = {"redirect": famous[0], "redirect_average": [*famous[1:], *(list(UNKNOWN_NAMES) * k)]}
    else:
        opts = {}
    _, report, seconds = forget_and_audit(name, opts, forms, kb=kb, fast=False)
    rec = {
        "forget_s": seconds,
        "mode": mode,
        "targets": len(famous),
        **audit_counts(report),
        "probes": [p.model_dump() for p in report.probes],
    }
    done[name] = rec
    out.write_text(json.dumps(done))
    print(summary_line(name, mode, rec), flush=True)
