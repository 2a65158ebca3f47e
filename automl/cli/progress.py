"""Search progress on the terminal: a rich live display, plain lines for logs, or nothing.

These implement `automl.search.events.SearchObserver`; the scheduler calls them, they print.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from automl.cli.common import cells, fmt
from automl.storage.records import TrialState

if TYPE_CHECKING:
    from rich.console import Console

    from automl.search.events import SearchStart, TrialEvent


def describe_start(start: SearchStart) -> list[str]:
    """The lines printed when a search starts (shared by every display)."""
    data = start.data
    shape = "×".join(str(d) for d in data.input_shape)
    sizes = "/".join(str(v) for v in data.sizes.values())
    if start.resumed:
        head = f"Resuming study '{start.study}': {start.finished} of {start.target} finished"
    else:
        head = f"New study '{start.study}': target {start.target} finished trials"
    lines = [
        f"{head} ({start.storage})",
        f"Data {data.source}: {shape}, {data.num_classes} classes, train/val/test {sizes}",
        f"Objective {start.objective}; up to {start.epochs} epochs per trial; sampler "
        f"{start.sampler}; {len(start.slots)} worker slot(s): {', '.join(start.slots)}",
        f"Pruner: {start.budget}",
    ]
    for bracket in start.brackets:
        rungs = ", ".join(str(r) for r in bracket.rungs)
        decided = f"prune decisions after epoch {rungs}" if rungs else "no pruning (full budget)"
        lines.append(f"  bracket {bracket.index}: {decided}")
    if start.requeued:
        shown = ", ".join(f"#{n}" for n in start.requeued)
        lines.append(f"Re-queued trial(s) {shown}, left running when the last search stopped.")
    return lines


def describe_event(
    event: TrialEvent, metric: str, finished: int, target: int, best: tuple[float, int] | None
) -> str:
    """One plain line per finished trial."""
    parts = [f"[{finished}/{target}] trial {event.number} {event.state.value:8}"]
    if event.value is not None:
        parts.append(f"{metric} {event.value:.4f}")
    parts.append(
        f"epochs {event.epochs_run}" + (f" (best {event.best_epoch})" if event.best_epoch else "")
    )
    parts.append(f"{event.seconds:.1f} s on {event.slot}")
    if event.failure:
        parts.append(f"— {event.failure}")
    if best is not None:
        parts.append(f"| best {best[0]:.4f} (#{best[1]})")
    return "  ".join(parts)


@dataclass
class _Tally:
    """What every display tracks: finished count and the top trials."""

    metric: str = ""
    maximize: bool = True
    finished: int = 0
    target: int = 0

    def __post_init__(self) -> None:
        self.top: list[tuple[float, int, int, dict[str, Any]]] = []

    def start(self, start: SearchStart) -> None:
        self.metric = start.objective.metric
        self.maximize = start.objective.direction == "maximize"
        self.finished = start.finished
        self.target = start.target
        for trial in start.record.trials:
            if trial.state is TrialState.COMPLETE and trial.value is not None:
                self._add(trial.value, trial.number, trial.best_epoch or 0, dict(trial.params))

    def finish(self, event: TrialEvent) -> None:
        if event.state.finished:
            self.finished += 1
        if event.state is TrialState.COMPLETE and event.value is not None:
            self._add(event.value, event.number, event.best_epoch or 0, event.params)

    def _add(self, value: float, number: int, epoch: int, params: dict[str, Any]) -> None:
        self.top.append((value, number, epoch, params))
        self.top.sort(key=lambda t: -t[0] if self.maximize else t[0])
        del self.top[5:]

    @property
    def best(self) -> tuple[float, int] | None:
        return (self.top[0][0], self.top[0][1]) if self.top else None


class PlainProgress:
    """One line per finished trial: for CI logs and pipes."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.tally = _Tally()

    def search_started(self, start: SearchStart) -> None:
        self.tally.start(start)
        for line in describe_start(start):
            self.console.print(line, markup=False, highlight=False)

    def trial_started(self, number: int, slot: str) -> None:
        pass

    def trial_epoch(self, number: int, slot: str, epoch: int, value: float | None) -> None:
        pass

    def trial_finished(self, event: TrialEvent) -> None:
        self.tally.finish(event)
        line = describe_event(
            event, self.tally.metric, self.tally.finished, self.tally.target, self.tally.best
        )
        self.console.print(line, markup=False, highlight=False)

    def note(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False)

    def close(self) -> None:
        pass


