"""``--smoke``, shared by every benchmark: its own code path on a tiny random model, in seconds.

A smoke run checks that a benchmark still runs end to end and prints its figures; the figures of a
random model mean nothing. Unless ``--model`` names a checkpoint, it builds a tiny random Llama with
a chat template (``tests/tiny.py``, no downloads). It writes only under a temporary directory
(removed at exit) or to an output path given explicitly, and never into ``docs/``, where the
measured results live.
"""

from __future__ import annotations

import argparse
import atexit
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
DEFAULT_MODEL = "smollm2-135m-instruct"

_scratch: Path | None = None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--model`` (default: the default model, or a tiny random one with --smoke) and ``--smoke``."""
    parser.add_argument(
        "--model", default=None, help=f"default {DEFAULT_MODEL}; with --smoke a tiny random model"
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="same code path on a tiny random model with one concept and few probes/steps, in seconds "
        "(figures meaningless); writes only to a temporary directory or the output given",
    )


def scratch() -> Path:
    """This process's temporary directory, removed at exit."""
    global _scratch
    if _scratch is None:
        _scratch = Path(tempfile.mkdtemp(prefix="formless-smoke-"))
        atexit.register(shutil.rmtree, _scratch, True)
    return _scratch


def tiny_model() -> str:
    """A tiny random Llama checkpoint with a chat template, saved under the scratch directory."""
    spec = importlib.util.spec_from_file_location("formless_tiny_models", ROOT / "tests" / "tiny.py")
    if spec is None or spec.loader is None:
        raise SystemExit(f"--smoke needs {ROOT / 'tests' / 'tiny.py'} (a source checkout), or --model DIR")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return str(module.save_tiny_model("llama", scratch() / "tiny-llama"))


def resolve(args: argparse.Namespace) -> None:
    """Fill in ``args.model``: as given, else a tiny random model (--smoke) or the default model."""
    if args.model is None:
        args.model = tiny_model() if args.smoke else DEFAULT_MODEL
    if args.smoke:
        # a random model's ROCR updates are near its weights' norm: the guard is for real models
        os.environ.setdefault("FORMLESS_MAX_RELATIVE_NORM", "1e9")
        print(f"smoke run on {args.model}: checks the code path; the figures mean nothing", flush=True)


def output(args: argparse.Namespace, path: Path | str | None, name: str) -> Path | None:
    """Where a result file goes: ``path`` as given, but with --smoke never inside docs/ and, when not
    given, ``name`` under the scratch directory."""
    if not args.smoke:
        return Path(path) if path is not None else None
    if path is None:
        return scratch() / name
    path = Path(path)
    if path.resolve().is_relative_to(DOCS.resolve()):
        raise SystemExit(f"--smoke does not write into {DOCS}: measured results live there ({path})")
    return path
