"""The shared training loop: LoRA vs full fine-tuning parity, reference handling, the utility guard."""

from __future__ import annotations

import math

import pytest
import torch
from test_methods_losses import _double

from formless.methods.data import Example, collate
from formless.methods.losses import Reference, nll, sequence_logps
from formless.methods.registry import METHODS, make_method
from formless.methods.train import TrainConfig, lora_model, make_batches, train
from formless.models.loading import load_model

EXACT = 1e-9  # relative tolerance of an identity evaluated in float64 (see test_methods_losses)
EPS32 = torch.finfo(torch.float32).eps

FORGET = [
    Example("Tell me about Harry Potter.", "Harry Potter is a wizard who studies at Hogwarts.", True, "qa"),
    Example("Harry Potter studies at", "Hogwarts with Ron and Hermione.", False, "text"),
    Example("Who is Harry Potter?", "A wizard at Hogwarts.", True, "qa"),
    Example("Harry Potter is a", "wizard who studies at Hogwarts.", False, "text"),
]
RETAIN = [
    Example(
        "Tell me about Albert Einstein.", "He developed the theory of relativity in physics.", True, "qa"
    ),
    Example("The Eiffel Tower stands in", "Paris, the capital of France.", False, "text"),
    Example("Here is a fact about the moon:", "it orbits the Earth.", False, "text"),
    Example("Everyone knows that", "water is wet.", False, "text"),
]
FAST = dict(autocast=False, guard_every=0, batch_size=2)


pytestmark = pytest.mark.usefixtures("one_thread_module")  # tiny tensors: 1 thread is ~50x faster


def _forget_logp(model, tok) -> float:
    b = collate(tok, FORGET)
    with torch.no_grad():
        return float(
            sequence_logps(
                model(input_ids=b.input_ids, attention_mask=b.attention_mask).logits, b.labels
            ).sum()
        )


def _retain_nll(model, tok) -> float:
    b = collate(tok, RETAIN)
    with torch.no_grad():
        return float(nll(model(input_ids=b.input_ids, attention_mask=b.attention_mask).logits, b.labels))


def _logits(model, batch):
    with torch.no_grad():
        return model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits


@pytest.mark.parametrize("name", ["ga", "npo", "simnpo"])
def test_one_step_lowers_forget_log_prob(tiny, name):
    before = _forget_logp(tiny.model, tiny.tokenizer)
    config = TrainConfig(lora=False, steps=1, lr=1e-3, **{**FAST, "batch_size": 4})
    train(tiny, make_method(name, **({} if name == "ga" else {"retain_weight": 0})), FORGET, RETAIN, config)
    assert _forget_logp(tiny.model, tiny.tokenizer) < before - 1e-3


def test_retain_terms_protect_retain_data(tiny_dir):
    """Same forget steps; GD's retain NLL and KL's divergence must pull the retain loss back down."""
    config = TrainConfig(lora=False, steps=6, lr=3e-3, **FAST)
    after = {}
    for name in ("ga", "gd", "kl"):
        loaded = load_model(str(tiny_dir), device="cpu")
        train(loaded, name, FORGET, RETAIN, config)
        after[name] = _retain_nll(loaded.model, loaded.tokenizer)
    assert after["gd"] < after["ga"] and after["kl"] < after["ga"], after


def test_lora_reference_and_merge_are_exact(tiny, tmp_path):
    """Every claim here is an identity in exact arithmetic (B = 0 adds nothing; a disabled adapter is
    the base; x(W + sBA) = xW + s(xA)B), so it is checked in float64, where rounding is ~1e-16
    relative to the logits and a tolerance of 1e-9 of their size cannot be reached by rounding but
    is by any real difference (the moved adapter changes the logits by > 1e-3 of their size)."""
    base = _double(tiny.model)
    batch = collate(tiny.tokenizer, FORGET + RETAIN)
    expected = _logits(base, batch)
    assert expected.dtype == torch.float64
    tol = dict(rtol=EXACT, atol=EXACT * float(expected.abs().max()))
    peft = lora_model(_double(tiny.model), make_method("npo"), TrainConfig())
    torch.testing.assert_close(_logits(peft, batch), expected, **tol)  # step 0: B = 0
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in peft.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.1)
    moved = _logits(peft, batch)
    assert not torch.allclose(moved, expected, rtol=0, atol=1e-3 * float(expected.abs().max()))
    ref = Reference(peft, context=peft.disable_adapter)
    torch.testing.assert_close(ref.logits(batch), expected, **tol)
    torch.testing.assert_close(
        ref.sequence_logps(batch), sequence_logps(expected, batch.labels), rtol=EXACT, atol=0
    )
    merged = peft.merge_and_unload()
    assert not any("lora" in k for k in merged.state_dict())
    torch.testing.assert_close(_logits(merged, batch), moved, **tol)
    merged.save_pretrained(tmp_path / "m", safe_serialization=True)
    tiny.tokenizer.save_pretrained(tmp_path / "m")
    reloaded = load_model(str(tmp_path / "m"), device="cpu", dtype=torch.float64).model
    assert all(p.dtype == torch.float64 for p in reloaded.parameters())
    for key, value in merged.state_dict().items():  # saving and loading is bit for bit
        assert torch.equal(reloaded.state_dict()[key], value), key
    torch.testing.assert_close(_logits(_double(reloaded), batch), moved, **tol)


