"""Learning-rate sweep of the trained baselines on a tuning split of concepts (never the concepts the
method × form table is audited on), to pick each method's default honestly.

For every method and learning rate, each tuning concept is forgotten on the default model from the
same starting weights (training form "all", the default step count, trained on the facts that
``forget --method`` trains on: the split of formless.knowledge.split), then scored in the forms it
was trained on (question, paraphrase, completion, cloze) and on the retain side (neighbour facts,
general facts). Rule: among the settings that keep >= ``--min-general`` of the general facts, the one
with the lowest residual on the training forms wins; if none keeps that much, the one that keeps the
most (and the table says so). Writes a JSON file and a markdown table (``--out``).

    python benchmarks/tune_methods.py [--methods ga,gd,...] [--concepts "Mount Everest,The Beatles"]
        [--steps 20] [--min-general 0.85] [--out docs/tuning] [--smoke]

--smoke: GA at one learning rate, one concept, 2 steps, on a tiny random model
(benchmarks/_smoke.py), unless told otherwise; writes to a temporary directory unless --out is given
(never into docs/).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import _smoke
import torch

from formless.audit.engine import score_probes
from formless.audit.run import AuditSettings, build_probes
from formless.knowledge import load
from formless.knowledge.split import split_facts
from formless.methods import TrainConfig, make_method, train
from formless.methods.data import generate_descriptions, training_material
from formless.methods.unlearn import corpus_retain
from formless.models import load_model
from formless.models.cache import atomic_file

TRAIN_FORMS = ["question", "paraphrase", "completion", "cloze"]
LORA_GRID = [3e-5, 1e-4, 3e-4, 1e-3]
GRIDS = {"ga": LORA_GRID, "gd": LORA_GRID, "kl": LORA_GRID, "npo": LORA_GRID,
         "simnpo": [1e-4, 2e-4, 3e-4, 1e-3], "rt": [1e-5, 3e-5, 1e-4, 3e-4],
         "rmu": [5e-5, 2e-4, 1e-3]}  # fmt: skip


def pct(x: float | None) -> str:
    return "–" if x is None else f"{x:.0%}"


def share(counts) -> float | None:
    """Mean over concepts of still answered / known; None when no concept has a known fact."""
    known = [k for k in counts if k[0]]
    return statistics.fmean(k[1] / k[0] for k in known) if known else None


def kept(before, after) -> tuple[int, int]:
    """(known by the reference, still answered after)."""
    pairs = [(b, a) for b, a in zip(before, after) if b.hit]
    return len(pairs), sum(a.hit for _, a in pairs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    _smoke.add_arguments(parser)
    parser.add_argument("--methods", default=None, help="default ga,gd,kl,npo,simnpo,rmu,rt")
    parser.add_argument("--concepts", default=None, help='default "Mount Everest,The Beatles"')
    parser.add_argument("--steps", type=int, default=None, help=f"default {TrainConfig().steps}")
    parser.add_argument("--min-general", type=float, default=0.85)
    parser.add_argument("--lrs", help="comma-separated learning rates for every listed method")
    parser.add_argument("--append", action="store_true", help="keep the rows of --out this run does not redo")
    parser.add_argument("--out", type=Path, default=None, help="default docs/tuning (.json and .md)")
    parser.add_argument(
        "--from", dest="sources", type=Path, action="append", default=[],
        help="rows of other runs (their .json; e.g. one per method run in parallel) merged into --out; "
        "with --methods '' only merges",
    )  # fmt: skip
    args = parser.parse_args()
    _smoke.resolve(args)
    if args.smoke:  # one method at one learning rate, one concept, a few steps
        args.methods = "ga" if args.methods is None else args.methods
        args.concepts = args.concepts or "Mount Everest"
        args.steps = 2 if args.steps is None else args.steps
        args.lrs = args.lrs or (str(GRIDS[args.methods.split(",")[0]][1]) if args.methods else None)
    args.methods = "ga,gd,kl,npo,simnpo,rmu,rt" if args.methods is None else args.methods
    args.concepts = args.concepts or "Mount Everest,The Beatles"
    args.steps = TrainConfig().steps if args.steps is None else args.steps
    args.out = _smoke.output(args, args.out, "tuning") or Path("docs/tuning")
    methods = [m for m in args.methods.split(",") if m]
    grids = {m: [float(x) for x in args.lrs.split(",")] if args.lrs else GRIDS[m] for m in methods}
    rows = []
    if args.append and args.out.with_suffix(".json").exists():
        old = json.loads(args.out.with_suffix(".json").read_text())
        redo = {(m, lr) for m in methods for lr in grids[m]}
        rows = [r for r in old["rows"] if (r["method"], r["lr"]) not in redo]
    for source in args.sources:
        rows += json.loads(source.read_text())["rows"]
    if not methods:
        if not rows:
            raise SystemExit("nothing to do: no --methods and no rows from --from")
        order = list(GRIDS)
        rows.sort(key=lambda r: (order.index(r["method"]) if r["method"] in order else len(order), r["lr"]))
        write(args, rows, choose(rows, args.min_general))
        print(args.out.with_suffix(".md").read_text())
        return
    kb = load()
    loaded = load_model(args.model)
    base = {k: v.detach().clone() for k, v in loaded.model.state_dict().items()}
    retain = corpus_retain()
    settings = AuditSettings(forms=TRAIN_FORMS, fast=True)

    def score(probes):
        return score_probes(loaded, probes, fast=True)

    setup = {}
    for name in args.concepts.split(","):
        concept = kb.concept(name)
        sets = build_probes(kb, [concept], settings)
        probes = [sets.forget, sets.neighbour, sets.general]
        before = [score(p) for p in probes]
        generated = generate_descriptions(loaded, concept)
        forget, _ = training_material(kb, concept, generated=generated)  # the split `forget --method` uses
        setup[concept.name] = (concept, probes, before, forget)
        known = [kept(b, b)[0] for b in before]
        print(f"{concept.name}: reference knows {known} (forget, neighbour, general)")

    for method in methods:
        for lr in grids[method]:
            row = {"method": method, "lr": lr, "steps": args.steps, "concepts": {}}
            for name, (_concept, probes, before, forget) in setup.items():
                loaded.model.load_state_dict(base)
                config = TrainConfig(steps=args.steps, lr=lr)
                started = time.perf_counter()
                result = train(loaded, make_method(method), forget, retain, config)
                seconds = time.perf_counter() - started
                after = [score(p) for p in probes]
                counts = [kept(b, a) for b, a in zip(before, after)]
                held = set(split_facts(_concept).held_out)
                on_held = [(b, a) for p, b, a in zip(probes[0], before[0], after[0]) if p.item in held]
                row["concepts"][name] = {
                    "forget": counts[0], "neighbours": counts[1], "general": counts[2],
                    "forget_held_out": kept(*zip(*on_held)) if on_held else [0, 0],
                    "steps": result.steps, "stopped_early": result.stopped_early,
                    "seconds": round(seconds, 1),
                }  # fmt: skip
            for key in ("forget", "forget_held_out", "neighbours", "general"):
                row[key] = share(c[key] for c in row["concepts"].values())
            row["stopped_early"] = sum(c["stopped_early"] for c in row["concepts"].values())
            row["seconds"] = statistics.fmean(c["seconds"] for c in row["concepts"].values())
            rows.append(row)
            order = list(dict.fromkeys(r["method"] for r in rows))
            rows.sort(key=lambda r: (order.index(r["method"]), r["lr"]))
            write(args, rows, choose(rows, args.min_general))
            print(
                f"{method:>6} lr {lr:g}: training-form residual {pct(row['forget'])}, neighbours kept "
                f"{pct(row['neighbours'])}, general kept {pct(row['general'])}, guard stops "
                f"{row['stopped_early']}, {row['seconds']:.0f}s per concept",
                flush=True,
            )
    loaded.model.load_state_dict(base)
    print(args.out.with_suffix(".md").read_text())


def choose(rows: list[dict], min_general: float) -> dict:
    chosen = {}
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        ok = [r for r in mine if r["general"] is not None and r["general"] >= min_general]
        if ok:  # a residual of None (nothing known to forget) ranks last
            best = min(ok, key=lambda r: (1.0 if r["forget"] is None else r["forget"], -r["general"]))
        else:
            best = max(mine, key=lambda r: -1.0 if r["general"] is None else r["general"])
        chosen[method] = {"lr": best["lr"], "meets_utility_bar": bool(ok)}
    return chosen


def write(args, rows: list[dict], chosen: dict) -> None:
    meta = {
        "model": args.model, "concepts": args.concepts.split(","), "steps": args.steps,
        "train_forms": TRAIN_FORMS, "min_general": args.min_general, "torch": torch.__version__,
        "threads": torch.get_num_threads(), "cpus": os.cpu_count(),
    }  # fmt: skip
    data = {"meta": meta, "rows": rows, "chosen": chosen}
    lines = [
        f"Sweep on {', '.join(meta['concepts'])} ({args.model}, {args.steps} steps, training form 'all', "
        f"scoring in bf16). Residual = share of the facts the reference answers that the model still "
        f"answers, in the training forms ({', '.join(TRAIN_FORMS)}), mean over concepts; methods train on "
        f"half of each concept's facts, the other half is the held-out column. Chosen: lowest "
        f"residual among the settings keeping >= {args.min_general:.0%} of general facts.",
        "",
        "| method | lr | training-form residual | of it, held-out facts | neighbours kept | general kept "
        "| guard stops | s / concept | chosen |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        pick = chosen[r["method"]]
        mark = ""
        if pick["lr"] == r["lr"]:
            mark = "yes" if pick["meets_utility_bar"] else "yes (none meets the bar)"
        lines.append(
            f"| {r['method']} | {r['lr']:g} | {pct(r['forget'])} | {pct(r.get('forget_held_out'))} "
            f"| {pct(r['neighbours'])} "
            f"| {pct(r['general'])} | {r['stopped_early']} | {r['seconds']:.0f} | {mark} |"
        )
    for suffix, text in ((".json", json.dumps(data, indent=1)), (".md", "\n".join(lines) + "\n")):
        path = args.out.with_suffix(suffix)
        with atomic_file(path) as tmp:
            tmp.write_text(text)


if __name__ == "__main__":
    main()
