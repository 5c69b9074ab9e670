"""What an audit is asked to do, checked up front: unknown forms, unknown or uninstalled
quantization schemes and an unknown or unavailable engine fail before any model is loaded."""

from __future__ import annotations

from dataclasses import dataclass

from formless.attacks.quantizers import DEFAULT_SCHEMES, Quantizer, get_quantizer
from formless.audit.forms import select
from formless.engines import DEFAULT_ENGINE, check_engine
from formless.errors import FormlessError

PRIOR_TWINS = ("recognition", "all")


@dataclass
class AuditSettings:
    forms: list[str] | None = None  # None: all registered forms
    seed: int = 0
    # quantization attacks: scheme names (formless.attacks.quantizers.SCHEMES); a legacy bit width
    # 8 / 4 is RTN and keeps its old report key "8bit" / "4bit"
    quantize: tuple[str | int, ...] = DEFAULT_SCHEMES
    group_size: int = 128  # RTN only
    neighbours: bool = True
    general: bool = True
    fluency: bool = True
    batch_size: int = 64  # rows per prefill batch at most (measured on 2 CPU cores: 128 gains nothing)
    relearn_steps: int = 0  # > 0: fine-tune a copy on half the facts, ask the other half
    fast: bool = False  # bf16 where the CPU has it: ~1.4x faster, answers more sensitive to batch padding
    # generates (and scores) on the audited model and the reference: formless.engines.ENGINES
    engine: str = DEFAULT_ENGINE
    # which forms get prior twins (the prompt about made-up names, asked on the reference only):
    # "recognition" (multiple choice, true/false: their options have a prior; three names each) or
    # "all" (also the first name for every form whose prompt names the concept: a completion such as
    # "Michael Jordan played professional basketball in the" is answered without knowing him)
    prior_twins: str = "recognition"

    @property
    def precision(self) -> str:
        """Prefix of the reference cache's keys: bf16 scores are kept apart from float32 ones, and
        another engine's generations from the default's (unchanged keys for the default)."""
        engine = "" if self.engine == DEFAULT_ENGINE else f"{self.engine}:"
        return ("bf16:" if self.fast else "") + engine

    def recorded(self) -> dict:
        """The settings as the report records them (the batch size changes no figure; the engine
        only when it is not the default, so default reports keep their old keys)."""
        skip = {"batch_size"} | ({"engine"} if self.engine == DEFAULT_ENGINE else set())
        skip |= {"prior_twins"} if self.prior_twins == PRIOR_TWINS[0] else set()
        return {k: v for k, v in vars(self).items() if k not in skip}


def quantization_attacks(settings: AuditSettings) -> list[tuple[str, Quantizer]]:
    """(report key, scheme) per entry of ``settings.quantize``, each checked to run here."""
    attacks: dict[str, Quantizer] = {}
    for entry in settings.quantize:
        scheme = get_quantizer(entry, group_size=settings.group_size)
        scheme.check()
        legacy = isinstance(entry, int) and not isinstance(entry, bool)
        attacks.setdefault(f"{entry}bit" if legacy else scheme.name, scheme)
    return list(attacks.items())


def validate(settings: AuditSettings) -> list[tuple[str, Quantizer]]:
    """Check the forms, the engine and the schemes; the quantization attacks to run."""
    check_engine(settings.engine)  # unknown, or vllm without the package or a GPU: one line, now
    if settings.prior_twins not in PRIOR_TWINS:
        raise FormlessError(
            f"prior twins {settings.prior_twins!r} are not one of {', '.join(PRIOR_TWINS)}: 'recognition' "
            "asks the made-up-name twin of the choice forms only, 'all' of every form that names the concept"
        )
    select(settings.forms)  # unknown form names fail now, not after minutes of scoring
    return quantization_attacks(settings)
