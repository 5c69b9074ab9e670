"""Generated records against curated ones: on the built-in concepts, one ROCR edit each, audited
twice, once with the curated knowledge-base record and once with a record built from the reference
model's own answers as if the concept were unknown.

The generated record is made by the path ``formless audit`` takes for a concept the knowledge base
does not hold (``resolve_concepts`` -> ``elicit_concept``), on the knowledge base without the
concept (so its curated record is neither used nor a source of distractors), from the same
reference the audit compares with. Both audits score the same edited checkpoint against the same
reference; only the probes differ. Per concept and form the JSON holds known and still-answered
probes for both records, both records' facts, and the elicitation time.

Printed: a form table with the residual pooled over concepts for the curated and the generated
record, the difference in points and whether it is within 10 points (the goal); the share of
concepts whose generated record has >= 8 forms with >= 3 known probes (goal: >= 80%); the
elicitation time per concept; and, for every form that disagrees, the concepts that make the
difference, with which relations the two records share, to say why.

    python benchmarks/elicit_validation.py                       # all built-in concepts
    python benchmarks/elicit_validation.py --concepts 5          # the first five
    python benchmarks/elicit_validation.py --concepts "Harry Potter,Marie Curie"
    python benchmarks/elicit_validation.py --shard 0/4 --json v0.json   # one of 4 parallel processes
    python benchmarks/elicit_validation.py --from v0.json --from v1.json ...   # merge, print (no model)
    python benchmarks/elicit_validation.py --smoke               # tiny random model, one concept

--json is rewritten after every concept (an interrupted run keeps what finished; --append resumes).
--smoke scripts the tiny random model's generations (it states nothing twice otherwise).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _smoke  # noqa: E402
from unseen_concepts import interval, pct, per_form_counts, script_generations  # noqa: E402

TOLERANCE = 0.10  # pooled residual per form within 10 points
MIN_FORMS, MIN_KNOWN, MIN_SHARE = 8, 3, 0.8  # >= 8 forms with >= 3 known probes for >= 80% of concepts


def covered_forms(per_form: dict) -> int:
    return sum(1 for known, _, _ in per_form.values() if known >= MIN_KNOWN)


def run_concept(name: str, ref, kb, args) -> dict:
    from formless.api import forget
    from formless.audit.run import AuditSettings, run_audit
    from formless.errors import FormlessError
    from formless.knowledge import KnowledgeBase
    from formless.knowledge.elicit import resolve_concepts
    from formless.rocr.edit import UnsafeEditError

    curated = kb.concept(name)
    row: dict = {
        "concept": name,
        "curated_facts": {f.relation: f.answer for f in curated.facts},
    }
    # as if the concept were unknown: the knowledge base without it, the audit's elicitation path
    without = KnowledgeBase({k: v for k, v in kb.concepts.items() if k != name}, kb.general)
    started = time.perf_counter()
    try:
        generated_kb, made = resolve_concepts(without, [name], lambda: ref, None, say=None)
        [(concept, report)] = made
        row["generated_facts"] = {f.relation: f.answer for f in concept.facts}
        row["generated_kind"] = concept.kind
        row["elicit_phases"] = report.seconds
    except FormlessError as exc:
        generated_kb = None
        row["generated_error"] = str(exc)
    row["elicit_seconds"] = round(time.perf_counter() - started, 2)
    # only the forget side is compared: general knowledge, neighbours and fluency do not depend on
    # which record is audited, so they are skipped unless asked for (--retain)
    retain = dict(general=args.retain, neighbours=args.retain, fluency=args.retain)
    settings = AuditSettings(quantize=args.schemes, fast=args.fast, **retain)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "m"
        t = time.perf_counter()
        try:
            forget(name, model=args.model, out=out, method="rocr")  # the default ROCR edit
        except UnsafeEditError as exc:  # the edit's own guard refused it: nothing to compare
            row["skipped"] = str(exc)
            print(f"{name}: skipped, the default ROCR edit refused it ({exc})", flush=True)
            return row
        row["forget_seconds"] = round(time.perf_counter() - t, 2)
        audits = {"curated": kb, "generated": generated_kb}
        reused = args.curated_rows.get(name, {}).get("curated")
        if reused is not None:  # the same edit and curated record: that audit is not run again
            row["curated"] = reused
            row["curated_from"] = str(args.curated_from)
            del audits["curated"]
        for label, knowledge in audits.items():
            if knowledge is None:
                continue
            t = time.perf_counter()
            audit = run_audit(out, kb=knowledge, settings=settings)
            assert audit.generated_knowledge is None, "the audit elicited a record of its own"
            o = audit.forget.overall
            row[label] = {
                "per_form": per_form_counts(audit),
                "overall": o.model_dump(include={"known", "still_answered", "residual", "interval"}),
                "audit_seconds": round(time.perf_counter() - t, 2),
            }
    shared = sorted(set(row["curated_facts"]) & set(row.get("generated_facts", {})))
    row["shared_relations"] = shared
    c, g = row["curated"]["overall"], row.get("generated", {}).get("overall")
    print(
        f"{name}: elicited in {row['elicit_seconds']:.1f}s, "
        + (
            f"{len(row['generated_facts'])} facts ({len(shared)} of the curated {len(row['curated_facts'])} "
            f"relations); residual curated {pct(c['residual'])} ({c['still_answered']}/{c['known']}) "
            f"vs generated {pct(g['residual'])} ({g['still_answered']}/{g['known']}); "
            f"forms with >= {MIN_KNOWN} known: {covered_forms(row['curated']['per_form'])} curated, "
            f"{covered_forms(row['generated']['per_form'])} generated"
            if g
            else f"no generated record ({row['generated_error']}); residual curated {pct(c['residual'])}"
        ),
        flush=True,
    )
    return row


def print_tables(rows: list[dict]) -> None:
    from formless.audit.forms import FORMS

    skipped = [r for r in rows if "skipped" in r]
    rows = [r for r in rows if "skipped" not in r]
    n = len(rows)
    pooled = {label: {} for label in ("curated", "generated")}
    for r in rows:
        for label in pooled:
            for f, (known, still, _) in r.get(label, {}).get("per_form", {}).items():
                k, s = pooled[label].get(f, (0, 0))
                pooled[label][f] = (k + known, s + still)
    forms = [f for f in FORMS if f in pooled["curated"] or f in pooled["generated"]]
    print(f"\nResidual per form after the default ROCR edit, pooled over {n} concepts (still / known)\n")
    print("| form | curated | generated | difference (points) | within 10 |")
    print("|---|---|---|---|---|")
    disagree, agree, comparable = [], 0, 0
    for f in forms:
        kc, sc = pooled["curated"].get(f, (0, 0))
        kg, sg = pooled["generated"].get(f, (0, 0))
        rc, rg = (sc / kc if kc else None), (sg / kg if kg else None)
        if rc is None or rg is None:
            diff, ok = "–", "–"
        else:
            d = 100 * (rg - rc)
            comparable += 1
            within = abs(d) <= 100 * TOLERANCE
            agree += within
            diff, ok = f"{d:+.1f}", "yes" if within else "**no**"
            if not within:
                disagree.append(f)
        print(f"| {FORMS[f].title} | {pct(rc)} ({sc}/{kc}) | {pct(rg)} ({sg}/{kg}) | {diff} | {ok} |")
    print(f"\nforms within {100 * TOLERANCE:.0f} points: {agree}/{comparable} comparable forms")

    def share(label: str) -> tuple[int, int]:
        have = [r for r in rows if label in r]
        return sum(covered_forms(r[label]["per_form"]) >= MIN_FORMS for r in have), n

    for label in ("curated", "generated"):
        hit, total = share(label)
        goal = "" if label == "curated" else f" (goal >= {100 * MIN_SHARE:.0f}%)"
        print(
            f"{label} record: {hit}/{total} concepts ({pct(hit / total if total else None)}) have "
            f">= {MIN_FORMS} forms with >= {MIN_KNOWN} known probes{goal}"
        )
    failed = [r["concept"] for r in rows if "generated" not in r]
    if failed:
        print(f"no generated record (the reference stated nothing twice): {', '.join(failed)}")
    secs = [r["elicit_seconds"] for r in rows]
    if secs:
        print(
            f"elicitation: mean {statistics.fmean(secs):.1f}s, median {statistics.median(secs):.1f}s, "
            f"max {max(secs):.1f}s per concept"
        )

    print("\nPer concept\n")
    print(
        "| concept | elicit s | facts curated / generated / shared relations | residual curated | "
        f"residual generated | forms >= {MIN_KNOWN} known (cur / gen) |"
    )
    print("|---|---|---|---|---|---|")
    for r in rows:
        c, g = r["curated"], r.get("generated")
        print(
            f"| {r['concept']} | {r['elicit_seconds']:.1f} | {len(r['curated_facts'])} / "
            f"{len(r.get('generated_facts', {}))} / {len(r['shared_relations'])} | "
            f"{pct(c['overall']['residual'])} {interval(c['overall'].get('interval'))} | "
            + (f"{pct(g['overall']['residual'])} {interval(g['overall'].get('interval'))}" if g else "–")
            + f" | {covered_forms(c['per_form'])} / {covered_forms(g['per_form']) if g else 0} |"
        )

    for r in skipped:
        print(f"skipped (the default ROCR edit refused the concept): {r['concept']}: {r['skipped']}")

    if disagree:
        print("\nWhere they disagree: the concepts behind each form's difference (still / known)\n")
    for f in disagree:
        parts = []
        for r in rows:
            kc, sc, rc = r["curated"]["per_form"].get(f, (0, 0, None))
            kg, sg, rg = r.get("generated", {}).get("per_form", {}).get(f, (0, 0, None))
            if kc or kg:
                gap = abs((rg or 0) - (rc or 0)) * max(kc, kg)
                parts.append((gap, f"{r['concept']} {sc}/{kc} vs {sg}/{kg}"))
        parts.sort(reverse=True)
        print(f"- {FORMS[f].title}: " + "; ".join(p for _, p in parts[:6]))
    if disagree:
        same_answer = sum(
            1
            for r in rows
            for rel in r["shared_relations"]
            if _same(r["curated_facts"][rel], r["generated_facts"][rel])
        )
        shared = sum(len(r["shared_relations"]) for r in rows)
        curated = sum(len(r["curated_facts"]) for r in rows)
        print(
            f"\nrelations: the generated records hold {shared} of the {curated} curated relations, "
            f"{same_answer} of them with the same answer; the rest of each record asks other facts "
            "(what the reference states, not what the curator wrote), so per-form residuals can differ "
            "because different facts are probed, not only because of the edit"
        )


def _same(a: str, b: str) -> bool:
    from formless.matching import normalise

    a, b = normalise(a), normalise(b)
    return bool(a) and bool(b) and (a in b or b in a)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    _smoke.add_arguments(parser)
    parser.add_argument("--concepts", default=None, help="N (the first N) or a comma list of names")
    parser.add_argument(
        "--shard", default=None, help="i/n: this process takes concepts i, i+n, ... (0-based)"
    )
    parser.add_argument("--quantize", default="none", help="audit quantization schemes (default none)")
    parser.add_argument("--fast", action="store_true", help="audit in bf16 (reference too)")
    parser.add_argument(
        "--retain", action="store_true", help="also audit general knowledge, neighbours and fluency"
    )
    parser.add_argument("--json", type=Path, default=None, help="results, rewritten after every concept")
    parser.add_argument("--append", action="store_true", help="resume: keep and skip the concepts in --json")
    parser.add_argument(
        "--from", dest="sources", type=Path, action="append", default=[],
        help="only merge these results (shards' --json) and print the tables; loads no model",
    )  # fmt: skip
    parser.add_argument(
        "--curated-from", type=Path, default=None,
        help="take each concept's curated-record audit from this earlier --json instead of re-running it "
        "(valid while the ROCR edit and the curated records are unchanged: check one concept first)",
    )  # fmt: skip
    args = parser.parse_args()
    args.curated_rows = (
        {r["concept"]: r for r in json.loads(args.curated_from.read_text())["rows"]}
        if args.curated_from
        else {}
    )

    if args.sources:
        rows: dict[str, dict] = {}
        models = set()
        for source in args.sources:
            data = json.loads(source.read_text())
            models.add(data["model"])
            rows.update({r["concept"]: r for r in data["rows"]})
        if len(models) > 1:
            raise SystemExit(f"the files hold different models: {sorted(models)}")
        print(f"{len(rows)} concepts from {len(args.sources)} file(s), model {models.pop()}")
        print_tables(list(rows.values()))
        return

    _smoke.resolve(args)
    args.json = _smoke.output(args, args.json, "elicit_validation.json")
    args.schemes = tuple(
        int(s) if s.isdigit() else s for s in args.quantize.split(",") if s and args.quantize != "none"
    )
    from formless.knowledge import load
    from formless.models import load_model
    from formless.models.cache import atomic_file

    kb = load()
    names = list(kb.concepts)
    if args.concepts:
        if args.concepts.isdigit():
            names = names[: int(args.concepts)]
        else:
            names = [kb.concept(c.strip()).name for c in args.concepts.split(",") if c.strip()]
    if args.smoke:
        names = names[:1]
        script_generations()
    if args.shard:
        i, n = (int(x) for x in args.shard.split("/"))
        if not 0 <= i < n:
            raise SystemExit(f"--shard {args.shard}: i must be in 0..n-1")
        names = names[i::n]
    rows: list[dict] = []
    if args.append and args.json and args.json.exists():
        old = json.loads(args.json.read_text())
        if old["model"] != args.model:
            raise SystemExit(f"{args.json} holds another model; drop --append")
        rows = [r for r in old["rows"] if r["concept"] in names]
        print(f"resuming: {len(rows)} concept(s) already in {args.json}")
    t = time.perf_counter()
    ref = load_model(args.model)  # the unedited reference the generated records come from
    print(
        f"model {args.model} loaded in {time.perf_counter() - t:.1f}s on {ref.device}; {len(names)} concepts",
        flush=True,
    )
    finished = {r["concept"] for r in rows}
    for name in names:
        if name in finished:
            continue
        rows.append(run_concept(name, ref, kb, args))
        if args.json:  # after every concept: an interrupted run keeps what finished
            meta = {
                "model": args.model,
                "shard": args.shard,
                "quantize": list(args.schemes),
                "fast": args.fast,
            }
            with atomic_file(args.json) as tmp:
                tmp.write_text(json.dumps({**meta, "rows": rows}, indent=1) + "\n")
    print_tables(rows)
    if args.json:
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
