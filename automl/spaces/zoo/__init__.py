"""The model zoo: building blocks that search spaces compose, one idea per module.

- `blocks`: pixel scaling, `conv_stack`, `small_resnet`, `classifier_head`;
- `backbones`: `keras.applications` feature extractors with their preprocessing and weights;
- `optimizers`: `make_optimizer`, `learning_rate_schedule`, `compile_classifier`;
- `augment`: random augmentation layers (training only);
- `training`: `fine_tune`, `add_callbacks`, `reduce_on_plateau`, which make a `TrainingPlan`.

Blocks take plain values (never `hp`), so a space reads like ordinary Keras code and the same
block serves every space. Every model takes float32 pixels in [0, 255] (what the data pipeline
and `automl predict` feed), and scales them itself: the scaling is part of the saved model.
Spaces use the names below as `zoo.<name>`.
"""

from __future__ import annotations

from automl.spaces.plan import FineTune, TrainingPlan
from automl.spaces.zoo.augment import AUGMENTATION_PREFIX, augmentation
from automl.spaces.zoo.backbones import APPLICATIONS, application_backbone
from automl.spaces.zoo.blocks import Tensor, classifier_head, conv_stack, rescale, small_resnet
from automl.spaces.zoo.optimizers import (
    OPTIMIZERS,
    SCHEDULES,
    compile_classifier,
    learning_rate_schedule,
    make_optimizer,
)
from automl.spaces.zoo.training import add_callbacks, fine_tune, reduce_on_plateau

__all__ = [
    "APPLICATIONS",
    "AUGMENTATION_PREFIX",
    "OPTIMIZERS",
    "SCHEDULES",
    "FineTune",
    "Tensor",
    "TrainingPlan",
    "add_callbacks",
    "application_backbone",
    "augmentation",
    "classifier_head",
    "compile_classifier",
    "conv_stack",
    "fine_tune",
    "learning_rate_schedule",
    "make_optimizer",
    "reduce_on_plateau",
    "rescale",
    "small_resnet",
]
