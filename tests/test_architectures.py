"""Every supported architecture: located by its adapter, edited, saved, reloaded and undone."""

from __future__ import annotations

import pytest
import torch
from tiny import SUPPORTED, save_tiny_model

from formless.api import forget, make_config, undo
from formless.checkpoint import MANIFEST, ORIGINALS, read_manifest
from formless.errors import UnsupportedArchitectureError
from formless.models import load_model
from formless.models.loading import state_dict_hash


@pytest.mark.parametrize("arch", SUPPORTED)
def test_edit_save_reload_undo(arch, tmp_path, corpus_file, cache):
    base_dir = save_tiny_model(arch, tmp_path / "base")
    base = load_model(str(base_dir))
    d_model, d_ff = base.adapter.dims(base.model)
    assert (d_model, d_ff) == (32, 64)
    base_hash = base.weights_hash()
    config = make_config(corpus=str(corpus_file), stats_tokens=1000, layers=[1, 2], threshold=0.5)
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
    config = make_config(corpus=str(corpus_file), stats_tokens=1000, layers=[1, 2], threshold=0.5)
    forget("Harry Potter", model=str(tiny_dir), out=tmp_path / "one", config=config, cache=cache)
    first = load_model(str(tmp_path / "one")).weights_hash()
    forget("Albert Einstein", model=str(tmp_path / "one"), out=tmp_path / "two", config=config, cache=cache)
    manifest = read_manifest(tmp_path / "two")
    assert [m["concepts"] for m in manifest["previous_edits"]] == [["Harry Potter"]]
    from formless.checkpoint import read_keys

    assert read_keys(tmp_path / "two")[1].shape[1] == 2 * read_keys(tmp_path / "one")[1].shape[1]
    undo(tmp_path / "two", tmp_path / "back")
    assert load_model(str(tmp_path / "back")).weights_hash() == first
    assert read_manifest(tmp_path / "back")["concepts"] == [
        "Harry Potter"
    ]  # the first edit is still undoable
    assert (tmp_path / "back" / ORIGINALS).exists()


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
    config = make_config(corpus=str(corpus_file), stats_tokens=1000, layers=[1, 2], threshold=0.5)
    plain = forget("Harry Potter", model=str(tiny_dir), out=tmp_path / "a", config=config, cache=cache)
    mapped = forget(
        "Harry Potter", model=str(tiny_dir), out=tmp_path / "b", config=config, cache=cache, device_map="cpu"
    )
    assert mapped.manifest["edited_weights_hash"] == plain.manifest["edited_weights_hash"]
