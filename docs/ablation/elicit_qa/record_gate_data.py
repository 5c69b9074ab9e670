import sys, json, re
from formless.models import load_model
from formless.knowledge import load, KnowledgeError
from formless.knowledge import elicit as el
from formless.audit.scoring import answer_probability
QA = ("Q: What is the capital of Japan?\nA: Tokyo\nQ: How many legs does a spider have?\nA: eight\n"
      "Q: What colour is the sky on a clear day?\nA: blue\n")
loaded = load_model("smollm2-135m-instruct")
kb = load()
out = {}
for n in sys.argv[2].split(","):
    captured = {}
    orig_judge = el._judge
    try:
        kbx = kb.without(n) if hasattr(kb, "without") else kb
        c, rep = el.elicit_concept(loaded, n, kb=None, languages=())
    except KnowledgeError as e:
        out[n] = {"error": str(e)}; print(n, "ERROR", flush=True); json.dump(out, open(sys.argv[1], "w")); continue
    subject = el.subject_phrase(n, rep.free_text) if not n.lower().startswith("the ") else n
    rows = []
    for r in rep.kept:
        base = [r.prompts["completion"], f"{QA}Q: {r.prompts['question']}\nA:"]
        prompts = []
        for who in (subject, *el.CONTROL_NAMES):
            prompts += [re.sub(re.escape(subject), who, p, flags=re.I) for p in base]
        ps = answer_probability(loaded, prompts, [r.answer] * len(prompts), chat=False, batch_size=32, fast=False)
        own = ps[:2]; ctl = [max(ps[2 + j::2][:len(el.CONTROL_NAMES)]) for j in range(2)]
        ratio = max(o / max(c, 0.01) for o, c in zip(own, ctl))
        rows.append({"relation": r.relation, "answer": r.answer, "own": own, "made_up": ctl, "ratio": ratio})
    out[n] = {"facts": rows}
    print(n, len(rows), sorted(round(x["ratio"], 1) for x in rows), flush=True)
    json.dump(out, open(sys.argv[1], "w"), indent=1)
