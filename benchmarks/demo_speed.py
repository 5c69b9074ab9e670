"""Wall time of the README's main command (``formless demo``) from an empty cache, per phase, for
this tree and for a baseline commit side by side in one run, and whether both give the same audit.

Each tree runs ``formless demo`` three times in a subprocess with its own empty cache
(``FORMLESS_CACHE``): cold (model conversion, ROCR statistics, reference scores and quantized
reference scores all computed); "warm reference" (all of that found in the cache, but the audited
model's own result cache removed first: what a new edit of a cached base costs); and warm (the same
checkpoint again: a tree that caches the audited model's results finds them). The baseline commit
is checked out into a temporary git worktree and run with ``PYTHONPATH`` pointing there, so both use
the same Python and packages. Each run's CPU-seconds (user + system, the demo's process and its
children) are recorded beside its wall time: the work no schedule on N cores finishes in less than
CPU-seconds / N. The machine's load changes under a long run, so the two trees
alternate (baseline cold, current cold, baseline warm reference, ...) and the ratio is the figure
to read, not the seconds.

The audits are compared probe by probe (the ``before``/``after`` results of every probe in
``audit.json``); every difference is listed.

    python benchmarks/demo_speed.py [--baseline REV] [--concept "Harry Potter"] [--model NAME|DIR]
        [--quantize gguf-q8_0,gguf-q4_1] [--json out.json] [--smoke]

--smoke: the same on a tiny random model (benchmarks/_smoke.py), baseline HEAD by default.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import _smoke

from formless.models.cache import atomic_file

ROOT = _smoke.ROOT
# phases the demo itself reports outside the audit (from the edit's manifest)
EDIT_PHASES = ("statistics", "edit")
STATES = ("cold", "warm reference", "warm")


@contextmanager
def baseline_tree(rev: str) -> Iterator[Path]:
    """``rev`` checked out (detached) in a temporary git worktree, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="formless-baseline-") as tmp:
        path = Path(tmp) / "tree"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", "--quiet", str(path), rev], check=True
        )
        try:
            yield path
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(path)], check=False)


