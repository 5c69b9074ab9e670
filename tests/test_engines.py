"""The audit's generation engines (formless.engines): the registry and its interface, the transformers
engine against the functions the audit called before engines existed, the vLLM engine's prompt and
decoding path through a stand-in ``vllm`` module (on CPU), the real vLLM against transformers (only
where vllm imports and a CUDA GPU is visible), and the CLI's one-line errors."""

from __future__ import annotations

import importlib.util
import inspect
import json
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch
from test_audit import KB
from test_cli_errors import assert_one_line_error, run
from tiny import save_tiny_model, tiny_tokenizer

from formless import engines
from formless.audit.attacks import AttackScores, quantization_entry
from formless.audit.engine import score_probes
from formless.audit.probes import Probe
from formless.audit.report import Settings
from formless.audit.retain import FLUENCY_TOKENS
from formless.audit.run import run_audit
from formless.audit.scoring import answer_probability
from formless.audit.settings import AuditSettings, validate
from formless.engines import (
    DEFAULT_ENGINE,
    ENGINES,
    GenerationEngine,
    TransformersEngine,
    VllmEngine,
    check_engine,
    make_engine,
)
from formless.errors import FormlessError
from formless.generation import generate
from formless.knowledge import build
from formless.models import load_model
from formless.models.loading import LoadedModel

PROMPTS = [
    "Who wrote the book?",
    "Tell me about Paris.",
    "The Eiffel Tower stands in",
    "Albert Einstein developed the theory of",
    "Water is",
]
ANSWERS = ["Harry Potter", "the capital of France", "Paris", "relativity", "wet"]


def _vllm_unavailable() -> str | None:
    """Why the real vLLM comparison cannot run here (None: it can)."""
    if importlib.util.find_spec("vllm") is None:
        return "vllm is not installed (pip install 'formless[vllm]'): the vLLM engine is untested here"
    if not torch.cuda.is_available():
        return "no CUDA GPU visible: vLLM needs one, so the vLLM engine is untested here"
    return None


VLLM_UNAVAILABLE = _vllm_unavailable()


# --- the registry and its interface ---------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(ENGINES))
def test_every_registered_engine_implements_the_interface(name, tiny):
    factory = ENGINES[name]
    assert callable(getattr(factory, "check", None)), f"{name} has no check()"
    engine = factory(tiny, batch_size=4, fast=False, seed=0)  # builds nothing heavy, vllm included
    assert isinstance(engine, GenerationEngine)
    assert engine.name == name
    for method in ("generate", "answer_probability"):
        want = inspect.signature(getattr(GenerationEngine, method))
        got = inspect.signature(getattr(type(engine), method))
        assert [(p.name, p.kind) for p in got.parameters.values()] == [
            (p.name, p.kind) for p in want.parameters.values()
        ], f"{name}.{method}{got} differs from GenerationEngine.{method}{want}"


def test_unknown_engine_lists_the_engines(tiny):
    for call in (lambda: check_engine("tgi"), lambda: make_engine("tgi", tiny)):
        with pytest.raises(FormlessError, match="unknown engine 'tgi'; the engines are: transformers, vllm"):
            call()
    with pytest.raises(FormlessError, match="unknown engine"):
        validate(AuditSettings(engine="tgi"))


def test_transformers_engine_is_always_available():
    check_engine(DEFAULT_ENGINE)
    assert DEFAULT_ENGINE == "transformers"


# --- the transformers engine is the old path, exactly ---------------------------------------------


@pytest.mark.parametrize("chat", [True, False])
def test_transformers_engine_reproduces_the_old_functions_exactly(tiny, chat):
    engine = make_engine("transformers", tiny, batch_size=2, fast=False)
    old_gen = generate(
        tiny.model, tiny.tokenizer, PROMPTS, chat=chat, max_new_tokens=8, batch_size=2, fast=False
    )
    assert engine.generate(PROMPTS, chat=chat, max_new_tokens=8) == old_gen
    assert any(old_gen), "the tiny model generated nothing: the comparison would prove little"
    old_p = answer_probability(tiny, PROMPTS, ANSWERS, chat=chat, batch_size=2, fast=False)
    assert engine.answer_probability(PROMPTS, ANSWERS, chat=chat) == old_p  # bit for bit


