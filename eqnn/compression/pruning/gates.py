"""Structured sparsity of LSTM gates ("gates"): Lobacheva, Chirkova, Markovich and Vetrov, "Structured
sparsification of gated recurrent neural networks", AAAI 2020 (arXiv:1911.05585), with a group-lasso penalty
(Yuan and Lin 2006) in place of their Bayesian sparsification, and group magnitude pruning.

An LSTM of ``n_i`` inputs and ``n_h`` units has the kernel ``W`` ``(n_i, 4 n_h)`` and the recurrent kernel ``U``
``(n_h, 4 n_h)``, column ``k n_h + u`` feeding the pre-activation of gate ``k`` (keras order i, f, c, o) of unit
``u``: ``z_{k,u} = x_t W[:, k n_h + u] + h_{t-1} U[:, k n_h + u] + b_{k n_h + u}``. The groups, one ``level`` at a
time (option ``level``):

- ``"weights"``: every weight of ``W`` and ``U`` alone (the penalty is the L1 norm);
- ``"gates"`` (default): the gate pre-activations, ``4 n_h`` groups: column ``k n_h + u`` of ``W`` and of ``U``
  (the ``n_i + n_h`` weights feeding that gate's pre-activation). A zero group makes the gate constant,
  ``act(b_{k n_h + u})`` at every step, whatever the input: the costs it saves are stated in
  :func:`eqnn.layers.recurrent.lstm_tally` (its ``n_i + n_h`` products and ``n_i + n_h - 1`` additions per step,
  its activation, and its elementwise product becomes a product by a constant, none where it is exactly 0 or 1);
- ``"neurons"``: the units, ``n_h`` groups: the ``4`` columns of unit ``u`` in ``W`` and ``U`` and the row ``u``
  of ``U`` (its recurrent outputs). A zero group makes all four gates of the unit constant and removes its
  recurrent feedback; its output ``h_u`` becomes a data-independent sequence, still read by the next layer (the
  unit is not deleted: use "structured" pruning for that).

``sparsity`` is the fraction of the groups of each LSTM (each direction of a Bidirectional) set to zero, the
``round(s n_groups)`` groups of smallest L2 norm (at least one group kept). One-shot (``fine_tune=None``): group
magnitude pruning of the trained weights. With fine-tuning: the first ``max(1, epochs // 2)`` epochs train with
the group-lasso penalty ``penalty * sum_g ||w_g||_2`` added to the loss (option ``penalty``, default 1e-4; 0 =
plain training), which drives whole groups towards zero; then the groups are pruned by magnitude, and the other
epochs train with the pruned groups held at zero. The ``schedule`` does not change this method (it is recorded).
Layers: LSTM and Bidirectional(LSTM) (every recurrent cell an LSTM); others are not prunable by this method.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras as keras

from ...layers import recurrent_layers
from .. import catalog
from ..common import copy_model
from ..fine_tune import FineTune, _fit, _ProjectStructure
from .registry import PruningMethod, register_pruning_method

LEVELS = catalog.GATE_LEVELS
DEFAULT_PENALTY = catalog.BUILTIN["gates"].options["penalty"].default
GATES = 4  # LSTM gate column blocks (i, f, c, o)


def lstm_cells(layer: keras.layers.Layer) -> list:
    """The LSTM layers inside ``layer`` (itself, or both directions of a Bidirectional), [] if any recurrent
    layer in it is not an LSTM."""
    rnns = recurrent_layers(layer)
    if not rnns or not all(isinstance(rnn, keras.layers.LSTM) for rnn in rnns):
        return []
    return rnns


def _gate_layers(model: keras.Model) -> list[str]:
    return [layer.name for layer in model.layers if lstm_cells(layer)]


def group_norms(W: np.ndarray, U: np.ndarray, level: str) -> np.ndarray:
    """The L2 norm of every group of ``level`` (module docstring): ``(n_i + n_h) 4 n_h`` weights (``W`` rows then
    ``U`` rows, row-major), ``4 n_h`` gates (column order), or ``n_h`` neurons."""
    if level == "weights":
        return np.abs(np.concatenate([W.ravel(), U.ravel()]))
    columns = np.sum(W.astype(np.float64) ** 2, axis=0) + np.sum(U.astype(np.float64) ** 2, axis=0)
    if level == "gates":
        return np.sqrt(columns)
    n = U.shape[0]
    own = np.sum(U.astype(np.float64) ** 2, axis=1)                        # row u of U
    overlap = np.sum(np.stack([U[np.arange(n), k * n + np.arange(n)] ** 2 for k in range(GATES)]), axis=0)
    return np.sqrt(columns.reshape(GATES, n).sum(axis=0) + own - overlap)


def zero_groups(W: np.ndarray, U: np.ndarray, level: str, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Copies of ``W`` and ``U`` with the groups ``groups`` (indices of :func:`group_norms`) set to zero."""
    W, U = W.copy(), U.copy()
    groups = np.asarray(groups, dtype=np.int64)
    if level == "weights":
        flat = np.concatenate([W.ravel(), U.ravel()])
        flat[groups] = 0.0
        return flat[:W.size].reshape(W.shape), flat[W.size:].reshape(U.shape)
    if level == "gates":
        W[:, groups] = 0.0
        U[:, groups] = 0.0
        return W, U
    n = U.shape[0]
    cols = np.concatenate([k * n + groups for k in range(GATES)]) if groups.size else groups
    W[:, cols] = 0.0
    U[:, cols] = 0.0
    U[groups, :] = 0.0
    return W, U


