"""formless' own greedy loop (finished rows leave the batch) against ``transformers``' ``generate``:
the same tokens on every supported architecture, with rows ending at different steps."""

from __future__ import annotations

import pytest
import torch
from tiny import SUPPORTED, save_tiny_model

from formless.generation import _own_loop_applies, generate, greedy_new_tokens
from formless.models import load_model
from formless.models.prompts import add_special_tokens, render

pytestmark = pytest.mark.usefixtures("one_thread_module")

PROMPTS = ["Who wrote it?", "The capital of France is", "a b c d e f g h i j k", "Name a colour.", "x"]
STEPS = 10


def _hf(model, batch, pad: int) -> torch.Tensor:
    out = model.generate(
        **batch,
        max_new_tokens=STEPS,
        do_sample=False,
        pad_token_id=pad,
        temperature=None,
        top_p=None,
        top_k=None,
    )
    return out[:, batch["input_ids"].shape[1] :]


@pytest.mark.parametrize("arch", SUPPORTED)
@pytest.mark.parametrize("chat", [True, False])
def test_own_loop_matches_generate(arch, chat, tmp_path):
    loaded = load_model(str(save_tiny_model(arch, tmp_path / arch)), device="cpu")
    model, tok = loaded.model, loaded.tokenizer
    assert _own_loop_applies(model)
    tok.padding_side = "left"
    texts = [render(tok, p, chat=chat) for p in PROMPTS]
    batch = tok(texts, return_tensors="pt", padding=True, add_special_tokens=add_special_tokens(tok, chat))
    pad = tok.pad_token_id
    with torch.no_grad():
        model.generation_config.eos_token_id = None
        free = _hf(model, batch, pad)
        # EOS = tokens rows produce at different steps: those rows leave the batch early and the
        # others must not notice
        model.generation_config.eos_token_id = sorted({int(free[0, 2]), int(free[1, 5])})
        ref = _hf(model, batch, pad)
        own = greedy_new_tokens(
            model, batch["input_ids"], batch["attention_mask"], max_new_tokens=STEPS, pad_token_id=pad
        )
    assert torch.equal(own, ref)
    eos = torch.tensor(model.generation_config.eos_token_id)
    ended = [int(torch.isin(row, eos).nonzero()[0]) for row in ref if torch.isin(row, eos).any()]
    assert ended and min(ended) < ref.shape[1] - 1, "no row ended early: the test tests nothing"
    # and through generate(), strings and all
    assert generate(model, tok, PROMPTS, chat=chat, max_new_tokens=STEPS, batch_size=4) == generate(
        model, tok, PROMPTS, chat=chat, max_new_tokens=STEPS, batch_size=4, own_loop=False
    )


def test_processors_fall_back_to_generate(tiny):
    """A repetition penalty is not plain argmax: model.generate decodes, as before."""
    model = tiny.model
    model.generation_config.repetition_penalty = 1.3
    try:
        assert not _own_loop_applies(model)
    finally:
        model.generation_config.repetition_penalty = 1.0
    assert _own_loop_applies(model)
