"""The study store: Optuna's RDB storage over SQLAlchemy, read models, artifacts, our tables."""

from __future__ import annotations
