"""How much of ROCR's recognition "leak" is knowledge, and how much is the options' own prior?

The multiple-choice and true/false forms count a fact as still known when the right option wins.
The audit's chance level is uniform (1/4, 1/2). But a model that never heard of the concept does
not pick uniformly: "J.K. Rowling" may simply be the likeliest of four writer names whatever book
is asked about. This benchmark measures that floor on the model itself. Each recognition probe is
asked four ways:

- reference, as written: what the reference knows (the audit's "known");
- edited (the default ROCR edit of that concept), as written: the audit's residual;
- reference with the concept's name (and aliases) replaced by a made-up name: the options' prior,
  i.e. what the reference picks when it cannot know the answer;
- edited with the made-up name: the same prior after the edit (it should not move).

Probes whose prompt never names the concept (no made-up twin exists) are left out and counted.

Printed per form, over the facts the reference knows (a true/false fact: both statements judged
right, as the audit counts it): the residual and the prior, each with a 95% Wilson interval, and
the residual over the facts the reference knows *and* does not get right with the made-up name
(knowledge-dependent facts, the same rule the elicitation applies to its answers), and how many of
those the audit's other made-up names get right on the reference: the floor of that figure (a
model that knows nothing of the concept, but is not the first made-up name, reads that much; the
audit's "above the prior" corrects for it). A residual near
the prior means the edit left about what a no-knowledge model gets; a residual over the
knowledge-dependent facts is recognition that only knowledge of the concept explains.

    python benchmarks/recognition_prior.py --concepts 10 [--json out.json]
    python benchmarks/recognition_prior.py --names "Harry Potter,Isaac Newton" --preset paper
    python benchmarks/recognition_prior.py --forms completion,background_hint   # generated forms too
    python benchmarks/recognition_prior.py --from docs/recognition_prior_10.json   # reprint
    python benchmarks/recognition_prior.py --smoke
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _smoke  # noqa: E402
from audit_methods import DEFAULT_CONCEPTS, wilson  # noqa: E402

FORMS = ("multiple_choice", "multiple_choice_letter", "true_false")
WAYS = ("reference", "edited", "reference_control", "edited_control")


def run_concept(name: str, ref, kb, args) -> dict:
    """The audit's own recognition probes and their prior twins (formless.audit.forms.choice), each
    scored on the reference and on the edited model."""
    from formless.api import forget, make_config
    from formless.audit.building import build_probes
    from formless.audit.engine import score_probes
    from formless.audit.forms.base import prior_twin
    from formless.audit.settings import AuditSettings

    concept = kb.concept(name)
    settings = AuditSettings(forms=list(args.forms), neighbours=False, general=False, fluency=False)
    probes = build_probes(kb, [concept], settings).forget
    # forms the audit gives no twin (answers generated): the first made-up name's twin, built here
    have = {p.fact_key for p in probes if p.prior_twin}
    probes += [
        t
        for p in probes
        if not p.prior_twin and p.key not in have and (t := prior_twin(p, concept)) is not None
    ]
    with tempfile.TemporaryDirectory() as tmp:
        config = make_config(preset=args.preset)
        edited = forget(name, model=args.model, out=Path(tmp) / "m", config=config).loaded
    on_ref = score_probes(ref, probes, batch_size=64, fast=args.fast)
    # the edited model answers the named probes and the first name's twins
    asked = [i for i, p in enumerate(probes) if not p.twin]
    on_edited = dict(
        zip(asked, score_probes(edited, [probes[i] for i in asked], batch_size=64, fast=args.fast))
    )
    twins: dict[str, dict[int, int]] = {}
    for i, p in enumerate(probes):
        if p.prior_twin:
            twins.setdefault(p.fact_key, {})[p.twin] = i
    named = [i for i, p in enumerate(probes) if not p.prior_twin]
    rows = []
    for i in named:  # a prompt that never names the concept has no twin: left out, counted
        if (own := twins.get(probes[i].key)) is not None:
            t = own[0]
            hits = (on_ref[i].hit, on_edited[i].hit, on_ref[t].hit, on_edited[t].hit)
            rows.append({"form": probes[i].form, "key": probes[i].key, "control_prompt": probes[t].prompt})
            rows[-1].update(zip(WAYS, hits))
            # the other made-up names' twins, on the reference: a second no-knowledge model
            rows[-1]["other_controls"] = [on_ref[own[k]].hit for k in sorted(own) if k]
    return {"concept": name, "skipped_unnamed": len(named) - len(rows), "probes": rows}


def cell(kept: int, known: int) -> str:
    if not known:
        return "– (0/0)"
    low, high = wilson(kept, known)
    return f"{100 * kept / known:.0f}% [{100 * low:.0f}–{100 * high:.0f}%] ({kept}/{known})"


def fact_units(rows: list[dict], form: str) -> list[dict[str, bool]]:
    """One unit per fact, as the audit counts them: the true and the false statement of a fact
    (true/false) must both be judged right, in each of the four ways."""
    grouped: dict[str, list[dict]] = {}
    for row in rows:
        for p in row["probes"]:
            if p["form"] == form:
                grouped.setdefault(p["key"].rsplit("|", 1)[0], []).append(p)
    out = []
    for members in grouped.values():
        unit = {w: all(p[w] for p in members) for w in WAYS}
        others = zip(*(p.get("other_controls", []) for p in members))
        unit["other_controls"] = [all(hits) for hits in others]
        out.append(unit)
    return out


def floor(dependent: list[dict]) -> str:
    """How many of the facts the first made-up name gets wrong another made-up name gets right: what
    "residual over those" reads for a model that knows nothing of the concept (its floor)."""
    k = min((len(u["other_controls"]) for u in dependent), default=0)
    if not dependent or not k:
        return "–"
    right = sum(u["other_controls"][j] for u in dependent for j in range(k))
    return f"{100 * right / (k * len(dependent)):.0f}% ({right}/{k * len(dependent)}, {k} other names)"


def table(rows: list[dict]) -> str:
    lines = [
        "| form | reference knows | residual after ROCR | prior (made-up name) over the known "
        "| prior after ROCR | known and not by prior | residual over those "
        "| another made-up name right, of those (the floor) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    forms = dict.fromkeys(p["form"] for r in rows for p in r["probes"])
    for form in forms:
        units = fact_units(rows, form)
        known = [u for u in units if u["reference"]]
        dependent = [u for u in known if not u["reference_control"]]
        count = lambda items, way: sum(u[way] for u in items)  # noqa: E731
        lines.append(
            f"| {form} | {len(known)}/{len(units)} | {cell(count(known, 'edited'), len(known))} "
            f"| {cell(count(known, 'reference_control'), len(known))} "
            f"| {cell(count(known, 'edited_control'), len(known))} "
            f"| {len(dependent)}/{len(known)} | {cell(count(dependent, 'edited'), len(dependent))} "
            f"| {floor(dependent)} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    _smoke.add_arguments(parser)
    parser.add_argument("--concepts", type=int, default=10)
    parser.add_argument("--names", default=None, help="these concepts (comma list)")
    parser.add_argument("--fast", action="store_true", help="score in bf16")
    parser.add_argument("--preset", default="formless", help="ROCR preset, e.g. paper")
    parser.add_argument(
        "--forms", default=",".join(FORMS), help="audit forms (comma list); generated ones get a twin here"
    )
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--from", dest="source", type=Path, help="print a saved --json's table (no model)")
    args = parser.parse_args()
    args.forms = [f.strip() for f in args.forms.split(",") if f.strip()]
    if args.source:
        print(table(json.loads(args.source.read_text())["rows"]))
        return
    _smoke.resolve(args)
    args.json = _smoke.output(args, args.json, "recognition_prior.json")
    if args.smoke:
        args.concepts = 1

    from formless.knowledge import load
    from formless.models import load_model
    from formless.models.cache import atomic_file

    kb = load()
    chosen = args.names.split(",") if args.names else DEFAULT_CONCEPTS[: args.concepts]
    ref = load_model(args.model)
    rows = []
    for name in (n.strip() for n in chosen if n.strip()):
        rows.append(run_concept(name, ref, kb, args))
        print(f"{name}: {len(rows[-1]['probes'])} probes", flush=True)
        if args.json:
            with atomic_file(args.json) as tmp:
                tmp.write_text(
                    json.dumps(
                        {"model": args.model, "fast": args.fast, "preset": args.preset, "rows": rows},
                        indent=1,
                    )
                )
    print(table(rows))


if __name__ == "__main__":
    main()
