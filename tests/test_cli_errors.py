"""Bad input: one actionable line on stderr, exit code != 0, nothing half-written."""

from __future__ import annotations

import json
import logging
import sys

import pytest
from tiny import save_tiny_model, tiny_tokenizer

from formless.cli import main


def run(argv, capsys):
    capsys.readouterr()  # drop whatever the test's own set-up printed
    old = sys.argv
    sys.argv = ["formless", *map(str, argv)]
    try:
        with pytest.raises(SystemExit) as exc:
            main()
            raise SystemExit(0)
    finally:
        sys.argv = old
    captured = capsys.readouterr()
    return exc.value.code, captured.out, captured.err


def _pickle_only(root):
    """A checkpoint whose weights are only a pickled .bin: refused, never unpickled."""
    model = save_tiny_model("llama", root / "bin")
    for f in model.glob("*.safetensors"):
        f.unlink()
    (model / "pytorch_model.bin").write_bytes(b"not even a pickle")
    return model


def forget_args(model, out, corpus, cache, *extra):
    return [
        "forget",
        *extra,
        "--model",
        model,
        "--out",
        out,
        "--corpus",
        corpus,
        "--stats-tokens",
        1000,
        "--layers",
        "1,2",
        "--cache-dir",
        cache,
    ]


def assert_one_line_error(code, err, pattern):
    assert code != 0
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error:")
    assert pattern in lines[0], lines[0]
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("concept", "pattern"),
    [
        ("   ", "empty or blank"),
        ("", "empty or blank"),
        ("an unknown name", "is the concept itself"),
        ("Orlin Vasquire", "is the concept itself"),
    ],
)
def test_bad_concepts(concept, pattern, tiny_dir, corpus_file, tmp_path, capsys):
    out = tmp_path / "out"
    code, _, err = run(forget_args(tiny_dir, out, corpus_file, tmp_path / "c", concept), capsys)
    assert_one_line_error(code, err, pattern)
    assert not out.exists()


def test_redirect_equal_to_target_case_insensitive(tiny_dir, corpus_file, tmp_path, capsys):
    args = forget_args(tiny_dir, tmp_path / "out", corpus_file, tmp_path / "c", "Harry Potter")
    code, _, err = run([*args, "--redirect", "harry  potter"], capsys)
    assert_one_line_error(code, err, "is the concept itself")
    assert not (tmp_path / "out").exists()


def test_concept_the_prompt_cannot_locate(tmp_path, corpus_file, capsys):
    model = save_tiny_model("llama", tmp_path / "upper")
    tok = tiny_tokenizer()
    tok.chat_template = "{% for m in messages %}{{ m['content'] | upper }}\n{% endfor %}"
    tok.save_pretrained(model)  # a chat template that rewrites the user's text
    code, _, err = run(
        forget_args(model, tmp_path / "out", corpus_file, tmp_path / "c", "Harry Potter"), capsys
    )
    assert_one_line_error(code, err, "does not occur in the prompt")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("make", "pattern"),
    [
        (lambda p: p / "missing", "does not exist"),
        (lambda p: (p / "empty").mkdir() or p / "empty", "holds no Hugging Face model"),
        (lambda p: save_tiny_model("opt", p / "opt"), "'opt' is not supported"),
        (lambda p: "not a model!", "is not a built-in model"),
        (lambda p: _pickle_only(p), "does not unpickle"),
    ],
)
def test_bad_models(make, pattern, tmp_path, corpus_file, capsys):
    model = make(tmp_path)
    code, _, err = run(
        forget_args(model, tmp_path / "out", corpus_file, tmp_path / "c", "Harry Potter"), capsys
    )
    assert_one_line_error(code, err, pattern)
    assert not (tmp_path / "out").exists()


def test_existing_output_refused_unless_forced(tiny_dir, corpus_file, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    args = forget_args(tiny_dir, out, corpus_file, tmp_path / "c", "Harry Potter")
    code, _, err = run(args, capsys)
    assert_one_line_error(code, err, "already exists")
    assert (out / "keep.txt").read_text() == "mine"
    code, stdout, err = run([*args, "--force"], capsys)
    assert code == 0, err
    assert json.loads((out / "formless_manifest.json").read_text())["concepts"] == ["Harry Potter"]
    assert not (out / "keep.txt").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]  # no temporary leftovers


def test_corrupt_statistics_cache_is_detected_and_rebuilt(tiny_dir, corpus_file, tmp_path, capsys, caplog):
    cache = tmp_path / "c"
    code, _, err = run(forget_args(tiny_dir, tmp_path / "a", corpus_file, cache, "Harry Potter"), capsys)
    assert code == 0, err
    entries = sorted(cache.glob("stats/*/*/layer_*.safetensors"))
    assert len(entries) == 2
    entries[0].write_bytes(b"\x00garbage")  # unreadable
    raw = bytearray(entries[1].read_bytes())
    raw[-7] ^= 0xFF  # a flipped byte inside the tensor data: readable, but the checksum fails
    entries[1].write_bytes(bytes(raw))
    with caplog.at_level(logging.WARNING):
        code, _, err = run(forget_args(tiny_dir, tmp_path / "b", corpus_file, cache, "Harry Potter"), capsys)
    assert code == 0, err
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "is unreadable" in messages and "failed its checks" in messages and "rebuilding" in messages
    first = json.loads((tmp_path / "a" / "formless_manifest.json").read_text())
    second = json.loads((tmp_path / "b" / "formless_manifest.json").read_text())
    assert second["seconds"]["statistics"] > 0
    assert second["edited_weights_hash"] == first["edited_weights_hash"]  # rebuilt stats are the same


def test_invalid_layers_option(tiny_dir, corpus_file, tmp_path, capsys):
    args = forget_args(tiny_dir, tmp_path / "out", corpus_file, tmp_path / "c", "Harry Potter")
    code, _, err = run([*args[:-4], "--layers", "1,3", *args[-2:]], capsys)
    assert_one_line_error(code, err, "contiguous")
    code, _, err = run([*args[:-4], "--layers", "7-9", *args[-2:]], capsys)
    assert_one_line_error(code, err, "does not exist")
