"""Every benchmark script runs end to end: its --smoke mode (same code path, tiny random model, one
concept, few probes/steps) in a subprocess, checked on the figures it prints and the JSON it writes.

The README's measured tables come from these scripts; without this, a script can break (an API it
uses changes) and nobody notices until the numbers are to be re-measured.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from formless.audit.forms import FORMS

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "benchmarks"


def smoke(script: str, *args: str, tmp_path: Path, check: bool = True) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "FORMLESS_CACHE": str(tmp_path / "cache"),
        "OMP_NUM_THREADS": "1",
        # a script that asks for 2 threads on a loaded 2-core machine: idle threads sleep instead of
        # spinning (audit_determinism's 2-thread variants: 150 s -> 6 s here)
        "OMP_WAIT_POLICY": "PASSIVE",
        "MKL_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / f"{script}.py"), "--smoke", *args],
        cwd=tmp_path,  # a stray relative write would land here, not in the repository
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if check:
        assert done.returncode == 0, f"{script} --smoke failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
        assert "smoke run on" in done.stdout
    return done


def number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def fraction(x) -> bool:
    return number(x) and 0 <= x <= 1


def test_every_benchmark_has_a_smoke_test():
    scripts = {p.stem for p in BENCHMARKS.glob("*.py") if not p.stem.startswith("_")}
    tested = {
        name.removeprefix("test_").removesuffix("_smoke") for name in globals() if name.endswith("_smoke")
    }
    assert scripts <= tested, f"benchmarks without a smoke test here: {sorted(scripts - tested)}"


def test_rocr_knowledge_smoke(tmp_path):
    # no --model: the script builds its own tiny random model
    out = tmp_path / "rocr_knowledge.json"
    done = smoke("rocr_knowledge", "--json", str(out), tmp_path=tmp_path)
    assert "ROCR on" in done.stdout and "unrelated_kept_percent" in done.stdout
    data = json.loads(out.read_text())
    assert data["model_hash"] and data["config"]["layers"]
    [row] = data["rows"]  # one concept
    for form in ("chat", "plain"):
        for key in (
            "known",
            "leaked",
            "inferable",
            "leaked_needing_concept",
            "general_known",
            "general_kept",
        ):
            assert isinstance(row[f"{key}_{form}"], int) and row[f"{key}_{form}"] >= 0
        assert row[f"leaked_{form}"] <= row[f"known_{form}"]
        assert row[f"general_kept_{form}"] <= row[f"general_known_{form}"] <= 8  # a few unrelated facts
    assert row["edit_seconds"] > 0
    summary = data["summary"]
    assert summary["concepts"] == 1
    assert all(number(v) for v in summary.values())
    assert 0 <= summary["unrelated_kept_percent"] <= 100


def test_rocr_speed_smoke(tmp_path, tiny_dir):
    out = tmp_path / "rocr_speed.json"
    done = smoke("rocr_speed", "--model", str(tiny_dir), "--json", str(out), tmp_path=tmp_path)
    assert "edit per concept: median" in done.stdout and "peak RSS" in done.stdout
    data = json.loads(out.read_text())
    assert len(data["edit_seconds"]) == 2 and all(t > 0 for t in data["edit_seconds"].values())
    assert "with grid off" in done.stdout and len(data["grid_off_edit_seconds"]) == 2
    assert data["statistics_tokens"] > 0 and data["layers"]
    for key in ("load_seconds", "statistics_seconds", "statistics_cached_seconds", "edit_median_seconds"):
        assert number(data[key]) and data[key] >= 0
    assert data["all_in_one_edit_seconds"] > 0 and data["peak_rss_gib"] > 0


def test_audit_speed_smoke(tmp_path, tiny_dir):
    out = tmp_path / "audit_speed.json"
    done = smoke("audit_speed", "--model", str(tiny_dir), "--json", str(out), tmp_path=tmp_path)
    assert (
        "cold (reference scored, then cached)" in done.stdout and "warm (reference from cache)" in done.stdout
    )
    data = json.loads(out.read_text())
    cold, warm = data["cold"], data["warm"]
    assert cold["forms"] == warm["forms"] == len(FORMS)
    assert cold["probes"] == warm["probes"] > 0
    assert all(number(v) for v in (*cold["parts"].values(), *warm["parts"].values()))
    # the second audit finds the reference's results in the cache the first one filled
    assert warm["parts"]["reference"] < cold["parts"]["reference"]


def test_audit_methods_smoke(tmp_path, tiny_dir):
    out = tmp_path / "audit_methods.json"
    args = ["--methods", "rocr,ga", "--quantize", "rtn8", "--relearn-steps", "2", "--json", str(out)]
    args += ["--prior-twins", "all"]
    done = smoke("audit_methods", "--model", str(tiny_dir), *args, tmp_path=tmp_path)
    assert "| form | rocr | ga |" in done.stdout
    assert "| residual after rtn8 (over the reference's facts) |" in done.stdout
    assert "| change after rtn8 on the same facts (the rtn8 reference's; kept quantized − unquantized) |" in (
        done.stdout
    )
    assert "| held-out facts (never trained on; the same half for every method) |" in done.stdout
    data = json.loads(out.read_text())
    assert data["concepts"] == ["Harry Potter"] and data["fast"] is False and data["schemes"] == ["rtn8"]
    assert data["prior_twins"] == "all"
    assert set(data["results"]) == {"rocr", "ga"}
    for result in data["results"].values():
        [record] = result["concepts"].values()  # one concept
        assert set(record["per_form"]) <= set(FORMS) and len(record["per_form"]) >= 10  # forms with probes
        for known, kept in [*record["per_form"].values(), record["overall"], record["neighbours"]]:
            assert 0 <= kept <= known
        for form, (known, kept) in record["beyond_prior"].items():  # a subset of each form's known facts
            assert 0 <= kept <= known <= record["per_form"][form][0]
        for key in ("kl", "entropy", "forget_seconds"):
            assert number(record[key]), (key, record[key])
        for key in (
            "prob_ratio",
            "bias",
            "residual",
        ):  # None where too few probes of the random model are known
            assert record[key] is None or number(record[key]), (key, record[key])
        assert record["forget_seconds"] > 0
        q = record["quantization"]["rtn8"]
        assert 0 <= q["overall"][1] <= q["overall"][0] == record["overall"][0]
        for key in ("relearn_before", "relearn_after"):
            assert 0 <= record[key][1] <= record[key][0]
    # a resumed run redoes nothing it holds, and the table prints from the file alone
    again = smoke("audit_methods", "--model", str(tiny_dir), "--methods", "", "--from", str(out),
                  tmp_path=tmp_path)  # fmt: skip
    assert "| form | rocr | ga |" in again.stdout


def test_audit_methods_wilson_interval(monkeypatch):
    """The pooled intervals of the method table: Wilson's score interval, against textbook values."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import audit_methods

    low, high = audit_methods.wilson(5, 10)
    assert math.isclose(low, 0.2366, abs_tol=5e-5) and math.isclose(high, 0.7634, abs_tol=5e-5)
    low, high = audit_methods.wilson(0, 20)  # never below 0, and not a zero-width interval
    assert low == 0.0 and math.isclose(high, 0.1611, abs_tol=5e-5)
    assert audit_methods.wilson(0, 0) is None
    assert audit_methods.pooled([(10, 5), (10, 0)]) == "25% [11–47%] (5/20)"


