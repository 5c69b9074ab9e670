"""Independent passes side by side (formless.concurrent): order, errors, threads, no nesting, and the
audit's scores the same whether its jobs run side by side or one after the other."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest
import torch

from formless.concurrent import halves, job_threads, side_by_side, torch_threads, workers
from formless.errors import FormlessError


@pytest.fixture
def two_threads(monkeypatch):
    """Two torch threads and no worker override: side_by_side runs two jobs at once."""
    old = torch.get_num_threads()
    torch.set_num_threads(2)
    monkeypatch.delenv("FORMLESS_WORKERS", raising=False)
    yield
    torch.set_num_threads(old)


def test_results_come_back_in_the_jobs_order_whatever_finishes_first(two_threads):
    finished: list[int] = []

    def job(i: int, pause: float):
        def run():
            time.sleep(pause)
            finished.append(i)
            return i * 10

        return run

    assert side_by_side([job(0, 0.3), job(1, 0.0), job(2, 0.1)]) == [0, 10, 20]
    assert finished[0] != 0, "the jobs ran at once: the slow first job finished after a later one"


def test_each_job_gets_a_share_of_the_threads_and_they_are_given_back(two_threads):
    seen = side_by_side([torch.get_num_threads, torch.get_num_threads])
    assert seen == [1, 1]
    assert torch.get_num_threads() == 2


def test_a_job_alone_can_run_on_the_threads_it_gets_beside_others(two_threads):
    """The demo's edit runs on ``job_threads()`` whether or not anything runs beside it, so a second
    run remakes the same checkpoint bit for bit (float sums depend on the thread count)."""
    alone = side_by_side([torch.get_num_threads])
    assert alone == [2]  # a job alone gets every thread...

    def pinned():
        with torch_threads(job_threads()):
            return torch.get_num_threads()

    assert side_by_side([pinned]) == [1] == side_by_side([pinned, pinned])[:1]  # ...unless pinned
    assert torch.get_num_threads() == 2
    with pytest.raises(RuntimeError), torch_threads(1):
        raise RuntimeError("restored on the way out too")
    assert torch.get_num_threads() == 2


def test_side_by_side_inside_a_job_runs_in_sequence_on_the_jobs_thread(two_threads):
    def outer():
        here = threading.get_ident()
        inner = side_by_side([threading.get_ident, threading.get_ident])
        return here, inner

    for here, inner in side_by_side([outer, outer]):
        assert inner == [here, here]  # no pool inside a pool


def test_a_failing_job_raises_in_the_caller_after_the_running_ones_finish(two_threads):
    done = threading.Event()

    def slow():
        time.sleep(0.2)
        done.set()
        return 1

    def fails():
        time.sleep(0.05)  # the slow job has started by now
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        side_by_side([slow, fails])
    assert done.is_set()
    assert torch.get_num_threads() == 2


def test_one_worker_runs_every_job_in_the_calling_thread(two_threads, monkeypatch):
    monkeypatch.setenv("FORMLESS_WORKERS", "1")
    here = threading.get_ident()
    assert side_by_side([threading.get_ident, threading.get_ident]) == [here, here]
    assert side_by_side([torch.get_num_threads]) == [2]


@pytest.mark.parametrize("raw", ["0", "two", "-1"])
def test_a_bad_worker_count_is_a_clear_error(monkeypatch, raw):
    monkeypatch.setenv("FORMLESS_WORKERS", raw)
    with pytest.raises(FormlessError, match="FORMLESS_WORKERS must be a whole number >= 1"):
        workers()


def test_halves_split_by_a_hash_that_is_stable_across_processes_and_keep_equal_keys_together():
    keys = [f"prompt {i}" for i in range(40)] + ["prompt 3", "prompt 3"]
    first, second = halves(keys)
    assert sorted(first + second) == list(range(len(keys)))
    assert first and second
    together = {i for i, k in enumerate(keys) if k == "prompt 3"}
    assert together <= set(first) or together <= set(second)
    # Python's own str hash changes per process; this split must not
    code = "from formless.concurrent import halves; print(halves([f'prompt {i}' for i in range(40)]))"
    again = [
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True) for _ in "ab"
    ]
    assert again[0].stdout == again[1].stdout == f"{halves(keys[:40])}\n"


def test_scoring_in_halves_side_by_side_gives_the_one_pass_results(tmp_path, two_threads):
    """float64 tiny model: batch composition and thread count change nothing beyond rounding, so
    the generations and judgements are exactly those of one pass, the probabilities to rounding."""
    from formless.audit.engine import score_probes, score_probes_halved
    from formless.audit.forms import FORMS
    from formless.audit.run import AuditSettings, build_probes
    from formless.knowledge import load
    from formless.models import load_model
    from tests.tiny import save_tiny_model

    loaded = load_model(str(save_tiny_model("llama", tmp_path / "m")), device="cpu", dtype=torch.float64)
    kb = load()
    sets = build_probes(kb, [kb.concept("Harry Potter")], AuditSettings(forms=list(FORMS)))
    probes = sets.forget[:80]
    whole = score_probes(loaded, probes, batch_size=16)
    halved = score_probes_halved(loaded, probes, batch_size=16)
    assert len(halved) == len(whole) == len(probes)
    assert [(r.hit, r.output, r.chosen) for r in halved] == [(r.hit, r.output, r.chosen) for r in whole]
    for a, b in zip(halved, whole):
        if b.probability is None:
            assert a.probability is None
        else:
            assert a.probability == pytest.approx(b.probability, rel=1e-9)


def test_the_audit_reads_the_same_with_one_worker_and_with_two(tiny_dir, tmp_path, monkeypatch, two_threads):
    """The audit's jobs (reference halves, fluency, quantized copies of both models, relearning)
    run side by side or in sequence: the report's per-probe results and tables are the same. The
    attacked copies need nothing from the audited model's own scoring, so they share its pool."""
    import formless.audit.run as run_module
    from formless.audit.run import AuditSettings, run_audit
    from formless.knowledge import load

    pools: list[int] = []
    real = run_module.side_by_side
    monkeypatch.setattr(run_module, "side_by_side", lambda jobs: pools.append(len(jobs)) or real(jobs))

    kb = load()
    settings = AuditSettings(
        quantize=("rtn8", "gguf-q4_1"), relearn_steps=2, forms=["question", "true_false"]
    )
    model = str(tiny_dir)

    def audit(n: str, cache):
        monkeypatch.setenv("FORMLESS_WORKERS", n)
        report = run_audit(
            model, kb=kb, concepts=["Harry Potter"], reference=model, settings=settings, cache=cache
        )
        data = report.to_json()
        data.pop("run")
        data["relearning"].pop("seconds")  # a timing
        return data

    together = audit("2", tmp_path / "a")
    # one pool: 2 quantized copies of each model and the relearned copy, beside the audited model's
    # two scoring halves and the two fluency texts
    assert max(pools) == 5 + 2 + 2, pools
    alone = audit("1", tmp_path / "b")
    assert together == alone
    assert set(together["quantization"]) == {"rtn8", "gguf-q4_1"} and together["relearning"]


