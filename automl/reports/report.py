"""Writing a study's report: read the records (read-only), render, write atomically."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from automl.errors import UsageError, shown_path
from automl.reports.figures import Importance, OptunaImportances
from automl.storage.atomic import check_output_folder, write_atomically
from automl.storage.store import StudyStore
from automl.storage.tables import ResultTables


def write_report(study: str, *, storage: str, output: str | os.PathLike[str] | None = None) -> Path:
    """Render the study's report to `output` (default `runs/<study>/report.html`).

    Raises:
        StoreError: no store or no such study.
        UsageError: the output folder does not exist or is not writable.
    """
    store = StudyStore(storage)
    record = store.record(study)
    tables = ResultTables(store.url)
    try:
        retrains = tables.retrains(study)
    finally:
        tables.close()
    path = Path(output) if output is not None else store.artifacts(study).report_path
    _check_output(path, default=output is None)
    from automl.reports.render import render_report

    page = render_report(
        record,
        retrains,
        generated=datetime.now(),
        storage=store.shown_url,
        optuna_importances=optuna_importances(store, study),
    )
    write_atomically(path, page.encode("utf-8"))
    return path


# PED-ANOVA compares the top 10 % of trials with the rest: below this, that top is one trial.
PED_ANOVA_MIN_TRIALS = 10


def optuna_importances(store: StudyStore, study: str) -> OptunaImportances:
    """Optuna's PED-ANOVA importances over the parameters present in every complete trial (it
    cannot judge a conditional parameter; those are named in the title as left out)."""
    import warnings

    import optuna
    from optuna.importance import PedAnovaImportanceEvaluator, get_param_importances

    loaded = store.read_study(study)  # the trials write_report's record read, not again
    complete = loaded.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(complete) < PED_ANOVA_MIN_TRIALS:
        return OptunaImportances(
            [], reason=f"Needs at least {PED_ANOVA_MIN_TRIALS} complete trials."
        )
    names = sorted({name for t in complete for name in t.params})
    common = [n for n in names if all(n in t.params for t in complete)]
    varying = [n for n in common if len({repr(t.params[n]) for t in complete}) > 1]
    left_out = [n for n in names if n not in common]
    if not varying:
        return OptunaImportances(
            [],
            reason="No parameter is present, and varies, in every complete trial (PED-ANOVA "
            "leaves conditional parameters out).",
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            # In memory: the evaluator reads the trials several times, each a query otherwise.
            copy = optuna.create_study(directions=loaded.directions)
            copy.add_trials(complete)
            scores = get_param_importances(
                copy, evaluator=PedAnovaImportanceEvaluator(), params=varying, normalize=True
            )
    except (ValueError, RuntimeError, ZeroDivisionError) as exc:
        return OptunaImportances([], reason=f"PED-ANOVA could not be computed: {exc}")
    title = "Optuna's PED-ANOVA importance (normalised)"
    if left_out:
        title += f"; conditional, left out: {', '.join(left_out)}"
    values = [Importance(name, float(score)) for name, score in scores.items()]
    return OptunaImportances(sorted(values, key=lambda i: -i.value), title=title)


def _check_output(path: Path, *, default: bool) -> None:
    folder = path.parent
    if default:
        folder.mkdir(parents=True, exist_ok=True)
    if path.is_dir():
        raise UsageError(f"-o {shown_path(path)}: is a folder; give a file name like report.html.")
    check_output_folder(path, folder)
