"""The answer-probability metric against a hand computation, token by token."""

from __future__ import annotations

import math

import pytest
import torch

from formless.audit.scoring import answer_probability
from formless.models import load_model
from formless.models.prompts import render


def test_answer_probability_matches_hand_computation(tiny_dir):
    loaded = load_model(str(tiny_dir))
    tok, model = loaded.tokenizer, loaded.model
    prompts = ["Who wrote the book?", "Tell me about Paris."]
    answers = ["Harry Potter", "the capital of France"]
    scores = answer_probability(loaded, prompts, answers, chat=True, fast=False)
    for prompt, answer, score in zip(prompts, answers, scores):
        context = tok(render(tok, prompt), add_special_tokens=False)["input_ids"]
        target = tok(answer, add_special_tokens=False)["input_ids"]
        log_p = 0.0
        for k, token in enumerate(target):  # one unbatched forward per answer token
            ids = torch.tensor([context + target[:k]])
            with torch.no_grad():
                probs = torch.softmax(model(input_ids=ids).logits[0, -1].double(), dim=-1)
            log_p += math.log(float(probs[token]))
        assert math.isclose(score, math.exp(log_p / len(target)), rel_tol=1e-4)
        assert 0.0 < score < 1.0


def test_plain_form_and_batching_do_not_change_scores(tiny_dir):
    loaded = load_model(str(tiny_dir))
    prompts = ["The Eiffel Tower stands in", "Albert Einstein developed the theory of", "Water is"]
    answers = ["Paris", "relativity", "wet"]
    together = answer_probability(loaded, prompts, answers, chat=False, batch_size=3, fast=False)
    alone = [
        answer_probability(loaded, [p], [a], chat=False, fast=False)[0] for p, a in zip(prompts, answers)
    ]
    for x, y in zip(together, alone):
        assert math.isclose(x, y, rel_tol=1e-4)


def test_each_prompt_is_computed_once_for_all_its_answers(tmp_path, monkeypatch):
    """Options of one question share the prompt's prefill (llama: the cache rewinds) and equal the
    metric computed by hand (float64 model, to rounding); a sliding-window cache (gemma2) does not
    rewind, and the pairs are scored whole instead, as close as its float32 vocabulary head allows."""
    from test_generation import hand_probability
    from tiny import save_tiny_model

    from formless.audit import scoring

    prompts = ["Which city? A) Paris B) Rome"] * 3 + ["Is water wet?"] * 2 + ["Name a colour."]
    answers = ["Paris", "Rome", "Madrid", "True", "False", "red"]
    for arch, shares, rel in (("llama", True, 1e-9), ("gemma2", False, 1e-5)):
        loaded = load_model(str(save_tiny_model(arch, tmp_path / arch)), device="cpu", dtype=torch.float64)
        shared: list = []
        real = scoring._on_shared_prompts
        monkeypatch.setattr(
            scoring,
            "_on_shared_prompts",
            lambda *a, real=real, shared=shared, **k: shared.append(real(*a, **k)) or shared[-1],
        )
        got = scoring.answer_probability(loaded, prompts, answers, chat=True, batch_size=2, fast=False)
        monkeypatch.undo()
        assert (shared[0] is not None) == shares
        hand = [hand_probability(loaded, p, a, True) for p, a in zip(prompts, answers)]
        assert got == pytest.approx(hand, rel=rel)
