"""Reproduces the README K-quant table: KL from the dense default model and log p(" J.K. Rowling") after
each GGUF scheme (one thread). Run: python docs/kquant_check.py"""

import time

import torch

from formless.attacks.quantizers import SCHEMES
from formless.models import load_model

torch.set_num_threads(1)
m = load_model("smollm2-135m-instruct", device="cpu")
tok = m.tokenizer
prompt, ans = "The Harry Potter books were written by", " J.K. Rowling"


def logp(model):
    ids = tok(prompt + ans, return_tensors="pt").input_ids
    n = len(tok(prompt).input_ids)
    with torch.no_grad():
        lp = torch.log_softmax(model(ids).logits.float(), -1)
    return float(sum(lp[0, i - 1, ids[0, i]] for i in range(n, ids.shape[1])))


texts = [
    "The capital of France is Paris, a city known for its art and history.",
    "Water boils at 100 degrees Celsius at sea level.",
    "Once upon a time, there was a small village in the mountains.",
]


def kl(a, b):
    tot, n = 0.0, 0
    for t in texts:
        ids = tok(t, return_tensors="pt").input_ids
        with torch.no_grad():
            p = torch.log_softmax(a(ids).logits.float(), -1)
            q = torch.log_softmax(b(ids).logits.float(), -1)
        tot += float((p.exp() * (p - q)).sum(-1).sum())
        n += ids.shape[1]
    return tot / n


print("dense logp", round(logp(m.model), 2))
for name in ("gguf-q4_0", "gguf-q4_k_m", "gguf-q5_k_m", "gguf-q6_k", "gguf-q8_0"):
    t = time.perf_counter()
    q, s = SCHEMES[name].quantize_with_summary(m)
    dt = time.perf_counter() - t
    print(
        name,
        f"{dt:.1f}s",
        s["tensors"],
        "KL",
        round(kl(m.model, q.model), 4),
        "logp",
        round(logp(q.model), 2),
    )
