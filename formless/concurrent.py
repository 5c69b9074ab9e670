"""Independent model passes side by side on the CPU's cores.

Measured on 2 CPU cores (SmolLM2-135M, the audit's probes for one concept): one scoring pass with
torch's 2 intra-op threads keeps the cores ~75% busy (small matrices, Python between kernels), while
two passes in two Python threads with one torch thread each finish both in 0.70x the time of running
them one after the other (99 s vs 141 s), with the same generations and judgements. So the audit
hands its independent passes (the two halves of a reference pass, the quantized copies, the
relearned copy) to ``side_by_side``.

Rules that keep this safe and reproducible: every job returns its own result (nothing is shared but
read-only models and tokenizers); a job that itself asks for side-by-side work runs it in sequence
(no nested pools); the results come back in the jobs' order whatever finishes first; a job's
exception is raised in the caller once the running ones are done (jobs not yet started are
dropped). ``FORMLESS_WORKERS=1`` runs every job
in sequence with the process's torch threads (the way to compare, or a machine where it does not
pay)."""

from __future__ import annotations

import contextvars
import os
import threading
import zlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from typing import TypeVar

import torch

from formless.errors import FormlessError

T = TypeVar("T")

_INSIDE = threading.local()


def workers() -> int:
    """How many jobs run at once: ``FORMLESS_WORKERS`` if set; else 1 on a machine with a GPU (the
    jobs are CPU work only where the models are on the CPU), else 2 where torch has at least 2
    threads (one core each at least), else 1."""
    raw = os.environ.get("FORMLESS_WORKERS", "").strip()
    if raw:
        try:
            value = int(raw)
        except ValueError:
            value = 0
        if value < 1:
            raise FormlessError(f"FORMLESS_WORKERS must be a whole number >= 1, got {raw!r}")
        return value
    if torch.cuda.is_available():
        return 1  # models sit on the GPU: side by side would only hold two copies in its memory
    return 2 if torch.get_num_threads() >= 2 else 1


def side_by_side(jobs: Sequence[Callable[[], T]]) -> list[T]:
    """Each job's result, in order. Up to ``workers()`` jobs run at once, each with an equal share of
    torch's threads; inside a job (or with one worker, or one job) they run one after the other."""
    jobs = list(jobs)
    n = min(workers(), len(jobs))
    if n <= 1 or getattr(_INSIDE, "active", False):
        return [job() for job in jobs]
    threads = torch.get_num_threads()

    def run(job: Callable[[], T], context: contextvars.Context) -> T:
        _INSIDE.active = True
        try:
            return context.run(job)  # the caller's progress phase reaches the job
        finally:
            _INSIDE.active = False

    torch.set_num_threads(max(1, threads // n))
    results: list = [None] * len(jobs)
    failure: BaseException | None = None
    try:
        with ThreadPoolExecutor(max_workers=n, thread_name_prefix="formless") as pool:
            waiting = list(enumerate(jobs))
            running: dict[Future, int] = {}
            while waiting or running:
                # only this thread starts jobs, so none starts once a failure is seen
                while waiting and len(running) < n and failure is None:
                    i, job = waiting.pop(0)
                    running[pool.submit(run, job, contextvars.copy_context())] = i
                if not running:
                    break
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    i = running.pop(future)
                    error = future.exception()
                    if error is not None:
                        failure = failure or error
                    else:
                        results[i] = future.result()
    finally:
        torch.set_num_threads(threads)
    if failure is not None:
        raise failure
    return results


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Torch's intra-op threads set to ``n`` inside the block, restored after. Float sums depend on
    the thread count, so a result that must come out bit for bit the same in two runs (an edit the
    audit's result cache recognises by its weights hash) runs on a fixed number of threads."""
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def job_threads() -> int:
    """The torch threads one job gets when ``side_by_side`` runs as many jobs as it can at once."""
    return max(1, torch.get_num_threads() // workers())


def halves(keys: Sequence[str]) -> tuple[list[int], list[int]]:
    """Indices of ``keys`` in two parts by a stable hash of each key (the same on every machine and
    run; equal keys land together, so a prompt asked twice is still computed once)."""
    parts: tuple[list[int], list[int]] = ([], [])
    for i, key in enumerate(keys):
        parts[zlib.crc32(key.encode("utf-8")) % 2].append(i)
    return parts
