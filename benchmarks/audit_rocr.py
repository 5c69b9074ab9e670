"""ROCR through the full audit on many built-in concepts: each concept forgotten in its own edit of
the default model, then audited in every form (optionally after 8-/4-bit quantization). Prints
the per-form table pooled over concepts, per-concept residuals, and the retain side.

    python benchmarks/audit_rocr.py [--concepts 10] [--quantize 8,4] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from formless.api import forget
from formless.audit.forms import FORMS
from formless.audit.run import AuditSettings, run_audit
from formless.knowledge import load
from formless.models import load_model

DEFAULT_CONCEPTS = [
    "Harry Potter", "Albert Einstein", "Eiffel Tower", "William Shakespeare", "Isaac Newton",
    "Leonardo da Vinci", "Michael Jordan", "The Beatles", "Star Wars", "Mount Everest",
    "Marie Curie", "The Lord of the Rings", "Wolfgang Amadeus Mozart", "Titanic", "The Moon",
]  # fmt: skip


def pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.0f}%"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--concepts", type=int, default=10)
    parser.add_argument("--quantize", default="8,4")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    kb = load()
    names = [kb.concept(n).name for n in DEFAULT_CONCEPTS[: args.concepts]]
    bits = tuple(int(b) for b in args.quantize.split(",")) if args.quantize not in ("", "none") else ()
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # form -> [known, still answered]
    quant: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    retain: dict[str, list[float]] = defaultdict(list)
    rows = []
    for name in names:
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            loaded = load_model(args.model)
            forget(name, model=loaded, out=Path(tmp) / "m")
            report = run_audit(Path(tmp) / "m", kb=kb, settings=AuditSettings(quantize=bits))
        per_form = report["forget"]["per_form"]
        for form, s in per_form.items():
            totals[form][0] += s["known"]
            totals[form][1] += s["still_answered"]
        for q, data in report["quantization"].items():
            quant[q]["residual"].append(data["overall"]["residual"])
            quant[q]["reference"].append(data["reference_quantized_keeps"])
            for form, value in data["per_form"].items():
                if value is not None:
                    quant[q][form].append(value)
        r = report["retain"]
        retain["neighbours"].append(r["neighbours"]["residual"])
        retain["general"].append(r["general"]["residual"])
        retain["kl"].append(r["fluency"]["kl_from_reference"])
        retain["entropy_delta"].append(r["fluency"]["entropy_after"] - r["fluency"]["entropy_before"])
        o, bias = report["forget"]["overall"], report["forget"]["form_dependent_bias"]
        rows.append(
            (
                name,
                o["still_answered"],
                o["known"],
                o["residual"],
                bias["std"],
                bias.get("worst_form"),
                r["neighbours"]["residual"],
                r["general"]["residual"],
                time.perf_counter() - started,
            )
        )
        print(
            f"{name}: residual {pct(o['residual'])} ({o['still_answered']}/{o['known']}), "
            f"FDB std {bias['std']}, neighbours kept {pct(r['neighbours']['residual'])}, "
            f"general kept {pct(r['general']['residual'])}, {rows[-1][-1]:.0f}s",
            flush=True,
        )
    print("\n| form | known (all concepts) | still answered | residual |" + "".join(f" {q} |" for q in quant))
    print("|---|---|---|---|" + "---|" * len(quant))
    residuals = {}
    for form in [f for f in FORMS if f in totals]:
        known, kept = totals[form]
        residuals[form] = kept / known if known else None
        qcells = "".join(
            f" {pct(statistics.fmean(quant[q][form])) if quant[q][form] else '–'} |" for q in quant
        )
        print(f"| {FORMS[form].title} | {known} | {kept} | {pct(residuals[form])} |{qcells}")
    forget_forms = {f: v for f, v in residuals.items() if v is not None and FORMS[f].group == "forget"}
    print(
        f"\nForm-Dependent Bias over pooled forms: std {statistics.pstdev(forget_forms.values()):.3f}, "
        f"range {pct(max(forget_forms.values()) - min(forget_forms.values()))}"
    )
    print(
        "\n| concept | answered / known | residual | FDB std | worst form | neighbours kept | general kept |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, kept, known, res, std, worst, neigh, gen, _ in rows:
        print(f"| {name} | {kept}/{known} | {pct(res)} | {std} | {worst} | {pct(neigh)} | {pct(gen)} |")
    print(
        f"\nretain (mean over concepts): neighbours kept {pct(statistics.fmean(retain['neighbours']))}, "
        f"general kept {pct(statistics.fmean(retain['general']))}, "
        f"KL {statistics.fmean(retain['kl']):.4f} nats/token, "
        f"fluency entropy change {statistics.fmean(retain['entropy_delta']):+.3f} bits"
    )
    for q, data in quant.items():
        print(
            f"{q}: residual over all forms {pct(statistics.fmean(data['residual']))} "
            f"(quantized reference keeps {pct(statistics.fmean(data['reference']))})"
        )
    if args.json:
        args.json.write_text(
            json.dumps({"per_form": residuals, "concepts": rows, "retain": retain}, indent=1)
        )


if __name__ == "__main__":
    main()
