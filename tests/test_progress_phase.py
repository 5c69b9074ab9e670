"""The audit's phases say how far they are and how long is left (formless.progress.phase)."""

from __future__ import annotations

import re

from formless.generation import generate
from formless.progress import advance, phase


def test_a_phase_reports_batches_and_time_left(tiny):
    said: list[str] = []
    with phase("scoring 5 probes on the reference", said.append):
        generate(
            tiny.model, tiny.tokenizer, ["a", "b", "c", "d", "e"], max_new_tokens=3, batch_size=2, fast=False
        )
    assert said[0] == "scoring 5 probes on the reference"
    # three prefill batches of at most 2 prompts, then one decoding pass over all five
    steps = [
        re.fullmatch(r"scoring 5 probes on the reference: (\d)/4 passes of 3-token answers(, ~\d+s left)?", s)
        for s in said[1:]
    ]
    assert [int(m.group(1)) for m in steps] == [0, 1, 2, 3]
    assert steps[1].group(2) and steps[2].group(2)  # an estimate once a batch is done
    said.clear()
    advance(1, 2, 0.0)  # outside a phase: nothing to say, no error
    assert said == []
