"""What the edit must not cost: fluency of free text and divergence from the reference on neutral
text. (Neighbour and general facts are scored as probes, see run.py.)"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

import torch

from formless.engines import DEFAULT_ENGINE, make_engine
from formless.models.loading import LoadedModel

NEUTRAL_PROMPTS = (
    "Write a short paragraph about how to make a cup of tea.",
    "Describe a walk in a park on a sunny afternoon.",
    "Explain why people like to keep pets.",
    "Give some advice for someone starting to learn to cook.",
    "Describe what happens at a busy train station in the morning.",
    "Write a few sentences about the benefits of getting enough sleep.",
)
FLUENCY_TOKENS = 96
TOP_K = 32  # reference distribution kept per position: top-k tokens plus one "rest" bucket


def _ngram_entropy(tokens: Sequence[str], n: int) -> float:
    grams = Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))
    total = sum(grams.values())
    if not total:
        return 0.0
    return -sum(c / total * math.log2(c / total) for c in grams.values())


def ngram_entropy(text: str) -> float:
    """ROME/ORT fluency: weighted mean of bigram (2/3) and trigram (4/3) entropies, in bits.
    Repetitive, degenerate text scores low."""
    tokens = re.findall(r"\w+|[^\w\s]", text.lower())
    weights = {2: 2 / 3, 3: 4 / 3}
    return sum(w * _ngram_entropy(tokens, n) for n, w in weights.items()) / sum(weights.values())


def fluency_generations(
    loaded: LoadedModel,
    prompts: Sequence[str] = NEUTRAL_PROMPTS,
    *,
    fast: bool = False,
    engine: str = DEFAULT_ENGINE,
) -> list[str]:
    """Free text on neutral prompts, from the audit's engine (formless.engines)."""
    runner = make_engine(engine, loaded, batch_size=16, fast=fast)
    return runner.generate(list(prompts), chat=True, max_new_tokens=FLUENCY_TOKENS)


@torch.no_grad()
def _log_probs(loaded: LoadedModel, ids: Sequence[int]) -> torch.Tensor:
    x = torch.tensor([list(ids)], device=loaded.device)
    return torch.log_softmax(loaded.model(input_ids=x, use_cache=False).logits[0].float(), dim=-1).cpu()


def reference_distribution(loaded: LoadedModel, texts: Sequence[str]) -> list[dict]:
    """Per text: its token ids and, per position, the reference's top-k next-token log-probabilities."""
    out = []
    for text in texts:
        ids = loaded.tokenizer(text)["input_ids"]
        lp = _log_probs(loaded, ids)
        top = lp.topk(TOP_K, dim=-1)
        out.append({"ids": list(ids), "top_ids": top.indices.tolist(), "top_logp": top.values.tolist()})
    return out


def coarse_kl(ref_logp: torch.Tensor, edit_logp: torch.Tensor) -> torch.Tensor:
    """KL(reference || edited) over the partition {each reference top-k token, everything else}.
    Exact KL of the coarsened distributions, hence a lower bound on the full KL; needs no stored
    full-vocabulary reference logits."""
    p, q = ref_logp.exp(), edit_logp.exp()
    p_rest = (1 - p.sum(-1)).clamp_min(1e-12)
    q_rest = (1 - q.sum(-1)).clamp_min(1e-12)
    return (p * (ref_logp - edit_logp)).sum(-1) + p_rest * (p_rest.log() - q_rest.log())


def divergence(loaded: LoadedModel, reference: list[dict]) -> float:
    """Mean per-token KL(reference || model) on the reference's own neutral text (nats)."""
    values = []
    for item in reference:
        lp = _log_probs(loaded, item["ids"])
        top_ids = torch.tensor(item["top_ids"])
        values.append(coarse_kl(torch.tensor(item["top_logp"]), lp.gather(-1, top_ids)))
    return float(torch.cat(values).mean()) if values else 0.0
