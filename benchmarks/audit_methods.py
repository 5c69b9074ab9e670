"""Unlearning methods through the full audit: each concept forgotten in its own run of each method
on the default model, then audited in every form (optionally after quantization and relearning).
Prints a method × form table of residual knowledge pooled over concepts, the retain side, time.

    python benchmarks/audit_methods.py [--methods rocr,npo,...] [--concepts 5] [--quantize none]
        [--relearn-steps 0] [--steps 20] [--train-form all] [--preset paper] [--fast]
        [--json out.json [--append]] [--smoke]

A run with --train-form F (the baselines trained on one form only) is labelled "method[F]"; ROCR
with --preset P (e.g. the paper's configuration) is labelled "rocr[P]".
--smoke: one concept, at most 2 training steps, on a tiny random model (benchmarks/_smoke.py).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
import time
from pathlib import Path

import _smoke
import torch

from formless.api import forget, make_config
from formless.attacks.quantizers import parse_schemes
from formless.audit.forms import FORMS
from formless.audit.report import AuditReport, Summary
from formless.audit.run import AuditSettings, run_audit
from formless.knowledge import load
from formless.methods import TrainConfig
from formless.models import load_model
from formless.models.cache import atomic_file
from formless.models.loading import default_device

DEFAULT_CONCEPTS = [
    "Harry Potter", "Albert Einstein", "Eiffel Tower", "William Shakespeare", "Isaac Newton",
    "Leonardo da Vinci", "Michael Jordan", "The Beatles", "Star Wars", "Mount Everest",
    "Marie Curie", "The Lord of the Rings", "Wolfgang Amadeus Mozart", "Titanic", "The Moon",
]  # fmt: skip


METHOD_ORDER = ["rocr", "icu", "ga", "gd", "kl", "npo", "simnpo", "rmu", "rt"]


def pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.0f}%"


def mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.fmean(values) if values else None


def wilson(kept: int, known: int, z: float = 1.96) -> tuple[float, float] | None:
    """95% Wilson score interval of kept / known (pooled probes, treated as independent)."""
    if known == 0:
        return None
    p, n = kept / known, known
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def pooled(counts) -> str:
    """ "21% [15–28%] (40/190)" from (known, kept) pairs summed over concepts."""
    known = sum(k for k, _ in counts)
    kept = sum(s for _, s in counts)
    if not known:
        return "– (0/0)"
    low, high = wilson(kept, known)
    return f"{100 * kept / known:.0f}% [{100 * low:.0f}–{100 * high:.0f}%] ({kept}/{known})"


def counts(summary: Summary | None) -> list[int]:
    """[known, still answered] of a summary of the report (zeros when absent)."""
    if not summary:
        return [0, 0]
    return [summary.known, summary.still_answered]


def own_chances(report: AuditReport) -> dict[str, list[list[float]]]:
    """Per form with prior twins, [kept, q] per fact the reference knows (q: ``metrics.own_chance``,
    the share of the fact's made-up-name twins the reference gets right), from the report's probes
    grouped into facts as the audit groups them: pooled over concepts into the residual above the
    prior (``formless.audit.metrics.above_prior``)."""
    from formless.audit.engine import ProbeResult
    from formless.audit.metrics import units
    from formless.audit.probes import PRIOR_SUFFIX, Probe

    probes, before, after = [], [], []
    targets = set(report.concepts)
    for p in report.probes:
        if p.concept not in targets:  # a neighbour's or a general fact, asked in the same forms
            continue
        if p.cue:  # a description's entity asked instead: it says "implied", not a chance
            continue
        base, twin_mark, twin = p.key.partition(PRIOR_SUFFIX)
        concept, form, item, variant = base.rsplit("|", 3)
        twin_of = {"prior_twin": bool(twin_mark), "twin": int(twin or 0)}
        probes.append(Probe(form, concept, item, "", variant=variant, **twin_of))
        before.append(ProbeResult(p.before.hit, None))
        after.append(ProbeResult(p.after.hit, None) if p.after else None)
    twinned = {p.form for p in probes if p.prior_twin}
    out: dict[str, list[list[float]]] = {}
    for unit in units(probes, before, after):
        if unit.form in twinned and unit.known:
            # a fact whose prompt never names the concept has no twin: the form's uniform chance
            q = (
                unit.prior_rate
                if unit.prior_rate is not None
                else report.forget.per_form[unit.form].chance or 0.0
            )
            out.setdefault(unit.form, []).append([float(unit.kept), q])
    return out


def same_facts_shift(per_concept: list[list[list[int]] | None]) -> str:
    """'+3 points [−2 to +8] (29 vs 25 of 149)': what quantizing changes over the same facts, pooled
    over concepts with a bootstrap interval over facts (formless.audit.metrics.paired_shift); a
    concept audited before the paired figure existed has none: left out, and said."""
    from formless.audit.metrics import paired_shift

    have = [rows for rows in per_concept if rows is not None]
    if not have:
        return "–"
    out = paired_shift([row for rows in have for row in rows])
    if out["shift"] is None:
        return "– (0 facts)"
    lo, hi = out["interval"] or (out["shift"], out["shift"])
    missing = len(per_concept) - len(have)
    note = f", {missing} concepts without it" if missing else ""
    text = (
        f"{100 * out['shift']:+.0f} points [{100 * lo:+.0f} to {100 * hi:+.0f}] "
        f"({out['kept_quantized']} vs {out['kept_unquantized']} of {out['known']}{note})"
    )
    return text.replace("-", "−")


def above_prior_pooled(pairs: list[list[float]], seed: int = 0) -> str:
    """'13% [2–25%] (prior 56%, 37 facts)': (kept − Σq) / (known − Σq) pooled, with a 95% bootstrap
    interval over facts."""
    import numpy as np

    if not pairs:
        return "– (0 facts)"
    table = np.array(pairs)
    n, kept, expected = len(table), table[:, 0].sum(), table[:, 1].sum()
    if n - expected < 1:
        return f"– (prior {100 * expected / n:.0f}%, {n} facts)"
    idx = np.random.default_rng(seed).integers(0, n, size=(1000, n))
    s, e = table[:, 0][idx].sum(axis=1), table[:, 1][idx].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):  # resamples with < 1 fact above the prior
        values = ((s - e) / (n - e))[n - e >= 1]
    lo, hi = np.percentile(values, [2.5, 97.5])
    return (
        f"{100 * (kept - expected) / (n - expected):.0f}% [{100 * lo:.0f}–{100 * hi:.0f}%] "
        f"(prior {100 * expected / n:.0f}%, {int(kept)}/{n} kept)"
    )


def concept_record(report: AuditReport, forget_seconds: float, outcome) -> dict:
    """What the table needs from one concept's audit report, counts kept so they pool."""
    f, r = report.forget, report.retain
    record = {
        "per_form": {form: counts(s) for form, s in f.per_form.items()},
        # [known and not answered by a made-up name, of those still answered]: forms with prior twins
        "beyond_prior": {
            form: [s.known_beyond_prior, s.still_answered_beyond_prior or 0]
            for form, s in f.per_form.items()
            if s.known_beyond_prior is not None
        },
        # per fact the reference knows, [kept, own chance]: the residual above the prior, pooled
        "own_chance": own_chances(report),
        "overall": counts(f.overall),
        "residual": f.overall.residual,
        "interval": f.overall.interval,
        "prob_ratio": f.overall.probability_ratio,
        "bias": f.form_dependent_bias.std,
        "neighbours": counts(r.neighbours),
        "general": counts(r.general),
        "kl": r.fluency.kl_from_reference,
        "entropy": r.fluency.entropy_after,
        "forget_seconds": round(forget_seconds, 2),
        "stopped_early": bool(outcome.manifest.get("training", {}).get("stopped_early")),
        "quantization": {},
        # residual on the facts the method trained on (its wordings / the audit's others) and held out
        "by_exposure": {k: counts(v) for k, v in (f.by_exposure.groups if f.by_exposure else {}).items()},
    }
    for key, data in report.quantization.items():
        own = data.over_quantized_reference.overall if data.over_quantized_reference else None
        same = data.over_quantized_reference
        record["quantization"][key] = {
            "overall": counts(data.overall),
            "over_quantized_reference": counts(own),
            # per fact [known, kept by the quantized copy, kept unquantized] over the same facts
            "same_facts": same.shift_facts if same is not None else None,
            "reference_quantized_keeps": data.reference_quantized_keeps,
            "probability_ratio": data.overall.probability_ratio,
        }
    if report.relearning is not None:
        record["relearn_before"] = counts(report.relearning.before)
        record["relearn_after"] = counts(report.relearning.after)
    return record


def run_method(method: str, names: list[str], args, kb, done: dict, save) -> None:
    """Forget and audit each concept not yet in ``done`` (concept -> record), saving after each."""
    lr = args.lrs.get(method)
    for name in names:
        if name in done:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            loaded = load_model(args.model)
            config = None if method in ("rocr", "icu") else TrainConfig(steps=args.steps, lr=lr)
            outcome = forget(
                name,
                model=loaded,
                out=Path(tmp) / "m",
                method=method,
                train_config=config,
                train_form=args.train_form,
                config=make_config(args.preset, **args.rocr_options) if method == "rocr" else None,
            )
            forget_seconds = time.perf_counter() - started
            settings = AuditSettings(
                quantize=args.schemes, relearn_steps=args.relearn_steps, fast=args.fast, forms=args.forms,
                prior_twins=args.prior_twins,
            )  # fmt: skip
            report = run_audit(Path(tmp) / "m", kb=kb, settings=settings)
        record = concept_record(report, forget_seconds, outcome)
        done[name] = record
        save()
        o, r = record["overall"], record
        print(
            f"{method} / {name}: residual {pct(record['residual'])} ({o[1]}/{o[0]}), "
            f"neighbours {pooled([r['neighbours']])}, general {pooled([r['general']])}, "
            f"forget {forget_seconds:.1f}s",
            flush=True,
        )


def rocr_option(text: str) -> tuple[str, object]:
    """ "strength=1.5" -> ("strength", 1.5); "layers=4,5,6" -> ("layers", [4, 5, 6]); text stays text."""
    key, sep, value = text.partition("=")
    if not sep:
        raise SystemExit(f"--rocr-option {text!r}: expected FIELD=VALUE")
    try:
        return key.strip(), json.loads(value)
    except json.JSONDecodeError:
        pass
    if "," in value:
        return key.strip(), [int(v) for v in value.split(",")]
    return key.strip(), value


def chosen_lrs(path: Path | None) -> dict[str, float]:
    """Each method's learning rate chosen by a tuning run (its JSON, or several merged)."""
    if path is None:
        return {}
    chosen = json.loads(path.read_text()).get("chosen", {})
    return {m: float(c["lr"] if isinstance(c, dict) else c) for m, c in chosen.items()}


def print_table(names: list[str], results: dict, schemes: tuple[str, ...], relearn: bool) -> None:
    order = [*METHOD_ORDER, *sorted({k.split("[")[0] for k in results} - set(METHOD_ORDER))]
    methods = sorted(results, key=lambda k: (order.index(k.split("[")[0]), k))  # "ga[qa]" after "ga"
    recs = {m: [results[m]["concepts"][n] for n in names if n in results[m]["concepts"]] for m in methods}
    done = {m: len(recs[m]) for m in methods}
    print(
        f"\nResidual knowledge per form, pooled over concepts (still answered / known by the unedited "
        f"model; 95% Wilson interval over pooled probes). Concepts audited per method: {done}\n"
    )
    print("| form | " + " | ".join(methods) + " |")
    print("|---|" + "---|" * len(methods))
    for form in FORMS:
        cells = [pooled([r["per_form"].get(form, [0, 0]) for r in recs[m]]) for m in methods]
        print(f"| {FORMS[form].title} | " + " | ".join(cells) + " |")

    def row(label: str, cell) -> None:
        print(f"| {label} | " + " | ".join(cell(recs[m]) for m in methods) + " |")

    def num(key: str, fmt: str):
        return lambda rs: (
            "–" if mean(r.get(key) for r in rs) is None else format(mean(r.get(key) for r in rs), fmt)
        )

    twinned = [f for f in FORMS if any(f in r.get("beyond_prior", {}) for rs in recs.values() for r in rs)]
    for form in twinned:  # the same forms over the facts a made-up name does not also get right
        cells = [pooled([r.get("beyond_prior", {}).get(form, [0, 0]) for r in recs[m]]) for m in methods]
        print(f"| {FORMS[form].title}, beyond the prior | " + " | ".join(cells) + " |")
    owned = [f for f in FORMS if any(f in r.get("own_chance", {}) for rs in recs.values() for r in rs)]
    for form in owned:  # corrected for what a model without the concept keeps, fact by fact
        cells = [
            above_prior_pooled([x for r in recs[m] for x in r.get("own_chance", {}).get(form, [])])
            for m in methods
        ]
        print(f"| {FORMS[form].title}, above the prior | " + " | ".join(cells) + " |")
    row("residual, all forms (pooled)", lambda rs: pooled([r["overall"] for r in rs]))
    row("residual, all forms (mean of concepts)", lambda rs: pct(mean(r["residual"] for r in rs)))
    for key, label in (
        ("trained_wording", "trained-on facts, in the trained wordings"),
        ("trained_fact_other_wording", "trained-on facts, in the audit's other wordings"),
        ("held_out_fact", "held-out facts (never trained on; the same half for every method)"),
    ):
        row(label, lambda rs, key=key: pooled([r.get("by_exposure", {}).get(key, [0, 0]) for r in rs]))
    row("answer probability ratio", num("prob_ratio", ".2f"))
    row("Form-Dependent Bias (std, mean of concepts)", num("bias", ".3f"))
    for q in schemes:
        row(
            f"residual after {q} (over the reference's facts)",
            lambda rs, q=q: pooled([r["quantization"][q]["overall"] for r in rs if q in r["quantization"]]),
        )
        row(
            f"residual after {q} (over the {q} reference's facts)",
            lambda rs, q=q: pooled(
                [r["quantization"][q]["over_quantized_reference"] for r in rs if q in r["quantization"]]
            ),
        )
        row(
            f"change after {q} on the same facts (the {q} reference's; kept quantized − unquantized)",
            lambda rs, q=q: same_facts_shift(
                [r["quantization"][q].get("same_facts") for r in rs if q in r["quantization"]]
            ),
        )
        row(
            f"unedited model after {q} (its own facts kept)",
            lambda rs, q=q: pct(
                mean(r["quantization"][q]["reference_quantized_keeps"] for r in rs if q in r["quantization"])
            ),
        )
    if relearn:
        row(
            "relearning: held-out residual before → after",
            lambda rs: (
                f"{pooled([r['relearn_before'] for r in rs if 'relearn_before' in r])} → "
                f"{pooled([r['relearn_after'] for r in rs if 'relearn_after' in r])}"
            ),
        )
    row("neighbours kept", lambda rs: pooled([r["neighbours"] for r in rs]))
    row("general knowledge kept", lambda rs: pooled([r["general"] for r in rs]))
    row("KL on neutral text (nats/token)", num("kl", ".4f"))
    row("fluency entropy after (bits)", num("entropy", ".2f"))
    row("forget time per concept (s)", num("forget_seconds", ".1f"))
    stopped = {m: sum(r["stopped_early"] for r in recs[m]) for m in methods}
    if any(stopped.values()):
        print(f"\nstopped early by the utility guard (runs): { {m: s for m, s in stopped.items() if s} }")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    _smoke.add_arguments(parser)
    parser.add_argument("--methods", default="rocr")
    parser.add_argument("--concepts", type=int, default=5)
    parser.add_argument(
        "--names", default=None, help="these concepts (comma list) instead of the first --concepts ones"
    )
    parser.add_argument("--quantize", default="none", help="schemes, e.g. gguf-q8_0,gguf-q4_1,rtn4")
    parser.add_argument("--relearn-steps", type=int, default=0)
    parser.add_argument(
        "--steps", type=int, default=TrainConfig().steps, help="training steps of the baselines"
    )
    parser.add_argument("--lr-from", type=Path, help="a tune_methods.py JSON: its chosen lr per method")
    parser.add_argument("--train-form", default="all")
    parser.add_argument(
        "--preset", default="formless", help="ROCR preset (formless.rocr.config.PRESETS), e.g. paper"
    )
    parser.add_argument(
        "--rocr-option", dest="rocr_options", action="append", default=[], metavar="FIELD=VALUE",
        help="an ROCRConfig field for an ablation, e.g. strength=1.5 or layers=4,5,6,7 (repeatable)",
    )  # fmt: skip
    parser.add_argument("--forms", default=None, help="audit only these forms (comma list); default all")
    parser.add_argument("--fast", action="store_true", help="audit in bf16 (reference too): ~1.4x faster")
    parser.add_argument(
        "--prior-twins", default="recognition", choices=["recognition", "all"],
        help="'all': every form that names the concept is also asked about a made-up name (rows "
        "'beyond the prior')",
    )  # fmt: skip
    parser.add_argument("--json", type=Path, help="results so far, rewritten after each concept")
    parser.add_argument(
        "--append", action="store_true",
        help="keep the other results in --json, and resume the concepts it already holds",
    )  # fmt: skip
    parser.add_argument(
        "--from", dest="sources", type=Path, action="append", default=[],
        help="results of earlier runs (their --json) to include in the table; with --methods '' only prints",
    )  # fmt: skip
    args = parser.parse_args()
    _smoke.resolve(args)
    args.json = _smoke.output(args, args.json, "audit_methods.json")
    if args.smoke:
        args.concepts, args.steps = 1, min(args.steps, 2)
    args.schemes = parse_schemes(args.quantize)
    args.forms = [f.strip() for f in args.forms.split(",") if f.strip()] if args.forms else None
    args.rocr_options = dict(rocr_option(text) for text in args.rocr_options)
    args.lrs = chosen_lrs(args.lr_from)
    kb = load()
    chosen = args.names.split(",") if args.names else DEFAULT_CONCEPTS[: args.concepts]
    names = [kb.concept(n.strip()).name for n in chosen if n.strip()]
    methods = [m for m in args.methods.split(",") if m]
    # A run trained on one form only is its own column: "ga[qa]" next to "ga".
    label = {
        m: m if args.train_form == "all" or m in ("rocr", "icu") else f"{m}[{args.train_form}]"
        for m in methods
    }
    if (args.preset != "formless" or args.rocr_options) and "rocr" in label:  # "rocr[paper]" beside "rocr"
        changed = [args.preset] if args.preset != "formless" else []
        changed += [f"{k}={v}" for k, v in args.rocr_options.items()]
        label["rocr"] = f"rocr[{','.join(changed)}]"
    meta = {"concepts": names, "fast": args.fast, "schemes": list(args.schemes),
            "relearn_steps": args.relearn_steps, "steps": args.steps, "model": args.model,
            "torch": torch.__version__, "device": str(default_device()), "forms": args.forms,
            "prior_twins": args.prior_twins}  # fmt: skip
    results: dict = {}
    for source in args.sources:
        old = json.loads(source.read_text())
        if old.get("fast") != args.fast:
            raise SystemExit(f"{source} was scored in another precision than this run")
        results.update(old["results"])
    if args.append and args.json and args.json.exists():
        old = json.loads(args.json.read_text())
        if old.get("fast") != args.fast or old.get("schemes", []) != list(args.schemes):
            raise SystemExit(f"{args.json} holds another precision or other schemes; drop --append")
        results.update(old["results"])

    def save() -> None:
        if args.json:  # an interrupted run never leaves half a file, and keeps every finished concept
            with atomic_file(args.json) as tmp:
                tmp.write_text(json.dumps({**meta, "results": results}, indent=1))

    for m in methods:
        entry = results.setdefault(label[m], {"lr": args.lrs.get(m), "concepts": {}})
        run_method(m, names, args, kb, entry["concepts"], save)
    schemes = args.schemes or tuple(
        dict.fromkeys(q for r in results.values() for c in r["concepts"].values() for q in c["quantization"])
    )
    relearn = any("relearn_before" in c for r in results.values() for c in r["concepts"].values())
    print_table(names, results, schemes, relearn)


if __name__ == "__main__":
    main()
