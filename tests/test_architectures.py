"""Every supported architecture: located by its adapter, redirected, edited, saved, reloaded and undone."""

from __future__ import annotations

import pytest
import torch
from tiny import SUPPORTED, save_tiny_model

from formless.api import forget, make_config, undo
from formless.checkpoint import MANIFEST, ORIGINALS, read_manifest
from formless.errors import UnsupportedArchitectureError
from formless.models import adapter_for, load_model, supported_architectures
from formless.models.loading import state_dict_hash
from formless.rocr.activations import collect
from formless.rocr.corpus import load_corpus
from formless.rocr.edit import _canonical, apply_rocr
from formless.rocr.stats import layer_statistics

pytestmark = pytest.mark.usefixtures("one_thread_module")

GROUPS = ("chat", "plain")  # the tiny tokenizer has a chat template: one key column per group
# Random tiny weights with a wide null space give updates near their weights' norm: these tests check
# the maths and the plumbing, not the size guard (tested in test_edit.py).
UNGUARDED = {"max_relative_norm": 1e9}
# float32 roundoff is 6e-8; a handful of operations stay far below this share of the magnitudes
FLOAT_RTOL = 1e-5


@torch.no_grad()
def _reads(loaded, concept: str, layer: int):
    """At the concept's last token, per group: the block output, what the MLP writes into the
    residual stream (the projection output, through the post-MLP norm where the adapter names one)
    and the key (the projection input), all read by the project's hook utility."""
    projections: dict[int, torch.Tensor] = {}
    keys, outs = collect(
        loaded,
        [_canonical(loaded, concept, g) for g in GROUPS],
        key_layers=[layer],
        output_layers=[layer],
        projection_layers=[layer],
        projections=projections,
    )
    norm = loaded.adapter.post_mlp_norm_module(loaded.model, layer)
    written = projections[layer] if norm is None else norm(projections[layer]).float()
    return outs[layer], written, keys[layer]


def _rows(x: torch.Tensor) -> torch.Tensor:
    return x.norm(dim=1)


