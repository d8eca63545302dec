"""Pruning of the filter taps of learned DBP ("ldbp_taps", "ldbp_edges"), in NumPy on its :class:`ComplexFIR` layers.

The prunable layers are the complex FIRs of an LDBP (:mod:`eqnn.models.ldbp`: ``fir_1 .. fir_S`` and the output
filter); the unit pruned is a complex tap ``w_k = a_k + j b_k`` (both parts), ``sparsity`` the fraction of a
filter's ``N`` taps removed: ``n = min(round(s N), N - 1)`` (magnitude) or ``2 e`` with ``e = min(round(s N / 2),
(N - 1) / 2)`` (edges).

- mode "magnitude" (method "ldbp_taps", which stands for "magnitude" on an LDBP): the ``n`` taps of smallest
  ``|w_k|`` set to zero (ties: the first). A zero tap costs nothing (:mod:`eqnn.layers.ldbp`). ``scope="global"``:
  the per-filter fractions come from one magnitude threshold over the taps' real and imaginary parts (the
  registry's rule), each then applied to the filter's complex taps.
- mode "edges" (method "ldbp_edges", which stands for "structured"; or "ldbp_taps" with ``options={"mode":
  "edges"}``): the ``e`` outermost taps at each end removed, so the filter gets shorter (``N - 2 e`` taps, still
  odd and centred) and the model reads ``e`` fewer input samples on each side; its output equals the original
  filter's with those taps set to zero (on the centred input). The saved model's config is resized
  (:func:`eqnn.models.ldbp.ldbp_resized`: ``taps``, ``taps_per_step``, ``output_taps``).

One-shot without ``fine_tune``. With it: the model is fine-tuned after pruning (Adam, mean squared error on the
training blocks, cropped to the shorter model; pruned taps held at zero, tied values tied:
:func:`eqnn.compression.ldbp.fine_tune_ldbp`); ``schedule="polynomial"`` prunes in up to 3 stages on a cubic ramp,
each fine-tuned (as "structured" does).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import tf_keras as keras

from .. import catalog
from ..common import copy_model
from ..fine_tune import FineTune
from ..ldbp import fine_tune_ldbp, fir_layers
from .registry import PruningMethod, register_pruning_method

MODES = catalog.LDBP_MODES


def edge_taps(n_taps: int, sparsity: float) -> int:
    """Taps removed at each end of a filter of ``n_taps`` for the fraction ``sparsity`` (at least 1 tap kept)."""
    return min(int(round(sparsity * n_taps / 2)), (n_taps - 1) // 2)


def _zero_smallest(kernel: np.ndarray, n_zero: int) -> np.ndarray:
    """``kernel`` (N, 2) with its ``n_zero`` taps of smallest complex magnitude set to zero (ties: the first)."""
    order = np.argsort(np.hypot(kernel[:, 0].astype(np.float64), kernel[:, 1].astype(np.float64)), kind="stable")
    out = kernel.copy()
    out[order[:n_zero]] = 0.0
    return out


def trim_edges(model: keras.Model, trims: Mapping[str, int]) -> keras.Model:
    """A new model with ``trims[name]`` outermost taps removed at each end of the named :class:`ComplexFIR`\\ s."""
    def clone(layer):
        config = layer.get_config()
        if layer.name in trims:
            config["taps"] = layer.taps - 2 * trims[layer.name]
        return type(layer).from_config(config)

    out = keras.models.clone_model(model, clone_function=clone)
    for layer in out.layers:
        if layer.weights:
            weights = model.get_layer(layer.name).get_weights()
            e = trims.get(layer.name, 0)
            if e:
                weights = [weights[0][e:weights[0].shape[0] - e]]
            layer.set_weights(weights)
    return out


def _prune_once(model: keras.Model, fractions: Mapping[str, float], taps0: Mapping[str, int], mode: str
                ) -> keras.Model:
    """Prune each named filter to ``fractions[name]`` of its original ``taps0[name]`` taps (cumulative)."""
    if mode == "edges":
        trims = {}
        for name, s in fractions.items():
            n_now, goal = model.get_layer(name).taps, taps0[name] - 2 * edge_taps(taps0[name], s)
            if n_now > goal:
                trims[name] = (n_now - goal) // 2
        return trim_edges(model, trims) if trims else copy_model(model)
    out = copy_model(model)
    for name, s in fractions.items():
        layer = out.get_layer(name)
        kernel = layer.get_weights()[0]
        n = kernel.shape[0]
        layer.set_weights([_zero_smallest(kernel, min(int(round(s * n)), n - 1))])
    return out


def _prune_ldbp(model: keras.Model, targets: Mapping[str, float], *, schedule: str, scope: str,
                fine_tune: FineTune | None, options: Mapping[str, Any], mode: str | None = None
                ) -> tuple[keras.Model, dict]:
    # the options are the catalog's: ldbp_taps takes mode (default "magnitude"), ldbp_edges none
    checked = (LDBP_TAPS if mode is None else LDBP_EDGES).check_options(options)
    mode = mode or checked["mode"]
    if mode == "edges" and scope != "layer":
        raise ValueError("pruning the outermost taps (mode 'edges') supports scope='layer' only")
    active = {name: s for name, s in targets.items() if s > 0.0}
    taps0 = {name: model.get_layer(name).taps for name in active}
    stages = min(3, fine_tune.epochs) if (schedule == "polynomial" and fine_tune is not None) else 1
    epochs = [len(e) for e in np.array_split(np.arange(fine_tune.epochs), stages)] if fine_tune else []
    current, histories = model, []
    for stage in range(1, stages + 1):
        ramp = 1.0 - (1.0 - stage / stages) ** 3
        current = _prune_once(current, {name: ramp * s for name, s in active.items()}, taps0, mode)
        if fine_tune is not None and epochs[stage - 1] > 0:
            histories.append(fine_tune_ldbp(current, fine_tune.with_epochs(epochs[stage - 1])))
    if current is model:
        current = copy_model(model)
    info: dict[str, Any] = {"mode": mode, "stages": stages, "fine_tuned": fine_tune is not None,
                            "taps": {name: [taps0[name], int(current.get_layer(name).taps)] for name in active},
                            "nonzero_taps": {name: int(np.count_nonzero(np.any(
                                current.get_layer(name).get_weights()[0] != 0, axis=1))) for name in active}}
    if histories:
        info["history"] = histories
    return current, info


def _prune_edges(model, targets, **kwargs):
    return _prune_ldbp(model, targets, **kwargs, mode="edges")


LDBP_TAPS = register_pruning_method(PruningMethod.from_catalog("ldbp_taps", fir_layers, _prune_ldbp))
LDBP_EDGES = register_pruning_method(PruningMethod.from_catalog("ldbp_edges", fir_layers, _prune_edges))

__all__ = ["LDBP_EDGES", "LDBP_TAPS", "MODES", "edge_taps", "trim_edges"]