def test_score_probes_goes_through_the_named_engine(tiny, monkeypatch):
    """score_probes asks the engine it is given, and the default is transformers."""
    asked: list[str] = []

    class Recording(TransformersEngine):
        name = "recording"

        def generate_scored(self, prompts, answers, *, chat, max_new_tokens, stop_at=None):
            asked.append("generate_scored")
            return super().generate_scored(
                prompts, answers, chat=chat, max_new_tokens=max_new_tokens, stop_at=stop_at
            )

        def answer_probability(self, prompts, answers, *, chat):
            asked.append("answer_probability")
            return super().answer_probability(prompts, answers, chat=chat)

    monkeypatch.setitem(ENGINES, "recording", Recording)
    probes = [
        Probe("direct", "c", f"item{i}", p, chat=i % 2 == 0, answer=a, aliases=(a,), max_new_tokens=6)
        for i, (p, a) in enumerate(zip(PROMPTS, ANSWERS))
    ]
    options = Probe("mc", "c", "mc", PROMPTS[0], answer=ANSWERS[0], options=("x", ANSWERS[0]), correct=1)
    default = score_probes(tiny, [*probes, options], batch_size=2)
    recorded = score_probes(tiny, [*probes, options], batch_size=2, engine="recording")
    # generations and their answers in one pass; the options, which generate nothing, apart
    assert sorted(set(asked)) == ["answer_probability", "generate_scored"]
    assert recorded == default


@dataclass
class _CopyAttack:
    """An attack whose copy is a new in-memory LoadedModel with the original's path (as the
    quantized and relearned copies are): the audit must never hand it to the chosen engine."""

    name: str = "copy"
    section: ClassVar[str] = "quantization"
    run_on_reference: ClassVar[bool] = True
    copies: list[LoadedModel] = field(default_factory=list)

    def transform(self, loaded: LoadedModel) -> tuple[LoadedModel, dict[str, Any]]:
        copy = LoadedModel(
            loaded.model, loaded.tokenizer, loaded.name, loaded.source, loaded.path, loaded.adapter
        )
        self.copies.append(copy)
        return copy, {"scheme": "copy", "method": "none", "parameters": 0}

    def announce(self) -> str:
        return "copy"

    def cache_key(self) -> str:
        return "copy"

    def select(self, probes):
        return list(range(len(probes)))

    def entry(self, scores: AttackScores):
        return quantization_entry(scores)

    def timings(self, seconds: dict[str, float]) -> dict[str, float]:
        return {}


def test_audit_uses_the_engine_for_the_models_read_from_disk_only(tiny_dir, tmp_path, monkeypatch):
    """run_audit: the reference and the audited model (probes and fluency) go through the chosen
    engine; the attacks' in-memory copies stay on transformers; the report records the engine."""
    served: list[tuple[LoadedModel, int]] = []

    class Recording(TransformersEngine):
        name = "recording"

        def generate(self, prompts, *, chat, max_new_tokens):
            served.append((self.loaded, max_new_tokens))
            return super().generate(prompts, chat=chat, max_new_tokens=max_new_tokens)

        def generate_scored(self, prompts, answers, *, chat, max_new_tokens, stop_at=None):
            # a budget per prompt (mixed_budgets): the longest stands for the call
            served.append(
                (self.loaded, max_new_tokens if isinstance(max_new_tokens, int) else max(max_new_tokens))
            )
            return super().generate_scored(
                prompts, answers, chat=chat, max_new_tokens=max_new_tokens, stop_at=stop_at
            )

        def answer_probability(self, prompts, answers, *, chat):
            served.append((self.loaded, 0))
            return super().answer_probability(prompts, answers, chat=chat)

    monkeypatch.setitem(ENGINES, "recording", Recording)
    kb_file = tmp_path / "kb.json"
    kb_file.write_text(json.dumps(KB))
    attack = _CopyAttack()
    settings = AuditSettings(
        quantize=(), forms=["question", "true_false"], neighbours=False, general=False, engine="recording"
    )
    report = run_audit(
        str(tiny_dir), kb=build([kb_file]), concepts=["Harry Potter"], reference=str(tiny_dir),
        settings=settings, cache=tmp_path / "cache", attacks=[attack],
    )  # fmt: skip
    models = {id(m) for m, _ in served}
    assert len(models) == 2, "the reference and the audited model, each through the engine"
    fluency = [id(m) for m, budget in served if budget == FLUENCY_TOKENS]
    assert sorted(fluency) == sorted(models), "fluency text of each from the engine"
    assert any(0 < budget < FLUENCY_TOKENS for _, budget in served), "the probes' answers from the engine"
    assert any(p.after is not None for p in report.probes), "the copies were asked something"
    assert attack.copies and not models & {id(c) for c in attack.copies}
    assert report.settings.engine == "recording"
    assert "copy" in report.quantization