@pytest.mark.parametrize("arch", SUPPORTED)
def test_edit_redirects_the_key_to_the_target(arch, tmp_path, corpus_file):
    """The edited MLP writes what moves the concept's block output to the redirect's, v*.

    One layer, no null-space constraint, lam ~ 0 and the canonical prompts as the only contexts:
    the edit must add r = v* - z to the block output z at the concept's last token. Where the MLP
    output is added as it is, the block output becomes v*. Where a norm sits in between (Gemma 2/3,
    OLMo 2) its output c always has rms(c / g) = 1 for its gains g, so only c's direction can be
    chosen: it must be that of the wanted y = c + r. The model's norm gains and biases are random,
    so that a norm the edit skips is not hidden by g = 1 everywhere.
    """
    layer = 2
    loaded = load_model(str(save_tiny_model(arch, tmp_path / arch, random_vectors=True)))
    stats, _ = layer_statistics(
        loaded, [layer], load_corpus(str(corpus_file)), max_tokens=1000, cache=tmp_path / "cache"
    )
    lam = 1e-6
    config = make_config(
        layers=[layer],
        lam=lam,
        threshold=1e9,
        prefixes=[""],
        plain_templates=["{s}."],
        concept_tokens=1,
        redirect="a random person",
        **UNGUARDED,
    )
    v_star, _, _ = _reads(loaded, config.redirect, layer)
    z_before, c_before, keys = _reads(loaded, "Harry Potter", layer)
    apply_rocr(loaded, ["Harry Potter"], config, stats)
    z_after, c_after, _ = _reads(loaded, "Harry Potter", layer)

    # Only the MLP's contribution changed, and the adapter says where it enters the residual stream:
    # a post-MLP norm missing from the adapter breaks this by O(1).
    scale = _rows(z_before) + _rows(z_after) + _rows(c_before) + _rows(c_after)
    mismatch = _rows((z_after - z_before) - (c_after - c_before))
    assert (mismatch <= FLOAT_RTOL * scale).all(), (mismatch, scale)

    r = v_star - z_before
    y = c_before + r
    gap_before, gap_after = _rows(r), _rows(v_star - z_after)
    assert (gap_after < gap_before).all(), (gap_before, gap_after)
    norm = loaded.adapter.post_mlp_norm_module(loaded.model, layer)
    if norm is None:
        # v* exactly, up to the ridge's share lam / (lam + eig_min(K^T K)) of r and roundoff that
        # the keys' conditioning can amplify
        eig = torch.linalg.eigvalsh((keys @ keys.T).double())
        tol = r.norm() * lam / (lam + eig[0]) + FLOAT_RTOL * eig[-1] / eig[0] * (
            _rows(v_star) + _rows(z_before)
        )
        assert (gap_after <= tol).all(), (arch, gap_before, gap_after, tol)
    else:
        # The norm's output is g * u with rms(u) = 1 whatever its input: the edit must land on the
        # point of that surface closest to y. Found here independently: L-BFGS over v, u = v / rms(v).
        with torch.no_grad():
            gain = norm(torch.ones(1, y.shape[1])).float()[0].double()
        v = (y.double() / gain).clone().requires_grad_(True)
        opt = torch.optim.LBFGS([v], max_iter=500, tolerance_grad=1e-14, tolerance_change=1e-16)

        def loss():
            opt.zero_grad()
            u = v / v.pow(2).mean(1, keepdim=True).sqrt()
            out = (gain * u - y.double()).pow(2).sum()
            out.backward()
            return out

        opt.step(loss)
        with torch.no_grad():
            best = gain * v / v.pow(2).mean(1, keepdim=True).sqrt()
        reach_best = _rows(best - y.double())
        reach = _rows((c_after - y).double())
        # the edit reaches the optimum up to float32 roundoff relative to the magnitudes involved
        tol = 1e-4 * (_rows(y.double()) + _rows(best))
        assert (reach <= reach_best + tol).all(), (arch, reach, reach_best)
        assert (_rows(c_after.double() - best) <= 10 * tol).all(), (arch, c_after, best)


@pytest.mark.parametrize("arch", SUPPORTED)
def test_edit_save_reload_undo(arch, tmp_path, corpus_file, cache):
    base_dir = save_tiny_model(arch, tmp_path / "base")
    base = load_model(str(base_dir))
    d_model, d_ff = base.adapter.dims(base.model)
    assert (d_model, d_ff) == (32, 64)
    base_hash = base.weights_hash()
    config = make_config(
        corpus=str(corpus_file), stats_tokens=1000, layers=[1, 2], threshold=0.5, **UNGUARDED
    )
    outcome = forget(
        ["Harry Potter", "Albert Einstein"],
        model=str(base_dir),
        out=tmp_path / "edited",
        config=config,
        cache=cache,
    )
    manifest = read_manifest(tmp_path / "edited")
    assert manifest["base_model"]["weights_hash"] == base_hash
    assert manifest["layers"] == [1, 2]
    assert all(u["update_norm"] > 0 for u in manifest["layer_updates"])

    edited = load_model(str(tmp_path / "edited"))
    for layer in (1, 2):
        w_base = base.adapter.weight(base.model, layer)
        w_edit = edited.adapter.weight(edited.model, layer)
        torch.testing.assert_close(w_edit, outcome.loaded.adapter.weight(outcome.loaded.model, layer))
        assert not torch.equal(w_edit, w_base)
    untouched = base.adapter.weight(base.model, 0)
    assert torch.equal(edited.adapter.weight(edited.model, 0), untouched)
    assert edited.weights_hash() == manifest["edited_weights_hash"]

    undo(tmp_path / "edited", tmp_path / "restored")
    restored = load_model(str(tmp_path / "restored"))
    assert restored.weights_hash() == base_hash
    assert not (tmp_path / "restored" / MANIFEST).exists()


