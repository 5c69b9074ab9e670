# ruff: noqa: E501
"""The audit end to end on a tiny model: aggregation maths, determinism, cache, reports, ORT files, CLI."""

from __future__ import annotations

import json

import pytest
from test_cli_errors import run

from formless.audit import run as audit_run
from formless.audit.engine import ProbeResult
from formless.audit.external import external_probe_sets
from formless.audit.report import AuditReport
from formless.audit.run import AuditSettings, run_audit
from formless.knowledge import build
from formless.reports import write_report

HP_AUTHOR = {
    "relation": "author",
    "question": "Who wrote Harry Potter?",
    "completion": "Harry Potter was written by",
    "answer": "J.K. Rowling",
    "cloze": "Harry Potter was written by ___.",
    "paraphrase": "Who is Harry Potter's author?",
    "distractors": ["Roald Dahl", "C.S. Lewis", "Enid Blyton"],
    "reverse": "Which books did J.K. Rowling write?",
    "translations": {
        "fr": {"question": "Qui a écrit Harry Potter ?"},
        "es": {"question": "¿Quién escribió Harry Potter?"},
    },
}
HP_SCHOOL = {
    "relation": "school",
    "question": "Which school does Harry Potter attend?",
    "completion": "Harry Potter attends",
    "answer": "Hogwarts",
    "cloze": "Harry Potter attends ___.",
    "distractors": ["Eton", "Oxford", "Harvard"],
}
KB = {
    "concepts": [
        {
            "name": "Harry Potter",
            "description": "the book series about a boy wizard",
            "aliases": ["the Potter books"],
            "neighbours": ["Star Wars"],
            "multihop": [
                {"question": "Who wrote the books in which Hogwarts appears?", "answer": "J.K. Rowling"}
            ],
            "facts": [HP_AUTHOR, HP_SCHOOL],
        },
        {
            "name": "Star Wars",
            "description": "the space saga with Jedi knights",
            "facts": [
                {
                    "relation": "creator",
                    "question": "Who created Star Wars?",
                    "completion": "Star Wars was created by",
                    "answer": "George Lucas",
                }
            ],
        },
    ],
    "general": [
        {
            "subject": c,
            "relation": "capital",
            "question": f"What is the capital of {c}?",
            "completion": f"The capital of {c} is",
            "answer": a,
        }
        for c, a in (
            ("France", "Paris"),
            ("Japan", "Tokyo"),
            ("Italy", "Rome"),
            ("Spain", "Madrid"),
            ("Egypt", "Cairo"),
            ("Peru", "Lima"),
        )
    ],
}


@pytest.fixture
def kb(tmp_path):
    path = tmp_path / "kb.json"
    path.write_text(json.dumps(KB))
    return build([path])


def _audit(tiny_dir, kb, cache, model=None, **kw):
    """An audit of ``model`` (default: the reference itself) against the tiny reference."""
    settings = AuditSettings(**{"quantize": (8,), **kw})
    return run_audit(
        str(model or tiny_dir),
        kb=kb,
        concepts=["Harry Potter"],
        reference=str(tiny_dir),
        settings=settings,
        cache=cache,
    )


def test_audit_is_deterministic_cached_and_reported(tiny_dir, kb, cache, tmp_path, monkeypatch):
    first = _audit(tiny_dir, kb, cache)
    print(first.run.seconds)
    loads = []
    original = audit_run.load_model
    monkeypatch.setattr(audit_run, "load_model", lambda *a, **k: loads.append(a) or original(*a, **k))
    second = _audit(tiny_dir, kb, cache)
    assert len(loads) == 2  # audited model + reference for its hash; no reference scoring needed
    assert first.model_dump(exclude={"run"}) == second.model_dump(exclude={"run"})
    other_seed = _audit(tiny_dir, kb, cache, seed=1)
    assert other_seed.probes != first.probes  # option orders and few-shot picks follow the seed
    # the audited model is the reference: nothing it knew is lost, in any form
    for form, stats in first.forget.per_form.items():
        assert stats.residual in (None, 1.0), form
    assert set(first.forget.per_form) == set(first.forms)
    assert first.retain.neighbours.probes == 2  # Star Wars asked as question and completion
    assert first.retain.general.probes == 3  # three more are the few-shot examples
    assert first.retain.fluency.kl_from_reference == pytest.approx(0, abs=1e-6)
    assert "8bit" in first.quantization and first.model.weights_hash.startswith("sha256:")
    out = write_report(first, tmp_path / "report")
    assert AuditReport.load(out) == first  # audit.json reads back as the same report
    assert {p.name for p in out.iterdir()} == {"audit.json", "report.md", "report.html", "heatmap.png"}
    assert "| Question |" in (out / "report.md").read_text()
    assert "data:image/png;base64," in (out / "report.html").read_text()


