"""Progress bars for anything that takes more than a few seconds (on stderr, off when not a TTY)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypeVar

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

T = TypeVar("T")

_console = Console(stderr=True)


def track(
    items: Iterable[T], description: str, total: int | None = None, enabled: bool | None = None
) -> Iterator[T]:
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        yield from items
        return
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=_console,
        transient=True,
    ) as progress:
        yield from progress.track(items, total=total, description=description)


@contextmanager
def status(message: str, enabled: bool | None = None) -> Iterator[None]:
    """A spinner with ``message`` while a long single step runs (a model conversion, a load)."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        yield
        return
    with _console.status(message):
        yield


# the phase a long job is in, and where to say how far it got: (label, say)
_PHASE: ContextVar[tuple[str, Callable[[str], None]] | None] = ContextVar("formless_phase", default=None)


@contextmanager
def phase(label: str, say: Callable[[str], None]) -> Iterator[None]:
    """While this is open, ``advance`` (called by the batched loops: generation, scoring) reports
    through ``say`` how far the phase is and an estimate of the time left."""
    token = _PHASE.set((label, say))
    say(label)
    try:
        yield
    finally:
        _PHASE.reset(token)


def advance(done: int, total: int, started: float, what: str = "batches") -> None:
    """Report ``done`` of ``total`` units of the current loop (begun at ``started``,
    ``time.perf_counter()``) to the open ``phase``, if any, with the time left at this pace."""
    current = _PHASE.get()
    if current is None or total <= 0:
        return
    label, say = current
    elapsed = time.perf_counter() - started
    left = elapsed / done * (total - done) if done else None
    eta = f", ~{left:.0f}s left" if left is not None and done < total else ""
    say(f"{label}: {done}/{total} {what}{eta}")
