"""Seeds: what a search's and a trial's seed may be, and the seeds derived from them.

Light on purpose (no NumPy): the CLI checks `--seed` with it before anything heavy loads.
"""

from __future__ import annotations

# A trial's seed is the search's seed times this, plus its number: searches with seeds 0 and 1
# give their trials different seeds.
TRIAL_SEED_STRIDE = 1_000_003


def trial_seed(search_seed: int, number: int) -> int:
    """The seed of trial `number` of a search started with `--seed search_seed`."""
    return search_seed * TRIAL_SEED_STRIDE + number


# The largest seed of a search (`--seed`, `Tuner(seed=...)`): its samplers seed NumPy (under
# 2**32; Keras Tuner's oracles get seed + 1). A trial's own seed (`automl trial --seed`) reaches
# tf.data's int64 seeds; NumPy's global seed gets it folded (`global_seed`).
SEARCH_SEED_MAX = 2**31 - 1
TRIAL_SEED_MAX = 2**63 - 1


def seed_problem(seed: object, maximum: int = SEARCH_SEED_MAX) -> str | None:
    """Why `seed` cannot seed a search (or, with `TRIAL_SEED_MAX`, a trial); None if it can."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        return f"needs a whole number, got {seed!r}"
    if not 0 <= seed <= maximum:
        return f"must be between 0 and {maximum}, got {seed}"
    return None


def global_seed(seed: int) -> int:
    """`seed` as the global seed Python, NumPy and TensorFlow get (`keras.utils.set_random_seed`):
    NumPy takes 0 to 2**32 - 1 only, and trial seeds pass it from `--seed 4295` on. Seeds in that
    range are kept as they are (stored trials replay as before); larger ones are folded into it."""
    return seed % 2**32
