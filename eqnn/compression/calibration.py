"""Calibration data of the post-training methods: a few training inputs (and their targets) that a method runs
through the model to measure what its layers see (:class:`Calibration`).

Optimal Brain Compression (``prune(..., method="obc")``) needs the inputs of every layer; the first-order Taylor
importance of filter pruning (``method="filters"``, ``importance="taylor"``) also needs the targets (the gradient of
the loss). :func:`eqnn.compress.prune` and :func:`eqnn.compress.compress` take ``calibration=``; without it they use
the fine-tuning windows (``fine_tune.x``, ``fine_tune.y``) when there are any.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from .common import _check_int


@dataclasses.dataclass(frozen=True, eq=False)
class Calibration:
    """Calibration windows: ``x`` the model inputs ``(n, ...)`` (e.g. training windows ``(n, 2N+1, 4)`` or blocks
    of a sequence model), ``y`` their targets ``(n, outputs)`` or None (methods that need only the inputs)."""

    x: Any
    y: Any = None

    def __post_init__(self):
        x = np.asarray(self.x)
        if x.ndim < 2 or len(x) < 1:
            raise ValueError(f"Calibration: x must be (n, ...) with n >= 1, got shape {x.shape}")
        object.__setattr__(self, "x", x.astype(np.float32, copy=False))
        if self.y is not None:
            y = np.asarray(self.y)
            if y.ndim < 1 or len(y) != len(x):
                raise ValueError(f"Calibration: y must be (n, ...) with the n = {len(x)} of x, got shape {y.shape}")
            object.__setattr__(self, "y", y.astype(np.float32, copy=False))

    def __len__(self) -> int:
        return len(self.x)

    def subsample(self, n: int, seed: int = 0) -> Calibration:
        """At most ``n`` windows: a seeded subsample in the original order (all of them if there are fewer)."""
        n = _check_int(n, "calibration_samples", 1)
        if n >= len(self):
            return self
        index = np.sort(np.random.default_rng(seed).choice(len(self), n, replace=False))
        return Calibration(self.x[index], None if self.y is None else self.y[index])


def calibration_data(calibration: Any, fine_tune: Any) -> Calibration | None:
    """``calibration`` as a :class:`Calibration` (an array of inputs, an ``(x, y)`` pair or a Calibration), else the
    windows of ``fine_tune`` (a :class:`eqnn.compress.FineTune`), else None."""
    if calibration is None:
        return None if fine_tune is None else Calibration(fine_tune.x, fine_tune.y)
    if isinstance(calibration, Calibration):
        return calibration
    if isinstance(calibration, tuple) and len(calibration) == 2:
        return Calibration(*calibration)
    if isinstance(calibration, (np.ndarray, list)):
        return Calibration(calibration)
    raise TypeError(f"calibration must be a Calibration, an array of inputs, an (x, y) pair or None, got "
                    f"{type(calibration).__name__}")
