"""The audit report as types: what ``run_audit`` returns, what the reports, the demo and the benchmarks
read, and what ``audit.json`` holds.

The JSON on disk is the same as before these types existed: ``AuditReport.to_json()`` gives the
same keys in the same order (a key the old dict left out when it had nothing to say, such as the
chance figures of a form answered in free text, is left out again), and
``AuditReport.model_validate(json.loads(text))`` reads an ``audit.json``. An unknown key or a missing
one fails validation: the report is a contract, not a bag.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, SerializerFunctionWrapHandler, model_serializer


class Record(BaseModel):
    """A report part: unknown keys are refused; ``omit_none`` fields are left out of the JSON when
    they are None (the old dict did not have them)."""

    model_config = ConfigDict(extra="forbid")
    omit_none: ClassVar[tuple[str, ...]] = ()

    @model_serializer(mode="wrap")
    def _drop_absent(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)
        for name in self._omitted():
            if data.get(name, 0) is None:
                del data[name]
        return data

    def _omitted(self) -> tuple[str, ...]:
        return self.omit_none


CHANCE_FIELDS = (
    "chance",
    "reference_accuracy",
    "reference_above_chance",
    "reference_p_value",
    "residual_above_chance",
)

PRIOR_FIELDS = (
    "known_by_prior",
    "known_beyond_prior",
    "still_answered_beyond_prior",
    "residual_beyond_prior",
    "interval_beyond_prior",
    "prior_keeps",
    "residual_above_prior",
    "interval_above_prior",
)


class Summary(Record):
    """Residual knowledge of a set of probes (``formless.audit.metrics.summarise``): over the facts the
    reference knows, the share the audited model still answers, with its 95% bootstrap interval;
    the chance figures only for forms a guess can answer."""

    probes: int
    known: int
    coverage: float | None
    still_answered: int
    residual: float | None
    interval: list[float] | None
    probability_before: float | None
    probability_after: float | None
    probability_ratio: float | None
    measurable: bool
    chance: float | None = None
    reference_accuracy: float | None = None
    reference_above_chance: float | None = None
    reference_p_value: float | None = None
    residual_above_chance: float | None = None
    # recognition forms: the known facts whose prior twin (a made-up name) the reference gets wrong
    known_by_prior: int | None = None
    known_beyond_prior: int | None = None
    still_answered_beyond_prior: int | None = None
    residual_beyond_prior: float | None = None
    interval_beyond_prior: list[float] | None = None
    # ... and, over all known facts, what a model without the concept keeps (each fact's share of
    # right prior twins, averaged) and the residual above it (formless.audit.metrics.above_prior)
    prior_keeps: float | None = None
    residual_above_prior: float | None = None
    interval_above_prior: list[float] | None = None

    def _omitted(self) -> tuple[str, ...]:
        return (CHANCE_FIELDS if self.chance is None else ()) + PRIOR_FIELDS

    @property
    def comparable_residual(self) -> float | None:
        """The figure forms are compared on: above the model's own prior where there are prior twins,
        above chance where guessing can answer, else the residual (``metrics.comparable_residual``)."""
        if self.residual_above_prior is not None:
            return self.residual_above_prior
        return self.residual_above_chance if self.chance is not None else self.residual


class FormDependentBias(Record):
    std: float | None
    range: float | None
    forms: int
    worst_form: str | None = None
    interval: list[float] | None
    omit_none = ("worst_form",)


class FactSplit(Record):
    trained: list[str]
    held_out: list[str]


class Exposure(Record):
    """Residual on the facts a trained method saw and on those held out from its training."""

    method_trained_on_facts: bool
    split: dict[str, FactSplit]
    trained_wordings: list[str]
    groups: dict[str, Summary]


class Forget(Record):
    overall: Summary
    per_form: dict[str, Summary]
    not_measurable: list[str]
    per_concept: dict[str, dict[str, Summary]]
    form_dependent_bias: FormDependentBias
    by_exposure: Exposure | None = None
    omit_none = ("by_exposure",)


class Fluency(Record):
    entropy_before: float
    entropy_after: float
    kl_from_reference: float
    samples_after: list[str]


class Retain(Record):
    neighbours: Summary
    general: Summary
    fluency: Fluency | None = None
    omit_none = ("fluency",)


class QuantizedTables(Record):
    overall: Summary
    per_form: dict[str, float | None]
    # the same facts, the audited model unquantized: the paired change quantizing makes
    # (formless.audit.metrics.paired_shift); older reports lack it
    unquantized_kept: int | None = None
    shift: float | None = None
    shift_interval: list[float] | None = None
    # per known fact [units known, kept quantized, kept unquantized]: pooled over reports as one
    shift_facts: list[list[int]] | None = None
    omit_none = ("unquantized_kept", "shift", "shift_interval", "shift_facts")


class Quantization(Record):
    """One quantization attack. The scheme's own description of what it did (``group_size``,
    ``tensors``, ``parameters``, ``mean_abs_error``, ``approximations``, ...: see
    ``formless.attacks.quantizers``) follows the common fields as extra keys."""

    model_config = ConfigDict(extra="allow")

    scheme: str
    method: str
    overall: Summary
    per_form: dict[str, float | None]
    reference_quantized_keeps: float | None
    reference_quantized_probability_ratio: float | None
    over_quantized_reference: QuantizedTables | None = None  # older reports lack it
    omit_none = ("over_quantized_reference",)

    @property
    def details(self) -> dict[str, Any]:
        """The scheme's own keys."""
        return dict(self.model_extra or {})


