"""Where the audit's greedy answers and answer probabilities come from: one interface, several engines.

``GenerationEngine`` is what the audit asks of a model (``formless.audit.engine.score_probes`` and the
fluency generations): greedy continuations of prompts, and the teacher-forced probability of gold
answers. ``ENGINES`` maps a name (``AuditSettings.engine``, ``formless audit --engine``) to a factory;
``make_engine`` builds one for a loaded model, ``check_engine`` says up front, in one line, why a
name cannot run here (unknown, package missing, no GPU) before any model is loaded.

- ``transformers`` (the default): exactly the functions the audit always called,
  ``formless.generation.generate`` and ``formless.audit.scoring.answer_probability``; same outputs.
- ``vllm`` (optional, ``pip install 'formless[vllm]'``, an NVIDIA GPU): greedy generation with vLLM
  for speed on big models; answer probabilities stay on transformers (see ``VllmEngine``).

The engine only serves the audited model and the reference, as ``load_model`` read them from their
directories. The attacks' quantized and relearned copies exist only in memory (their ``path`` is still
the original's), so the audit keeps them on transformers whatever the engine, and so does the
elicitation of unknown concepts.
"""

from __future__ import annotations

import gc
import importlib
from collections.abc import Sequence
from typing import Any, ClassVar, Protocol, runtime_checkable

from formless.errors import FormlessError
from formless.models.loading import LoadedModel
from formless.models.prompts import add_special_tokens, render

DEFAULT_ENGINE = "transformers"


@runtime_checkable
class GenerationEngine(Protocol):
    """What the audit asks of one model. Both methods keep the order of their inputs."""

    name: str

    def generate(self, prompts: Sequence[str], *, chat: bool, max_new_tokens: int) -> list[str]:
        """Greedy continuation of each prompt (chat-template rendered when ``chat``), stripped."""
        ...

    def answer_probability(
        self, prompts: Sequence[str], answers: Sequence[str], *, chat: bool
    ) -> list[float]:
        """Geometric-mean token probability of each answer after its prompt (ORT's metric)."""
        ...

    def generate_scored(
        self,
        prompts: Sequence[str],
        answers: Sequence[str | None],
        *,
        chat: bool,
        max_new_tokens: int,
        stop_at: Sequence[Sequence[tuple[str, ...]] | None] | None = None,
    ) -> tuple[list[str], list[float | None]]:
        """``generate``, and each answer's ``answer_probability`` where the engine gets it from the
        same pass (None elsewhere: the caller asks ``answer_probability`` for those). ``stop_at``
        (alias sets per prompt) lets a generation end once its judgement is settled
        (``formless.generation.answer_settled``); an engine may ignore it."""
        ...


class EngineFactory(Protocol):
    """A registry entry: builds an engine for a loaded model; ``check`` raises ``FormlessError`` with
    one actionable line when the engine cannot run here."""

    def __call__(
        self, loaded: LoadedModel, *, batch_size: int, fast: bool, seed: int
    ) -> GenerationEngine: ...

    def check(self) -> None: ...


