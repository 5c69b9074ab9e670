"""Edited checkpoints: a standard HF directory plus what is needed to audit and undo the edit.

An output directory holds the model (safetensors), the tokenizer, and
- ``formless_manifest.json``: concepts, redirect, layers, hyper-parameters, base model and hash,
  per-layer update norms, versions, timings;
- ``formless_original.safetensors``: the edited tensors as they were before, so that undo is
  exact (restored weights are bit-identical to the base);
- ``formless_keys.safetensors``: every key written so far per layer, for sequential edits;
- ``formless_previous/``: the input's own formless files when it was itself an edited model.
Everything is written to a temporary directory and renamed into place.
"""

from __future__ import annotations

import json
import platform
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from formless.errors import FormlessError
from formless.models.cache import atomic_directory

MANIFEST = "formless_manifest.json"
ORIGINALS = "formless_original.safetensors"
KEYS = "formless_keys.safetensors"
PREVIOUS = "formless_previous"
_OWN_FILES = (MANIFEST, ORIGINALS, KEYS)


def versions() -> dict[str, str]:
    import transformers

    from formless import __version__

    return {
        "formless": __version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
    }


def base_model_info(loaded, weights_hash: str) -> dict:
    """What a manifest records about the model an edit started from."""
    return {
        "name": loaded.name,
        "source": loaded.source,
        "path": loaded.path,
        "model_type": loaded.model_type,
        "weights_hash": weights_hash,
    }


def check_output_dir(out: str | Path, force: bool) -> Path:
    """Refuse to overwrite an existing output unless forced; checked before any work is done."""
    out = Path(out).expanduser()
    if out.exists() and not force:
        raise FormlessError(f"output directory '{out}' already exists; choose another path or pass --force")
    if out.exists() and not out.is_dir():
        raise FormlessError(f"output path '{out}' is a file, not a directory; choose another path")
    return out


def read_manifest(path: str | Path) -> dict | None:
    file = Path(path) / MANIFEST
    if not file.exists():
        return None
    try:
        return json.loads(file.read_text())
    except json.JSONDecodeError as exc:
        raise FormlessError(f"{file} is not valid JSON ({exc.msg}); the edit record is damaged") from None


def read_keys(path: str | Path) -> dict[int, torch.Tensor]:
    file = Path(path) / KEYS
    if not file.exists():
        return {}
    return {int(name.split("_")[1]): t for name, t in load_file(str(file)).items()}


def write_checkpoint(
    model,
    tokenizer,
    out: Path,
    *,
    manifest: dict,
    originals: dict[str, torch.Tensor],
    keys: dict[int, torch.Tensor],
    previous_dir: str | Path | None,
    force: bool,
) -> Path:
    """Save model, tokenizer and formless files to ``out`` atomically."""
    with atomic_directory(out, replace=force) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        save_file({k: v.contiguous() for k, v in originals.items()}, str(tmp / ORIGINALS))
        save_file({f"layer_{layer}": k.contiguous() for layer, k in keys.items()}, str(tmp / KEYS))
        if previous_dir is not None and (Path(previous_dir) / MANIFEST).exists():
            (tmp / PREVIOUS).mkdir()
            for name in _OWN_FILES:
                if (Path(previous_dir) / name).exists():
                    shutil.copy2(Path(previous_dir) / name, tmp / PREVIOUS / name)
            if (Path(previous_dir) / PREVIOUS).exists():
                shutil.copytree(Path(previous_dir) / PREVIOUS, tmp / PREVIOUS / PREVIOUS)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n")
    return out


def restore_previous_files(edited_dir: Path, target: Path) -> None:
    """Copy the formless files of the edit before this one (if any) into ``target``."""
    previous = edited_dir / PREVIOUS
    if previous.exists():
        for item in previous.iterdir():
            if item.is_dir():
                shutil.copytree(item, target / item.name)
            else:
                shutil.copy2(item, target / item.name)


def load_originals(edited_dir: Path) -> dict[str, torch.Tensor]:
    file = edited_dir / ORIGINALS
    if not file.exists():
        raise FormlessError(f"'{edited_dir}' has no {ORIGINALS}; it was not written by formless forget")
    return load_file(str(file))
