"""Arguments, parsing helpers and rendering helpers shared by the commands."""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shlex
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from automl.search.seeds import SEARCH_SEED_MAX, seed_problem

if TYPE_CHECKING:
    from rich.console import Console

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def add_data_arguments(command: argparse.ArgumentParser) -> None:
    group = command.add_argument_group("data")
    group.add_argument(
        "--data",
        metavar="SRC",
        help=(
            "data source: digits, mnist, fashion_mnist, cifar10, cifar100, a .npz file or an "
            "image folder (default: the space's DATA, else digits)"
        ),
    )
    group.add_argument(
        "--val-split",
        type=fraction_arg("--val-split"),
        default=0.2,
        metavar="F",
        help="validation fraction when the data has no val split (default 0.2)",
    )
    group.add_argument(
        "--test-split",
        type=fraction_arg("--test-split"),
        default=0.2,
        metavar="F",
        help="test fraction when the data has no test split (default 0.2)",
    )
    group.add_argument(
        "--skip-bad-images",
        action="store_true",
        help="skip corrupt, empty, non-image and oversized files instead of stopping",
    )
    group.add_argument(
        "--image-size",
        type=image_size_arg,
        metavar="HxW",
        help="size images of a folder are resized to, e.g. 224x224 (default: their most common "
        "size, at most 256 on the long side); part of the data's hash",
    )


def add_precision_arguments(command: argparse.ArgumentParser) -> None:
    group = command.add_argument_group("precision and reproducibility")
    group.add_argument(
        "--precision",
        choices=("auto", "float32", "mixed"),
        default="auto",
        help="mixed float16 training: auto uses it on GPUs with tensor cores (compute "
        "capability 7.0+), float32 elsewhere; exports are float32 either way (default auto)",
    )
    group.add_argument(
        "--jit", action="store_true", help="compile each model's training step with XLA"
    )
    group.add_argument(
        "--deterministic",
        action="store_true",
        help="TensorFlow op determinism with fixed thread counts: a trial replayed with "
        "`automl trial --replay STUDY:N` gives the same curve exactly on CPU (slower)",
    )


def data_options(args: argparse.Namespace) -> Any:
    """The `DataOptions` of the data flags."""
    from automl.data import DataOptions

    return DataOptions(
        val_split=args.val_split,
        test_split=args.test_split,
        skip_bad_images=args.skip_bad_images,
        image_size=args.image_size,
    )


def image_size_arg(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", text)
    if not match or min(int(match.group(1)), int(match.group(2))) < 1:
        raise argparse.ArgumentTypeError(
            f"--image-size needs HEIGHTxWIDTH in pixels, e.g. 224x224, got {text!r}"
        )
    height, width = int(match.group(1)), int(match.group(2))
    if height * width > 4096 * 4096:
        raise argparse.ArgumentTypeError(f"--image-size {text} is over 4096x4096 pixels")
    return height, width


def load_data(args: argparse.Namespace, settings: Any, console: Console) -> Any:
    from automl.data import load_dataset

    dataset = load_dataset(args.data or settings.data or "digits", data_options(args))
    for note in dataset.notes:
        console.print(f"data: {note}", markup=False)
    return dataset


def fraction_arg(flag: str) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} needs a number, got {text!r}") from None
        if not 0.0 < value < 0.9:
            raise argparse.ArgumentTypeError(f"{flag} must be between 0 and 0.9, got {value}")
        return value

    return parse


def count_arg(flag: str, minimum: int = 1) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} needs a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{flag} must be at least {minimum}, got {value}")
        return value

    return parse


def seed_arg(maximum: int = SEARCH_SEED_MAX) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value: int | str = int(text)
        except ValueError:
            value = text  # seed_problem says it needs a whole number
        problem = seed_problem(value, maximum)
        if problem is not None:
            raise argparse.ArgumentTypeError(f"--seed {problem}")
        return int(value)

    return parse


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(d|h|m|s)?", re.IGNORECASE)
_UNITS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, None: 1.0}


def duration_arg(text: str) -> float:
    """`90m`, `2h`, `1h30m`, `45s` or plain seconds."""
    cleaned = text.strip().lower()
    position, total = 0, 0.0
    for match in _DURATION.finditer(cleaned):
        if match.start() != position:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()
    if not cleaned or position != len(cleaned) or total <= 0:
        raise argparse.ArgumentTypeError(
            f"--timeout needs a duration like 90m, 2h, 1h30m or 45s, got {text!r}"
        )
    return total


def gpu_list(text: str) -> tuple[int, ...]:
    """`0,1` → (0, 1); an empty string means no GPU."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not all(p.isdigit() for p in parts):
        raise argparse.ArgumentTypeError(f"--gpus needs GPU numbers like 0,1, got {text!r}")
    return tuple(int(p) for p in parts)


def add_storage_argument(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--storage",
        metavar="URL",
        help="study store: sqlite:///path.db or postgresql://user:pw@host/db "
        "(default: $AUTOML_STORAGE, else sqlite:///runs/automl.db)",
    )


def storage_url(args: argparse.Namespace) -> str:
    """The store the command uses: --storage, else the default store."""
    from automl.storage.urls import default_storage_url

    return args.storage or default_storage_url()


def storage_flag_suffix(args: argparse.Namespace) -> str:
    """` --storage URL` to repeat in a suggested command, or nothing for the default store.

    A URL with a password is never repeated (the terminal, its scroll-back and shell history
    would keep it): the command reads it from `$AUTOML_STORAGE` instead.
    """
    from automl.storage.urls import url_has_secret

    if not args.storage:
        return ""
    if url_has_secret(args.storage):
        return ' --storage "$AUTOML_STORAGE"'
    return f" --storage {shlex.quote(args.storage)}"


def storage_flag_note(args: argparse.Namespace) -> str | None:
    """The line that goes with `--storage "$AUTOML_STORAGE"` in suggested commands: which URL
    to set it to, password hidden; None when the commands show the URL itself."""
    from automl.storage.urls import redact_url, url_has_secret

    if not args.storage or not url_has_secret(args.storage):
        return None
    return (
        f"(with AUTOML_STORAGE set to your --storage URL, {redact_url(args.storage)}; its "
        "password is not shown)"
    )


def cells(*values: object) -> list[Any]:
    """Table cells that show user text as is (rich would read `[conv]` as markup)."""
    from rich.text import Text

    return [Text(v if isinstance(v, str) else str(v)) for v in values]


def fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def make_console(stderr: bool = False) -> Console:
    from rich.console import Console

    console = Console(stderr=stderr, highlight=False, soft_wrap=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        # Logs and pipes have no width; 80 columns would fold every table.
        console.width = 140
    return console


def add_json_argument(command: argparse.ArgumentParser, what: str) -> None:
    """`--json`: `what` as JSON on stdout, alone; messages and progress go to stderr."""
    command.add_argument(
        "--json",
        action="store_true",
        help=f"print {what} as JSON on stdout (messages and progress go to stderr)",
    )


def print_json(data: Any) -> None:
    """One JSON document (one line) on stdout; NaN and infinities become null (strict JSON)."""
    sys.stdout.write(json.dumps(_finite(data), default=str, allow_nan=False) + "\n")
    sys.stdout.flush()


def _finite(data: Any) -> Any:
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {str(key): _finite(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [_finite(value) for value in data]
    return data