def run_demo(tree: Path, args: argparse.Namespace, cache: Path, out: Path) -> dict:
    """One ``formless demo`` of ``tree`` in a subprocess; wall seconds, phases and the audit."""
    env = {**os.environ, "PYTHONPATH": str(tree), "FORMLESS_CACHE": str(cache)}
    command = [sys.executable, "-m", "formless", "demo", "--concept", args.concept, "--model", args.model]
    command += ["--out", str(out), "--quantize", args.quantize]
    start = time.perf_counter()
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(command, cwd=out.parent, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # the work itself: no schedule on N cores finishes it in less than cpu / N seconds
    cpu = (after.ru_utime - used.ru_utime) + (after.ru_stime - used.ru_stime)
    if done.returncode:
        raise SystemExit(f"formless demo failed in {tree}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    audit = json.loads((out / "report" / "audit.json").read_text(encoding="utf-8"))
    manifest = json.loads((out / "model" / "formless_manifest.json").read_text(encoding="utf-8"))
    seconds = audit["run"]["seconds"]
    phases = {k: float(manifest["seconds"].get(k, 0.0)) for k in EDIT_PHASES}
    phases.update({f"audit.{k}": float(v) for k, v in seconds.items() if k != "total"})
    phases["audit total"] = float(seconds["total"])
    # model conversion, imports, the edit's model load, the report: what the phases above leave out
    phases["rest"] = round(wall - phases["audit total"] - sum(phases[k] for k in EDIT_PHASES), 3)
    return {"wall": round(wall, 3), "cpu": round(cpu, 3), "phases": phases, "audit": audit}


def probe_results(audit: dict) -> dict[str, dict]:
    """Each probe's results keyed by what identifies it (key and prompt)."""
    return {
        f"{p['key']} :: {p['prompt']}": {"before": p["before"], "after": p["after"]} for p in audit["probes"]
    }


def compare(base: dict, new: dict) -> list[str]:
    """Every per-probe difference between two audits, one line each (empty: identical)."""
    a, b = probe_results(base), probe_results(new)
    diffs = [f"only in baseline: {k}" for k in sorted(a.keys() - b.keys())]
    diffs += [f"only in current: {k}" for k in sorted(b.keys() - a.keys())]
    for key in sorted(a.keys() & b.keys()):
        for side in ("before", "after"):
            x, y = a[key][side], b[key][side]
            if x == y:
                continue
            if x is None or y is None:
                diffs.append(f"{key} [{side}]: {x} -> {y}")
                continue
            fields = [
                f"{f}: {x.get(f)!r} -> {y.get(f)!r}"
                for f in sorted(x.keys() | y.keys())
                if x.get(f) != y.get(f)
            ]
            diffs.append(f"{key} [{side}]: " + "; ".join(fields))
    return diffs


def kinds(base: dict, new: dict) -> dict[str, list[str]]:
    """The per-probe differences sorted by what changed: a probe one tree asks and the other does not
    (a revision that adds or drops probes); a judgement (hit or chosen option); an output cut short
    where its answer was settled (the new text a prefix of the old, same hit); a probability within
    1e-4 relative (float rounding of another batch layout); anything else."""
    a, b = probe_results(base), probe_results(new)
    found: dict[str, list[str]] = {
        "only in one tree": [], "judgement": [], "output cut": [], "probability rounding": [], "other": [],
    }  # fmt: skip
    for key in sorted(a.keys() | b.keys()):
        if (key in a) != (key in b):
            found["only in one tree"].append(f"only in {'baseline' if key in a else 'current'}: {key}")
            continue
        for side in ("before", "after"):
            x, y = (a.get(key) or {}).get(side), (b.get(key) or {}).get(side)
            if x == y:
                continue
            line = f"{key} [{side}]"
            if x is None or y is None or x.get("hit") != y.get("hit") or x.get("chosen") != y.get("chosen"):
                found["judgement"].append(line)
                continue
            px, py = x.get("probability"), y.get("probability")
            prob_ok = px == py or (px and py and abs(px - py) <= 1e-4 * max(abs(px), abs(py)))
            out_same = x.get("output") == y.get("output")
            cut = not out_same and (x.get("output") or "").startswith(y.get("output") or "\0")
            if not prob_ok:
                found["other"].append(f"{line}: probability {px} -> {py}")
            elif cut:
                found["output cut"].append(line)
            elif out_same:
                found["probability rounding"].append(line)
            else:
                found["other"].append(f"{line}: output {x.get('output')!r} -> {y.get('output')!r}")
    return found


def table(runs: dict[str, dict]) -> list[str]:
    """Per-phase seconds of baseline and current, cold and warm, and the ratios."""
    lines = []
    for state in STATES:
        base, new = runs[f"baseline {state}"], runs[f"current {state}"]
        keys = list(dict.fromkeys([*base["phases"], *new["phases"]]))
        lines.append(f"{state:<28}{'baseline s':>12}{'current s':>12}{'ratio':>8}")
        for key in [*keys, "wall", "cpu"]:
            x = base[key] if key in ("wall", "cpu") else base["phases"].get(key)
            y = new[key] if key in ("wall", "cpu") else new["phases"].get(key)
            ratio = f"{x / y:7.2f}x" if x and y and y > 0.05 else f"{'':>8}"
            lines.append(f"  {key:<26}{_cell(x)}{_cell(y)}{ratio}")
    return lines


def _cell(value: float | None) -> str:
    return f"{value:12.1f}" if value is not None else f"{'-':>12}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    _smoke.add_arguments(parser)
    parser.add_argument(
        "--baseline", default=None, help="git revision to compare with (default: main; HEAD with --smoke)"
    )
    parser.add_argument("--concept", default="Harry Potter")
    parser.add_argument("--quantize", default="gguf-q8_0,gguf-q4_1")
    parser.add_argument("--json", type=Path, help="write the timings and the comparison here")
    args = parser.parse_args()
    _smoke.resolve(args)
    args.json = _smoke.output(args, args.json, "demo_speed.json")
    rev = args.baseline or ("HEAD" if args.smoke else "main")
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", rev], capture_output=True, text=True, check=True
    ).stdout.strip()
    print(f"baseline {rev} ({commit}) vs current tree {ROOT}; python {sys.executable}", flush=True)
    runs: dict[str, dict] = {}
    with (
        baseline_tree(commit) as base_tree,
        tempfile.TemporaryDirectory(prefix="formless-demo-speed-") as tmp,
    ):
        trees = {"baseline": base_tree, "current": ROOT}
        for name in trees:
            (Path(tmp) / name).mkdir()
        for state in STATES:  # each run finds the previous one's cache
            for name, tree in trees.items():
                print(f"running {name} {state} ...", flush=True)
                work = Path(tmp) / name
                if state == "warm reference":  # the audited model's results (if kept) go
                    for path in (work / "cache" / "audit").glob("audited-*"):
                        path.unlink()
                runs[f"{name} {state}"] = run = run_demo(tree, args, work / "cache", work / f"demo-{state}")
                parts = ", ".join(f"{k} {v:.1f}s" for k, v in run["phases"].items())
                print(f"  {name} {state}: {run['wall']:.1f}s, {run['cpu']:.1f} CPU-s ({parts})", flush=True)
    lines = table(runs)
    print("\n".join(lines))
    diffs = {
        state: compare(runs[f"baseline {state}"]["audit"], runs[f"current {state}"]["audit"])
        for state in STATES
    }
    n = len(runs["current cold"]["audit"]["probes"])
    sorted_diffs = {
        state: kinds(runs[f"baseline {state}"]["audit"], runs[f"current {state}"]["audit"])
        for state in STATES
    }
    for state, found in diffs.items():
        if not found:
            print(f"{state}: per-probe results identical ({n} probes)")
            continue
        by_kind = sorted_diffs[state]
        print(
            f"{state}: {len(found)} per-probe differences of {n} probes (before and after each): "
            + ", ".join(f"{k} {len(v)}" for k, v in by_kind.items())
        )
        for kind in ("judgement", "other"):  # the ones that matter, in full; the rest in --json
            for line in by_kind[kind]:
                print(f"  {kind}: {line}")
    if args.json:
        result = {
            "baseline": {"rev": rev, "commit": commit},
            "model": args.model,
            "concept": args.concept,
            "runs": {k: {"wall": v["wall"], "cpu": v["cpu"], "phases": v["phases"]} for k, v in runs.items()},
            "ratio": {
                s: round(runs[f"baseline {s}"]["wall"] / runs[f"current {s}"]["wall"], 3) for s in STATES
            },
            "probes": n,
            "differences": diffs,
            "differences_by_kind": sorted_diffs,
        }
        with atomic_file(args.json) as out:
            out.write_text(json.dumps(result, indent=1), encoding="utf-8")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
