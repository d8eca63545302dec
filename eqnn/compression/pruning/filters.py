"""Filter pruning of the convolutional front-end ("filters"): whole Conv1D filters removed, with the matching input
channels of the layer that reads them, so the model really shrinks.

Importance of filter ``f`` of a Conv1D with kernel ``W`` ``(K, C_in, F)`` (option ``importance``):

- ``"l1"`` (Li et al., "Pruning filters for efficient ConvNets", ICLR 2017): ``sum_{k, c} |W[k, c, f]|``.
- ``"taylor"`` (first-order Taylor expansion of the loss, Molchanov et al., ICLR 2017, as compared by Fujisawa et al.):
  ``mean_n | (1 / L_out) sum_o z_n[o, f] dC_n / dz_n[o, f] |`` over the calibration windows ``n``, with ``z`` the
  layer's output (after its activation) and ``C_n`` the squared error of window ``n`` (mean over the outputs);
  the estimated change of the loss when the feature map ``z[:, f]`` is set to zero. Needs calibration windows
  with targets (``prune(..., calibration=(x, y))`` or the fine-tuning windows), at most ``calibration_samples`` of
  them (a seeded subsample; default 1024).

Per Conv1D layer ``min(round(s F), F - 1)`` filters of least importance are removed (ties: the later filter goes),
by the slicing of structured pruning (:mod:`.structured`: a chain model, the last weighted layer never pruned); the
result is a smaller Sequential model whose output equals that of the original with the removed filters' kernels
and biases zeroed when the activation maps 0 to 0 and the next weighted layer reads the filters directly (through
Flatten / Dropout; not through BatchNormalization). With ``fine_tune``, the smaller model is then fine-tuned.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras as keras

from .. import catalog
from ..calibration import Calibration
from ..fine_tune import FineTune, _fit
from .registry import PruningMethod, register_pruning_method
from .structured import _chain_layers, _check_structured_model, _structured_layers, _structured_once, units_of

IMPORTANCES = catalog.IMPORTANCES
# the options (importance, calibration_samples: their defaults and ranges) are the catalog's
check_filter_options = catalog.BUILTIN["filters"].check_options
OPTIONS = check_filter_options.defaults
_BATCH = 256


def _filter_layers(model: keras.Model) -> list[str]:
    """The Conv1D layers whose filters structured slicing can remove (not the last weighted layer)."""
    return [name for name in _structured_layers(model) if type(model.get_layer(name)) is keras.layers.Conv1D]


def l1_importance(layer: keras.layers.Conv1D) -> np.ndarray:
    """``sum_{k, c} |W[k, c, f]|`` per filter ``f``."""
    return np.sum(np.abs(layer.kernel.numpy().astype(np.float64)), axis=(0, 1))


def taylor_importance(model: keras.Model, names: list[str], data: Calibration) -> dict[str, np.ndarray]:
    """First-order Taylor importance of every filter of the Conv1D layers ``names`` of chain ``model`` on
    ``data`` (inputs and targets)."""
    layers = _chain_layers(model)
    sums = {name: np.zeros(model.get_layer(name).filters) for name in names}
    for i in range(0, len(data), _BATCH):
        x = tf.constant(data.x[i:i + _BATCH])
        y = tf.constant(data.y[i:i + _BATCH])
        feature_maps = {}
        with tf.GradientTape() as tape:
            h = x
            for layer in layers:
                h = layer(h, training=False)
                if layer.name in sums:
                    feature_maps[layer.name] = h
            err = tf.reshape(h - tf.reshape(y, tf.shape(h)), (tf.shape(h)[0], -1))
            loss = tf.reduce_sum(tf.reduce_mean(tf.square(err), axis=1))  # sum over windows of C_n
        grads = tape.gradient(loss, [feature_maps[name] for name in names])
        for name, g in zip(names, grads):
            z = feature_maps[name].numpy().astype(np.float64)
            sums[name] += np.abs(np.mean(z * g.numpy(), axis=1)).sum(axis=0)
    return {name: total / len(data) for name, total in sums.items()}


def _prune_filters(model: keras.Model, targets: Mapping[str, float], *, schedule: str, scope: str,
                   fine_tune: FineTune | None, options: Mapping[str, Any],
                   calibration: Calibration | None) -> tuple[keras.Model, dict]:
    if scope != "layer":
        raise ValueError("filters pruning supports scope='layer' only")
    _check_structured_model(model)
    active = [name for name, s in targets.items() if s > 0.0]
    filters0 = {name: units_of(model.get_layer(name)) for name in targets}
    remove = {name: min(int(round(targets[name] * filters0[name])), filters0[name] - 1) for name in active}
    info: dict[str, Any] = {"importance": options["importance"]}
    if options["importance"] == "l1":
        scores = {name: l1_importance(model.get_layer(name)) for name in active}
    else:
        if calibration is None or calibration.y is None:
            raise ValueError("filters pruning with importance='taylor' needs calibration windows with targets "
                             "(calibration=(x, y), or fine_tune)")
        seed = fine_tune.seed if fine_tune is not None else 0
        data = calibration.subsample(options["calibration_samples"], seed)
        scores = taylor_importance(model, active, data)
        info["calibration_samples"] = len(data)
    pruned = _structured_once(model, remove, "incoming", scores=scores)
    # the least important filters (structured slicing keeps the top F - r of the scores, ties to the earlier one)
    info["removed"] = {name: sorted(int(i) for i in np.argsort(-scores[name], kind="stable")[
        filters0[name] - remove[name]:]) for name in active}
    info["fine_tuned"] = fine_tune is not None
    if fine_tune is not None:
        info["history"] = _fit(pruned, fine_tune)
    info["units"] = {name: [filters0[name], units_of(pruned.get_layer(name))] for name in targets}
    return pruned, info


FILTERS = register_pruning_method(PruningMethod.from_catalog("filters", _filter_layers, _prune_filters))
