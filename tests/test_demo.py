"""``formless demo``'s scheduling: the edited model's fluency runs beside the reference's scoring."""

from __future__ import annotations

from rich.console import Console

import formless.audit.run as audit_run
import formless.demo as demo
from formless.audit.run import AuditSettings, run_audit
from formless.knowledge import load


def test_the_edited_models_fluency_is_written_beside_the_reference_and_the_audit_finds_it(
    tiny_dir, tmp_path, monkeypatch
):
    """Two fluency passes in the demo (the reference's and the edited model's, both before the audit
    starts): the audit finds the edited model's in its cache instead of generating a third; and
    its texts are those a fresh audit of the same checkpoint generates in its own pool."""
    calls: list[str] = []
    real = audit_run.fluency_generations

    def counted(loaded, **kw):
        calls.append(loaded.path)
        return real(loaded, **kw)

    def audit(*args, **kw):
        calls.append("the audit starts")
        return run_audit(*args, **kw)

    monkeypatch.setattr(audit_run, "fluency_generations", counted)
    monkeypatch.setattr(demo, "run_audit", audit)
    out = tmp_path / "demo"
    report = demo.run_demo(
        "Harry Potter",
        model=str(tiny_dir),
        out=out,
        cache=tmp_path / "cache",
        console=Console(quiet=True),
        quantize=(),
        relearn_steps=0,
    )
    assert calls[-1] == "the audit starts" and str(out / "model") in calls[:-1]
    assert len(calls) == 3
    fresh = run_audit(
        out / "model",
        kb=load(),
        settings=AuditSettings(quantize=(), relearn_steps=0),
        cache=tmp_path / "other-cache",
    )
    assert len(calls) == 5  # the fresh audit generated both itself
    assert report.retain.fluency == fresh.retain.fluency
