"""The search-space language (`hp`), space files, the training plan, and the model zoo they
compose.

Importing this package does not import Keras; `automl.spaces.zoo` does.
"""

from __future__ import annotations

from automl.spaces.hyperparameters import (
    Answers,
    Condition,
    DefaultAnswers,
    HyperParameters,
    Kind,
    ParamSpec,
)
from automl.spaces.loader import (
    Objective,
    Space,
    SpaceInfo,
    SpaceSettings,
    load_space,
    read_space_settings,
)
from automl.spaces.plan import FineTune, TrainingPlan
from automl.spaces.replay import FixedAnswers, RandomAnswers, explore_space

__all__ = [
    "Answers",
    "Condition",
    "DefaultAnswers",
    "FineTune",
    "FixedAnswers",
    "HyperParameters",
    "Kind",
    "Objective",
    "ParamSpec",
    "RandomAnswers",
    "Space",
    "SpaceInfo",
    "SpaceSettings",
    "TrainingPlan",
    "explore_space",
    "load_space",
    "read_space_settings",
]
