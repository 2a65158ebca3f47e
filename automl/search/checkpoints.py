"""Checkpoint retention: which trials' best-epoch checkpoints a search keeps.

Only the `--keep-checkpoints` best complete trials of the whole study (every host's) keep
theirs, ranked exactly as the study's record ranks them (`rank_key`: objective, then fewer
epochs, then fewer parameters, then age), so the checkpoints kept are those
`retrain --from-checkpoint` and the report look for. A running trial writes its checkpoint only
if it can still enter that set (the threshold).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from automl.storage.artifacts import ArtifactStore
from automl.storage.records import TrialRecord, TrialState, rank_key


class CheckpointKeeper:
    """Tracks the complete trials' ranking and prunes the checkpoint folder to the best K.

    Args:
        artifacts: the study's artifact folder.
        direction: `maximize` or `minimize`.
        keep: how many of the best complete trials keep their checkpoint.
    """

    def __init__(self, artifacts: ArtifactStore, *, direction: str, keep: int) -> None:
        self.artifacts = artifacts
        self.direction = direction
        self.keep = keep
        # number -> (value, rank key) of the complete trials
        self._complete: dict[int, tuple[float, tuple[float, ...]]] = {}

    def note_trials(self, trials: Iterable[TrialRecord]) -> None:
        """Rank the complete trials a resumed study already has."""
        for t in trials:
            if t.state is TrialState.COMPLETE and t.value is not None:
                self.note_complete(
                    t.number, t.value, t.epochs_run, t.params_count, tiebreak=t.best_val_loss
                )

    def note_complete(
        self,
        number: int,
        value: float,
        epochs_run: int,
        params_count: int | None,
        *,
        tiebreak: float | None = None,
    ) -> None:
        self._complete[number] = (
            value,
            rank_key(self.direction, value, epochs_run, params_count, number, tiebreak=tiebreak),
        )

    def ranked(self) -> list[int]:
        """Numbers of the complete trials, best first."""
        return sorted(self._complete, key=lambda number: self._complete[number][1])

    def threshold(self) -> float | None:
        """The value a new trial must reach to write its checkpoint (None: always write)."""
        if self.keep <= 0:
            return math.inf if self.direction == "maximize" else -math.inf
        if len(self._complete) < self.keep:
            return None
        return self._complete[self.ranked()[self.keep - 1]][0]

    def prune(self, running: Iterable[int], *, ended: Iterable[int] | None = None) -> None:
        """Delete every checkpoint but the best K complete trials' and the running trials'.

        Args:
            running: this scheduler's running trials.
            ended: the trials the study has ended (on any host); only their checkpoints may
                be deleted, so another host's running trial keeps its own. None: any.
        """
        keep = set(self.ranked()[: self.keep])
        self.artifacts.keep_checkpoints(
            keep | set(running), only=set(ended) if ended is not None else None
        )
