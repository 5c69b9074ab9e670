"""ROCR on a tiny model: the edit moves the concept's representation where the maths says."""

from __future__ import annotations

import pytest
import torch

from formless.api import make_config
from formless.models import load_model
from formless.models.prompts import add_special_tokens, render
from formless.rocr.activations import collect, locate
from formless.rocr.corpus import load_corpus
from formless.rocr.edit import apply_rocr
from formless.rocr.stats import layer_statistics


def _canonical(loaded, concept, chat):
    tok = loaded.tokenizer
    return locate(
        tok, render(tok, f"{concept}.", chat=chat), concept, add_special=add_special_tokens(tok, chat)
    )


def _representations(loaded, concept, layer):
    items = [_canonical(loaded, concept, True), _canonical(loaded, concept, False)]
    keys, outs = collect(loaded, items, key_layers=[layer], output_layers=[layer])
    return keys[layer], outs[layer]


@pytest.fixture
def setup(tiny_dir, corpus_file, cache):
    loaded = load_model(str(tiny_dir))
    stats, seconds = layer_statistics(
        loaded, [2], load_corpus(str(corpus_file)), max_tokens=1000, cache=cache
    )
    assert seconds > 0
    return loaded, stats


def test_redirect_reaches_target_representation_when_unconstrained(setup):
    """With every direction free (P = I) and lambda -> 0, z(s) lands exactly on v* = z(s')."""
    loaded, stats = setup
    config = make_config(
        layers=[2],
        lam=1e-6,
        threshold=1e9,
        prefixes=[""],
        plain_templates=["{s}."],
        redirect="a random person",
    )
    _, target = _representations(loaded, "a random person", 2)
    _, before = _representations(loaded, "Harry Potter", 2)
    apply_rocr(loaded, ["Harry Potter"], config, stats)
    _, after = _representations(loaded, "Harry Potter", 2)
    assert (before - target).norm() > 1.0
    torch.testing.assert_close(after, target, atol=2e-3, rtol=2e-3)


def test_residual_moves_by_dense_solution(setup):
    """With the real null space, the output change at each key equals X^T k from a dense float64 solve."""
    loaded, stats = setup
    threshold = float(stats[2].eigenvalues.median())
    config = make_config(
        layers=[2], lam=1.0, threshold=threshold, prefixes=[""], plain_templates=["{s}."], concept_tokens=1
    )
    keys, before = _representations(loaded, "Harry Potter", 2)
    _, target = _representations(loaded, config.redirect, 2)
    result = apply_rocr(loaded, ["Harry Potter"], config, stats)
    _, after = _representations(loaded, "Harry Potter", 2)

    k = keys.T.double()  # d_ff x 2 (chat, plain)
    r = (target - before).T.double()
    basis = stats[2].basis(threshold).double()
    p = basis @ basis.T
    x = torch.linalg.solve(p @ k @ k.T + torch.eye(k.shape[0], dtype=torch.float64), p @ k @ r.T)
    torch.testing.assert_close((after - before).double(), (x.T @ k).T, atol=1e-4, rtol=1e-3)
    torch.testing.assert_close(result.layer_edits[0].delta.double(), x.T, atol=1e-5, rtol=1e-4)
    moved = (after - before).norm(dim=1) / r.norm(dim=0)
    assert (moved > 0.05).all() and (moved < 1.0001).all()


def test_name_tokens_chosen_by_null_space_share(setup):
    """Token 0 (the last) is always edited; earlier ones only when their key is as specific."""
    from formless.rocr.edit import _specific_offsets

    loaded, stats = setup
    located = _canonical(loaded, "Harry Potter", False)
    n = located.n_concept_tokens
    assert n >= 2
    tokens = loaded.tokenizer.convert_ids_to_tokens(located.input_ids[located.first : located.position + 1])
    assert "".join(tokens).replace("Ġ", " ").strip() == "Harry Potter"
    threshold = float(stats[2].eigenvalues.median())
    for ratio, expected in ((0.0, list(range(n))), (1e6, [0])):
        config = make_config(layers=[2], token_specificity=ratio, threshold=threshold)
        assert _specific_offsets(loaded, located, n, stats, [2], config) == expected
    config = make_config(layers=[2], token_specificity=0.0, threshold=threshold)
    result = apply_rocr(loaded, ["Harry Potter"], config, stats)
    assert result.layer_edits[0].keys.shape[1] > 2  # more than the last token of each context group


def test_post_mlp_norm_architecture_moves_toward_target(tmp_path, corpus_file):
    """Gemma 2/3 add norm(W a) to the residual; the edit goes through that norm toward the target."""
    from tiny import save_tiny_model

    loaded = load_model(str(save_tiny_model("gemma3_text", tmp_path / "g")))
    assert loaded.adapter.post_mlp_norm_module(loaded.model, 2) is not None
    stats, _ = layer_statistics(
        loaded, [2], load_corpus(str(corpus_file)), max_tokens=1000, cache=tmp_path / "c"
    )
    config = make_config(
        layers=[2], lam=1e-6, threshold=1e9, prefixes=[""], plain_templates=["{s}."], concept_tokens=1
    )
    _, target = _representations(loaded, config.redirect, 2)
    _, before = _representations(loaded, "Harry Potter", 2)
    apply_rocr(loaded, ["Harry Potter"], config, stats)
    _, after = _representations(loaded, "Harry Potter", 2)
    gap_before = (before - target).norm(dim=1)
    gap_after = (after - target).norm(dim=1)
    # first-order through the norm: a large step toward v*, not all the way (measured ~0.6x of the gap)
    assert (gap_after < 0.75 * gap_before).all(), (gap_before, gap_after)