def test_audit_methods_reads_each_facts_own_chance_as_the_audit_does(monkeypatch):
    """The method table pools the residual above the prior from the report's probes; on one concept it
    must equal the audit's own per-form figure (formless.audit.metrics), computed independently."""
    import random
    from types import SimpleNamespace

    from formless.audit.building import build_probes
    from formless.audit.engine import ProbeResult
    from formless.audit.metrics import summarise, units
    from formless.audit.settings import AuditSettings
    from formless.knowledge import load

    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import audit_methods

    kb = load()
    # the report also holds the neighbours' and general facts, asked in the question form: they are
    # retain figures and must not enter a form's residual
    forms = ["multiple_choice", "multiple_choice_letter", "true_false", "question", "indirect"]
    settings = AuditSettings(forms=forms, prior_twins="all", fluency=False)
    sets = build_probes(kb, [kb.concept("Albert Einstein")], settings)
    assert {p.form for p in sets.neighbour + sets.general} & set(forms)
    rng = random.Random(0)
    every = sets.forget + sets.neighbour + sets.general
    before = [ProbeResult(rng.random() < 0.7, None) for _ in every]
    after = [ProbeResult(rng.random() < 0.4, None) if not p.prior_twin else None for p in every]
    forget = list(zip(every, before, after))[: len(sets.forget)]
    per_form = {f: summarise(units(*zip(*[t for t in forget if t[0].form == f]))) for f in forms}
    record = lambda r: SimpleNamespace(hit=r.hit)  # noqa: E731
    report = SimpleNamespace(
        concepts=["Albert Einstein"],
        probes=[SimpleNamespace(key=p.key, concept=p.concept, before=record(b), after=a and record(a),
                                cue=p.cue or None) for p, b, a in zip(every, before, after)],
        forget=SimpleNamespace(
            per_form={f: SimpleNamespace(chance=v.get("chance")) for f, v in per_form.items()}
        ),
    )  # fmt: skip
    pooled = audit_methods.own_chances(report)
    for form in forms[:-1]:  # the forms whose twins are about made-up names
        kept, expected = (sum(x[j] for x in pooled[form]) for j in (0, 1))
        assert len(pooled[form]) == per_form[form]["known"] >= 3
        assert (
            round((kept - expected) / (len(pooled[form]) - expected), 4)
            == per_form[form]["residual_above_prior"]
        )
    text = audit_methods.above_prior_pooled(pooled["multiple_choice"])
    assert text.startswith(f"{100 * per_form['multiple_choice']['residual_above_prior']:.0f}% [")
    # indirect reference's twins name the description's entities: "implied", never a chance
    assert "residual_above_prior" not in per_form["indirect"] and "indirect" not in pooled
    assert per_form["indirect"]["known_beyond_prior"] <= per_form["indirect"]["known"]


