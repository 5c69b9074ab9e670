"""Per kept fact (the checked-out code's elicitation): the answer's teacher-forced probability after
the concept's completion and few-shot prompts, and after the same prompts about each control name.
Run at the few-shot ("qa") variant of ``qa_form_contrast.patch`` (its prompts have a "qa" entry).

    python docs/ablation/elicit_qa/contrast.py OUT.json "Name one,Name two,..."
"""

import json
import sys

from formless.audit.scoring import answer_probability
from formless.knowledge import KnowledgeError, load
from formless.knowledge import elicit as el
from formless.models import load_model

loaded = load_model("smollm2-135m-instruct")
kb = load()
out = {}
for name in sys.argv[2].split(","):
    try:
        concept, report = el.elicit_concept(loaded, name, kb=kb, languages=())
    except KnowledgeError as error:
        print(name, "ERROR", str(error)[:80], flush=True)
        continue
    rows = []
    for res in report.kept:
        prompts = [res.prompts["completion"], res.prompts["qa"]]
        own = answer_probability(loaded, prompts, [res.answer] * 2, chat=False, batch_size=32, fast=False)
        made_up = [
            answer_probability(
                loaded,
                [p.replace(name, c) for p in prompts],
                [res.answer] * 2,
                chat=False,
                batch_size=32,
                fast=False,
            )
            for c in el.CONTROL_NAMES
        ]
        rows.append((res.relation, res.answer, list(res.forms), own, made_up))
        best = [max(m[i] for m in made_up) for i in range(2)]
        print(name, res.relation, res.answer, own, best, flush=True)
    out[name] = rows
with open(sys.argv[1], "w") as fh:
    json.dump(out, fh)
