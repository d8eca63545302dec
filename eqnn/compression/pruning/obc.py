"""Post-training pruning by Optimal Brain Compression ("obc"; Frantar & Alistarh, NeurIPS 2022): the exact Optimal
Brain Surgeon (OBS) update, layer by layer, on a few calibration windows, without retraining.

Per row (an output feature: Dense neuron, Conv1D filter, gate column of an LSTM / GRU), the weight of least
saliency ``w_q^2 / [H^-1]_qq`` among the remaining ones is removed and the others compensated, ``w <- w - w_q /
[H^-1]_qq H^-1[:, q]``, with ``H = 2 X^T X + lambda mean(diag(2 X^T X)) I`` of the layer's calibration inputs ``X``
and ``H^-1`` updated by the rank-1 removal of ``q`` (:mod:`eqnn.compression.obs`: the update, the inputs of each
layer type, the sequential order); until ``d - max(round(d (1 - s)), 1)`` weights of each row are zero (the
per-tensor rule of magnitude pruning, per row). The kept weights of a row are then the least-squares optimum of
the layer output on their support; at equal sparsity the error on the calibration set is well below magnitude
pruning's when inputs are correlated (tests/test_pruning_obc.py).

Options: ``calibration_samples`` (at most this many calibration windows, a seeded subsample; default 1024),
``damping`` (``lambda`` >= 0, default 0.01). Calibration data: ``prune(..., calibration=...)`` or the fine-tuning
windows. With ``fine_tune``, the pruned model is then fine-tuned with its zeros kept (no TFMOT).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import numpy as np
import tf_keras as keras

from .. import catalog
from ..calibration import Calibration
from ..common import copy_model, kernel_entries
from ..fine_tune import FineTune, _fit, _ProjectStructure
from ..obs import hessian, obs_model, obs_rows, obs_supported
from .registry import PruningMethod, register_pruning_method

# the options (calibration_samples, damping: their defaults and ranges) are the catalog's
check_obc_options = catalog.BUILTIN["obc"].check_options
OPTIONS = check_obc_options.defaults


def prune_rows(w: np.ndarray, x: np.ndarray, sparsity: float, damping: float) -> np.ndarray:
    """OBC on rows ``w`` ``(rows, d)`` reading inputs ``x`` ``(n, d)``: every row gets ``d - max(round(d (1 - s)),
    1)`` zeros, the other weights compensated. Sparsity 0 returns ``w`` unchanged."""
    d = w.shape[1]
    n_prune = d - max(int(round(d * (1.0 - sparsity))), 1)
    if n_prune <= 0:
        return np.array(w, copy=True)
    return obs_rows(w, hessian(x, damping), n_prune, lambda values, rows: np.zeros_like(values)).astype(w.dtype)


def _obc_layers(model: keras.Model) -> list[str]:
    return [layer.name for layer in model.layers if obs_supported(layer)]


def _prune_obc(model: keras.Model, targets: Mapping[str, float], *, schedule: str, scope: str,
               fine_tune: FineTune | None, options: Mapping[str, Any],
               calibration: Calibration | None) -> tuple[keras.Model, dict]:
    if scope != "layer":
        raise ValueError("obc pruning supports scope='layer' only")
    seed = fine_tune.seed if fine_tune is not None else 0
    data = calibration.subsample(options["calibration_samples"], seed)
    pruned = copy_model(model)
    damping = options["damping"]
    obs_model(pruned, [(name, functools.partial(prune_rows, sparsity=s, damping=damping))
                       for name, s in targets.items() if s > 0.0], data.x)
    info: dict[str, Any] = {"calibration_samples": len(data), "damping": options["damping"],
                            "fine_tuned": fine_tune is not None}
    if fine_tune is not None:
        kernels = [var for name in targets for _, var in kernel_entries(pruned.get_layer(name))]
        keep = _ProjectStructure(kernels)
        info["history"] = _fit(pruned, fine_tune, [keep])
        keep.project()
    info["achieved_sparsity"] = {key: float(np.mean(var.numpy() == 0.0)) for name, s in targets.items() if s > 0
                                 for key, var in kernel_entries(pruned.get_layer(name))}
    return pruned, info


OBC = register_pruning_method(PruningMethod.from_catalog("obc", _obc_layers, _prune_obc))