def test_methods_speed_smoke(tmp_path, tiny_dir):
    out = tmp_path / "methods_speed.json"
    done = smoke("methods_speed", "--model", str(tiny_dir), "--json", str(out), tmp_path=tmp_path)
    assert "time ratio NPO / ROCR" in done.stdout
    data = json.loads(out.read_text())
    assert data["model"] == str(tiny_dir) and data["steps"] == 2
    assert set(data["rows"]) == {"rocr", "npo"}
    for row in data["rows"].values():
        assert row["seconds"] > 0 and row["peak_rss_gib"] > 0
    assert data["rows"]["rocr"]["steps"] is None and data["rows"]["npo"]["steps"] == 2


def test_tune_methods_smoke(tmp_path, tiny_dir):
    out = tmp_path / "sweep" / "tuning"
    done = smoke("tune_methods", "--model", str(tiny_dir), "--out", str(out), tmp_path=tmp_path)
    assert "| method | lr |" in done.stdout
    data = json.loads(out.with_suffix(".json").read_text())
    assert data["meta"]["concepts"] == ["Mount Everest"] and data["meta"]["steps"] == 2
    [row] = data["rows"]
    assert (row["method"], row["steps"]) == ("ga", 2) and number(row["lr"])
    assert row["seconds"] > 0 and row["concepts"]["Mount Everest"]["steps"] == 2
    for key in ("forget", "neighbours", "general"):  # None: the random model knows none of those facts
        assert row[key] is None or fraction(row[key])
    assert data["chosen"]["ga"]["lr"] == row["lr"]
    assert "| ga |" in out.with_suffix(".md").read_text()
    # per-method runs made in parallel merge into one table, the choice recomputed over all rows
    other = dict(data, rows=[dict(row, method="rt", lr=3e-5)])
    (tmp_path / "rt.json").write_text(json.dumps(other))
    merged = tmp_path / "merged" / "tuning"
    args = ["--methods", "", "--from", str(out.with_suffix(".json")), "--from", str(tmp_path / "rt.json")]
    smoke("tune_methods", "--model", str(tiny_dir), "--out", str(merged), *args, tmp_path=tmp_path)
    data = json.loads(merged.with_suffix(".json").read_text())
    assert [(r["method"], r["lr"]) for r in data["rows"]] == [("ga", row["lr"]), ("rt", 3e-5)]
    assert data["chosen"]["rt"]["lr"] == 3e-5 and data["chosen"]["ga"]["lr"] == row["lr"]


def test_audit_determinism_smoke(tmp_path, tiny_dir):
    out = tmp_path / "audit_determinism.json"
    forms = "question,multiple_choice"
    args = ["--model", str(tiny_dir), "--forms", forms, "--json", str(out)]
    done = smoke("audit_determinism", *args, tmp_path=tmp_path)
    assert "| variant | reference verdicts changed |" in done.stdout
    data = json.loads(out.read_text())
    assert data["forms"] == forms.split(",") and len(data["seconds"]) == 5
    diffs = data["against_default"]
    assert len(diffs) == 4
    for diff in diffs.values():
        assert diff["probes"] > 0 and number(diff["max_probability_change"])
        assert diff["reference_verdicts_changed"] >= 0 and diff["audited_verdicts_changed"] >= 0
    assert diffs["default again"]["identical"]  # same threads, batch and precision: the same report


