import sys, json
from formless.models import load_model
from formless.knowledge import load, KnowledgeError
from formless.knowledge import elicit as el
from formless.audit.scoring import answer_probability
loaded = load_model("smollm2-135m-instruct")
kb = load()
controls = el.CONTROL_NAMES
out = {}
for n in sys.argv[2].split(","):
    try:
        c, rep = el.elicit_concept(loaded, n, kb=kb, languages=())
    except KnowledgeError as e:
        print(n, "ERROR", str(e)[:80], flush=True); continue
    rows = []
    for r in rep.kept:
        subj_prompts = [r.prompts["completion"], r.prompts["qa"]]
        ps = answer_probability(loaded, subj_prompts, [r.answer]*2, chat=False, batch_size=32, fast=False)
        cps = []
        for ctl in controls:
            cp = [p.replace(n, ctl) for p in subj_prompts]
            cps.append(answer_probability(loaded, cp, [r.answer]*2, chat=False, batch_size=32, fast=False))
        rows.append((r.relation, r.answer, list(r.forms), ps, cps))
        print(f"{n:22s} {r.relation:14s} {r.answer[:22]:22s} comp {ps[0]:.3f} vs {max(c[0] for c in cps):.3f}  qa {ps[1]:.3f} vs {max(c[1] for c in cps):.3f}", flush=True)
    out[n] = rows
json.dump(out, open(sys.argv[1], "w"))
