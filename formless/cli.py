"""Command line: ``formless forget | undo | generate | compare | demo | models``."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from formless.errors import FormlessError
from formless.knowledge.templates import LANGUAGES
from formless.models.registry import DEFAULT_MODEL

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="Form-independent unlearning for HF models."
)
out_console = Console()
err_console = Console(stderr=True)

ModelOpt = Annotated[str, typer.Option("--model", "-m", help="built-in name, model directory or hub id")]
TypeOpt = Annotated[
    str | None,
    typer.Option(
        "--type",
        help="type of a concept not in the knowledge base: person, work, place, organisation, "
        "thing or event (default: asked of the model)",
    ),
]
TeacherOpt = Annotated[
    str | None,
    typer.Option(help="a stronger local model directory that proposes answers for unknown concepts"),
]
CacheOpt = Annotated[
    Path | None, typer.Option("--cache-dir", help="cache directory (default $FORMLESS_CACHE)")
]


def _layers(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        if "-" in text and "," not in text:
            lo, hi = (int(x) for x in text.split("-"))
            return list(range(lo, hi + 1))
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise FormlessError(f"--layers '{text}' is not a list like '4,5,6' or a range like '4-6'") from None


def _schemes(text: str) -> tuple[str, ...]:
    """--quantize: scheme names, comma-separated, each known and installed (one-line error if not)."""
    from formless.attacks.quantizers import parse_schemes

    return parse_schemes(text)


DEFAULT_QUANTIZE = "gguf-q8_0,gguf-q4_1"  # formless.attacks.quantizers.DEFAULT_SCHEMES
QuantizeOpt = Annotated[
    str,
    typer.Option(
        help="quantization attacks, comma-separated: rtn8, rtn4 (formless' own RTN; 8, 4 also work), "
        "gguf-q4_0, gguf-q4_1, gguf-q5_0, gguf-q5_1, gguf-q8_0, gguf-q4_k_m, gguf-q5_k_m, gguf-q6_k "
        "(llama.cpp formats and llama-quantize's tensor mix), bnb-nf4, bnb-fp4, "
        "bnb-int8 (bitsandbytes: pip install 'formless\\[quant]'), gptq-4bit, awq-4bit (GPTQModel, "
        "calibrated on the generic corpus: pip install 'formless\\[gptq]'), or 'none'"
    ),
]


@app.command()
def forget(
    concepts: Annotated[list[str], typer.Argument(help='concept name(s) to forget, e.g. "Harry Potter"')],
    out: Annotated[Path, typer.Option("--out", "-o", help="output directory for the edited checkpoint")],
    model: ModelOpt = DEFAULT_MODEL,
    preset: Annotated[
        str,
        typer.Option(
            help="ROCR configuration to start from: formless (default) or paper (the reference's: last "
            "name token only, chat keys only); options given as well override it"
        ),
    ] = "formless",
    redirect: Annotated[
        str | None,
        typer.Option(
            help="harmless concept to redirect to; default 'an unknown name' (the mean of five made-up "
            "names' representations); the paper preset uses 'a random person'"
        ),
    ] = None,
    layers: Annotated[str | None, typer.Option(help="edited layers, e.g. '4,5,6' or '4-6'")] = None,
    lam: Annotated[float | None, typer.Option(help="ridge term lambda")] = None,
    threshold: Annotated[float | None, typer.Option(help="null-space eigenvalue threshold")] = None,
    strength: Annotated[
        float | None, typer.Option(help="scales the residual v* - z(s); > 1 pushes past the redirect")
    ] = None,
    corpus: Annotated[
        str | None, typer.Option(help="statistics corpus (.txt/.jsonl file or directory)")
    ] = None,
    stats_tokens: Annotated[
        int | None, typer.Option(help="tokens of generic text for the statistics")
    ] = None,
    max_relative_norm: Annotated[
        float | None,
        typer.Option(help="refuse an edit whose ||dW||/||W|| exceeds this on any layer (default 0.25)"),
    ] = None,
    keep: Annotated[
        list[str] | None,
        typer.Option(
            help="ROCR: a name whose representation the edit must leave as it is, e.g. a namesake or a "
            "related entity (repeatable)"
        ),
    ] = None,
    keep_famous: Annotated[
        bool,
        typer.Option(
            help="ROCR: also keep a shipped list of ~120 well-known names (measured: a few more "
            "neighbour facts kept, a few more forgotten facts left; README)"
        ),
    ] = False,
    grid: Annotated[
        str | None,
        typer.Option(
            help="ROCR: 'auto' (default) keeps each edited matrix on the quantization grid its weights "
            "sit on, so a model published quantized (the default: GGUF Q4_1) converted back keeps the "
            "edit; 'off' writes the update as solved (the paper preset's choice)"
        ),
    ] = None,
    force: Annotated[bool, typer.Option(help="overwrite an existing output directory")] = False,
    seed: int = 0,
    device_map: Annotated[
        str | None, typer.Option(help="'auto' spreads a large model over all GPUs (accelerate)")
    ] = None,
    method: Annotated[
        str, typer.Option(help="rocr (default) or a baseline: ga, gd, kl, npo, simnpo, rmu, rt, icu")
    ] = "rocr",
    train_form: Annotated[
        str, typer.Option(help="baselines: train on all forms, or only 'qa', 'text' or 'cloze'")
    ] = "all",
    hold_out: Annotated[
        float,
        typer.Option(
            help="baselines: share of each concept's facts never trained on, asked only by the audit "
            "(0 trains on every fact and paraphrase)"
        ),
    ] = 0.5,
    steps: Annotated[int | None, typer.Option(help="baselines: optimizer steps")] = None,
    lr: Annotated[float | None, typer.Option(help="baselines: learning rate")] = None,
    lora: Annotated[bool | None, typer.Option(help="baselines: LoRA (merged) or full fine-tuning")] = None,
    cache_dir: CacheOpt = None,
) -> None:
    """Forget CONCEPTS (ROCR, or a baseline with --method) and write an HF checkpoint plus manifest."""
    from formless.api import forget as api_forget
    from formless.api import make_config

    config = make_config(
        preset,
        redirect=redirect,
        layers=_layers(layers),
        lam=lam,
        threshold=threshold,
        strength=strength,
        corpus=corpus,
        stats_tokens=stats_tokens,
        max_relative_norm=max_relative_norm,
        protected=keep or None,
        protect_famous=keep_famous or None,
        grid=grid,
    )
    train_config = None
    if method != "rocr":
        if preset != "formless":
            raise FormlessError(f"--preset configures ROCR; it does not apply to --method {method}")
        if keep or keep_famous or grid:
            raise FormlessError(
                f"--keep, --keep-famous and --grid configure ROCR; they do not apply to --method {method}"
            )
        from pydantic import ValidationError

        from formless.methods import TrainConfig

        options = {"steps": steps, "lr": lr, "lora": lora}
        try:
            train_config = TrainConfig(**{k: v for k, v in options.items() if v is not None})
        except ValidationError as exc:
            raise FormlessError(f"invalid training option: {exc.errors()[0]['msg']}") from None
        if train_form not in ("all", "qa", "text", "cloze"):
            raise FormlessError(f"--train-form must be all, qa, text or cloze, not {train_form!r}")
        if not 0.0 <= hold_out < 1.0:
            raise FormlessError(f"--hold-out is a share of the facts in [0, 1), not {hold_out}")
    result = api_forget(
        concepts,
        model=model,
        out=out,
        config=config,
        force=force,
        cache=cache_dir,
        seed=seed,
        device_map=device_map,
        method=method,
        train_config=train_config,
        train_form=train_form,
        held_out=hold_out,
    )
    m = result.manifest
    if method != "rocr":
        training = m.get("training", {})
        out_console.print(
            f"{method}: {', '.join(m['concepts'])}; {training.get('steps', 0)} steps"
            f"{' (stopped early by the utility guard)' if training.get('stopped_early') else ''}, "
            f"{m['changed_tensors']} tensors changed, {m['seconds']['total']:.1f}s; saved to {result.out}"
        )
        for name, split in training.get("split", {}).items():
            wordings = ", ".join(split["trained_wordings"])
            out_console.print(
                f"  {name}: trained on {len(split['trained'])} facts ({wordings}), "
                f"{len(split['held_out'])} held out for the audit"
            )
        return
    preset_note = "" if m["preset"]["name"] == "formless" else f" (preset {m['preset']['name']})"
    table = Table(title=f"ROCR{preset_note}: {', '.join(m['concepts'])} -> {m['redirect']}")
    for col in ("layer", "weight", "update norm", "relative", "null-space dim", "kept on grid"):
        table.add_column(col)
    for u in m["layer_updates"]:
        # the grid column: the format, and how much of the update's effect on the concept's keys the
        # rounding misses (plain rounding, what re-quantizing an off-grid edit does, in brackets)
        on_grid = (
            f"{u['grid']} ({u['grid_key_error']:.1%} off; "
            f"plain rounding {u['grid_plain_rounding_key_error']:.0%})"
            if u.get("grid")
            else "–"
        )
        table.add_row(
            str(u["layer"]),
            u["weight"],
            f"{u['update_norm']:.3f}",
            f"{u['relative_norm']:.4f}",
            str(u["null_space_dim"]),
            on_grid,
        )
    out_console.print(table)
    for note in m.get("notes", []):
        err_console.print(f"note: {escape(note)}")
    out_console.print(
        f"edit {m['seconds']['edit']:.2f}s, statistics {m['seconds']['statistics']:.1f}s "
        f"(0 = cached), total {m['seconds']['total']:.1f}s; saved to {result.out}"
    )


@app.command()
def audit(
    model_arg: Annotated[
        str | None,
        typer.Argument(
            metavar="MODEL", help="model to audit: a formless output, a model directory or a name"
        ),
    ] = None,
    model_opt: Annotated[
        str | None, typer.Option("--model", "-m", help="the same as MODEL, as the other commands take it")
    ] = None,
    concept: Annotated[
        list[str] | None, typer.Option("--concept", "-c", help="concept(s) to audit (default: the edit's)")
    ] = None,
    reference: Annotated[
        str | None, typer.Option(help="the unedited model (default: the base recorded in the manifest)")
    ] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="report directory")] = Path("formless-audit"),
    knowledge: Annotated[
        list[Path] | None, typer.Option(help="extra YAML/JSON knowledge file(s) with your own concepts")
    ] = None,
    probes: Annotated[
        Path | None, typer.Option(help="ORT/RWKU probe file or directory to audit as well")
    ] = None,
    forms: Annotated[str | None, typer.Option(help="comma-separated forms (default: all)")] = None,
    quantize: QuantizeOpt = DEFAULT_QUANTIZE,
    relearn_steps: Annotated[
        int,
        typer.Option(help="relearning probe: fine-tune a copy this many steps on half the facts (0: off)"),
    ] = 0,
    seed: int = 0,
    fast: Annotated[
        bool, typer.Option(help="bf16 on CPUs that have it: ~1.4x faster, answers more padding-sensitive")
    ] = False,
    engine: Annotated[
        str,
        typer.Option(
            help="generates the audit's answers: transformers, or vllm (pip install 'formless\\[vllm]', "
            "an NVIDIA GPU; probabilities and the attacks' copies stay on transformers)"
        ),
    ] = "transformers",
    prior_twins: Annotated[
        str,
        typer.Option(
            help="which forms also ask each probe about made-up names on the reference, to tell facts "
            "that need the concept from facts the prompt gives away: 'recognition' (the choice forms, "
            "three names each: the residual above the prior) or 'all' (also one name for every other "
            "form that names the concept; at most doubles the reference's first scoring)"
        ),
    ] = "recognition",
    kind: TypeOpt = None,
    teacher: TeacherOpt = None,
    cache_dir: CacheOpt = None,
) -> None:
    """Audit what MODEL still knows about the concept(s), form by form, and write a report.

    A concept the knowledge base does not know is probed on the reference model first: the facts it
    states consistently become the audit (saved to the report as knowledge.yaml)."""
    if model_arg is not None and model_opt is not None and model_arg != model_opt:
        raise FormlessError(f"two models given ({model_arg!r} and --model {model_opt!r}); pass one")
    model = model_arg or model_opt
    if model is None:
        raise FormlessError("no model to audit: pass MODEL (a formless output or model directory) or --model")
    from formless.audit.external import external_probe_sets
    from formless.audit.report import ExternalProbes
    from formless.audit.run import AuditSettings, run_audit
    from formless.checkpoint import read_manifest
    from formless.engines import check_engine
    from formless.knowledge import load
    from formless.reports import print_summary, write_report

    check_engine(engine)  # unknown, or vllm missing: one line and exit 2 before anything loads
    schemes = _schemes(quantize)
    kb = load(knowledge or [])
    external = None
    if probes is not None:
        # only the audited concepts' probes: the concepts named, else the edit's own
        subjects = concept
        if not subjects and Path(model).is_dir():
            subjects = (read_manifest(model) or {}).get("concepts")
        external, notes = external_probe_sets(probes, subjects or None)
        for note in notes:
            err_console.print(f"note: {note}")
    settings = AuditSettings(
        forms=[f.strip() for f in forms.split(",") if f.strip()] if forms else None,
        seed=seed,
        quantize=schemes,
        fast=fast,
        relearn_steps=relearn_steps,
        engine=engine,
        prior_twins=prior_twins,
    )
    with err_console.status("auditing") as status:
        report = run_audit(
            model,
            kb=kb,
            concepts=concept,
            reference=reference,
            settings=settings,
            cache=cache_dir,
            external=external,
            say=lambda text: status.update(text),
            elicit_kind=kind,
            teacher=teacher,
        )
    if probes is not None:
        report.external_probes = ExternalProbes(path=str(probes), notes=notes)
    path = write_report(report, out)
    from formless.knowledge.elicit import save_generated

    save_generated(report.generated_knowledge, path, lambda text: err_console.print(escape(text)))
    print_summary(report, out_console)
    out_console.print(
        f"audit took {report.run.seconds['total']:.1f}s; report: {path / 'report.html'} "
        f"(also report.md, audit.json, heatmap.png)"
    )


@app.command()
def probes(
    concepts: Annotated[list[str], typer.Argument(help='concept name(s), e.g. "Taylor Swift"')],
    model: ModelOpt = DEFAULT_MODEL,
    kind: TypeOpt = None,
    teacher: TeacherOpt = None,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="YAML knowledge file to write (review it, then --knowledge)")
    ] = Path("formless-knowledge.yaml"),
    languages: Annotated[
        str,
        typer.Option(
            help="also ask the kept questions in these languages (kept where the model answers them); "
            "'none' asks none"
        ),
    ] = ",".join(LANGUAGES),
    cache_dir: CacheOpt = None,
) -> None:
    """What MODEL knows about CONCEPTS, as knowledge-base records built from its own consistent answers."""
    from formless.knowledge import KnowledgeError, load
    from formless.knowledge.elicit import elicit_concept, write_knowledge
    from formless.models import load_model

    kb = load()
    loaded = load_model(model, cache=cache_dir)
    langs = tuple(x.strip() for x in languages.split(",") if x.strip() and x.strip().lower() != "none")
    made, failed = [], []
    for name in concepts:
        try:
            with err_console.status(f"probing {model} about {name}"):
                made.append(elicit_concept(loaded, name, kind=kind, kb=kb, teacher=teacher, languages=langs))
        except KnowledgeError as exc:
            if len(concepts) == 1:
                raise
            failed.append(exc)
            err_console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
    if not made:
        raise failed[0]
    for concept, rep in made:
        table = Table(
            title=f"{concept.name} ({rep.kind}, {rep.kind_source}): {len(rep.kept)} of {len(rep.relations)} "
            f"relations kept, {rep.seconds['total']:.1f}s"
        )
        for col in ("relation", "answer", "agreement", "p", "forms"):
            table.add_column(col)
        for r in rep.relations:
            style = None if r.kept else "dim"
            table.add_row(
                r.relation,
                escape(r.answer or "-") + ("" if r.kept else " (dropped)"),
                f"{r.agreement}/{r.asked}",
                "-" if r.probability is None else f"{r.probability:.2f}",
                ", ".join(r.forms),
                style=style,
            )
        out_console.print(table)
        out_console.print(f"description: {escape(concept.description)}")
        if concept.other_descriptions:
            out_console.print(f"other descriptions: {escape('; '.join(concept.other_descriptions))}")
        for note in rep.notes:
            out_console.print(f"note: {escape(note)}")
    path = write_knowledge([c for c, _ in made], out, [r for _, r in made])
    out_console.print(
        f"wrote {len(made)} record(s) to {path}; review it, then pass it with --knowledge {path}"
    )


@app.command()
def undo(
    edited: Annotated[Path, typer.Argument(help="a directory written by formless forget")],
    out: Annotated[Path, typer.Option("--out", "-o", help="where to write the restored model")],
    force: Annotated[bool, typer.Option(help="overwrite an existing output directory")] = False,
) -> None:
    """Restore the model as it was before the edit (weights bit-identical to the base)."""
    from formless.api import undo as api_undo

    path = api_undo(edited, out, force=force)
    out_console.print(f"restored the pre-edit model to {path} (weights hash verified against the manifest)")


@app.command()
def generate(
    prompts: Annotated[list[str], typer.Argument(help="prompt(s)")],
    model: ModelOpt = DEFAULT_MODEL,
    plain: Annotated[bool, typer.Option(help="plain completion, no chat template")] = False,
    max_new_tokens: int = 48,
    cache_dir: CacheOpt = None,
) -> None:
    """Greedy answers of one model."""
    from formless.generation import generate as gen
    from formless.models import load_model

    loaded = load_model(model, cache=cache_dir)
    for prompt, answer in zip(
        prompts, gen(loaded.model, loaded.tokenizer, prompts, chat=not plain, max_new_tokens=max_new_tokens)
    ):
        out_console.print(f"[bold]{escape(prompt)}[/bold]\n{escape(answer)}\n")


@app.command()
def compare(
    prompts: Annotated[list[str], typer.Argument(help="prompt(s)")],
    a: Annotated[str, typer.Option("--a", help="first model (e.g. the base)")] = DEFAULT_MODEL,
    b: Annotated[str, typer.Option("--b", help="second model (e.g. the edited one)")] = ...,
    plain: Annotated[bool, typer.Option(help="plain completion, no chat template")] = False,
    max_new_tokens: int = 40,
    cache_dir: CacheOpt = None,
) -> None:
    """The same prompts through two models, side by side."""
    from formless.generation import generate as gen
    from formless.models import load_model

    answers = []
    for name in (a, b):
        loaded = load_model(name, cache=cache_dir)
        answers.append(
            gen(loaded.model, loaded.tokenizer, prompts, chat=not plain, max_new_tokens=max_new_tokens)
        )
        del loaded
    table = Table(show_lines=True)
    table.add_column("prompt", style="bold")
    table.add_column(a)
    table.add_column(b)
    for row in zip(prompts, *answers):
        table.add_row(*map(escape, row))
    out_console.print(table)


@app.command()
def demo(
    concept: str = "Harry Potter",
    model: ModelOpt = DEFAULT_MODEL,
    out: Annotated[Path, typer.Option("--out", "-o")] = Path("runs/demo"),
    quantize: QuantizeOpt = DEFAULT_QUANTIZE,
    cache_dir: CacheOpt = None,
) -> None:
    """The main job: forget CONCEPT with ROCR, audit it in every form, write the report."""
    from formless.demo import run_demo

    run_demo(concept, model=model, out=out, cache=cache_dir, console=out_console, quantize=_schemes(quantize))


@app.command()
def models() -> None:
    """Built-in models and supported architectures."""
    from formless.models import BUILTIN_MODELS, supported_architectures

    table = Table(title="built-in models (no hub needed)")
    table.add_column("name")
    table.add_column("package")
    table.add_column("description")
    for spec in BUILTIN_MODELS.values():
        table.add_row(
            spec.name + (" (default)" if spec.name == DEFAULT_MODEL else ""), spec.install, spec.description
        )
    out_console.print(table)
    out_console.print("supported model types: " + ", ".join(supported_architectures()))


def _is_a(exc: BaseException, name: str) -> bool:
    """Whether ``exc`` derives from click's class ``name``, wherever click lives.

    typer >= 0.16 vendors its own copy of click (``typer._click``), so ``isinstance`` against the
    installed ``click`` never matches what the parser raises; the class name is what both share.
    """
    return any(cls.__name__ == name for cls in type(exc).__mro__)


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        app(standalone_mode=False)
    except FormlessError as exc:
        err_console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except (typer.Exit, SystemExit) as exc:
        code = getattr(exc, "exit_code", getattr(exc, "code", 0))
        sys.exit(code)
    except Exception as exc:  # click usage errors arrive here in non-standalone mode
        if _is_a(exc, "ClickException"):
            exc.show()  # "Usage: ...", "Try '... --help'", "Error: No such option: --x" -- no traceback
            sys.exit(exc.exit_code)
        if _is_a(exc, "Abort"):
            sys.exit(1)
        raise