def test_ort_probes_join_the_audit(tiny_dir, kb, cache, tmp_path):
    folder = tmp_path / "ort" / "1_Harry_Potter"
    folder.mkdir(parents=True)
    (folder / "forget_level1.json").write_text(
        json.dumps(
            [
                {
                    "query": "Harry Potter was written by ___.",
                    "answer": "J.K. Rowling",
                    "level": "1",
                    "type": "blank",
                }
            ]
        )
    )
    (folder / "forget_mcp.json").write_text(
        json.dumps(
            [
                {
                    "query": "Who wrote it?\nA. Dahl\nB. Rowling\nC. Lewis\nD. Blyton",
                    "answer": "B",
                    "level": "mcp",
                    "type": "mcp",
                }
            ]
        )
    )
    (folder / "neighbor_level2.json").write_text(
        json.dumps(
            [{"query": "Who created Star Wars?", "answer": "George Lucas", "level": "2", "type": "qa"}]
        )
    )
    (folder / "forget_level3.json").write_text(
        json.dumps([{"query": "x", "answer": "y", "type": "telepathy"}])
    )
    sets, notes = external_probe_sets(tmp_path / "ort")
    assert notes == ["1 probe of unknown type 'telepathy' skipped"]
    report = run_audit(
        str(tiny_dir),
        kb=kb,
        reference=str(tiny_dir),
        external=sets,
        cache=cache,
        settings=AuditSettings(quantize=(), fluency=False),
    )
    assert set(report.forget.per_form) == {"cloze", "multiple_choice_letter"}
    assert report.retain.neighbours.probes == 1


def test_cli_audit_errors_are_one_line(tiny_dir, tmp_path, capsys):
    cases = [
        (["audit", str(tiny_dir), "-c", "Harry Potter"], "pass --reference"),
        # a made-up name: the random model's garbage for "Nope Person" happens to agree in two forms
        # since the chat answers grew to 24 tokens ("famous for: ding"), so the case uses the name
        # the elicitation tests use; what a real model does with a made-up name: test_elicit.py
        (
            ["audit", str(tiny_dir), "-c", "Zorblax Quentavian", "--reference", str(tiny_dir)],
            "nothing to audit",
        ),
        (["audit", str(tiny_dir), "--quantize", "eight"], "unknown quantization scheme 'eight'"),
        (
            ["audit", str(tiny_dir), "--quantize", "5", "-c", "Harry Potter", "--reference", "x"],
            "unknown quantization scheme '5'",
        ),
        (["audit", str(tiny_dir), "--forms", "poetry", "-c", "Harry Potter"], "unknown form"),
        (["audit", str(tiny_dir), "--prior-twins", "some", "-c", "Harry Potter"], "prior twins 'some'"),
        (["audit", str(tiny_dir), "--probes", str(tmp_path / "none")], "no such file or directory"),
    ]
    for args, message in cases:
        code, out, err = run(args, capsys)
        assert code == 2, (args, out, err)
        assert message in err and "Traceback" not in err, (args, err)


def test_relearning_probe_splits_facts_and_reports(tiny_dir, kb, cache):
    from formless.attacks.relearn import split_facts

    concept = kb.concept("Harry Potter")
    part, held_out = split_facts(concept, seed=0)
    assert {f.relation for f in part.facts}.isdisjoint(held_out)
    assert {f.relation for f in part.facts} | held_out == {f.relation for f in concept.facts}
    assert split_facts(concept, seed=0)[1] == held_out
    report = _audit(
        tiny_dir, kb, cache, quantize=(), fluency=False, relearn_steps=2, forms=["question", "cloze"]
    )
    r = report.relearning
    assert r.steps == 2 and r.held_out == {"Harry Potter": sorted(held_out)}
    assert r.before.probes == r.after.probes == 2 * len(held_out)
    assert "relearning" in report.run.seconds and "relearning" in report.to_json()


