"""Elicitation only: facts kept per name by the checked-out code (no audit).

python docs/ablation/elicit_qa/elicit_counts.py OUT.json "Name one,Name two,..."
"""

import json
import sys
import time

from formless.knowledge import load
from formless.knowledge.elicit import elicit_concept
from formless.models import load_model

loaded = load_model("smollm2-135m-instruct")
kb = load()
out = {}
for name in sys.argv[2].split(","):
    started = time.perf_counter()
    try:
        concept, report = elicit_concept(loaded, name, kb=kb)
        facts = {f.relation: f.answer for f in concept.facts}
        forms = {r.relation: list(r.forms) for r in report.kept}
    except Exception as error:  # a refused name is a result here, not a failure
        facts, forms = {}, str(error)
    out[name] = {"facts": facts, "forms": forms, "seconds": round(time.perf_counter() - started, 1)}
    print(name, len(facts), out[name]["seconds"], facts, flush=True)
with open(sys.argv[1], "w") as fh:
    json.dump(out, fh, indent=1)