# --- settings: the cache and the report keep another engine apart ----------------------------------


def test_settings_record_the_engine_only_when_not_the_default():
    default = AuditSettings()
    assert "engine" not in default.recorded() and default.precision == ""
    assert "engine" not in Settings(**default.recorded()).model_dump()  # old audit.json keys, unchanged
    other = AuditSettings(engine="vllm", fast=True)
    assert other.recorded()["engine"] == "vllm"
    assert other.precision == "bf16:vllm:"  # the reference cache keeps vLLM's generations apart
    assert Settings(**other.recorded()).model_dump()["engine"] == "vllm"


# --- the vLLM engine's own code, through a stand-in vllm module (CPU) ------------------------------


class _FakeLLM:
    """Stands in for ``vllm.LLM``: loads the same directory with transformers and decodes greedily,
    one prompt at a time, from the token ids it is given (stop token included, as vLLM returns it)."""

    started: list[dict] = []

    def __init__(self, **kwargs):
        _FakeLLM.started.append(kwargs)
        self.loaded = load_model(kwargs["model"], device="cpu", dtype=getattr(torch, kwargs["dtype"]))

    def generate(self, inputs, *, sampling_params, use_tqdm):
        assert sampling_params.temperature == 0 and use_tqdm is False
        outputs = []
        for item in inputs:
            ids = torch.tensor([item["prompt_token_ids"]])
            with torch.no_grad():
                out = self.loaded.model.generate(
                    input_ids=ids,
                    attention_mask=torch.ones_like(ids),
                    max_new_tokens=sampling_params.max_tokens,
                    do_sample=False,
                    pad_token_id=self.loaded.tokenizer.pad_token_id,
                )
            token_ids = out[0, ids.shape[1] :].tolist()
            outputs.append(types.SimpleNamespace(outputs=[types.SimpleNamespace(token_ids=token_ids)]))
        return outputs


@pytest.fixture
def fake_vllm(monkeypatch):
    module = types.ModuleType("vllm")
    module.LLM = _FakeLLM
    module.SamplingParams = lambda *, temperature, max_tokens: types.SimpleNamespace(
        temperature=temperature, max_tokens=max_tokens
    )
    monkeypatch.setitem(sys.modules, "vllm", module)
    _FakeLLM.started.clear()
    yield module
    engines.release_vllm()


@pytest.mark.parametrize("chat", [True, False])
def test_vllm_engine_feeds_the_transformers_prompt_tokens(tiny, chat, monkeypatch):
    """The token ids handed to vLLM are those transformers' generate receives (left padding removed;
    transformers prefills them in batches of like lengths, so the order is not compared)."""
    import formless.generation as generation

    fed: list[list[int]] = []
    real = generation.prefill  # what the transformers path feeds each batch of prompts to

    def spy(model, input_ids, attention_mask, prefix=None):
        for ids, mask in zip(input_ids, attention_mask):  # prefix: the common tokens, computed once
            fed.append([*(prefix.tokens if prefix else ()), *ids[mask.bool()].tolist()])
        return real(model, input_ids, attention_mask, prefix)

    monkeypatch.setattr(generation, "prefill", spy)
    TransformersEngine(tiny, batch_size=2).generate(PROMPTS, chat=chat, max_new_tokens=2)
    assert len(fed) == len(PROMPTS)
    assert sorted(VllmEngine(tiny).prompt_token_ids(PROMPTS, chat=chat)) == sorted(fed)