class TransformersEngine:
    """The audit's own path: ``formless.generation.generate`` and
    ``formless.audit.scoring.answer_probability`` on the in-memory model, unchanged. Works for every
    model the audit holds, in-memory attack copies included."""

    name: ClassVar[str] = "transformers"
    # generate_scored takes one token budget per prompt: a call holds every budget of one template
    mixed_budgets: ClassVar[bool] = True

    def __init__(self, loaded: LoadedModel, *, batch_size: int = 16, fast: bool = False, seed: int = 0):
        self.loaded = loaded
        self.batch_size = batch_size
        self.fast = fast
        self.seed = seed  # greedy decoding draws nothing; kept for the common factory signature

    @classmethod
    def check(cls) -> None:
        """Always available: transformers is a core dependency."""

    def generate(self, prompts: Sequence[str], *, chat: bool, max_new_tokens: int) -> list[str]:
        from formless.generation import generate

        return generate(
            self.loaded.model,
            self.loaded.tokenizer,
            list(prompts),
            chat=chat,
            max_new_tokens=max_new_tokens,
            batch_size=self.batch_size,
            fast=self.fast,
        )

    def generate_scored(
        self,
        prompts: Sequence[str],
        answers: Sequence[str | None],
        *,
        chat: bool,
        max_new_tokens: int | Sequence[int],
        stop_at: Sequence[Sequence[tuple[str, ...]] | None] | None = None,
    ) -> tuple[list[str], list[float | None]]:
        """One pass per batch: the answers are scored on the prompt's own prefill (float32; in
        ``fast`` mode, or where the cache cannot be rewound, they come back None). ``max_new_tokens``
        may give each prompt its own budget (``mixed_budgets``)."""
        from formless.generation import generate

        return generate(
            self.loaded.model,
            self.loaded.tokenizer,
            list(prompts),
            chat=chat,
            max_new_tokens=max_new_tokens,
            batch_size=self.batch_size,
            fast=self.fast,
            answers=list(answers),
            stop_at=stop_at,
        )

    def answer_probability(
        self, prompts: Sequence[str], answers: Sequence[str], *, chat: bool
    ) -> list[float]:
        from formless.audit.scoring import answer_probability

        return answer_probability(
            self.loaded, prompts, answers, chat=chat, batch_size=self.batch_size, fast=self.fast
        )


VLLM_MISSING = (
    "--engine vllm needs the vllm package, which is not installed here: pip install 'formless[vllm]' "
    "(vLLM runs on an NVIDIA GPU with CUDA); or leave --engine at transformers"
)
VLLM_NO_GPU = (
    "--engine vllm needs an NVIDIA GPU with CUDA and none is visible here; use --engine transformers"
)