def test_lora_and_full_fine_tuning_both_forget(tiny_dir):
    for lora in (True, False):
        loaded = load_model(str(tiny_dir), device="cpu")
        before = _forget_logp(loaded.model, loaded.tokenizer)
        result = train(loaded, "ga", FORGET, RETAIN, TrainConfig(lora=lora, steps=4, lr=5e-3, **FAST))
        assert result.steps == 4 and not result.stopped_early
        assert _forget_logp(loaded.model, loaded.tokenizer) < before - 1e-2
        assert type(loaded.model).__name__ == "LlamaForCausalLM"  # merged: a plain checkpoint
        assert not any(p.requires_grad is False for p in loaded.model.parameters())  # flags restored


def test_full_fine_tuning_cached_reference_equals_frozen_copy(tiny_dir):
    histories = {}
    for reference in ("cache", "copy"):
        loaded = load_model(str(tiny_dir), device="cpu")
        seq_logps = abs(_forget_logp(loaded.model, loaded.tokenizer))  # summed over all sequences
        config = TrainConfig(lora=False, steps=3, lr=1e-3, reference=reference, **FAST)
        result = train(loaded, "npo", FORGET, RETAIN, config)
        histories[reference] = [r for r in result.history if "loss" in r]
    assert [r["loss"] for r in histories["cache"]] == pytest.approx(
        [r["loss"] for r in histories["copy"]], rel=1e-5
    )
    first = histories["cache"][0]  # pi_theta = pi_ref at step 0: -(2/beta) log sigmoid(0) = (2/beta) log 2
    # the two log-probs are float32 sums of n token terms, so even if they were computed in different
    # orders they would agree to n * eps * (sum of |terms|); d npo / d log_ratio = 2 sigmoid(0) = 1
    n = int(collate(loaded.tokenizer, FORGET).target_mask.sum(-1).max())
    bound = n * EPS32 * seq_logps
    assert 0 < bound < 0.01
    assert first["log_ratio"] == pytest.approx(0.0, abs=bound)
    assert first["npo"] == pytest.approx(20 * math.log(2), abs=bound)
    assert histories["cache"][-1]["log_ratio"] < 0


def test_utility_guard_stops_a_too_high_learning_rate(tiny):
    start = _retain_nll(tiny.model, tiny.tokenizer)
    config = TrainConfig(lora=False, steps=40, lr=0.2, guard_every=1, guard_factor=1.5, autocast=False)
    result = train(tiny, "ga", FORGET, RETAIN, config)
    assert result.stopped_early and result.steps < 40
    guards = [r for r in result.history if r.get("guard")]
    assert guards[-1]["stopped"] and guards[-1]["retain_nll"] > 1.5 * guards[0]["retain_nll"]
    assert result.restored_step == result.steps - 1
    assert _retain_nll(tiny.model, tiny.tokenizer) <= 1.5 * start  # weights of the last good check


@pytest.mark.parametrize("name", sorted(METHODS))
@pytest.mark.parametrize("lora", [True, False])
def test_every_method_trains_with_both_modes(tiny, name, lora):
    result = train(tiny, name, FORGET, RETAIN, TrainConfig(lora=lora, steps=2, lr=1e-3, **FAST))
    rows = [r for r in result.history if "loss" in r]
    assert len(rows) == 2 and all(torch.isfinite(torch.tensor(r["loss"])) for r in rows)


