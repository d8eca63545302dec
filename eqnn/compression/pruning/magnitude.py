"""Unstructured magnitude pruning ("magnitude"): the smallest-magnitude kernel weights set to zero.

One-shot (``fine_tune=None``): per tensor, the ``max(round(n (1 - s)), 1)`` largest magnitudes are kept (TFMOT's
rule). With fine-tuning: TFMOT ``prune_low_magnitude`` with a ConstantSparsity or PolynomialDecay schedule, then
stripped back to plain layers. Layers TFMOT cannot wrap natively but whose :class:`eqnn.layers.LayerType` names
``prunable_weights`` (Bidirectional: the kernels and recurrent kernels of both cells) are rebuilt as a subclass that
implements TFMOT's ``PrunableLayer``. Supports ``scope="global"``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow_model_optimization as tfmot
import tf_keras as keras
from tensorflow_model_optimization.python.core.sparsity.keras import pruning_wrapper
from tensorflow_model_optimization.python.core.sparsity.keras.prune_registry import PruneRegistry

from ...layers import find_layer_type
from ..common import _plain_class, copy_model, kernel_entries
from ..fine_tune import FineTune, _fit
from .registry import PruningMethod, register_pruning_method


class PrunableBidirectional(keras.layers.Bidirectional, tfmot.sparsity.keras.PrunableLayer):
    """A ``Bidirectional`` that TFMOT can prune: the kernels and recurrent kernels of both cells.

    Used only inside :func:`eqnn.compress.prune`; the returned models hold plain ``Bidirectional`` layers again.
    """

    def get_prunable_weights(self):
        return list(find_layer_type(self).prunable_weights(self))


_PRUNABLE_CLASSES: dict[type, type] = {keras.layers.Bidirectional: PrunableBidirectional}


def prunable_class(layer: keras.layers.Layer) -> type | None:
    """The ``PrunableLayer`` subclass to rebuild ``layer`` as before wrapping it, or None (TFMOT wraps it as is)."""
    layer_type = find_layer_type(layer)
    if layer_type is None or layer_type.prunable_weights is None:
        return None
    base = type(layer)
    if base not in _PRUNABLE_CLASSES:
        _PRUNABLE_CLASSES[base] = type(f"Prunable{base.__name__}", (base, tfmot.sparsity.keras.PrunableLayer), {
            "get_prunable_weights": lambda self: list(find_layer_type(self).prunable_weights(self)),
            "__module__": __name__})
    return _PRUNABLE_CLASSES[base]


def _magnitude_prunable(layer: keras.layers.Layer) -> bool:
    if not kernel_entries(layer):
        return False
    layer_type = find_layer_type(layer)
    if layer_type is not None and layer_type.prune_parts is not None:
        return all(PruneRegistry.supports(part) for part in layer_type.prune_parts(layer))
    if layer_type is not None and layer_type.prunable_weights is not None:
        return True
    return PruneRegistry.supports(layer)


def _magnitude_layers(model: keras.Model) -> list[str]:
    return [layer.name for layer in model.layers if _magnitude_prunable(layer)]


def _topk_mask(w: np.ndarray, sparsity: float) -> np.ndarray:
    """TFMOT's rule: keep the max(round(n * (1 - s)), 1) largest magnitudes."""
    n = w.size
    keep = max(int(round(n * (1.0 - sparsity))), 1)
    order = np.argsort(-np.abs(w).ravel(), kind="stable")
    mask = np.zeros(n, dtype=bool)
    mask[order[:keep]] = True
    return mask.reshape(w.shape)


def _pruning_schedule(sparsity: float, schedule: str, fine_tune: FineTune):
    """A TFMOT schedule whose last mask update falls inside the fine-tuning steps (and on its frequency grid)."""
    total = fine_tune.total_steps
    if schedule == "constant":
        frequency = max(1, min(100, total // 4))
        return tfmot.sparsity.keras.ConstantSparsity(sparsity, begin_step=0, frequency=frequency), {
            "frequency": frequency}
    # polynomial: ramp from 0 to the target over the first ~70 % of the steps, then train at the target.
    ramp = max(1, int(round(0.7 * total)))
    frequency = max(1, ramp // min(10, ramp))
    end_step = frequency * (ramp // frequency)
    return tfmot.sparsity.keras.PolynomialDecay(initial_sparsity=0.0, final_sparsity=sparsity, begin_step=0,
                                                end_step=end_step, power=3, frequency=frequency), {
        "frequency": frequency, "end_step": end_step}


def _achieved_sparsity(model: keras.Model, names: Sequence[str]) -> dict[str, float]:
    out = {}
    for name in names:
        for key, var in kernel_entries(model.get_layer(name)):
            w = var.numpy()
            out[key] = float(np.mean(w == 0.0))
    return out


def _prune_magnitude(model: keras.Model, targets: Mapping[str, float], *, schedule: str, scope: str,
                     fine_tune: FineTune | None, options: Mapping[str, Any]) -> tuple[keras.Model, dict]:
    if options:
        raise ValueError(f"magnitude pruning takes no options, got {sorted(options)}")
    info: dict[str, Any] = {}
    active = {name: s for name, s in targets.items() if s > 0.0}
    if fine_tune is None:
        pruned = copy_model(model)
        for name, s in active.items():
            for _, var in kernel_entries(pruned.get_layer(name)):
                w = var.numpy()
                var.assign(np.where(_topk_mask(w, s), w, 0.0).astype(w.dtype))
        info["fine_tuned"] = False
    else:
        schedules = {}

        def wrap(layer):
            s = active.get(layer.name, 0.0)
            cls = prunable_class(layer) if s > 0.0 else None
            fresh = (cls or type(layer)).from_config(layer.get_config())
            if s == 0.0:
                return fresh
            sched, sched_info = _pruning_schedule(s, schedule, fine_tune)
            schedules[layer.name] = sched_info
            return tfmot.sparsity.keras.prune_low_magnitude(fresh, pruning_schedule=sched)

        wrapped = keras.models.clone_model(model, clone_function=wrap)
        for layer in wrapped.layers:
            inner = layer.layer if isinstance(layer, pruning_wrapper.PruneLowMagnitude) else layer
            if inner.weights:
                inner.set_weights(model.get_layer(inner.name).get_weights())
        info["history"] = _fit(wrapped, fine_tune, [tfmot.sparsity.keras.UpdatePruningStep()])
        info["fine_tuned"] = True
        info["schedule_steps"] = schedules
        # strip_pruning + conversion to plain layers in one clone: UpdatePruningStep has already multiplied the
        # weights by their masks at the end of the last epoch.
        inner = {}
        for layer in wrapped.layers:
            layer = layer.layer if isinstance(layer, pruning_wrapper.PruneLowMagnitude) else layer
            inner[layer.name] = layer

        def strip(layer):
            layer = layer.layer if isinstance(layer, pruning_wrapper.PruneLowMagnitude) else layer
            return _plain_class(layer).from_config(layer.get_config())

        pruned = keras.models.clone_model(wrapped, clone_function=strip)
        for layer in pruned.layers:
            if layer.weights:
                layer.set_weights(inner[layer.name].get_weights())
    info["achieved_sparsity"] = _achieved_sparsity(pruned, list(active))
    return pruned, info



MAGNITUDE = register_pruning_method(PruningMethod.from_catalog("magnitude", _magnitude_layers, _prune_magnitude))
