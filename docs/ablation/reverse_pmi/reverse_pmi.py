"""Does a record's fact point back to its concept? Per kept fact, the pointwise mutual information
between the fact and the name, read on the reference:

    PMI = log p(name | "The <kind> <fact phrase> is") - mean log p(name | the same with another answer)

(p: the name's geometric-mean token probability). A made-up name carries no knowledge, so which
answer the phrase holds should not change how likely its name is; a fact the model knows should
make the name likelier. The facts are those elicitation kept (stop 33's data,
docs/ablation/elicit_qa/record_gate_{dev,heldout}.json); the other answers are the same relation's
answers for the other names there.

    python docs/ablation/reverse_pmi/reverse_pmi.py OUT.json
"""

import json
import math
import random
import sys
from pathlib import Path

from formless.audit.scoring import answer_probability
from formless.knowledge.templates import KIND_NOUN, RELATIONS
from formless.matching import contains_answer
from formless.models import load_model

HERE = Path(__file__).resolve().parent.parent / "elicit_qa"
OTHERS = 4
records = {}
for split in ("dev", "heldout"):
    for name, rec in json.loads((HERE / f"record_gate_{split}.json").read_text()).items():
        records[name] = {"split": split, "facts": rec.get("facts"), "error": rec.get("error")}


def kind_of(relations: list[str]) -> str:
    """The first kind whose relations hold every relation the record kept."""
    for kind, rels in RELATIONS.items():
        if set(relations) <= {r.name for r in rels}:
            return kind
    raise ValueError(relations)


pool: dict[str, list[str]] = {}
for rec in records.values():
    for fact in rec["facts"] or ():
        pool.setdefault(fact["relation"], []).append(fact["answer"])

loaded = load_model("smollm2-135m-instruct")
rng = random.Random(0)
out = {}
for name, rec in records.items():
    if not rec["facts"]:
        out[name] = {**rec, "pmi": []}
        continue
    kind = kind_of([f["relation"] for f in rec["facts"]])
    by_name = {r.name: r for r in RELATIONS[kind]}
    rows = []
    for fact in rec["facts"]:
        rel = by_name[fact["relation"]]
        if not rel.describe:
            continue
        others = [a for a in dict.fromkeys(pool[rel.name]) if not contains_answer(a, [fact["answer"]])]
        others = [a for a in others if not contains_answer(fact["answer"], [a])]
        others = rng.sample(others, min(OTHERS, len(others)))
        if not others:
            continue
        phrases = [f"The {KIND_NOUN[kind]} {rel.describe.format(a=a)} is" for a in (fact["answer"], *others)]
        ps = answer_probability(loaded, phrases, [name] * len(phrases), chat=False, fast=False)
        pmi = math.log(ps[0]) - sum(math.log(p) for p in ps[1:]) / len(others)
        rows.append({"relation": rel.name, "answer": fact["answer"], "others": others, "p": ps, "pmi": pmi})
    out[name] = {**rec, "kind": kind, "pmi": rows}
    print(rec["split"], name, kind, sorted(round(r["pmi"], 2) for r in rows), flush=True)
Path(sys.argv[1]).write_text(json.dumps(out, indent=1))
