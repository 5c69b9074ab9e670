"""Baselines behind `forget --method`: same checkpoint + manifest as ROCR, exact undo, ICU template."""

from __future__ import annotations

import pytest
from test_cli_errors import run

from formless.api import forget, undo
from formless.methods import TrainConfig
from formless.methods.icu import icu_template, instruction
from formless.methods.unlearn import corpus_retain
from formless.models import load_model
from formless.models.prompts import render


@pytest.mark.parametrize("method", ["ga", "npo"])
def test_trained_baseline_writes_checkpoint_and_undoes_exactly(tiny_dir, tmp_path, method):
    base = load_model(str(tiny_dir))
    base_hash = base.weights_hash()
    config = TrainConfig(steps=2, batch_size=2, lr=1e-2)
    outcome = forget(
        "Harry Potter", model=str(tiny_dir), out=tmp_path / "m", method=method, train_config=config
    )
    m = outcome.manifest
    assert m["method"] == method and m["base_model"]["weights_hash"] == base_hash
    assert m["edited_weights_hash"] != base_hash and m["changed_tensors"] > 0
    assert m["training"]["steps"] == 2 and m["training"]["forget_examples"] > 0
    edited = load_model(str(tmp_path / "m"))
    assert edited.weights_hash() == m["edited_weights_hash"]
    undo(tmp_path / "m", tmp_path / "u")
    assert load_model(str(tmp_path / "u")).weights_hash() == base_hash


def test_icu_puts_the_instruction_in_the_chat_template_only(tiny_dir, tmp_path):
    outcome = forget("Harry Potter", model=str(tiny_dir), out=tmp_path / "icu", method="icu")
    assert outcome.manifest["changed_tensors"] == 0
    edited = load_model(str(tmp_path / "icu"))
    text = instruction(["Harry Potter"])
    assert text in render(edited.tokenizer, "Who wrote it?", chat=True)
    assert text not in render(edited.tokenizer, "Who wrote it?", chat=False)
    undo(tmp_path / "icu", tmp_path / "u")
    assert text not in render(load_model(str(tmp_path / "u")).tokenizer, "Who wrote it?", chat=True)
    # a user-given system message is left alone
    tok = edited.tokenizer
    own = tok.apply_chat_template(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}], tokenize=False
    )
    assert text not in own and "Be brief." in own
    with pytest.raises(Exception, match="needs a chat template"):
        icu_template(None, text)


def test_retain_data_is_held_out_from_the_audit():
    retain = corpus_retain()
    assert len(retain) >= 32 and all(ex.source.startswith("corpus:") for ex in retain)


def test_cli_method_errors(tiny_dir, tmp_path, capsys):
    code, _, err = run(
        ["forget", "Harry Potter", "--model", tiny_dir, "--out", tmp_path / "x", "--method", "magic"], capsys
    )
    assert code == 2 and "unknown method 'magic'" in err
    code, _, err = run(
        [
            "forget",
            "Harry Potter",
            "--model",
            tiny_dir,
            "--out",
            tmp_path / "y",
            "--method",
            "ga",
            "--train-form",
            "poems",
        ],
        capsys,
    )
    assert code == 2 and "--train-form" in err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
