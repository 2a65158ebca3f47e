"""Trials that resume mid-way: a running trial keeps its latest epoch (the model with its
optimizer state, and what the trial recorded so far) so that, when its worker is killed, the
scheduler dies or the search is interrupted, its re-queued retry continues from that epoch
instead of epoch 0, with the earlier epochs' reports carried over for the pruner.

The state is two files under `runs/<study>/resume/`: `trial-N.eE.keras` (the model after epoch
E) and `trial-N.json` (the epoch, the history, the best epoch, and which model file). The JSON is
written last and names its model file, so a kill between the two writes leaves the previous
consistent pair. Saving is throttled to a small share of training time (`ResumeWriter`).
Workers write; the scheduler only reads the JSON (no TensorFlow).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from automl.storage.atomic import write_atomically

log = logging.getLogger(__name__)

# Saving the resume state may cost at most this share of a trial's training time.
MAX_OVERHEAD = 0.05
# Assumed cost of the first save, before one was measured (so the first comes after ~1 s).
FIRST_SAVE_SECONDS = 0.05


@dataclass(frozen=True)
class ResumePoint:
    """Where a trial stood after its latest saved epoch.

    Attributes:
        epoch: epochs completed (1-based count).
        history: the metrics of each of those epochs.
        best_epoch: 1-based epoch of the best objective value so far.
        best_value: that value.
        model: the saved model (with its optimizer state), or None when the executor has no
            model (the function executor of the scheduler tests).
        best_checkpoint: the trial's best-epoch checkpoint, if it wrote one.
    """

    epoch: int
    history: tuple[Mapping[str, float], ...]
    best_epoch: int | None = None
    best_value: float | None = None
    model: str | None = None
    best_checkpoint: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "history": [dict(h) for h in self.history],
            "best_epoch": self.best_epoch,
            "best_value": self.best_value,
            "model": self.model,
            "best_checkpoint": self.best_checkpoint,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ResumePoint:
        value = data.get("best_value")
        return cls(
            epoch=int(data["epoch"]),
            history=tuple(
                {str(k): float(v) for k, v in h.items()} for h in data.get("history") or ()
            ),
            best_epoch=int(data["best_epoch"]) if data.get("best_epoch") is not None else None,
            best_value=float(value) if value is not None and math.isfinite(value) else None,
            model=data.get("model"),
            best_checkpoint=data.get("best_checkpoint"),
        )


def state_path(base: Path) -> Path:
    """`trial-N.json` beside the trial's resume models (`base` is `.../resume/trial-N`)."""
    return base.with_suffix(".json")


def read_point(base: Path) -> ResumePoint | None:
    """The trial's resume point, if it saved one whose model file is still there."""
    path = state_path(base)
    try:
        point = ResumePoint.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if point.epoch < 1 or (point.model is not None and not Path(point.model).is_file()):
        return None
    return point


def remove_point(base: Path) -> None:
    """Delete a trial's resume files (it ended, or its retry has taken them over)."""
    state_path(base).unlink(missing_ok=True)
    for model in base.parent.glob(f"{base.name}.e*.keras"):
        model.unlink(missing_ok=True)


class ResumeWriter:
    """Saves a running trial's resume point after an epoch, at most `MAX_OVERHEAD` of its time.

    Args:
        base: `.../resume/trial-N` (the files get their suffixes).
        epochs: the trial's budget: nothing is saved after the last epoch, unless
            `keep_final`.
        first_cost: the assumed cost of the first save, before one is measured. Defaults to
            `FIRST_SAVE_SECONDS` (a model); an executor without a model saves a few bytes.
        keep_final: save after the last epoch too, for a promotion to continue from it
            (Keras Tuner's Hyperband). Defaults to `False`.
    """

    def __init__(
        self,
        base: Path,
        epochs: int,
        *,
        first_cost: float = FIRST_SAVE_SECONDS,
        keep_final: bool = False,
    ) -> None:
        self.base = base
        self.epochs = epochs
        self.keep_final = keep_final
        self._cost = first_cost
        self._since = time.perf_counter()
        self._saved: Path | None = None

    def due(self, epoch: int) -> bool:
        if epoch >= self.epochs:
            return self.keep_final  # a model another trial may continue (Hyperband)
        return time.perf_counter() - self._since >= self._cost / MAX_OVERHEAD

    def save(self, model: Any, point: ResumePoint) -> None:
        """Save the model (when there is one) for `point.epoch`, then the state naming it."""
        started = time.perf_counter()
        saved = None
        if model is not None:
            from automl.search.runner import save_model_atomically

            saved = self.base.with_name(f"{self.base.name}.e{point.epoch}.keras")
            save_model_atomically(model, saved)
        state = ResumePoint(
            point.epoch,
            point.history,
            point.best_epoch,
            point.best_value,
            str(saved) if saved else None,
            point.best_checkpoint,
        )
        write_atomically(state_path(self.base), json.dumps(state.to_json()).encode("utf-8"))
        if self._saved is not None and self._saved != saved:
            self._saved.unlink(missing_ok=True)
        self._saved = saved
        now = time.perf_counter()
        self._cost = now - started
        self._since = now
        log.debug("resume point of epoch %d saved in %.3f s", point.epoch, self._cost)
