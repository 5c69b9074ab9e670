"""Per-form residual of several dev_sweep.py runs side by side, pooled over the concepts all hold.

python docs/ablation/dev_compare.py docs/ablation/dev_default.json docs/ablation/dev_pc.json ...
"""

import json
import sys
from pathlib import Path

data = {Path(f).stem.removeprefix("dev_"): json.loads(Path(f).read_text()) for f in sys.argv[1:]}
common = sorted(set.intersection(*[set(d) for d in data.values()]))
print("concepts", len(common), common)
forms = list(data[next(iter(data))][common[0]]["per_form"])
print("form".ljust(24), " ".join(k.rjust(12) for k in data))
for f in [*forms, "overall", "neigh", "general"]:
    cells = []
    for d in data.values():
        rows = [
            d[c][f] if f in ("overall", "neigh", "general") else d[c]["per_form"].get(f, [0, 0])
            for c in common
        ]
        cells.append(f"{sum(r[1] for r in rows)}/{sum(r[0] for r in rows)}".rjust(12))
    print(f.ljust(24), " ".join(cells))
print(
    "kl".ljust(24),
    " ".join(f"{sum(d[c]['kl'] for c in common) / len(common):.5f}".rjust(12) for d in data.values()),
)
