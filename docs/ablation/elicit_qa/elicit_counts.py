import sys, json, time
from formless.models import load_model
from formless.knowledge import load
from formless.knowledge.elicit import elicit_concept
loaded = load_model("smollm2-135m-instruct")
kb = load()
names = sys.argv[2].split(",")
out = {}
for n in names:
    t = time.perf_counter()
    try:
        c, rep = elicit_concept(loaded, n, kb=kb)
        facts = {f.relation: f.answer for f in c.facts}
        forms = {r.relation: list(r.forms) for r in rep.kept}
    except Exception as e:
        facts, forms = {}, str(e)
    out[n] = {"facts": facts, "forms": forms, "seconds": round(time.perf_counter() - t, 1)}
    print(n, len(facts), out[n]["seconds"], facts, flush=True)
json.dump(out, open(sys.argv[1], "w"), indent=1)