def test_a_transform_that_changes_no_weight_reuses_the_references_answers(tiny_dir, tmp_path, monkeypatch):
    """The default model ships on the Q4_1 grid, so its Q4_1 copy is itself: such a copy of the
    reference is not scored again (its answers are the reference's), and neither is such a copy of
    the audited model (an ROCR edit kept on that grid: its answers are the audited model's), while a
    copy that changes a weight is."""
    import copy as copying
    from dataclasses import dataclass
    from typing import ClassVar

    import formless.audit.attacks as attacks_module
    from formless.audit.attacks import quantization_entry, same_weights
    from formless.audit.run import AuditSettings, run_audit
    from formless.knowledge import load
    from formless.models.loading import LoadedModel

    @dataclass
    class CopyAttack:
        name: str
        nudge: float
        section: ClassVar[str] = "quantization"
        run_on_reference: ClassVar[bool] = True

        def transform(self, loaded):
            clone = copying.deepcopy(loaded.model)
            with torch.no_grad():
                next(clone.parameters()).add_(self.nudge)
            copy = LoadedModel(
                clone, loaded.tokenizer, loaded.name, loaded.source, loaded.path, loaded.adapter
            )
            return copy, {"scheme": self.name, "method": "copy"}

        def announce(self):
            return self.name

        def cache_key(self):
            return self.name

        def select(self, probes):
            return list(range(len(probes)))

        def entry(self, scores):
            return quantization_entry(scores)

        def timings(self, seconds):
            return {}

    scored_copies: list[int] = []
    real = attacks_module.score_probes
    monkeypatch.setattr(
        attacks_module,
        "score_probes",
        lambda copy, batch, **kw: scored_copies.append(len(batch)) or real(copy, batch, **kw),
    )
    audited_copies: list[int] = []
    real_known = attacks_module.score_known
    monkeypatch.setattr(
        attacks_module,
        "score_known",
        lambda copy, asked, before, settings: (
            audited_copies.append(len(asked)) or real_known(copy, asked, before, settings)
        ),
    )
    model = str(tiny_dir)
    settings = AuditSettings(quantize=(), forms=["question", "true_false", "multiple_choice"], fluency=False)
    report = run_audit(
        model, kb=load(), concepts=["Harry Potter"], reference=model, settings=settings, cache=tmp_path / "c",
        attacks=[CopyAttack("same", 0.0)],
    )  # fmt: skip
    assert scored_copies == []  # the unchanged copy of the reference was not asked anything
    assert audited_copies == []  # nor the unchanged copy of the audited model
    entry = report.quantization["same"]
    assert entry.overall == report.forget.overall  # it answered what the audited model answered
    assert entry.over_quantized_reference.shift in (0.0, None)
    assert entry.reference_quantized_keeps in (None, 1.0)
    assert entry.over_quantized_reference.overall == report.forget.overall
    run_audit(
        model, kb=load(), concepts=["Harry Potter"], reference=model, settings=settings, cache=tmp_path / "d",
        attacks=[CopyAttack("nudged", 1e-3)],
    )  # fmt: skip
    assert scored_copies and scored_copies[0] > 0  # a changed copy is scored
    assert audited_copies and audited_copies[0] > 0
    a = torch.nn.Linear(3, 2)
    b = copying.deepcopy(a)
    assert same_weights(a, b)
    with torch.no_grad():
        b.bias[0] += 1e-7
    assert not same_weights(a, b)


def test_after_a_failure_the_jobs_not_yet_started_never_start(two_threads):
    started: list[str] = []

    def fails():
        started.append("fails")
        raise ValueError("boom")

    def slow():
        started.append("slow")
        time.sleep(0.3)

    def later():
        started.append("later")

    with pytest.raises(ValueError, match="boom"):
        side_by_side([fails, slow, later, later])
    assert "later" not in started
