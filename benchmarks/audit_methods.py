"""Unlearning methods through the full audit: each concept forgotten in its own run of each method
on the default model, then audited in every form (optionally after quantization and relearning).
Prints a method × form table of residual knowledge pooled over concepts, the retain side, time.

    python benchmarks/audit_methods.py [--methods rocr,npo,...] [--concepts 5] [--quantize none]
        [--relearn-steps 0] [--steps 20] [--train-form all] [--fast] [--json out.json [--append]]
        [--smoke]

A run with --train-form F (the baselines trained on one form only) is labelled "method[F]".
--smoke: one concept, at most 2 training steps, on a tiny random model (benchmarks/_smoke.py).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import _smoke

from formless.api import forget
from formless.audit.forms import FORMS
from formless.audit.run import AuditSettings, run_audit
from formless.knowledge import load
from formless.methods import TrainConfig
from formless.models import load_model
from formless.models.cache import atomic_file

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


def run_method(method: str, names: list[str], args, kb) -> dict:
    known_kept: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    out: dict = defaultdict(list)
    for name in names:
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            loaded = load_model(args.model)
            config = None if method in ("rocr", "icu") else TrainConfig(steps=args.steps)
            outcome = forget(
                name,
                model=loaded,
                out=Path(tmp) / "m",
                method=method,
                train_config=config,
                train_form=args.train_form,
            )
            forget_seconds = time.perf_counter() - started
            settings = AuditSettings(quantize=args.bits, relearn_steps=args.relearn_steps, fast=args.fast)
            report = run_audit(Path(tmp) / "m", kb=kb, settings=settings)
        for form, s in report["forget"]["per_form"].items():
            known_kept[form][0] += s["known"]
            known_kept[form][1] += s["still_answered"]
        o, r = report["forget"]["overall"], report["retain"]
        out["overall"].append(o["residual"])
        out["prob_ratio"].append(o["probability_ratio"])
        out["bias"].append(report["forget"]["form_dependent_bias"]["std"])
        out["neighbours"].append(r["neighbours"]["residual"])
        out["general"].append(r["general"]["residual"])
        out["kl"].append(r["fluency"]["kl_from_reference"])
        out["entropy"].append(r["fluency"]["entropy_after"])
        out["forget_seconds"].append(forget_seconds)
        out["stopped_early"].append(bool(outcome.manifest.get("training", {}).get("stopped_early")))
        for q, data in report["quantization"].items():
            out[q].append(data["overall"]["residual"])
            out[f"{q}_unedited"].append(data["reference_quantized_keeps"])  # what quantization alone costs
        if "relearning" in report:
            out["relearn_before"].append(report["relearning"]["before"]["residual"])
            out["relearn_after"].append(report["relearning"]["after"]["residual"])
        print(
            f"{method} / {name}: residual {pct(o['residual'])} ({o['still_answered']}/{o['known']}), "
            f"neighbours {pct(r['neighbours']['residual'])}, general {pct(r['general']['residual'])}, "
            f"forget {forget_seconds:.1f}s",
            flush=True,
        )
    out["per_form"] = {f: (k, kept, kept / k if k else None) for f, (k, kept) in known_kept.items()}
    return dict(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    _smoke.add_arguments(parser)
    parser.add_argument("--methods", default="rocr")
    parser.add_argument("--concepts", type=int, default=5)
    parser.add_argument("--quantize", default="none")
    parser.add_argument("--relearn-steps", type=int, default=0)
    parser.add_argument(
        "--steps", type=int, default=TrainConfig().steps, help="training steps of the baselines"
    )
    parser.add_argument("--train-form", default="all")
    parser.add_argument("--fast", action="store_true", help="audit in bf16 (reference too): ~1.4x faster")
    parser.add_argument("--json", type=Path, help="results so far, rewritten after each method")
    parser.add_argument("--append", action="store_true", help="keep the other methods' results in --json")
    parser.add_argument(
        "--from", dest="sources", type=Path, action="append", default=[],
        help="results of earlier runs (their --json) to include in the table; with --methods '' only prints",
    )  # fmt: skip
    args = parser.parse_args()
    _smoke.resolve(args)
    args.json = _smoke.output(args, args.json, "audit_methods.json")
    if args.smoke:
        args.concepts, args.steps = 1, min(args.steps, 2)
    args.bits = tuple(int(b) for b in args.quantize.split(",")) if args.quantize not in ("", "none") else ()
    kb = load()
    names = [kb.concept(n).name for n in DEFAULT_CONCEPTS[: args.concepts]]
    methods = [m for m in args.methods.split(",") if m]
    # A run trained on one form only is its own column: "ga[qa]" next to "ga".
    label = {
        m: m if args.train_form == "all" or m in ("rocr", "icu") else f"{m}[{args.train_form}]"
        for m in methods
    }
    results = {}
    for source in args.sources:
        old = json.loads(source.read_text())
        if old["concepts"] != names or old.get("fast") != args.fast:
            raise SystemExit(f"{source} holds other concepts or precision than this run")
        results.update(old["results"])
    if args.append and args.json and args.json.exists():
        old = json.loads(args.json.read_text())
        if old["concepts"] != names or old.get("fast") != args.fast:
            raise SystemExit(f"{args.json} holds other concepts or precision; drop --append")
        results.update({m: r for m, r in old["results"].items() if m not in label.values()})
    for m in methods:
        results[label[m]] = run_method(m, names, args, kb)
        if args.json:  # an interrupted run never leaves half a file
            with atomic_file(args.json) as tmp:
                tmp.write_text(
                    json.dumps({"concepts": names, "fast": args.fast, "results": results}, indent=1)
                )
    order = [*METHOD_ORDER, *sorted({k.split("[")[0] for k in results} - set(METHOD_ORDER))]
    methods = sorted(results, key=lambda k: (order.index(k.split("[")[0]), k))  # "ga[qa]" after "ga"
    print(f"\nResidual knowledge per form, pooled over {len(names)} concepts (still answered / known)\n")
    print("| form | " + " | ".join(methods) + " |")
    print("|---|" + "---|" * len(methods))
    for form in FORMS:
        cells = []
        for m in methods:
            k, kept, res = results[m]["per_form"].get(form, (0, 0, None))
            cells.append(f"{pct(res)} ({kept}/{k})")
        print(f"| {FORMS[form].title} | " + " | ".join(cells) + " |")
    rows = [
        ("residual, all forms (mean of concepts)", "overall", pct),
        ("answer probability ratio", "prob_ratio", lambda x: "–" if x is None else f"{x:.2f}"),
        ("Form-Dependent Bias (std)", "bias", lambda x: "–" if x is None else f"{x:.3f}"),
        *[(f"residual after {q} quantization", q, pct) for q in (f"{b}bit" for b in args.bits)],
        *[
            (f"unedited model after {q} quantization (its own facts kept)", f"{q}_unedited", pct)
            for q in (f"{b}bit" for b in args.bits)
        ],
        *([("relearning: held-out residual before → after", "relearn", None)] if args.relearn_steps else []),
        ("neighbours kept", "neighbours", pct),
        ("general knowledge kept", "general", pct),
        ("KL on neutral text (nats/token)", "kl", lambda x: f"{x:.4f}"),
        ("fluency entropy after (bits)", "entropy", lambda x: f"{x:.2f}"),
        ("forget time per concept (s)", "forget_seconds", lambda x: f"{x:.1f}"),
    ]
    for label, key, fmt in rows:
        if key == "relearn":
            cells = [
                f"{pct(mean(results[m]['relearn_before']))} → {pct(mean(results[m]['relearn_after']))}"
                for m in methods
            ]
        else:
            values = [mean(results[m].get(key, [])) for m in methods]
            cells = ["–" if v is None else fmt(v) for v in values]
        print(f"| {label} | " + " | ".join(cells) + " |")
    stopped = {m: sum(results[m]["stopped_early"]) for m in methods if any(results[m]["stopped_early"])}
    if stopped:
        print(f"\nstopped early by the utility guard (runs): {stopped}")


if __name__ == "__main__":
    main()