def test_elicit_speed_smoke(tmp_path, tiny_dir):
    out = tmp_path / "elicit_speed.json"
    done = smoke("elicit_speed", "--model", str(tiny_dir), "--json", str(out), tmp_path=tmp_path)
    assert "seconds per concept: mean" in done.stdout
    data = json.loads(out.read_text())
    [row] = data["rows"]  # one concept
    assert row["concept"] and number(row["seconds"]) and row["seconds"] > 0
    assert isinstance(row["kept"], int) and row["kept"] >= 0
    if row["kept"]:  # a random model usually states nothing twice: then the row says why
        assert row["kept"] <= row["asked"] and set(row["facts"]) and row["audit_probes_per_form"]
    else:
        assert row.get("error") or row.get("asked") is not None


def test_unseen_concepts_smoke(tmp_path, tiny_dir):
    out = tmp_path / "unseen_concepts.json"
    done = smoke("unseen_concepts", "--model", str(tiny_dir), "--json", str(out), tmp_path=tmp_path)
    assert "| form | rocr | npo |" in done.stdout and "record build: mean" in done.stdout
    data = json.loads(out.read_text())
    assert data["methods"] == ["rocr", "npo"] and data["steps"] == 2
    [row] = data["rows"]  # one concept, not in the knowledge base
    assert row["concept"] == "Paris" and "skipped" not in row  # --smoke scripts the generations
    assert row["facts"] and number(row["elicit_seconds"])
    assert set(row["methods"]) == {"rocr", "npo"}
    for result in row["methods"].values():
        assert set(result["per_form"]) <= set(FORMS) and result["per_form"]
        for known, still, residual in result["per_form"].values():
            assert 0 <= still <= known and (residual is None or fraction(residual))
        assert result["forget_seconds"] > 0 and result["audit_seconds"] > 0
    assert set(row["known_per_form"]) == set(row["methods"]["rocr"]["per_form"])