def test_sequential_edit_keeps_history_and_undo_steps_back(tmp_path, tiny_dir, corpus_file, cache):
    config = make_config(
        corpus=str(corpus_file), stats_tokens=1000, layers=[1, 2], threshold=0.5, **UNGUARDED
    )
    forget("Harry Potter", model=str(tiny_dir), out=tmp_path / "one", config=config, cache=cache)
    first = load_model(str(tmp_path / "one")).weights_hash()
    forget("Albert Einstein", model=str(tmp_path / "one"), out=tmp_path / "two", config=config, cache=cache)
    manifest = read_manifest(tmp_path / "two")
    assert [m["concepts"] for m in manifest["previous_edits"]] == [["Harry Potter"]]
    from formless.checkpoint import read_keys

    # the first edit's key columns come first, verbatim, then the second edit's own
    one, two = read_keys(tmp_path / "one")[1], read_keys(tmp_path / "two")[1]
    assert two.shape[1] > one.shape[1]
    torch.testing.assert_close(two[:, : one.shape[1]], one, rtol=0, atol=0)
    undo(tmp_path / "two", tmp_path / "back")
    assert load_model(str(tmp_path / "back")).weights_hash() == first
    assert read_manifest(tmp_path / "back")["concepts"] == [
        "Harry Potter"
    ]  # the first edit is still undoable
    assert (tmp_path / "back" / ORIGINALS).exists()


def test_every_supported_model_type_has_a_tiny_model():
    """New rows of the adapter table are tested above; the multimodal gemma3 has its own test."""
    assert set(supported_architectures()) - {"gemma3"} == set(SUPPORTED)


def test_multimodal_gemma3_layout():
    """Gemma3ForConditionalGeneration keeps the text decoder under model.language_model."""
    import transformers

    text = dict(
        vocab_size=400,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
    )
    vision = dict(
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=28,
        patch_size=14,
    )
    config = transformers.Gemma3Config(text_config=text, vision_config=vision, mm_tokens_per_image=4)
    with torch.device("meta"):  # the layout only: no weights
        model = transformers.AutoModelForCausalLM.from_config(config)
    adapter = adapter_for(model)
    assert adapter.num_layers(model) == 2
    assert adapter.dims(model) == (32, 64)
    norm = adapter.post_mlp_norm_module(model, 1)
    assert norm is model.model.language_model.layers[1].post_feedforward_layernorm


def test_unsupported_architecture_names_supported_ones(tmp_path):
    save_tiny_model("opt", tmp_path / "opt")
    with pytest.raises(UnsupportedArchitectureError, match="'opt' is not supported.*llama"):
        load_model(str(tmp_path / "opt"))


def test_hash_changes_with_any_weight(tiny_dir):
    loaded = load_model(str(tiny_dir))
    h = state_dict_hash(loaded.model.state_dict())
    with torch.no_grad():
        loaded.adapter.weight(loaded.model, 0)[0, 0] += 1e-6
    assert state_dict_hash(loaded.model.state_dict()) != h


def test_device_map_load_gives_the_same_edit(tmp_path, tiny_dir, corpus_file, cache):
    """The accelerate path (device_map) used for models spread over GPUs edits exactly like the plain load."""
    config = make_config(
        corpus=str(corpus_file), stats_tokens=1000, layers=[1, 2], threshold=0.5, **UNGUARDED
    )
    plain = forget("Harry Potter", model=str(tiny_dir), out=tmp_path / "a", config=config, cache=cache)
    mapped = forget(
        "Harry Potter", model=str(tiny_dir), out=tmp_path / "b", config=config, cache=cache, device_map="cpu"
    )
    assert mapped.manifest["edited_weights_hash"] == plain.manifest["edited_weights_hash"]
