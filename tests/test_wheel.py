"""The built wheel, installed without ``-e`` into a fresh virtual environment, runs a forget and an
audit from outside the source tree.

An editable install reads data files from the checkout, so a wheel that lacks them (the knowledge
base, the statistics corpus) passes every other test and breaks for every user of ``pip install``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=900, **kw)
    assert result.returncode == 0, f"{cmd}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # no build isolation: the build backend (setuptools, a dev dependency) is already here, offline
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(ROOT),
        ]
    )
    (found,) = out.glob("formless-*.whl")
    return found


def test_wheel_carries_every_packaged_data_file(wheel):
    tracked = _run(["git", "ls-files", "formless/data"], cwd=ROOT).stdout.split()
    if not tracked:  # not a git checkout (an sdist): fall back to what is on disk
        tracked = [
            p.relative_to(ROOT).as_posix() for p in (ROOT / "formless" / "data").rglob("*") if p.is_file()
        ]
    names = set(zipfile.ZipFile(wheel).namelist())
    assert tracked and not [f for f in tracked if f not in names]


@pytest.mark.slow
def test_wheel_in_fresh_venv_forgets_and_audits_outside_the_tree(wheel, tmp_path, tiny_dir):
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    bin_dir = env_dir / "bin"
    site = Path(
        subprocess.check_output(
            [str(bin_dir / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            text=True,
        ).strip()
    )
    # the dependencies (torch, transformers, ...) come from this environment by a plain path entry,
    # which does not run its .pth files -- so the editable formless of the checkout stays invisible
    (site / "_formless_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    # no PYTHONPATH anywhere: a checkout on it would look like an installed formless to pip and Python
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update({"FORMLESS_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"})
    pip = [sys.executable, "-m", "pip", "--python", str(bin_dir / "python")]
    _run([*pip, "install", "--no-deps", "--force-reinstall", "-q", str(wheel)], env=env)
    work = tmp_path / "elsewhere"
    work.mkdir()
    where = _run(
        [str(bin_dir / "python"), "-c", "import formless; print(formless.__file__)"], cwd=work, env=env
    )
    assert Path(where.stdout.strip()).is_relative_to(site), where.stdout  # the wheel, not the checkout
    formless = str(bin_dir / "formless")
    common = ["--model", str(tiny_dir)]
    _run(
        [
            formless,
            "forget",
            "Harry Potter",
            "--out",
            "edit",
            "--layers",
            "1,2",
            "--stats-tokens",
            "2000",
            *common,
        ],
        cwd=work,
        env=env,
    )
    _run(
        [
            formless,
            "audit",
            "edit",
            "--reference",
            str(tiny_dir),
            "--quantize",
            "none",
            "--forms",
            "question,cloze",
            "--out",
            "report",
        ],
        cwd=work,
        env=env,
    )
    assert {"audit.json", "report.md", "report.html"} <= {p.name for p in (work / "report").iterdir()}
