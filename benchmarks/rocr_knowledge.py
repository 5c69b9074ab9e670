"""How much of each concept's knowledge ROCR removes, and how much unrelated knowledge it keeps.

For every concept of the shipped knowledge base (formless/data/knowledge/*.yaml; or those named with
--concepts): edit the model for that concept alone, ask its facts as chat questions and as plain
completions, ask the unrelated general facts in both forms, then restore the weights. Only facts
the unedited model answers correctly count.

Control: some facts can be answered without knowing the concept at all ("The Jedi's weapon is
the ..."). Each fact is also asked, on the unedited model, with the concept's name replaced by a
neutral placeholder; facts still answered then are "inferable" and counted apart, so a leak
column says how much of the leak needs no knowledge of the concept.

    python benchmarks/rocr_knowledge.py [--model smollm2-135m-instruct] [--concepts NAME ...]
        [--json results.json] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import _smoke
import torch
from rich.console import Console
from rich.table import Table

from formless.api import make_config
from formless.evaluation import ask, correct
from formless.knowledge import load_facts
from formless.models import load_model
from formless.models.cache import atomic_file
from formless.rocr import apply_rocr, layer_statistics
from formless.rocr.corpus import load_corpus

PLACEHOLDER = "X"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    _smoke.add_arguments(parser)
    parser.add_argument("--layers", default=None, help="e.g. 4,5,6")
    parser.add_argument("--lam", type=float, default=None)
    parser.add_argument("--threshold", type=float, default=None)
    parser.add_argument("--redirect", default=None)
    parser.add_argument("--concepts", nargs="*", default=None)
    parser.add_argument("--json", default=None, help="write all numbers here")
    args = parser.parse_args()
    _smoke.resolve(args)
    args.json = _smoke.output(args, args.json, "rocr_knowledge.json")
    console = Console(width=200)
    layers = [int(x) for x in args.layers.split(",")] if args.layers else None
    loaded = load_model(args.model)
    config = make_config(layers=layers, lam=args.lam, threshold=args.threshold, redirect=args.redirect)
    layers = config.resolved_layers(loaded.adapter.num_layers(loaded.model))
    config = config.model_copy(update={"layers": layers})
    stats, _ = layer_statistics(loaded, layers, load_corpus(config.corpus), max_tokens=config.stats_tokens)
    concepts, general = load_facts()
    names = args.concepts or list(concepts)
    if args.smoke:  # one concept, a few unrelated facts
        names, general = names[:1], general[:8]
    forms = ("chat", "plain")

    def known_mask(facts):
        return {form: correct(facts, ask(loaded, facts, form)) for form in forms}

    general_known = known_mask(general)
    concept_known = {name: known_mask(concepts[name].facts) for name in names}
    inferable = {}
    for name in names:
        blind = [
            f.model_copy(
                update={
                    "question": f.question.replace(name, PLACEHOLDER),
                    "completion": f.completion.replace(name, PLACEHOLDER),
                }
            )
            for f in concepts[name].facts
        ]
        inferable[name] = known_mask(blind)
    originals = {i: loaded.adapter.weight(loaded.model, i).detach().clone() for i in layers}

    rows, edit_seconds = [], []
    for name in names:
        facts = concepts[name].facts
        result = apply_rocr(loaded, [name], config, stats)
        edit_seconds.append(result.seconds)
        row = {"concept": name, "edit_seconds": result.seconds}
        for form in forms:
            hits = correct(facts, ask(loaded, facts, form))
            known = concept_known[name][form]
            row[f"known_{form}"] = sum(known)
            row[f"leaked_{form}"] = sum(h and k for h, k in zip(hits, known))
            row[f"inferable_{form}"] = sum(k and b for k, b in zip(known, inferable[name][form]))
            row[f"leaked_needing_concept_{form}"] = sum(
                h and k and not b for h, k, b in zip(hits, known, inferable[name][form])
            )
            kept = correct(general, ask(loaded, general, form))
            row[f"general_known_{form}"] = sum(general_known[form])
            row[f"general_kept_{form}"] = sum(h and k for h, k in zip(kept, general_known[form]))
        rows.append(row)
        with torch.no_grad():
            for i, w in originals.items():
                loaded.adapter.weight(loaded.model, i).copy_(w)
        console.print(f"{name}: {row}")

    table = Table(title=f"ROCR on {args.model}, layers {layers}, redirect '{config.redirect}'")
    for col in (
        "concept",
        "leaked chat",
        "leaked plain",
        "unrelated kept chat",
        "unrelated kept plain",
        "edit s",
    ):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(
            r["concept"],
            f"{r['leaked_chat']}/{r['known_chat']}",
            f"{r['leaked_plain']}/{r['known_plain']}",
            f"{r['general_kept_chat']}/{r['general_known_chat']}",
            f"{r['general_kept_plain']}/{r['general_known_plain']}",
            f"{r['edit_seconds']:.2f}",
        )
    console.print(table)
    kept = sum(r["general_kept_chat"] + r["general_kept_plain"] for r in rows)
    known = sum(r["general_known_chat"] + r["general_known_plain"] for r in rows)
    worst = max(max(r["leaked_chat"], r["leaked_plain"]) for r in rows)
    summary = {
        "concepts": len(rows),
        "max_leaked_per_concept_any_form": worst,
        "max_leaked_needing_concept_any_form": max(
            max(r["leaked_needing_concept_chat"], r["leaked_needing_concept_plain"]) for r in rows
        ),
        "total_leaked_chat": sum(r["leaked_chat"] for r in rows),
        "total_leaked_plain": sum(r["leaked_plain"] for r in rows),
        "total_known": sum(r["known_chat"] + r["known_plain"] for r in rows),
        "unrelated_kept_percent": round(100 * kept / max(known, 1), 1),
        "median_edit_seconds": round(statistics.median(edit_seconds), 3),
    }
    console.print(summary)
    if args.json:
        data = {
            "model": args.model,
            "config": config.model_dump(),
            "model_hash": loaded.weights_hash(),
            "rows": rows,
            "summary": summary,
            "time": time.time(),
        }
        with atomic_file(args.json) as tmp:
            tmp.write_text(json.dumps(data, indent=2))
        console.print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
