"""Is Gemma 3 270M (shipped as a llama.cpp Q4_K_M GGUF) on the grid our gguf-q4_k_m attack makes?
Reads the tensor types of the published file, compares them with GGUFKMix's choice per tensor, and
re-quantizes the dense weights: how many tensors come back unchanged. Run: python docs/gemma_grid_check.py"""

import collections
import time

import gguf
import torch

from formless.attacks.quantizers import SCHEMES, gguf_tensors
from formless.models import load_model
from formless.models.cache import cache_dir
from formless.models.registry import BUILTIN_MODELS

torch.set_num_threads(1)
spec = BUILTIN_MODELS["gemma3-270m"]
path = spec.locate_gguf(cache_dir() / "gguf")
reader = gguf.GGUFReader(str(path))
published = {t.name: t.tensor_type.name for t in reader.tensors}
print("published file:", dict(collections.Counter(published.values())))

m = load_model("gemma3-270m", device="cpu")
scheme = SCHEMES["gguf-q4_k_m"]
t = time.perf_counter()
q, summary = scheme.quantize_with_summary(m)
print(f"gguf-q4_k_m on the dense weights: {time.perf_counter() - t:.1f}s", summary["tensors"])
targets = gguf_tensors(m.model)
types = dict(zip((name for name, *_ in targets), scheme.tensor_types(targets), strict=True))
GGUF_NAMES = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
              "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
              "mlp.down_proj": "ffn_down"}  # fmt: skip


def gguf_name(name: str) -> str:
    if "embed_tokens" in name:
        return "token_embd.weight"
    layer, rest = name.split("layers.")[1].split(".", 1)
    return f"blk.{layer}.{GGUF_NAMES[rest.removesuffix('.weight')]}.weight"


agree = sum(published[gguf_name(n)] == t for n, t in types.items())
print(f"per tensor, our type == the published file's type: {agree} of {len(types)}")
dense = dict(m.model.named_parameters())
same, total, worst = collections.Counter(), collections.Counter(), []
for name, p in q.model.named_parameters():
    qtype = types.get(name.removesuffix(".weight"))
    if qtype is None:
        continue
    d = (p.detach() - dense[name].detach()).abs().max().item()
    total[qtype] += 1
    same[qtype] += d == 0
    if d:
        worst.append((d / dense[name].detach().abs().max().item(), name))
print("tensors unchanged by the round trip, per type:", {t: f"{same[t]}/{total[t]}" for t in total})
for r, name in sorted(worst, reverse=True)[:5]:
    print(f"  changed: {name} max |diff| / max |w| = {r:.2e}")
