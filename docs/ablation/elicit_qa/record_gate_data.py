"""The record-gate measure at the current elicitation: per kept fact, the contrast
max over (completion, few-shot prompt) of p(answer | concept) / max(p(answer | each control name), 0.01).

    python docs/ablation/elicit_qa/record_gate_data.py OUT.json "Name one,Name two,..."
"""

import json
import re
import sys

from formless.audit.scoring import answer_probability
from formless.knowledge import KnowledgeError
from formless.knowledge import elicit as el
from formless.models import load_model

QA = (
    "Q: What is the capital of Japan?\nA: Tokyo\nQ: How many legs does a spider have?\nA: eight\n"
    "Q: What colour is the sky on a clear day?\nA: blue\n"
)
FLOOR = 0.01
loaded = load_model("smollm2-135m-instruct")
out = {}


def save() -> None:
    with open(sys.argv[1], "w") as fh:
        json.dump(out, fh, indent=1)


for name in sys.argv[2].split(","):
    try:
        concept, report = el.elicit_concept(loaded, name, kb=None, languages=())
    except KnowledgeError as error:
        out[name] = {"error": str(error)}
        print(name, "ERROR", flush=True)
        save()
        continue
    subject = el.subject_phrase(name, report.free_text) if not name.lower().startswith("the ") else name
    rows = []
    for res in report.kept:
        base = [res.prompts["completion"], f"{QA}Q: {res.prompts['question']}\nA:"]
        prompts = [
            re.sub(re.escape(subject), who, p, flags=re.IGNORECASE)
            for who in (subject, *el.CONTROL_NAMES)
            for p in base
        ]
        ps = answer_probability(
            loaded, prompts, [res.answer] * len(prompts), chat=False, batch_size=32, fast=False
        )
        own = ps[:2]
        made_up = [max(ps[2 + j :: 2][: len(el.CONTROL_NAMES)]) for j in range(2)]
        ratio = max(o / max(m, FLOOR) for o, m in zip(own, made_up))
        rows.append(
            {"relation": res.relation, "answer": res.answer, "own": own, "made_up": made_up, "ratio": ratio}
        )
    out[name] = {"facts": rows}
    print(name, len(rows), sorted(round(x["ratio"], 1) for x in rows), flush=True)
    save()
