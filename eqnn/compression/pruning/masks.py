"""What the methods that prune while training share: weight masks kept through training, nested magnitude masks, a
fresh initialization of the same architecture and the split of the fine-tuning epochs over training phases (their
options are checked by :mod:`eqnn.compression.catalog`).

A mask is a boolean array per kernel (True = kept). :class:`KeepMasks` multiplies every masked variable by its mask
before training and after every batch, so that pruned weights are exactly zero in every forward pass and in the
returned model (Adam's moments may move them inside a batch; the product puts them back).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf
import tf_keras as keras

from ..common import kernel_entries


class KeepMasks(keras.callbacks.Callback):
    """Keeps ``variable * mask`` for each ``(variable, mask)`` pair: at the start of training and after every batch.

    ``masks`` may be replaced (:meth:`set`) between batches; ``on_batch_begin(step)``, if given, is called with the
    global step (0-based, counted over every ``fit`` this callback is used in) before each batch, and may call
    :meth:`set`.
    """

    def __init__(self, pairs: Sequence[tuple[tf.Variable, np.ndarray]] = (), on_batch_begin=None):
        super().__init__()
        self.pairs = list(pairs)
        self.on_step = on_batch_begin
        self.step = 0

    def set(self, pairs: Sequence[tuple[tf.Variable, np.ndarray]]) -> None:
        self.pairs = list(pairs)
        self.apply()

    def apply(self) -> None:
        for var, mask in self.pairs:
            var.assign(np.where(mask, var.numpy(), 0.0).astype(var.dtype.as_numpy_dtype))

    def on_train_begin(self, logs=None):
        self.apply()

    def on_train_batch_begin(self, batch, logs=None):
        if self.on_step is not None:
            self.on_step(self.step)

    def on_train_batch_end(self, batch, logs=None):
        self.apply()
        self.step += 1


def nested_topk(w: np.ndarray, alive: np.ndarray, sparsity: float) -> np.ndarray:
    """The mask keeping the ``max(round(n (1 - s)), 1)`` largest magnitudes of ``w`` among the ``alive`` entries
    (TFMOT's count; a pruned entry is never revived, so the masks of a rising sparsity are nested)."""
    n = w.size
    keep = min(max(int(round(n * (1.0 - sparsity))), 1), int(np.count_nonzero(alive)))
    score = np.where(alive, np.abs(w), -1.0).ravel()
    order = np.argsort(-score, kind="stable")
    mask = np.zeros(n, dtype=bool)
    mask[order[:keep]] = True
    return mask.reshape(w.shape)


def kernel_variables(model: keras.Model, names: Sequence[str]) -> list[tuple[str, str, tf.Variable]]:
    """``(layer name, key, variable)`` for every kernel of the named layers."""
    return [(name, key, var) for name in names for key, var in kernel_entries(model.get_layer(name))]


def fresh_copy(model: keras.Model) -> keras.Model:
    """The same architecture, newly initialized by its layers' initializers (the global seed fixes the draw)."""
    return keras.models.clone_model(model)


def phase_epochs(epochs: int, phases: int) -> list[int]:
    """``epochs`` split over ``phases`` training phases as evenly as possible (earlier phases get the extra)."""
    return [len(part) for part in np.array_split(np.arange(epochs), phases)]


def achieved_sparsity(model: keras.Model, names: Sequence[str]) -> dict[str, float]:
    return {key: float(np.mean(var.numpy() == 0.0)) for _, key, var in kernel_variables(model, names)}
