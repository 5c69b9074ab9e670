"""How close one ROCR-edited layer behind a post-MLP norm gets to v*, against the best that norm
allows. python docs/post_norm_check.py [MODEL LAYER]   (default: a tiny random Gemma 3, layer 2;
the README's figures: gemma3-270m 3). Every direction free (threshold 1e9, lam 1e-6), one layer."""

import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from tiny import save_tiny_model, write_corpus  # noqa: E402

from formless.api import make_config
from formless.models import load_model
from formless.rocr.activations import collect
from formless.rocr.corpus import load_corpus
from formless.rocr.edit import _canonical, apply_rocr
from formless.rocr.stats import layer_statistics

tmp = Path(tempfile.mkdtemp())
corpus = write_corpus(tmp / "c.txt")

MODEL = sys.argv[1] if len(sys.argv) > 1 else None
loaded = load_model(MODEL or str(save_tiny_model("gemma3_text", tmp / "g")))
L = int(sys.argv[2]) if len(sys.argv) > 2 else 2
stats, _ = layer_statistics(loaded, [L], load_corpus(str(corpus)), max_tokens=1000, cache=tmp / "cache")
config = make_config(
    layers=[L],
    lam=1e-6,
    threshold=1e9,
    prefixes=[""],
    plain_templates=["{s}."],
    concept_tokens=1,
    max_relative_norm=1e9,
)
items = [_canonical(loaded, "Harry Potter", g) for g in ("chat", "plain")]
titems = [_canonical(loaded, config.redirect, g) for g in ("chat", "plain")]
proj = {}
_, z = collect(loaded, items, output_layers=[L], projection_layers=[L], projections=proj)
_, t = collect(loaded, titems, output_layers=[L])
z, t, m = z[L], t[L], proj[L]
norm = loaded.adapter.post_mlp_norm_module(loaded.model, L)
with torch.no_grad():
    o = norm(m.to(next(norm.parameters()).dtype)).float()
    p = next(norm.parameters())
    g = norm(torch.ones(1, m.shape[1], dtype=p.dtype)).float()[0]
h = z - o
# the best output o' = g * u, rms(u) = 1, for the wanted tz = t - h: u = g tz / (g^2 + mu), bisection on mu
tz = t - h


def best(tzr):
    g2 = g.pow(2).double()
    tzd = tzr.double()
    gd = g.double()
    lo, hi = -g2.min().item() + 1e-12, 1e9

    def f(mu):
        return (gd * tzd / (g2 + mu)).pow(2).mean().sqrt() - 1

    for _ in range(300):
        mid = (lo + hi) / 2
        (lo, hi) = (mid, hi) if f(mid) > 0 else (lo, mid)
    return (gd * gd * tzd / (g2 + lo)).float()


ob = torch.stack([best(tz[i]) for i in range(2)])
print("gain spread (std/mean)", (g.std() / g.mean()).item())
print("gap before", (z - t).norm(dim=1))
print("best reachable gap (one post-normed layer)", (h + ob - t).norm(dim=1))
apply_rocr(loaded, ["Harry Potter"], config, stats)
_, z2 = collect(loaded, items, output_layers=[L])
print("gap after the edit", (z2[L] - t).norm(dim=1))