class QuietProgress(PlainProgress):
    """Nothing but notes (`--quiet`)."""

    def search_started(self, start: SearchStart) -> None:
        self.tally.start(start)

    def trial_finished(self, event: TrialEvent) -> None:
        self.tally.finish(event)


class LiveProgress:
    """A rich live display: progress bar with ETA, one line per worker, best value, top 5."""

    def __init__(self, console: Console) -> None:
        from rich.live import Live
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.console = console
        self.tally = _Tally()
        self.workers: dict[str, str] = {}
        self.progress = Progress(
            TextColumn("[bold]trials"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("elapsed"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
        )
        self.task = self.progress.add_task("trials", total=1)
        self.live = Live(self._render(), console=console, refresh_per_second=4, transient=False)
        self._started = time.monotonic()

    def search_started(self, start: SearchStart) -> None:
        self.tally.start(start)
        for line in describe_start(start):
            self.console.print(line, markup=False, highlight=False)
        self.progress.update(self.task, total=start.target, completed=start.finished)
        self.workers = dict.fromkeys(start.slots, "starting…")
        self.live.start()
        self._refresh()

    def trial_started(self, number: int, slot: str) -> None:
        self.workers[slot] = f"trial {number}: building"
        self._refresh()

    def trial_epoch(self, number: int, slot: str, epoch: int, value: float | None) -> None:
        shown = f"{self.tally.metric} {value:.4f}" if value is not None else ""
        self.workers[slot] = f"trial {number}: epoch {epoch}  {shown}"
        self._refresh()

    def trial_finished(self, event: TrialEvent) -> None:
        self.tally.finish(event)
        self.workers[event.slot] = "idle"
        self.progress.update(self.task, completed=self.tally.finished)
        if event.state is TrialState.FAILED:
            self.live.console.print(
                f"trial {event.number} failed: {event.failure}", markup=False, highlight=False
            )
        self._refresh()

    def note(self, text: str) -> None:
        self.live.console.print(text, markup=False, highlight=False)

    def close(self) -> None:
        self._refresh()
        self.live.stop()

    def _refresh(self) -> None:
        self.live.update(self._render())

    def _render(self) -> Any:
        from rich.console import Group
        from rich.table import Table

        workers = Table(show_header=False, box=None, pad_edge=False)
        for slot, state in self.workers.items():
            workers.add_row(*cells(f"  {slot}", state))
        best = self.tally.best
        best_line = (
            f"best {self.tally.metric} {best[0]:.4f} (trial {best[1]})"
            if best
            else "no complete trial yet"
        )
        top = Table(title="top 5", title_justify="left", box=None)
        for column in ("trial", self.tally.metric or "value", "best epoch", "parameters"):
            top.add_column(column)
        for value, number, epoch, params in self.tally.top:
            shown = ", ".join(f"{k}={fmt(v)}" for k, v in params.items())
            top.add_row(*cells(number, f"{value:.4f}", epoch, shown[:90]))
        return Group(self.progress, workers, best_line, top)


def make_progress(console: Console, *, quiet: bool) -> PlainProgress | LiveProgress:
    """Live on a terminal, plain lines otherwise, nothing with --quiet."""
    if quiet:
        return QuietProgress(console)
    if console.is_terminal:
        return LiveProgress(console)
    return PlainProgress(console)