def test_elicit_validation_smoke(tmp_path, tiny_dir):
    out = tmp_path / "elicit_validation.json"
    done = smoke("elicit_validation", "--model", str(tiny_dir), "--json", str(out), tmp_path=tmp_path)
    assert "| form | curated | generated | difference (points) | within 10 |" in done.stdout
    assert "generated record:" in done.stdout and "elicitation: mean" in done.stdout
    data = json.loads(out.read_text())
    [row] = data["rows"]  # one built-in concept
    assert row["curated_facts"] and row["generated_facts"] and number(row["elicit_seconds"])
    for label in ("curated", "generated"):
        for known, still, residual in row[label]["per_form"].values():
            assert 0 <= still <= known and (residual is None or fraction(residual))
    # --from merges shard files and prints the same tables without a model
    merged = subprocess.run(
        [sys.executable, str(BENCHMARKS / "elicit_validation.py"), "--from", str(out), "--from", str(out)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    assert "1 concepts from 2 file(s)" in merged.stdout and "| form | curated |" in merged.stdout


@pytest.mark.parametrize("script", ["tune_methods", "rocr_knowledge"])
def test_smoke_never_writes_into_docs(tmp_path, script):
    target = ROOT / "docs" / "smoke-must-not-write-here"
    flag = "--out" if script == "tune_methods" else "--json"
    done = smoke(script, "--model", "unused", flag, str(target), tmp_path=tmp_path, check=False)
    assert done.returncode != 0 and "--smoke does not write into" in done.stderr
    assert not list(target.parent.glob(f"{target.name}*"))


def test_demo_speed_smoke(tmp_path, tiny_dir):
    out = tmp_path / "demo_speed.json"
    done = smoke("demo_speed", "--model", str(tiny_dir), "--json", str(out), tmp_path=tmp_path)
    assert "baseline HEAD" in done.stdout and "audit total" in done.stdout
    data = json.loads(out.read_text())
    states = ("cold", "warm reference", "warm")
    assert set(data["runs"]) == {f"{t} {s}" for t in ("baseline", "current") for s in states}
    for run in data["runs"].values():
        assert number(run["wall"]) and run["wall"] > 0
        assert number(run["cpu"]) and run["cpu"] > 0  # the demo's own work, measured
        assert all(number(v) for v in run["phases"].values())
        assert run["phases"]["audit total"] < run["wall"]
    # a warm run finds the reference's scores in the cache the cold run filled (the demo scores
    # the reference beside the edit, before the audit: "reference_beside_edit")
    for tree in ("baseline", "current"):
        cold, warm = data["runs"][f"{tree} cold"]["phases"], data["runs"][f"{tree} warm"]["phases"]
        assert cold["audit.reference_beside_edit"] > 0 and warm["audit.reference_beside_edit"] == 0
        assert warm["audit.reference"] < 0.5  # the audit itself scores nothing on the reference
        # the same checkpoint again: the attacked copies' results come from the audited model's
        # cache; with that cache removed ("warm reference") they are made and scored
        again = data["runs"][f"{tree} warm reference"]["phases"]
        assert any(k.endswith("_cached") for k in warm) and not any(k.endswith("_cached") for k in again)
    assert data["probes"] > 0 and all(number(data["ratio"][s]) for s in states)
    # both trees judge every probe alike: no hit, option or unexplained output differs (an output
    # cut where its answer was settled, or a probability's last digits, may, between revisions)
    for state in ("cold", "warm"):
        found = data["differences_by_kind"][state]
        assert found["judgement"] == [] and found["other"] == [], found
        listed = sum(len(v) for v in found.values())
        assert listed >= len(data["differences"][state])  # every difference is sorted somewhere


def test_recognition_prior_smoke(tmp_path, tiny_dir):
    out = tmp_path / "recognition_prior.json"
    done = smoke("recognition_prior", "--model", str(tiny_dir), "--json", str(out), tmp_path=tmp_path)
    data = json.loads(out.read_text())
    (row,) = data["rows"]
    assert row["concept"] == "Harry Potter" and row["probes"]
    assert {p["form"] for p in row["probes"]} == {"multiple_choice", "multiple_choice_letter", "true_false"}
    for p in row["probes"]:
        assert all(
            isinstance(p[w], bool) for w in ("reference", "edited", "reference_control", "edited_control")
        )
        assert (
            "harry potter" not in p["control_prompt"].lower() and "Velmora Strunkett" in p["control_prompt"]
        )
    for form in ("multiple_choice", "multiple_choice_letter", "true_false"):
        assert f"| {form} |" in done.stdout


def test_recognition_prior_counts_over_the_probes_the_reference_knows():
    sys.path.insert(0, str(BENCHMARKS))
    import recognition_prior as rp

    def probe(item: str, variant: str, ref: bool, edited: bool, ctl: bool) -> dict:
        ways = {"reference": ref, "edited": edited, "reference_control": ctl, "edited_control": ctl}
        # two other made-up names: the first right on both statements, the second on the true one only
        others = [True, variant == "t"]
        return {
            "form": "true_false",
            "key": f"X|true_false|{item}|{variant}",
            **ways,
            "other_controls": others,
        }

    facts = [  # (reference, edited, made-up name) for the true and the false statement
        [(True, True, False), (True, True, True)],  # known, kept, prior wrong on one statement
        [(True, False, True), (True, False, True)],  # known, forgotten, prior right
        [(True, True, True), (False, True, True)],  # not known: one statement wrong
        [(True, True, True), (True, True, True)],  # known, kept, prior right
    ]
    rows = [{"probes": [probe(str(i), v, *w) for i, f in enumerate(facts) for v, w in zip("tf", f)]}]
    line = next(x for x in rp.table(rows).splitlines() if x.startswith("| true_false"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    # known 3 of 4 facts; residual 2/3; prior over the known 2/3; knowledge-dependent 1 (kept)
    assert cells[1:4] == ["3/4", "67% [21–94%] (2/3)", "67% [21–94%] (2/3)"]
    # the floor: of that one fact, the first other name gets both statements right, the second not
    assert cells[5:] == ["1/3", "100% [21–100%] (1/1)", "50% (1/2, 2 other names)"]


def test_audit_methods_pools_the_same_facts_shift_over_concepts(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import audit_methods

    text = audit_methods.same_facts_shift([[[1, 1, 0], [2, 1, 1]], [[1, 0, 0]], None])
    # (2 − 1) / 4 pooled over the two concepts that have it
    assert text.startswith("+25 points [") and text.endswith("(2 vs 1 of 4, 1 concepts without it)")
    assert audit_methods.same_facts_shift([None]) == "–"