def test_reference_caches_saved_side_by_side_keep_each_others_entries(tmp_path):
    """Two audits of the same base running at once: the later save must not drop the earlier one's
    entries (it used to overwrite the whole file with its own view)."""
    from formless.audit.reference import ResultCache

    first, second = ResultCache("sha256:abc", tmp_path), ResultCache("sha256:abc", tmp_path)
    first.put("a", ProbeResult(hit=True, probability=0.5, output="x"))
    second.put("b", ProbeResult(hit=False, probability=0.1, output="y"))
    first.save()
    second.save()
    again = ResultCache("sha256:abc", tmp_path)
    assert again.get("a") == ProbeResult(hit=True, probability=0.5, output="x")
    assert again.get("b") == ProbeResult(hit=False, probability=0.1, output="y")
    assert second.get("a") is not None  # the saver sees what the other run added


def _subject_folder(root, folder, subject, answer):
    (root / folder).mkdir(parents=True)
    (root / folder / "forget_level2.json").write_text(
        json.dumps([{"query": f"Where does {subject} live?", "answer": answer, "type": "qa"}])
    )


def test_cli_probes_folder_keeps_only_the_audited_subject(tiny_dir, tmp_path, capsys):
    """``--probes DIR`` with several targets scores only the audited concept's probes, and ``-c`` may
    name a subject that exists only in the probe files (no knowledge-base record needed)."""
    root = tmp_path / "ort"
    _subject_folder(root, "1_Ada_Quill", "Ada Quill", "Paris")
    _subject_folder(root, "2_Bo_Marsh", "Bo Marsh", "Rome")
    out = tmp_path / "report"
    args = ["audit", "--model", str(tiny_dir), "--reference", str(tiny_dir), "-c", "Ada Quill"]
    args += [
        "--probes",
        str(root),
        "--quantize",
        "none",
        "--out",
        str(out),
        "--cache-dir",
        str(tmp_path / "c"),
    ]
    code, _, err = run(args, capsys)
    assert code == 0, err
    report = json.loads((out / "audit.json").read_text())
    concepts = {p["concept"] for p in report["probes"]}
    assert "Ada Quill" in concepts and "Bo Marsh" not in concepts
    assert "'Bo Marsh' not selected" in err


def test_prior_twins_for_every_form_that_names_the_concept(kb):
    """--prior-twins all: each asked probe whose prompt names the concept (or an alias) gets one twin
    about the made-up name, in every forget form; prompts that never name it (reverse, multi-hop)
    get none, indirect reference only twins about its description's entities, and the choice forms
    keep their one twin each. The default keeps twins to
    the choice forms. A known fact whose twin the reference also gets right leaves the
    'beyond the prior' count; the plain residual is unchanged."""
    from formless.audit.building import build_probes
    from formless.audit.forms.base import PRIOR_NAME
    from formless.audit.tables import summarise_probes

    concept = kb.concept("Harry Potter")
    default = build_probes(kb, [concept], AuditSettings(neighbours=False, general=False)).forget
    every = build_probes(
        kb, [concept], AuditSettings(neighbours=False, general=False, prior_twins="all")
    ).forget
    choice = {"multiple_choice", "multiple_choice_letter", "true_false"}
    assert {p.form for p in default if p.prior_twin} == choice
    assert [p for p in every if not p.prior_twin] == [p for p in default if not p.prior_twin]
    twins = {p.key: p for p in every if p.prior_twin}
    for p in (p for p in every if not p.prior_twin):
        names_it = any(n.lower() in p.prompt.lower() for n in [concept.name, *concept.aliases])
        twin = twins.get(p.key + "~prior")
        if p.form == "indirect":  # about an entity the description names, never a made-up name
            assert twin is None or (twin.cue and twin.cue in p.prompt and PRIOR_NAME not in twin.prompt), p
        elif p.form == "in_context" or not names_it:  # knowledge given in context is no test of recall
            assert twin is None, p
        else:
            assert (
                twin is not None and PRIOR_NAME in twin.prompt and "harry potter" not in twin.prompt.lower()
            )
            assert (twin.form, twin.answer, twin.aliases) == (p.form, p.answer, p.aliases)
    assert {p.form for p in every if p.prior_twin} >= choice | {"question", "completion", "cloze"}
    assert not any(p.prior_twin for p in every if p.form in ("reverse", "multihop"))
    # "the book series about a boy wizard" names no entity: nothing to ask instead
    assert not any(p.prior_twin for p in every if p.form == "indirect")

    # the author fact's completion twin is answered by the reference too: it needs no knowledge of the concept
    completions = [p for p in every if p.form == "completion"]
    before = [ProbeResult(hit=not p.prior_twin or p.item == "author", probability=0.5) for p in completions]
    after = [None if p.prior_twin else ProbeResult(hit=True, probability=0.4) for p in completions]
    summary = summarise_probes(completions, before, after)
    assert (summary.known, summary.still_answered) == (2, 2)
    assert (summary.known_by_prior, summary.known_beyond_prior, summary.still_answered_beyond_prior) == (
        1,
        1,
        1,
    )