def test_rmu_trains_only_its_mlp_layers(tiny):
    method = make_method("rmu")
    assert method.target_modules(tiny.model) == [f"model.layers.{i}.mlp.down_proj" for i in (0,)]
    method = make_method("rmu", layer=2)
    assert method.target_modules(tiny.model) == [f"model.layers.{i}.mlp.down_proj" for i in (0, 1, 2)]
    batches = make_batches(tiny.tokenizer, FORGET, 2, "forget", 0, 256)
    norms = []
    for b in batches:  # the reference's hidden norm at layer 2 on positions that predict a target token
        with torch.no_grad():
            h = tiny.model(input_ids=b.input_ids, output_hidden_states=True).hidden_states[3][:, :-1]
        norms.append(h.norm(dim=-1)[b.target_mask])
    expected = 6.5 * float(torch.cat(norms).mean())
    before = {k: v.clone() for k, v in tiny.model.state_dict().items()}
    result = train(tiny, method, FORGET, RETAIN, TrainConfig(steps=2, **FAST))  # default: no LoRA
    assert result.reference == "cache" and result.method["name"] == "rmu"
    changed = {k for k, v in tiny.model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed == {f"model.layers.{i}.mlp.down_proj.weight" for i in (0, 1, 2)}
    # c u: a non-negative direction (U[0,1)^d, as in WMDP) of norm steering_scale x mean token norm
    assert method.control is not None and float(method.control.min()) >= 0
    assert float(method.control.norm()) == pytest.approx(expected, rel=1e-4)


def test_default_bf16_autocast_run_starts_at_the_reference(tiny):
    """Policy and reference run under the same autocast, so NPO's log ratio is exactly 0 at step 0."""
    result = train(tiny, None, FORGET, RETAIN, TrainConfig(steps=2, method_options={"beta": 0.2}))
    rows = [r for r in result.history if "loss" in r]
    assert rows[0]["log_ratio"] == 0.0 and rows[0]["npo"] == pytest.approx(10 * math.log(2), rel=1e-3)
    assert result.method["name"] == "npo" and result.method["beta"] == 0.2 and result.reference == "adapter"


def test_method_options_reach_the_method_and_its_record(tiny):
    config = TrainConfig(
        method="simnpo", method_options={"forget_weight": 0.125, "beta": 0.25}, steps=1, **FAST
    )
    result = train(tiny, None, FORGET, RETAIN, config)
    assert result.method == {
        "name": "simnpo",
        "beta": 0.25,
        "gamma": 0.0,
        "retain_weight": 1.0,
        "forget_weight": 0.125,
    }
    row = next(r for r in result.history if "loss" in r)
    assert row["simnpo"] > 1  # beta small enough that the forget term matters on the random model
    assert row["loss"] == pytest.approx(0.125 * row["simnpo"] + row["retain_nll"], rel=1e-6)


def test_auto_reference_caches_small_outputs_and_copies_large_ones(tiny_dir):
    many = [Example(ex.prompt + f" ({i})", ex.target, ex.chat, ex.source) for i in range(4) for ex in RETAIN]
    kinds = {}
    for name in ("npo", "kl"):
        loaded = load_model(str(tiny_dir), device="cpu")
        kinds[name] = train(loaded, name, FORGET, many, TrainConfig(lora=False, steps=1, **FAST)).reference
    assert kinds == {"npo": "cache", "kl": "copy"}  # KL's full-vocabulary logits outgrow the tiny model


def test_a_methods_tuned_lr_applies_only_in_the_mode_it_was_tuned_for():
    npo, rmu = make_method("npo"), make_method("rmu")
    assert TrainConfig().learning_rate(npo) == npo.default_lr  # LoRA, as tuned
    assert TrainConfig(lora=False).learning_rate(npo) == 1e-5  # full fine-tuning: not the LoRA value
    assert TrainConfig().learning_rate(rmu) == rmu.default_lr  # full weights, as tuned
    assert TrainConfig(lora=True).learning_rate(rmu) == 1e-4
    assert TrainConfig(lr=3e-3).learning_rate(npo) == 3e-3


class _Boom(RuntimeError):
    pass


@pytest.mark.parametrize("lora", [True, False])
def test_a_failed_run_leaves_the_model_exactly_as_it_was(tiny, lora):
    """An error mid-training (here from the progress callback, after two optimizer steps have moved
    the weights or the adapter) must not merge a half-trained adapter or keep half-trained weights."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    before = {k: v.clone() for k, v in tiny.model.state_dict().items()}
    flags = {n: p.requires_grad for n, p in tiny.model.named_parameters()}
    tiny.model.train()
    moved = []

    def progress(step, total, row):
        if lora:  # the adapter (injected into tiny.model's modules) has left B = 0
            moved.append(any(p.abs().max() > 0 for n, p in tiny.model.named_parameters() if "lora_B" in n))
        else:
            moved.append(any(not torch.equal(v, before[k]) for k, v in tiny.model.state_dict().items()))
        if step == 2:
            raise _Boom("injected failure")

    # the guard is on (it snapshots weights), but too loose to stop the run before the failure
    config = TrainConfig(lora=lora, steps=5, lr=1e-2, **{**FAST, "guard_every": 1, "guard_factor": 100})
    with pytest.raises(_Boom):
        train(tiny, "npo", FORGET, RETAIN, config, progress=progress)
    assert moved == [True, True]  # the failure came after training had really changed something
    model = tiny.model
    assert type(model).__name__ == "LlamaForCausalLM"
    assert not any(isinstance(m, BaseTunerLayer) for m in model.modules())
    after = model.state_dict()
    assert after.keys() == before.keys()
    for key, value in before.items():
        assert torch.equal(after[key], value), key  # bit for bit
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags and model.training
    # and the model trains normally afterwards
    result = train(tiny, "npo", FORGET, RETAIN, TrainConfig(lora=lora, steps=1, lr=1e-2, **FAST))
    assert result.steps == 1 and type(tiny.model).__name__ == "LlamaForCausalLM"
    assert any(not torch.equal(v, before[k]) for k, v in tiny.model.state_dict().items())