class VllmEngine:
    """Greedy generation with vLLM; answer probabilities with transformers.

    **Untested in formless' CI and development machines** (no GPU, vLLM not installed); the test that
    compares it with the transformers engine (tests/test_engines.py) runs only where vllm imports and
    a CUDA GPU is visible.

    - Model: ``vllm.LLM(model=loaded.path, dtype=..., seed=...)``: the checkpoint directory (or hub id)
      the model was loaded from, so it is only right for a model as ``load_model`` returned it. In-memory
      copies (the audit's quantized and relearned attacks) keep their original's ``path`` and are never
      given to this engine: the audit scores them with transformers (``score_known`` and
      ``score_probes`` default to it). dtype float32, as the transformers path, or bfloat16 when
      ``fast``.
    - Prompts: rendered with the same tokenizer and chat template as the transformers path and passed
      to vLLM as token ids, so both engines see identical prompt tokens; the new tokens are decoded
      with the same tokenizer (special tokens skipped, stripped), as the transformers path does.
    - Decoding: ``SamplingParams(temperature=0, max_tokens=max_new_tokens)``, greedy. Different
      kernels can still break near-ties differently from transformers, so the reference cache keeps
      this engine's results apart (``AuditSettings.precision``).
    - Scores: vLLM's ``prompt_logprobs`` come from its own kernels and dtypes, so they cannot agree
      exactly with the float32 transformers metric the reports and the reference cache hold; scoring
      is delegated to ``TransformersEngine`` on the same loaded model.
    - Memory: one vLLM instance lives at a time (the audit asks the reference, then the audited
      model); asking another model releases the previous one, best effort (``release_vllm``). vLLM
      takes ``gpu_memory_utilization`` of the GPU, next to the transformers copies the audit keeps.
    """

    name: ClassVar[str] = "vllm"
    gpu_memory_utilization: ClassVar[float] = 0.5  # the transformers models share the GPU

    def __init__(self, loaded: LoadedModel, *, batch_size: int = 16, fast: bool = False, seed: int = 0):
        self.loaded = loaded
        self.dtype = "bfloat16" if fast else "float32"
        self.seed = seed
        self.scorer = TransformersEngine(loaded, batch_size=batch_size, fast=fast, seed=seed)

    @classmethod
    def check(cls) -> None:
        """The package, then a GPU: each missing one is one line naming the fix."""
        try:
            importlib.import_module("vllm")
        except ImportError:
            raise FormlessError(VLLM_MISSING) from None
        import torch

        if not torch.cuda.is_available():
            raise FormlessError(VLLM_NO_GPU)

    def prompt_token_ids(self, prompts: Sequence[str], *, chat: bool) -> list[list[int]]:
        """The token ids the transformers path feeds the model for each prompt (before padding)."""
        tok = self.loaded.tokenizer
        special = add_special_tokens(tok, chat)
        return [
            list(tok(render(tok, p, chat=chat), add_special_tokens=special)["input_ids"]) for p in prompts
        ]

    def generate(self, prompts: Sequence[str], *, chat: bool, max_new_tokens: int) -> list[str]:
        from vllm import SamplingParams

        if not prompts:
            return []
        inputs = [{"prompt_token_ids": ids} for ids in self.prompt_token_ids(prompts, chat=chat)]
        params = SamplingParams(temperature=0, max_tokens=max_new_tokens)
        llm = _vllm_instance(self.loaded.path, self.dtype, self.seed)
        outputs = llm.generate(inputs, sampling_params=params, use_tqdm=False)
        tok = self.loaded.tokenizer
        return [tok.decode(o.outputs[0].token_ids, skip_special_tokens=True).strip() for o in outputs]

    def generate_scored(
        self,
        prompts: Sequence[str],
        answers: Sequence[str | None],
        *,
        chat: bool,
        max_new_tokens: int,
        stop_at: Sequence[Sequence[tuple[str, ...]] | None] | None = None,
    ) -> tuple[list[str], list[float | None]]:
        """vLLM generates the full budget (``stop_at`` is not used); the answers are scored apart
        (``answer_probability``) by the caller."""
        return self.generate(prompts, chat=chat, max_new_tokens=max_new_tokens), [None] * len(prompts)

    def answer_probability(
        self, prompts: Sequence[str], answers: Sequence[str], *, chat: bool
    ) -> list[float]:
        return self.scorer.answer_probability(prompts, answers, chat=chat)


_LIVE_VLLM: dict[tuple[str, str, int], Any] = {}


def _vllm_instance(path: str, dtype: str, seed: int) -> Any:
    """The live ``vllm.LLM`` for this checkpoint, started on first use (replacing any other)."""
    key = (path, dtype, seed)
    if key not in _LIVE_VLLM:
        release_vllm()
        from vllm import LLM

        _LIVE_VLLM[key] = LLM(
            model=path, dtype=dtype, seed=seed, gpu_memory_utilization=VllmEngine.gpu_memory_utilization
        )
    return _LIVE_VLLM[key]


def release_vllm() -> None:
    """Drop the live vLLM instance, if any (best effort: vLLM may keep some GPU memory)."""
    if not _LIVE_VLLM:
        return
    _LIVE_VLLM.clear()
    gc.collect()
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


ENGINES: dict[str, EngineFactory] = {
    TransformersEngine.name: TransformersEngine,
    VllmEngine.name: VllmEngine,
}


def engine_factory(name: str) -> EngineFactory:
    """The registered factory for ``name``; an unknown name is one line listing the engines."""
    try:
        return ENGINES[name]
    except KeyError:
        raise FormlessError(f"unknown engine {name!r}; the engines are: {', '.join(ENGINES)}") from None


def check_engine(name: str) -> None:
    """Fail now, in one line, if ``name`` is unknown or cannot run here (before any model loads)."""
    engine_factory(name).check()


def make_engine(
    name: str, loaded: LoadedModel, *, batch_size: int = 16, fast: bool = False, seed: int = 0
) -> GenerationEngine:
    """An engine ``name`` serving ``loaded``."""
    return engine_factory(name)(loaded, batch_size=batch_size, fast=fast, seed=seed)