class Relearning(Record):
    steps: int
    lr: float
    examples: int
    method: str
    seconds: float
    held_out: dict[str, list[str]]
    before: Summary
    after: Summary
    per_form: dict[str, float | None]


class Scored(Record):
    """One probe's result on one model (``formless.audit.engine.ProbeResult.to_json``)."""

    hit: bool
    probability: float | None
    output: str | None = None
    chosen: int | None = None


class ProbeRecord(Record):
    key: str
    form: str
    concept: str
    prompt: str
    answer: str | None
    before: Scored
    after: Scored | None
    cue: str | None = None  # a description's entity the question is asked about instead (a twin)
    omit_none = ("cue",)


class ModelInfo(Record):
    name: str
    path: str | None
    model_type: str | None
    weights_hash: str


class ReferenceInfo(Record):
    name: str
    weights_hash: str


class FormInfo(Record):
    title: str
    group: str


class Settings(Record):
    """``AuditSettings`` as the report records it (all but the batch size)."""

    forms: list[str] | None
    seed: int
    quantize: list[str | int]
    group_size: int
    neighbours: bool
    general: bool
    fluency: bool
    relearn_steps: int
    fast: bool
    engine: str | None = None  # formless.engines; absent (None) for the default, transformers
    prior_twins: str | None = None  # "all": every naming form has twins; absent for the default

    omit_none: ClassVar[tuple[str, ...]] = ("engine", "prior_twins")


class RunInfo(Record):
    omit_none = ("audited_cache",)

    seconds: dict[str, float]
    created: str
    reference_cache: str
    audited_cache: str | None = None  # the audited model's results (by its weights hash)


class ExternalProbes(Record):
    path: str
    notes: list[str]


class AuditReport(Record):
    formless_audit: str
    model: ModelInfo
    reference: ReferenceInfo
    edit: dict[str, Any] | None  # the edit's manifest: method, concepts, redirect, layers
    concepts: list[str]
    forms: dict[str, FormInfo]
    settings: Settings
    seed: int
    versions: dict[str, str]
    generated_knowledge: dict[str, Any] | None = None  # concepts elicited from the reference
    forget: Forget
    retain: Retain
    quantization: dict[str, Quantization]
    relearning: Relearning | None = None
    probes: list[ProbeRecord]
    run: RunInfo
    external_probes: ExternalProbes | None = None  # --probes FILE: where they came from
    # form -> probes not asked because their prompt states the answer (formless.audit.forms.base)
    given_away: dict[str, int] | None = None
    # neighbour probes not counted because their answer is a forgotten concept (audit.building)
    answer_is_target: int | None = None
    omit_none = ("generated_knowledge", "relearning", "external_probes", "given_away", "answer_is_target")

    def to_json(self) -> dict[str, Any]:
        """The JSON-ready dict ``audit.json`` holds."""
        return self.model_dump(mode="json")

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=1, ensure_ascii=False) + "\n"

    @classmethod
    def load(cls, path: str | Path) -> AuditReport:
        """Read an ``audit.json`` (or a report directory holding one)."""
        path = Path(path)
        if path.is_dir():
            path = path / "audit.json"
        return cls.model_validate_json(path.read_text(encoding="utf-8"))

    def form_title(self, form: str) -> str:
        info = self.forms.get(form)
        return info.title if info else form

    def form_group(self, form: str) -> str:
        info = self.forms.get(form)
        return info.group if info else "forget"
