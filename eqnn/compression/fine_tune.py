"""Fine-tuning shared by every step: the training data and settings (:class:`FineTune`, Adam on the mean squared
error), seeding, and the callback that keeps pruned zeros and clustered (tied) weights in place while training."""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras as keras

from .common import _check_fraction, _check_int


@dataclasses.dataclass(frozen=True, eq=False)
class FineTune:
    """Training data and settings for fine-tuning (Adam, mean squared error).

    ``x``: windows ``(n, 2N+1, 4)`` (or any shape the model takes), ``y``: targets ``(n, outputs)``.
    ``validation_split`` takes the last fraction of the windows for validation, as ``keras.Model.fit`` does.
    """

    x: Any
    y: Any
    epochs: int = 1
    batch_size: int = 256
    learning_rate: float = 1e-3
    validation_split: float = 0.0
    seed: int = 0
    verbose: int = 0

    def __post_init__(self):
        x, y = np.asarray(self.x), np.asarray(self.y)
        if x.ndim < 2 or y.ndim < 1:
            raise ValueError(f"FineTune: x must be (n, ...) and y (n, ...), got shapes {x.shape} and {y.shape}")
        if len(x) != len(y):
            raise ValueError(f"FineTune: x and y differ in length ({len(x)} != {len(y)})")
        object.__setattr__(self, "x", x.astype(np.float32, copy=False))
        object.__setattr__(self, "y", y.astype(np.float32, copy=False))
        object.__setattr__(self, "epochs", _check_int(self.epochs, "FineTune.epochs", 1))
        object.__setattr__(self, "batch_size", _check_int(self.batch_size, "FineTune.batch_size", 1))
        object.__setattr__(self, "seed", _check_int(self.seed, "FineTune.seed", 0))
        lr = self.learning_rate
        if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not (math.isfinite(lr) and lr > 0):
            raise ValueError(f"FineTune.learning_rate must be a positive number, got {lr!r}")
        object.__setattr__(self, "learning_rate", float(lr))
        object.__setattr__(self, "validation_split",
                           _check_fraction(self.validation_split, "FineTune.validation_split"))
        if self.n_train < 1:
            raise ValueError("FineTune: no training windows left after the validation split")

    @property
    def n_train(self) -> int:
        # tf_keras: split_at = floor(n * (1 - validation_split))
        return int(math.floor(len(self.x) * (1.0 - self.validation_split)))

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.n_train / self.batch_size)

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    def with_epochs(self, epochs: int) -> FineTune:
        return dataclasses.replace(self, epochs=epochs)



def _check_fine_tune(fine_tune: Any) -> None:
    if fine_tune is not None and not isinstance(fine_tune, FineTune):
        raise TypeError(f"fine_tune must be a FineTune or None, got {type(fine_tune).__name__}")


def _seed(fine_tune: FineTune | None) -> None:
    keras.utils.set_random_seed(fine_tune.seed if fine_tune is not None else 0)


def _fit(model: keras.Model, fine_tune: FineTune, callbacks: Sequence[keras.callbacks.Callback] = (),
         learning_rate: Any = None) -> dict:
    """Adam on the mean squared error; ``learning_rate``: a Keras schedule or rate (default: the fine-tuning's)."""
    rate = fine_tune.learning_rate if learning_rate is None else learning_rate
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=rate), loss="mse")
    history = model.fit(fine_tune.x, fine_tune.y, epochs=fine_tune.epochs, batch_size=fine_tune.batch_size,
                        validation_split=fine_tune.validation_split, shuffle=True, verbose=fine_tune.verbose,
                        callbacks=list(callbacks))
    return {k: [float(v) for v in vals] for k, vals in history.history.items()}


class _ProjectStructure(keras.callbacks.Callback):
    """After every batch: zeros back to zero and tied weights (equal values) back to their group mean."""

    def __init__(self, variables: Sequence[tf.Variable]):
        super().__init__()
        self.groups = []
        for var in variables:
            w = var.numpy().ravel()
            values, labels = np.unique(w, return_inverse=True)
            if values.size == w.size and not np.any(w == 0):
                continue  # nothing shared, nothing pruned
            counts = np.bincount(labels, minlength=values.size).astype(np.float64)
            zero = np.flatnonzero(values == 0.0)
            self.groups.append((var, labels, counts, zero))

    def project(self):
        for var, labels, counts, zero in self.groups:
            w = var.numpy()
            means = np.bincount(labels, weights=w.ravel().astype(np.float64), minlength=counts.size) / counts
            means[zero] = 0.0
            var.assign(means[labels].reshape(w.shape).astype(w.dtype))

    def on_train_batch_end(self, batch, logs=None):
        self.project()

