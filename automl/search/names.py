"""The names of the search engines, without importing them (the CLI's `--sampler` and `--pruner`
choices are read at every start)."""

from __future__ import annotations

SAMPLERS = (
    "tpe",
    "random",
    "gp",
    "cmaes",
    "grid",
    "qmc",
    "kt-bayesian",
    "kt-random",
    "kt-hyperband",
)
PRUNERS = ("sha", "hyperband", "median", "percentile", "patient", "none")