@pytest.mark.parametrize("chat", [True, False])
def test_vllm_engine_with_a_stand_in_vllm_matches_transformers(tiny, tiny_dir, fake_vllm, chat):
    """Everything but vLLM itself: the LLM arguments, greedy params, decoding and stripping."""
    vllm_engine = make_engine("vllm", tiny, batch_size=2, seed=3)
    got = vllm_engine.generate(PROMPTS, chat=chat, max_new_tokens=8)
    want = make_engine("transformers", tiny, batch_size=2).generate(PROMPTS, chat=chat, max_new_tokens=8)
    assert got == want
    assert vllm_engine.generate([], chat=chat, max_new_tokens=8) == []
    assert _FakeLLM.started == [
        {"model": str(tiny_dir), "dtype": "float32", "seed": 3, "gpu_memory_utilization": 0.5}
    ]
    # scores come from transformers, exactly
    assert vllm_engine.answer_probability(PROMPTS, ANSWERS, chat=chat) == answer_probability(
        tiny, PROMPTS, ANSWERS, chat=chat, batch_size=2, fast=False
    )


def test_one_vllm_instance_at_a_time(tiny, tmp_path, fake_vllm):
    other = load_model(str(save_tiny_model("llama", tmp_path / "other", seed=1)), device="cpu")
    make_engine("vllm", tiny).generate(PROMPTS[:1], chat=True, max_new_tokens=2)
    make_engine("vllm", tiny).generate(PROMPTS[:1], chat=True, max_new_tokens=2)  # reused
    make_engine("vllm", other).generate(PROMPTS[:1], chat=True, max_new_tokens=2)  # replaces it
    assert [s["model"] for s in _FakeLLM.started] == [tiny.path, other.path]
    assert list(engines._LIVE_VLLM) == [(other.path, "float32", 0)]


def test_vllm_check_names_the_package_the_pip_command_and_the_gpu(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm -> ImportError
    with pytest.raises(FormlessError) as exc:
        check_engine("vllm")
    message = str(exc.value)
    assert "vllm" in message and "pip install 'formless[vllm]'" in message and "GPU" in message
    with pytest.raises(FormlessError, match="pip install 'formless\\[vllm\\]'"):
        validate(AuditSettings(engine="vllm"))  # the Python API fails before any model loads


# --- the real vLLM against transformers ------------------------------------------------------------


@pytest.mark.skipif(VLLM_UNAVAILABLE is not None, reason=VLLM_UNAVAILABLE or "")
@pytest.mark.parametrize("chat", [True, False])
def test_vllm_generates_what_transformers_generates(tmp_path, chat):
    """Same greedy answers from both engines on a tiny random Llama in float32 (head size 64, which
    vLLM's attention backends support; weights large enough that greedy choices are not near-ties)."""
    from transformers import AutoModelForCausalLM, LlamaConfig

    tok = tiny_tokenizer(True)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=256,
        intermediate_size=512,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
    )
    model = AutoModelForCausalLM.from_config(config)
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim == 2:
                p.normal_(0, 0.2)
    directory = Path(tmp_path / "llama")
    model.save_pretrained(directory, safe_serialization=True)
    tok.save_pretrained(directory)
    loaded = load_model(str(directory), device="cuda")
    try:
        want = make_engine("transformers", loaded).generate(PROMPTS, chat=chat, max_new_tokens=16)
        got = make_engine("vllm", loaded).generate(PROMPTS, chat=chat, max_new_tokens=16)
    finally:
        engines.release_vllm()
    assert got == want


# --- the command line -----------------------------------------------------------------------------


def test_cli_engine_vllm_without_vllm_is_one_line_exit_2_nothing_written(
    tiny_dir, tmp_path, capsys, monkeypatch
):
    monkeypatch.setitem(sys.modules, "vllm", None)
    out = tmp_path / "report"
    code, _, err = run(
        ["audit", tiny_dir, "--concept", "Harry Potter", "--reference", tiny_dir, "--out", out,
         "--engine", "vllm", "--cache-dir", tmp_path / "c"],
        capsys,
    )  # fmt: skip
    assert code == 2
    assert_one_line_error(code, err, "pip install 'formless[vllm]'")
    assert "needs the vllm package" in err and "GPU" in err
    assert not out.exists() and not (tmp_path / "c").exists()


def test_cli_unknown_engine_lists_the_engines(tiny_dir, tmp_path, capsys):
    out = tmp_path / "report"
    code, _, err = run(["audit", tiny_dir, "--out", out, "--engine", "tgi"], capsys)
    assert code == 2
    assert_one_line_error(code, err, "unknown engine 'tgi'; the engines are: transformers, vllm")
    assert not out.exists()