def _penalty(cell, level: str):
    """The group-lasso term of one LSTM cell as a TensorFlow expression of its variables."""
    W, U = cell.kernel, cell.recurrent_kernel
    eps = 1e-12
    if level == "weights":
        return tf.reduce_sum(tf.abs(W)) + tf.reduce_sum(tf.abs(U))
    columns = tf.reduce_sum(tf.square(W), axis=0) + tf.reduce_sum(tf.square(U), axis=0)
    if level == "gates":
        return tf.reduce_sum(tf.sqrt(columns + eps))
    n = int(U.shape[0])
    per_unit = tf.reduce_sum(tf.reshape(columns, (GATES, n)), axis=0)
    own = tf.reduce_sum(tf.square(U), axis=1)
    diagonal = tf.add_n([tf.square(tf.linalg.diag_part(U[:, k * n:(k + 1) * n])) for k in range(GATES)])
    return tf.reduce_sum(tf.sqrt(per_unit + own - diagonal + eps))


def _prune_cells(model: keras.Model, targets: Mapping[str, float], level: str) -> dict:
    """Zero the ``round(s n_groups)`` smallest groups of every LSTM of the targeted layers, in place."""
    record = {}
    for name, s in targets.items():
        if s <= 0.0:
            continue
        for rnn in lstm_cells(model.get_layer(name)):
            cell = rnn.cell
            W, U = cell.kernel.numpy(), cell.recurrent_kernel.numpy()
            norms = group_norms(W, U, level)
            n_zero = min(int(round(s * norms.size)), norms.size - 1)
            groups = np.argsort(norms, kind="stable")[:n_zero]
            W, U = zero_groups(W, U, level, groups)
            cell.kernel.assign(W.astype(cell.kernel.dtype.as_numpy_dtype))
            cell.recurrent_kernel.assign(U.astype(cell.recurrent_kernel.dtype.as_numpy_dtype))
            record[f"{name}/{rnn.name}"] = {"groups": int(norms.size), "zeroed": int(n_zero)}
    return record


def constant_gate_count(layer: keras.layers.Layer) -> int:
    """Constant gates (all pre-activation weights zero) of the LSTMs of ``layer``."""
    total = 0
    for rnn in lstm_cells(layer):
        W = np.vstack([rnn.cell.kernel.numpy(), rnn.cell.recurrent_kernel.numpy()])
        total += int(np.sum(~np.any(W != 0, axis=0)))
    return total


def _prune_gates(model: keras.Model, targets: Mapping[str, float], *, schedule: str, scope: str,
                 fine_tune: FineTune | None, options: Mapping[str, Any]) -> tuple[keras.Model, dict]:
    checked = GATES_METHOD.check_options(options)
    level, penalty = checked["level"], checked["penalty"]
    if scope != "layer":
        raise ValueError("gates pruning supports scope='layer' only")
    info: dict[str, Any] = {"level": level, "schedule_used": False}
    if fine_tune is None:
        pruned = copy_model(model)
        info["fine_tuned"] = False
    else:
        lasso_epochs = max(1, fine_tune.epochs // 2)
        training = copy_model(model)
        if penalty > 0:
            for name, s in targets.items():
                if s > 0.0:
                    for rnn in lstm_cells(training.get_layer(name)):
                        training.add_loss(lambda cell=rnn.cell: penalty * _penalty(cell, level))
        history = [_fit(training, fine_tune.with_epochs(lasso_epochs))]
        pruned = copy_model(model)  # a plain copy, without the penalty
        pruned.set_weights(training.get_weights())
        info.update(fine_tuned=True, penalty=penalty, lasso_epochs=lasso_epochs)
    info["groups"] = _prune_cells(pruned, targets, level)
    if fine_tune is not None and fine_tune.epochs > lasso_epochs:
        kernels = [var for name, s in targets.items() if s > 0.0 for rnn in lstm_cells(pruned.get_layer(name))
                   for var in (rnn.cell.kernel, rnn.cell.recurrent_kernel)]
        history.append(_fit(pruned, fine_tune.with_epochs(fine_tune.epochs - lasso_epochs),
                            [_ProjectStructure(kernels)]))
    if fine_tune is not None:
        info["history"] = history
    info["constant_gates"] = {name: constant_gate_count(pruned.get_layer(name)) for name in targets}
    return pruned, info


GATES_METHOD = register_pruning_method(PruningMethod.from_catalog("gates", _gate_layers, _prune_gates))
