"""ROCR on a model split across devices: the cross-device paths in formless/rocr really run.

No second accelerator here, so the tiny model is dispatched by accelerate over the two kinds of
place a big model's layers end up in: "cpu" (executed where they sit) and "disk" (offloaded: the
parameter is a meta tensor, the weight lives in the hook's offload map and is brought in at each
forward). The edited layer 2 is offloaded, so the edit must reach the offloaded weight; with a
meta parameter, ``weight.add_`` silently does nothing (and reading its norm raises).
"""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from formless.api import make_config
from formless.models import load_model
from formless.models.adapters import adapter_for
from formless.models.loading import LoadedModel
from formless.rocr import stats as rocr_stats
from formless.rocr.corpus import load_corpus
from formless.rocr.edit import apply_rocr

MAP = {
    "model.embed_tokens": "cpu",
    "model.rotary_emb": "cpu",
    "model.layers.0": "cpu",
    "model.layers.1": "cpu",
    "model.layers.2": "disk",
    "model.layers.3": "disk",
    "model.norm": "cpu",
    "lm_head": "cpu",
}
LAYERS = [1, 2]


def _sharded(tiny_dir, offload) -> LoadedModel:
    plain = load_model(str(tiny_dir), device="cpu")
    model = AutoModelForCausalLM.from_pretrained(
        str(tiny_dir), dtype=torch.float32, device_map=MAP, offload_folder=str(offload)
    ).eval()
    return LoadedModel(model, plain.tokenizer, str(tiny_dir), "local", str(tiny_dir), adapter_for(model))


def _offloaded_weight(loaded: LoadedModel, layer: int) -> torch.Tensor:
    module = loaded.adapter.mlp_out_module(loaded.model, layer)
    assert module.weight.device.type == "meta", "layer is not offloaded: the test would prove nothing"
    return module._hf_hook.weights_map["weight"]


def _logits(loaded: LoadedModel) -> torch.Tensor:
    ids = loaded.tokenizer("Harry Potter studies at Hogwarts.", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        return loaded.model(input_ids=ids).logits.float().cpu()


@pytest.mark.usefixtures("one_thread_module")
def test_sharded_model_gets_the_unsharded_statistics_and_edit(tiny_dir, corpus_file, tmp_path):
    corpus = load_corpus(str(corpus_file))
    # a random tiny model gets updates near its weights' norm: the guard is for real models
    config = make_config(layers=LAYERS, threshold=0.5, max_relative_norm=1e9)
    plain = load_model(str(tiny_dir), device="cpu")
    sharded = _sharded(tiny_dir, tmp_path / "offload")
    torch.testing.assert_close(_logits(sharded), _logits(plain))  # the dispatch itself is faithful
    before = _offloaded_weight(sharded, 2).clone()
    stats_plain = rocr_stats._compute(plain, LAYERS, corpus, max_tokens=1000)
    stats_sharded = rocr_stats._compute(sharded, LAYERS, corpus, max_tokens=1000)
    for layer in LAYERS:
        torch.testing.assert_close(stats_sharded[layer].eigenvalues, stats_plain[layer].eigenvalues)
    a = apply_rocr(plain, ["Harry Potter"], config, stats_plain)
    b = apply_rocr(sharded, ["Harry Potter"], config, stats_plain)
    for ea, eb in zip(a.layer_edits, b.layer_edits):
        assert ea.delta.norm() > 0
        torch.testing.assert_close(eb.delta, ea.delta, rtol=1e-5, atol=1e-7)
        assert eb.relative_norm == pytest.approx(ea.relative_norm, rel=1e-5)
    edited = _offloaded_weight(sharded, 2)
    assert not torch.equal(edited, before), "the offloaded weight did not change"
    torch.testing.assert_close(edited, plain.adapter.weight(plain.model, 2).detach(), rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(_logits(sharded), _logits(plain), rtol=1e-5, atol=1e-5)
