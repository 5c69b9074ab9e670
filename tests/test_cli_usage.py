"""Usage errors through the installed ``formless`` entry point, as a user meets them in a shell.

typer vendors its own click, so a test runner calling ``main()`` could pass while the console script
prints a traceback: these run the real executable in a subprocess.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def _entry_point() -> str:
    beside = Path(sys.executable).with_name("formless")
    found = str(beside) if beside.exists() else shutil.which("formless")
    if found is None:
        pytest.fail("the `formless` console script is not installed next to this Python (pip install .)")
    return found


def formless(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "FORMLESS_CACHE": str(cwd / "cache"), "COLUMNS": "100"}
    return subprocess.run(
        [_entry_point(), *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["forget", "Harry Potter", "--redirect-to", "x"], "No such option: --redirect-to"),
        (["forget", "Harry Potter", "--out", "o", "--stength", "2"], "No such option: --stength"),
        (["forget"], "Missing argument"),
        (["audti", "x"], "No such command 'audti'"),
        (["audit", "x", "--quantise", "8"], "No such option: --quantise"),
        (["forget", "Harry Potter", "--out", "o", "--steps", "many"], "Invalid value for '--steps'"),
    ],
)
def test_usage_errors_print_usage_and_exit_2(args, message, tmp_path):
    result = formless(*args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stderr.startswith("Usage: formless"), result.stderr
    assert message in result.stderr
    assert not (tmp_path / "o").exists()


def test_close_typo_suggests_the_option(tmp_path):
    result = formless("forget", "Harry Potter", "--redirect-to", "x", cwd=tmp_path)
    assert "Possible options: --redirect" in result.stderr


def test_formless_error_is_one_line(tmp_path):
    result = formless("audit", "--model", str(tmp_path / "missing"), cwd=tmp_path)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr


def test_audit_takes_model_as_option_or_argument_but_not_two(tmp_path):
    both = formless("audit", "a", "--model", "b", cwd=tmp_path)
    assert both.returncode == 2 and "two models given" in both.stderr
    neither = formless("audit", cwd=tmp_path)
    assert neither.returncode == 2 and "no model to audit" in neither.stderr
    # -m reaches the same path as the argument: both stop at the missing concept, not at parsing
    for args in (["audit", "-m", str(tmp_path)], ["audit", str(tmp_path)]):
        result = formless(*args, cwd=tmp_path)
        assert result.returncode == 2 and "no concept to audit" in result.stderr, result.stderr


def test_help_exits_zero(tmp_path):
    result = formless("forget", "--help", cwd=tmp_path)
    assert result.returncode == 0 and "--strength" in result.stdout


def test_unknown_preset_is_one_line_naming_the_presets(tmp_path):
    result = formless("forget", "Harry Potter", "--out", "o", "--preset", "papper", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "unknown preset 'papper'; choose one of: formless, paper" in lines[0]
    assert not (tmp_path / "o").exists()


def test_paper_preset_end_to_end_on_a_tiny_model(tmp_path, tiny_dir, corpus_file):
    """`--preset paper`: one key column per layer (chat turns only, the name's last token only),
    recorded in the manifest; an option given as well is recorded as an override."""
    import json

    from formless.checkpoint import read_keys

    args = ["--model", str(tiny_dir), "--corpus", str(corpus_file), "--stats-tokens", "1000"]
    result = formless(
        "forget", "Harry Potter", "--out", "o", "--preset", "paper", "--layers", "1,2", *args, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert "ROCR (preset paper): Harry Potter" in result.stdout
    manifest = json.loads((tmp_path / "o" / "formless_manifest.json").read_text())
    assert manifest["preset"] == {"name": "paper", "overridden": ["corpus", "stats_tokens"]}
    assert manifest["hyperparameters"]["key_groups"] == ["chat"]
    assert manifest["hyperparameters"]["concept_tokens"] == 1
    assert {layer: k.shape[1] for layer, k in read_keys(tmp_path / "o").items()} == {1: 1, 2: 1}


def test_kept_names_reach_the_edit_and_its_manifest(tmp_path, tiny_dir, corpus_file):
    """`--keep NAME` (repeatable) and `--keep-famous`: the names enter the edit's solve and the
    manifest records them as overrides; with a baseline they are a one-line usage error."""
    import json

    args = ["--model", str(tiny_dir), "--corpus", str(corpus_file), "--stats-tokens", "1000", "--layers", "2"]
    result = formless(
        "forget", "Harry Potter", "--out", "o", "--keep", "Albert Einstein", "--keep", "Eiffel Tower",
        "--keep-famous", *args, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    manifest = json.loads((tmp_path / "o" / "formless_manifest.json").read_text())
    assert manifest["hyperparameters"]["protected"] == ["Albert Einstein", "Eiffel Tower"]
    assert manifest["hyperparameters"]["protect_famous"] is True
    assert {"protected", "protect_famous"} <= set(manifest["preset"]["overridden"])
    wrong = formless(
        "forget", "Harry Potter", "--out", "b", "--method", "npo", "--keep", "X", *args, cwd=tmp_path
    )
    lines = [line for line in wrong.stderr.splitlines() if line.strip()]
    assert wrong.returncode == 2 and len(lines) == 1 and "--keep" in lines[0] and "--method npo" in lines[0]
    assert not (tmp_path / "b").exists()


def test_grid_option_reaches_the_manifest_and_bad_values_are_usage_errors(tmp_path, tiny_dir, corpus_file):
    """`--grid off` is recorded as an override; a value other than auto/off, or --grid with a
    baseline, is a one-line usage error that writes nothing. (A tiny random model sits on no
    quantization grid, so `auto` leaves its update as solved: no grid in the manifest.)"""
    import json

    args = ["--model", str(tiny_dir), "--corpus", str(corpus_file), "--stats-tokens", "1000", "--layers", "2"]
    result = formless("forget", "Harry Potter", "--out", "o", "--grid", "off", *args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    manifest = json.loads((tmp_path / "o" / "formless_manifest.json").read_text())
    assert manifest["hyperparameters"]["grid"] == "off" and "grid" in manifest["preset"]["overridden"]
    auto = formless("forget", "Harry Potter", "--out", "a", *args, cwd=tmp_path)
    assert auto.returncode == 0, auto.stderr
    updates = json.loads((tmp_path / "a" / "formless_manifest.json").read_text())["layer_updates"]
    assert updates and not any("grid" in u for u in updates)
    for bad in (["--grid", "sometimes"], ["--grid", "off", "--method", "npo"]):
        wrong = formless("forget", "Harry Potter", "--out", "b", *bad, *args, cwd=tmp_path)
        lines = [line for line in wrong.stderr.splitlines() if line.strip()]
        assert wrong.returncode == 2 and len(lines) == 1 and "grid" in lines[0], wrong.stderr
        assert not (tmp_path / "b").exists()
