"""Training on several processes (accelerate launch, DDP over gloo on CPU) gives the one-process run.

Both runs go through ``unlearn`` on the tiny model in float64 (scripts/dist_train.py), once as one
process and once as two, with the same global batch. Why the tolerance is 1e-9 (relative):

* NPO without its retain term is a mean over sequences, so two processes each averaging their half
  and DDP averaging the two gradients is the global mean *exactly* in real arithmetic; only the
  order of additions differs.
* One loss is a reduction over at most ~B*T*V = 4 * 64 * 400 ~ 1e5 float64 terms: rounding moves it
  by at most n * eps64 ~ 1e5 * 2.2e-16 ~ 2e-11 relative (worst case; typically sqrt(n) * eps).
* Adam divides by sqrt(v) + 1e-8, so a relative gradient error d moves an update by at most ~lr*d;
  over 4 steps the parameters, hence the losses, stay within ~1e-10 relative.

A wrong split (summed instead of averaged gradients, a shard weighted wrongly, a batch seen twice)
moves the losses by 1e-2 or more. In float32 the same bound is ~1e-2 (n * eps32), too loose to
catch such errors, hence float64.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

ROOT = Path(__file__).parent.parent
CONFIG = ROOT / "configs" / "accelerate" / "cpu_ddp_2proc.yaml"
TOLERANCE = 1e-9
TIMEOUT = 600  # seconds: a hung rendezvous fails the test instead of blocking the suite


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(args: list[str], processes: int) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        "OMP_NUM_THREADS": "1",
    }
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)  # one process must not inherit a launcher's environment
    script = [str(ROOT / "scripts" / "dist_train.py"), *args]
    if processes == 1:
        cmd = [sys.executable, *script]
    else:
        cmd = [
            *(sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(CONFIG)),
            *("--num_processes", str(processes), "--main_process_port", str(_free_port()), *script),
        ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr[-4000:]


def _tensors(directory: Path) -> dict[str, tuple[tuple[int, ...], str]]:
    files = sorted(directory.glob("model*.safetensors"))
    assert files, f"no safetensors weights in {directory}"
    out = {}
    for file in files:
        with safe_open(str(file), "pt") as f:
            for key in f.keys():  # noqa: SIM118 (safe_open has no __iter__)
                t = f.get_slice(key)
                out[key] = (tuple(t.get_shape()), t.get_dtype())
    return out


@pytest.fixture(scope="module")
def runs(tiny_dir, tmp_path_factory) -> dict[int, tuple[list[dict], Path]]:
    """(history, checkpoint) of the same NPO run on one process and on two."""
    root = tmp_path_factory.mktemp("dist")
    out = {}
    for n in (1, 2):
        args = [str(tiny_dir), str(root / f"curve{n}.json"), "--out", str(root / f"model{n}")]
        args += ["--dtype", "float64", "--method", "npo", "--method-options", '{"retain_weight": 0}']
        args += ["--steps", "4", "--batch-size", "4", "--lr", "1e-2"]
        _run(args, n)
        record = json.loads((root / f"curve{n}.json").read_text())
        assert record["processes"] == n
        out[n] = (record["history"], root / f"model{n}")
    return out


def test_two_processes_give_the_one_process_loss_curve(runs):
    one, two = runs[1][0], runs[2][0]
    losses = [[row["loss"] for row in h if "loss" in row] for h in (one, two)]
    assert len(losses[0]) == len(losses[1]) == 4
    assert abs(losses[0][-1] - losses[0][0]) > 1e-3, "training did not move the loss: nothing compared"
    for a, b in zip(*losses):
        assert abs(a - b) <= TOLERANCE * max(abs(a), 1.0), (losses[0], losses[1])
    norms = [[row["grad_norm"] for row in h if "grad_norm" in row] for h in (one, two)]
    for a, b in zip(*norms):
        assert abs(a - b) <= TOLERANCE * max(abs(a), 1.0), norms


def test_two_process_checkpoint_has_the_one_process_format(runs):
    from transformers import AutoModelForCausalLM

    one, two = runs[1][1], runs[2][1]
    assert _tensors(one) == _tensors(two)
    assert sorted(p.name for p in one.iterdir()) == sorted(p.name for p in two.iterdir())
    a = AutoModelForCausalLM.from_pretrained(one, dtype=torch.float64)
    b = AutoModelForCausalLM.from_pretrained(two, dtype=torch.float64)
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        torch.testing.assert_close(x, y, rtol=1e-9, atol=1e-12, msg=name)