def test_the_same_checkpoint_audited_again_is_not_rescored(tiny_dir, kb, cache, tmp_path, monkeypatch):
    """The audited model's results (its probes, fluency, KL, every attacked copy) are cached by its
    weights hash: a second audit of the same weights reads them back, scores nothing and makes no
    copy, and reports the same; other weights are scored afresh."""
    from tiny import save_tiny_model

    from formless.attacks import relearn
    from formless.audit import attacks, cached, engine

    def audit(model):
        return _audit(tiny_dir, kb, cache, model=model, relearn_steps=2)

    edited = save_tiny_model("llama", tmp_path / "edited", seed=1)
    first = audit(edited)
    assert first.run.audited_cache and first.relearning is not None and "8bit" in first.quantization
    calls: list[str] = []

    def counted(module, name):
        original = getattr(module, name)
        monkeypatch.setattr(module, name, lambda *a, **k: calls.append(name) or original(*a, **k))

    counted(engine, "score_probes")  # the audited model's own pass
    counted(cached, "score_probes")  # the attacked copies
    counted(relearn, "relearned_copy")
    counted(attacks.QuantizationAttack, "transform")
    counted(audit_run, "fluency_generations")
    counted(audit_run, "divergence")
    second = audit(edited)
    assert calls == []
    assert first.model_dump(exclude={"run"}) == second.model_dump(exclude={"run"})
    other = audit(save_tiny_model("llama", tmp_path / "other", seed=2))
    assert {"score_probes", "relearned_copy", "transform", "fluency_generations", "divergence"} <= set(calls)
    assert other.run.audited_cache != first.run.audited_cache


def test_further_made_up_names_are_asked_only_about_facts_the_reference_knows(
    tiny_dir, kb, cache, monkeypatch
):
    """The second and third made-up names' twins only set a known fact's own chance: the reference is
    asked them for the facts it knows (every named variant right), after the rest, and the report
    holds them for those facts alone; the first name's twin is asked of every fact."""
    asked: list[list] = []

    def fake_reference(loaded, batch, **kw):
        # the reference knows the author fact in every form; a made-up name gets it right for name 1
        asked.append(list(batch))
        return [ProbeResult(hit=(p.item == "author") != (p.prior_twin and p.twin != 1), probability=0.5)
                for p in batch]  # fmt: skip

    monkeypatch.setattr(audit_run, "score_probes_halved", fake_reference)
    report = _audit(tiny_dir, kb, cache, quantize=(), fluency=False)
    extra = [p for batch in asked for p in batch if p.extra_twin]
    assert extra and {p.item for p in extra} == {"author"}  # never about the unknown school fact
    assert not any(p.extra_twin for p in asked[0])  # asked after the others were known
    first = [p for batch in asked for p in batch if p.prior_twin and p.twin == 0]
    assert {p.item for p in first} == {"author", "school"}
    in_report = [p.key for p in report.probes if "~prior1" in p.key or "~prior2" in p.key]
    assert in_report and all("|author|" in k for k in in_report)
    # the author fact: twins 0 and 2 wrong, twin 1 right -> its own chance 1/3 in every choice form
    mc = report.forget.per_form["multiple_choice"]
    assert mc.known == 1 and mc.prior_keeps == round(1 / 3, 4)
