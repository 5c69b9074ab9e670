"""How long building a knowledge-base record from the model's own answers takes, and what it keeps.

For each concept (well-known, and none of them in the shipped knowledge base), ``elicit_concept``
asks the reference model its free description, then every relation of the concept's kind as a chat
question, a plain completion and a cloze-like completion, keeps the facts stated by two or more
forms, and builds the record. Printed per concept: seconds, detected kind, facts kept, which
elicitation forms stated each kept answer, and how many probes each audit form gets from the record.

    python benchmarks/elicit_speed.py                 # SmolLM2-135M-Instruct, 12 concepts
    python benchmarks/elicit_speed.py --threads 1     # CPU threads for torch (a shared machine)
    python benchmarks/elicit_speed.py --smoke         # tiny random model, one concept, seconds
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _smoke  # noqa: E402

CONCEPTS = (
    "Paris",
    "London",
    "Tokyo",
    "Barack Obama",
    "Elon Musk",
    "Cristiano Ronaldo",
    "Microsoft",
    "Google",
    "The Great Gatsby",
    "Pride and Prejudice",
    "French Revolution",
    "Bitcoin",
)
ELICIT_FORMS = ("question", "completion", "cloze", "description")


def audit_probe_counts(concept) -> dict[str, int]:
    """Probes each registered audit form makes from the record (what the audit will ask)."""
    from formless.audit.forms import FORMS, FormContext
    from formless.knowledge import builtin

    ctx = FormContext(few_shot=builtin().general[-3:])
    return {name: len(form().probes(concept, ctx)) for name, form in FORMS.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    _smoke.add_arguments(parser)
    parser.add_argument("--concepts", nargs="+", default=None, help="concepts (default: 12 well-known ones)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--json", default=None, help="write the rows here")
    args = parser.parse_args()
    _smoke.resolve(args)

    import torch

    from formless.knowledge import KnowledgeError, builtin
    from formless.knowledge.elicit import elicit_concept
    from formless.models import load_model

    if args.threads:
        torch.set_num_threads(args.threads)
    concepts = args.concepts or (CONCEPTS[:1] if args.smoke else CONCEPTS)
    kb = builtin()
    known = [
        c
        for c in concepts
        if c in kb.concepts or any(c.lower() == a.lower() for k in kb.concepts.values() for a in k.names)
    ]
    if known:
        raise SystemExit(f"already in the knowledge base (pick others): {', '.join(known)}")
    t = time.perf_counter()
    loaded = load_model(args.model)
    print(f"model {args.model} loaded in {time.perf_counter() - t:.1f}s; {torch.get_num_threads()} thread(s)")

    rows = []
    for name in concepts:
        started = time.perf_counter()
        try:
            concept, report = elicit_concept(loaded, name, kb=kb)
        except KnowledgeError as exc:
            seconds = time.perf_counter() - started
            rows.append({"concept": name, "seconds": round(seconds, 2), "kept": 0, "error": str(exc)})
            print(f"{name:22s} {seconds:6.1f}s  nothing kept ({exc})")
            continue
        seconds = time.perf_counter() - started
        per_form = Counter(f for r in report.kept for f in r.forms)
        probes = audit_probe_counts(concept)
        rows.append(
            {
                "concept": name,
                "seconds": round(seconds, 2),
                "kind": report.kind,
                "kept": len(report.kept),
                "asked": len(report.relations),
                "facts": {r.relation: r.answer for r in report.kept},
                "kept_per_elicit_form": {f: per_form.get(f, 0) for f in ELICIT_FORMS},
                "audit_probes_per_form": probes,
                "description": concept.description,
                "phases": report.seconds,
            }
        )
        forms = " ".join(f"{f[:5]}={per_form.get(f, 0)}" for f in ELICIT_FORMS)
        facts = "; ".join(f"{r.relation}={r.answer}" for r in report.kept)
        print(
            f"{name:22s} {seconds:6.1f}s  {report.kind:12s} kept {len(report.kept)}/{len(report.relations)} "
            f"[{forms}]  {facts}"
        )
    done = [r for r in rows if r["kept"]]
    secs = [r["seconds"] for r in rows]
    print(
        f"seconds per concept: mean {statistics.fmean(secs):.1f}, max {max(secs):.1f}; "
        f"{len(done)}/{len(rows)} concepts with a record, "
        f"{sum(r['kept'] for r in rows)} facts kept in all"
    )
    if done:
        totals = Counter()
        for r in done:
            totals.update(r["audit_probes_per_form"])
        print("audit probes per form (all records): " + ", ".join(f"{k}={v}" for k, v in totals.items()))
    path = _smoke.output(args, args.json, "elicit_speed.json")
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"model": args.model, "rows": rows}, indent=1) + "\n")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
