"""Any concept, no hand-written facts: forget a well-known concept the knowledge base does not hold,
then audit it, with nothing written by hand.

For each concept (none of them in the shipped knowledge base; the script checks), the record is
built from the reference model's own answers by the path ``formless forget X`` / ``formless audit
D`` take for an unknown concept (``resolve_concepts`` -> ``elicit_concept``), timed, once per
concept; the same record is then handed to every method (the baselines train on it) and to the
audit, so it is built once and both methods are measured on the same probes. Each method forgets
the concept into a temporary directory and the full audit runs on the result.

Printed: per concept the elicitation seconds, facts kept and known probes per form; a form x method
table of residual knowledge pooled over concepts (still answered / known); the overall residual per
method (mean of concepts, and each concept's interval as the report gives it). A concept the model
states nothing about ("nothing to audit") is recorded as skipped.

    python benchmarks/unseen_concepts.py [--concepts Paris,London,...] [--methods rocr,npo]
        [--steps 20] [--lr 1e-4] [--quantize none] [--fast] [--json out.json [--append]] [--smoke]

--json is rewritten after every concept (an interrupted run keeps what finished); --append resumes
from it, skipping the concepts it already holds. --smoke: one concept, at most 2 training steps, on
a tiny random model whose generations are scripted (a random model states nothing twice).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _smoke  # noqa: E402
from elicit_speed import CONCEPTS  # noqa: E402  (the same well-known concepts outside the knowledge base)

METHOD_ORDER = ["rocr", "icu", "ga", "gd", "kl", "npo", "simnpo", "rmu", "rt"]


def pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.0f}%"


def interval(x) -> str:
    if not x:
        return "–"
    lo, hi = (x["low"], x["high"]) if isinstance(x, dict) else (x[0], x[-1])
    return f"[{100 * lo:.0f}, {100 * hi:.0f}]"


def script_generations() -> None:
    """--smoke only: a tiny random model states nothing twice, so elicitation would keep nothing and
    the forget/audit path would never run. Its generations are replaced by one fixed sentence: one
    fact ("Zorbland") is kept and the rest of the path runs on a real (random) model."""
    from formless.knowledge import elicit

    def fake(loaded, prompts, *, chat, max_new_tokens):
        # the made-up control names get noise, or "Zorbland" would be dropped as a prior answer
        return {
            p: f"noise{len(p)}"
            if any(c in p for c in elicit.CONTROL_NAMES)
            else "Zorbland, the famous Quellwick."
            for p in prompts
        }

    elicit._generate = fake
    elicit.MIN_FACTS = 1  # one sentence for every prompt keeps one fact; the path after it is what runs


def in_kb(kb, name: str) -> bool:
    from formless.errors import FormlessError

    try:
        kb.concept(name)
    except FormlessError:
        return False
    return True


def per_form_counts(report) -> dict[str, list]:
    """form -> [known, still answered, residual] from an audit report (formless.audit.report)."""
    return {f: [s.known, s.still_answered, s.residual] for f, s in report.forget.per_form.items()}


def run_concept(name: str, ref, kb, args) -> dict:
    from formless.api import forget
    from formless.audit.run import AuditSettings, run_audit
    from formless.errors import FormlessError
    from formless.knowledge.elicit import resolve_concepts
    from formless.methods import TrainConfig
    from formless.methods.unlearn import unlearn

    started = time.perf_counter()
    try:
        # the path forget/audit take for a concept the knowledge base does not know
        merged, made = resolve_concepts(kb, [name], lambda: ref, None, say=None)
    except FormlessError as exc:
        seconds = time.perf_counter() - started
        print(f"{name}: skipped after {seconds:.1f}s ({exc})", flush=True)
        return {"concept": name, "skipped": str(exc), "elicit_seconds": round(seconds, 2)}
    seconds = time.perf_counter() - started
    [(concept, report)] = made
    row: dict = {
        "concept": name,
        "elicit_seconds": round(seconds, 2),
        "kind": concept.kind,
        "facts": {f.relation: f.answer for f in concept.facts},
        "elicit_phases": report.seconds,
        "methods": {},
    }
    print(
        f"{name}: record built in {seconds:.1f}s ({concept.kind}, {len(concept.facts)} facts: "
        + "; ".join(f"{k}={v}" for k, v in row["facts"].items())
        + ")",
        flush=True,
    )
    settings = AuditSettings(quantize=args.schemes, fast=args.fast)
    for method in args.method_list:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "m"
            t = time.perf_counter()
            if method == "rocr":
                outcome = forget(name, model=args.model, out=out, method="rocr")
                manifest = outcome.manifest
            else:
                # the baselines train on the record built above (unlearn is what forget calls for
                # them; it takes the knowledge base, so the record is not elicited a second time)
                config = None if method == "icu" else TrainConfig(steps=args.steps, lr=args.lr)
                _, manifest = unlearn(
                    name, method=method, model=args.model, out=out, config=config, kb=merged
                )
            forget_seconds = time.perf_counter() - t
            t = time.perf_counter()
            audit = run_audit(out, kb=merged, settings=settings)
            audit_seconds = time.perf_counter() - t
        assert audit.generated_knowledge is None, "the audit elicited the record again"
        o = audit.forget.overall.model_dump(include={"known", "still_answered", "residual", "interval"})
        row["methods"][method] = {
            "per_form": per_form_counts(audit),
            "overall": o,
            "not_measurable": audit.forget.not_measurable,
            "neighbours": audit.retain.neighbours.residual,
            "general": audit.retain.general.residual,
            "forget_seconds": round(forget_seconds, 2),
            "audit_seconds": round(audit_seconds, 2),
            "stopped_early": bool(manifest.get("training", {}).get("stopped_early")),
        }
        print(
            f"  {method}: residual {pct(o['residual'])} ({o['still_answered']}/{o['known']}) "
            f"{interval(o.get('interval'))}, general kept {pct(row['methods'][method]['general'])}, "
            f"forget {forget_seconds:.1f}s, audit {audit_seconds:.1f}s",
            flush=True,
        )
    first = next(iter(row["methods"].values()), None)
    row["known_per_form"] = {f: c[0] for f, c in first["per_form"].items()} if first else {}
    return row


def print_tables(rows: list[dict], methods: list[str]) -> None:
    from formless.audit.forms import FORMS

    done = [r for r in rows if "skipped" not in r]
    skipped = [r["concept"] for r in rows if "skipped" in r]
    forms = [f for f in FORMS if any(f in r["known_per_form"] for r in done)]
    print("\nPer concept: record build time, facts kept, known probes per form\n")
    print("| concept | elicit s | facts | " + " | ".join(forms) + " |")
    print("|---|---|---|" + "---|" * len(forms))
    for r in done:
        cells = [str(r["known_per_form"].get(f, 0)) for f in forms]
        print(
            f"| {r['concept']} | {r['elicit_seconds']:.1f} | {len(r['facts'])} | " + " | ".join(cells) + " |"
        )
    for r in rows:
        if "skipped" in r:
            print(f"| {r['concept']} | {r['elicit_seconds']:.1f} | 0 (skipped) |")
    secs = [r["elicit_seconds"] for r in rows]
    if secs:
        print(
            f"\nrecord build: mean {statistics.fmean(secs):.1f}s, max {max(secs):.1f}s per concept; "
            f"{len(done)}/{len(rows)} concepts with a record"
            + (f"; skipped (nothing stated): {', '.join(skipped)}" if skipped else "")
        )
    if not done:
        return
    methods = [m for m in methods if any(m in r["methods"] for r in done)]
    pooled: dict[str, dict[str, list[int]]] = {m: defaultdict(lambda: [0, 0]) for m in methods}
    for r in done:
        for m in methods:
            for f, (known, still, _) in r["methods"].get(m, {}).get("per_form", {}).items():
                pooled[m][f][0] += known
                pooled[m][f][1] += still
    print(f"\nResidual knowledge per form, pooled over {len(done)} concepts (still answered / known)\n")
    print("| form | " + " | ".join(methods) + " |")
    print("|---|" + "---|" * len(methods))
    for f in forms:
        cells = []
        for m in methods:
            known, still = pooled[m].get(f, (0, 0))
            cells.append(f"{pct(still / known if known else None)} ({still}/{known})")
        print(f"| {FORMS[f].title} | " + " | ".join(cells) + " |")
    cells, pooled_cells, general = [], [], []
    for m in methods:
        res = [r["methods"][m]["overall"]["residual"] for r in done if m in r["methods"]]
        res = [x for x in res if x is not None]
        cells.append(pct(statistics.fmean(res)) if res else "–")
        k = sum(r["methods"][m]["overall"]["known"] for r in done if m in r["methods"])
        s = sum(r["methods"][m]["overall"]["still_answered"] for r in done if m in r["methods"])
        pooled_cells.append(f"{pct(s / k if k else None)} ({s}/{k})")
        g = [r["methods"][m]["general"] for r in done if m in r["methods"]]
        g = [x for x in g if x is not None]
        general.append(pct(statistics.fmean(g)) if g else "–")
    print("| residual, all forms (mean of concepts) | " + " | ".join(cells) + " |")
    print("| residual, all forms (pooled) | " + " | ".join(pooled_cells) + " |")
    print("| general knowledge kept | " + " | ".join(general) + " |")
    print("\nOverall residual per concept with its interval (as the audit report gives it)\n")
    print("| concept | " + " | ".join(methods) + " |")
    print("|---|" + "---|" * len(methods))
    for r in done:
        cells = []
        for m in methods:
            o = r["methods"].get(m, {}).get("overall")
            cells.append("–" if o is None else f"{pct(o['residual'])} {interval(o.get('interval'))}")
        print(f"| {r['concept']} | " + " | ".join(cells) + " |")


def main() -> None:
    from formless.methods import TrainConfig

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    _smoke.add_arguments(parser)
    parser.add_argument("--concepts", default=None, help=f"comma list (default: {', '.join(CONCEPTS)})")
    parser.add_argument("--methods", default="rocr,npo", help="comma list (default rocr,npo)")
    parser.add_argument("--steps", type=int, default=TrainConfig().steps, help="baselines' training steps")
    parser.add_argument("--lr", type=float, default=None, help="baselines' learning rate (default: theirs)")
    parser.add_argument("--quantize", default="none", help="audit quantization schemes (default none)")
    parser.add_argument("--fast", action="store_true", help="audit in bf16 (reference too)")
    parser.add_argument("--json", type=Path, default=None, help="results, rewritten after every concept")
    parser.add_argument("--append", action="store_true", help="resume: keep and skip the concepts in --json")
    args = parser.parse_args()
    _smoke.resolve(args)
    args.json = _smoke.output(args, args.json, "unseen_concepts.json")
    concepts = [c.strip() for c in args.concepts.split(",") if c.strip()] if args.concepts else list(CONCEPTS)
    if args.smoke:
        concepts, args.steps = concepts[:1], min(args.steps, 2)
        script_generations()
    args.method_list = [m for m in args.methods.split(",") if m]
    args.schemes = tuple(
        int(s) if s.isdigit() else s for s in args.quantize.split(",") if s and args.quantize != "none"
    )

    from formless.knowledge import load
    from formless.models import load_model

    kb = load()
    known = [c for c in concepts if in_kb(kb, c)]
    if known:
        raise SystemExit(f"already in the knowledge base (pick others): {', '.join(known)}")
    rows: list[dict] = []
    if args.append and args.json and args.json.exists():
        old = json.loads(args.json.read_text())
        if old["model"] != args.model or old["methods"] != args.method_list:
            raise SystemExit(f"{args.json} holds another model or methods; drop --append")
        rows = [r for r in old["rows"] if r["concept"] in concepts]
        print(f"resuming: {len(rows)} concept(s) already in {args.json}")
    t = time.perf_counter()
    ref = load_model(args.model)  # the unedited reference the records are elicited from
    print(f"model {args.model} loaded in {time.perf_counter() - t:.1f}s on {ref.device}", flush=True)
    finished = {r["concept"] for r in rows}
    for name in concepts:
        if name in finished:
            continue
        rows.append(run_concept(name, ref, kb, args))
        if args.json:  # after every concept: an interrupted run keeps what finished
            meta = {"model": args.model, "methods": args.method_list, "steps": args.steps, "lr": args.lr}
            meta.update({"quantize": list(args.schemes), "fast": args.fast})
            with _atomic(args.json) as tmp:
                tmp.write_text(json.dumps({**meta, "rows": rows}, indent=1) + "\n")
    order = [m for m in METHOD_ORDER if m in args.method_list] + [
        m for m in args.method_list if m not in METHOD_ORDER
    ]
    print_tables(rows, order)
    if args.json:
        print(f"\nwrote {args.json}")


def _atomic(path: Path):
    from formless.models.cache import atomic_file

    return atomic_file(path)


if __name__ == "__main__":
    main()
