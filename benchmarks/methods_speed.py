"""Wall time and peak memory of each unlearning method on this CPU (one concept, default settings),
each in its own process so peak RSS is its own; ROCR and NPO run in the same invocation, so their
time ratio is measured side by side.

    python benchmarks/methods_speed.py [--concept "Harry Potter"] [--methods rocr,npo,...] [--steps 20]
        [--model smollm2-135m-instruct] [--json results.json] [--smoke]

--smoke: ROCR and NPO, 2 steps, on a tiny random model (benchmarks/_smoke.py), unless told otherwise.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import _smoke

from formless.models.cache import atomic_file

CHILD = r"""
import json, resource, sys, time
from formless.api import forget
from formless.methods import TrainConfig
from formless.models import load_model
method, concept, steps, model = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
loaded = load_model(model)
start = time.perf_counter()
cfg = None if method in ("rocr", "icu") else TrainConfig(steps=steps)
out = forget(concept, model=loaded, method=method, train_config=cfg)
wall = time.perf_counter() - start
m = out.manifest
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
training = m.get("training", {})
print(json.dumps({"method": method, "seconds": wall, "peak_rss_gib": peak,
                  "steps": training.get("steps"), "stopped_early": training.get("stopped_early")}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    _smoke.add_arguments(parser)
    parser.add_argument("--concept", default="Harry Potter")
    parser.add_argument("--methods", default=None, help="default rocr,ga,gd,kl,npo,simnpo,rmu,rt,icu")
    parser.add_argument("--steps", type=int, default=None, help="training steps of the baselines (20)")
    parser.add_argument("--json", type=Path, help="write the rows here")
    args = parser.parse_args()
    _smoke.resolve(args)
    args.json = _smoke.output(args, args.json, "methods_speed.json")
    if args.methods is None:
        args.methods = "rocr,npo" if args.smoke else "rocr,ga,gd,kl,npo,simnpo,rmu,rt,icu"
    if args.steps is None:
        args.steps = 2 if args.smoke else 20
    rows, failed = {}, []
    for method in args.methods.split(","):
        done = subprocess.run(
            [sys.executable, "-c", CHILD, method, args.concept, str(args.steps), args.model],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode:
            print(f"{method}: failed\n{done.stderr[-2000:]}")
            failed.append(method)
            continue
        rows[method] = json.loads(done.stdout.strip().splitlines()[-1])
        r = rows[method]
        print(
            f"{method:>7}: {r['seconds']:7.1f}s  peak RSS {r['peak_rss_gib']:.2f} GiB  steps {r['steps']}"
            f"{'  (stopped early)' if r['stopped_early'] else ''}",
            flush=True,
        )
    if "npo" in rows and "rocr" in rows:
        print(
            f"time ratio NPO / ROCR: {rows['npo']['seconds'] / rows['rocr']['seconds']:.0f}x "
            "(ROCR includes its statistics when not cached; load time excluded for both)"
        )
    if args.json:
        data = {"model": args.model, "concept": args.concept, "steps": args.steps, "rows": rows}
        with atomic_file(args.json) as tmp:
            tmp.write_text(json.dumps(data, indent=1))
        print(f"wrote {args.json}")
    if failed:
        raise SystemExit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
