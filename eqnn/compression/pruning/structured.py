"""Structured pruning ("structured"): whole units removed (Dense neurons, Conv1D filters, LSTM / GRU units), so the
model gets smaller.

Needs a single-input, single-output chain. Each layer is handled by its :class:`eqnn.layers.LayerType` (its
``structure``): "units" layers lose units (``out_norms`` / the next weighted layer's ``in_norms`` rank them,
``slice_out`` / ``resize`` shrink them), the layers after them lose the matching input features (``slice_in``),
"pass" layers pass features through, ``Flatten`` re-indexes them (feature ``c`` of time step ``t`` becomes ``t C +
c``), "per_feature" layers (BatchNormalization) are sliced; any other layer stops the method. The last layer with
weights (the model outputs) is never pruned. ``sparsity`` is the fraction of units removed per layer
(``round(s n)``, at least one unit kept); options: ``criterion="outgoing"`` (rank a unit by the squared L2 norm of
the next weighted layer's weights that read it) or ``"incoming"`` (of its own weights and bias). With a
"polynomial" schedule and fine-tuning, up to 3 stages with a cubic ramp, each fine-tuned.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras as keras

from ...layers import find_layer_type, layer_kind, structure_of
from ..common import _plain_class, copy_model
from ..fine_tune import FineTune, _fit
from .registry import PruningMethod, register_pruning_method


def _chain_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The layers of a single-input single-output chain model (InputLayer excluded), else ValueError."""
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    if isinstance(model, keras.Sequential):
        return layers
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ValueError("structured pruning supports single-input, single-output chain models only")
    previous = model.layers[0] if isinstance(model.layers[0], keras.layers.InputLayer) else None
    for layer in layers:
        nodes = layer._inbound_nodes  # noqa: SLF001 - tf_keras exposes no public graph API
        inbound = tf.nest.flatten(nodes[0].inbound_layers) if len(nodes) == 1 else []
        if len(nodes) != 1 or len(inbound) != 1 or (previous is not None and inbound[0] is not previous):
            raise ValueError(f"structured pruning supports chain models only (layer {layer.name!r} is not fed by "
                             "the layer before it)")
        previous = layer
    return layers



def units_of(layer) -> int:
    """Units (neurons, filters, LSTM units per direction) of a layer whose structure is "units"."""
    return find_layer_type(layer).units(layer)


def _structured_layers(model: keras.Model) -> list[str]:
    """Layers whose units can be removed (structure "units", more than one unit), except the last weighted one."""
    try:
        layers = _chain_layers(model)
    except ValueError:
        return []
    weighted = [layer for layer in layers if layer.weights]
    return [layer.name for layer in weighted[:-1] if structure_of(layer) == "units" and units_of(layer) > 1]


def _top(n_keep: int):
    def top(scores):
        return np.sort(np.argsort(-scores, kind="stable")[:n_keep])

    return top


def _choose_keeps(layers: list, weights: Mapping[str, list], remove: Mapping[str, int], criterion: str,
                  scores: Mapping[str, np.ndarray] | None = None) -> dict[str, Any]:
    """The kept units of each layer of ``remove`` (indices; ``(fwd, bwd)`` for Bidirectional): the ``units -
    remove[name]`` best by ``criterion`` over ``weights`` ({layer name: its weight arrays}), or by ``scores``
    ({layer name: importance of each unit}, given by the caller) for the layers it names."""
    keeps: dict[str, Any] = {}
    for i, layer in enumerate(layers):
        n_remove = int(remove.get(layer.name, 0))
        if n_remove <= 0:
            continue
        layer_type = find_layer_type(layer)
        units = layer_type.units(layer)
        if scores is not None and layer.name in scores:
            unit_scores = np.asarray(scores[layer.name], np.float64)
        elif criterion == "incoming":
            unit_scores = layer_type.out_norms(layer, weights[layer.name])
        else:  # outgoing: the weights of the next weighted layer that read each output feature
            consumer, flat = None, None
            shape = layer.output_shape
            for nxt in layers[i + 1:]:
                if structure_of(nxt) == "flatten":
                    flat = shape[1:]
                elif nxt.weights and structure_of(nxt) != "per_feature":
                    consumer = nxt
                    break
            norms = find_layer_type(consumer).in_norms(consumer, weights[consumer.name])
            if flat is not None:
                norms = norms.reshape(int(np.prod(flat[:-1])), flat[-1]).sum(axis=0)
            unit_scores = norms
        top = _top(units - n_remove)
        if layer_type.choose_keep is not None:
            keeps[layer.name] = layer_type.choose_keep(layer, unit_scores, units - n_remove, top)
        else:
            keeps[layer.name] = top(unit_scores)
    return keeps


def _sliced(layers: list, weights: Mapping[str, list], keeps: Mapping[str, Any]) -> list[tuple[dict, list]]:
    """``(config, weight arrays)`` of every layer once the units of ``keeps`` alone are kept: its own outputs and
    the inputs of the layers after it that read them (any arrays indexed like the weights, e.g. index markers)."""
    out = []
    feature_keep = None  # None: all features of the current tensor are kept
    for layer in layers:
        layer_type = find_layer_type(layer)
        structure = structure_of(layer)
        w = weights[layer.name]
        if feature_keep is not None and layer.weights:
            w = layer_type.slice_in(layer, w, feature_keep)
        config = layer.get_config()
        if structure == "flatten":
            if feature_keep is not None:
                shape = layer.input_shape[1:]
                channels = shape[-1]
                steps = int(np.prod(shape[:-1]))
                feature_keep = np.add.outer(np.arange(steps) * channels, feature_keep).ravel()
        elif layer.name in keeps:
            keep = keeps[layer.name]
            w = layer_type.slice_out(layer, w, keep)
            n_keep = len(keep[0]) if isinstance(keep, tuple) else len(keep)
            config = layer_type.resize(layer, n_keep)
            feature_keep = layer_type.kept_features(layer, keep) if layer_type.kept_features is not None else keep
        elif layer.weights and structure != "per_feature":
            feature_keep = None  # a layer that keeps all its units: its outputs are complete
        config.pop("batch_input_shape", None)
        out.append((config, w))
    return out


def remove_units(model: keras.Model, keeps: Mapping[str, Any]) -> keras.Model:
    """A new (smaller) plain Sequential model in which the layers of ``keeps`` keep those units alone."""
    layers = _chain_layers(model)
    sliced = _sliced(layers, {layer.name: layer.get_weights() for layer in layers}, keeps)
    new_layers = [_plain_class(layer).from_config(config) for layer, (config, _) in zip(layers, sliced)]
    rebuilt = keras.Sequential([keras.Input(shape=model.input_shape[1:], dtype=model.inputs[0].dtype),
                                *new_layers], name=model.name)
    for layer, (_, w) in zip(new_layers, sliced):
        if w:
            layer.set_weights(w)
    return rebuilt


def unit_masks(model: keras.Model, keeps: Mapping[str, Any]) -> dict[str, list[np.ndarray]]:
    """Boolean masks, ``{layer name: one per weight array}``: True for the weights that :func:`remove_units` keeps.

    Zeroing the False entries (the removed units' own weights and every weight that reads them) gives a model with
    the same outputs as the smaller one: a removed unit then feeds nothing (an LSTM unit's recurrent rows are
    zero too)."""
    layers = _chain_layers(model)
    markers = {layer.name: [np.arange(w.size, dtype=np.int64).reshape(w.shape) for w in layer.get_weights()]
               for layer in layers}
    masks = {}
    for layer, (_, kept) in zip(layers, _sliced(layers, markers, keeps)):
        masks[layer.name] = [np.isin(marker, k) for marker, k in zip(markers[layer.name], kept)]
    return masks


def _structured_once(model: keras.Model, remove: Mapping[str, int], criterion: str,
                     scores: Mapping[str, np.ndarray] | None = None) -> keras.Model:
    """Remove ``remove[name]`` units from each named layer; returns a new (smaller) plain Sequential model.

    ``scores``: ``{layer name: importance of each unit}`` given by the caller (e.g. filter pruning's L1 norm or
    Taylor importance), used instead of ``criterion`` for those layers (the least important units go)."""
    layers = _chain_layers(model)
    keeps = _choose_keeps(layers, {layer.name: layer.get_weights() for layer in layers}, remove, criterion, scores)
    return remove_units(model, keeps)


def _check_structured_model(model: keras.Model) -> None:
    layers = _chain_layers(model)
    for layer in layers:
        if structure_of(layer) == "none":
            raise ValueError(f"structured pruning supports chains of Dense, Conv1D, LSTM, GRU, Bidirectional(LSTM / "
                             f"GRU), Flatten, BatchNormalization, Dropout/Activation layers; layer {layer.name!r} is "
                             f"{layer_kind(layer)}")


def _prune_structured(model: keras.Model, targets: Mapping[str, float], *, schedule: str, scope: str,
                      fine_tune: FineTune | None, options: Mapping[str, Any]) -> tuple[keras.Model, dict]:
    criterion = STRUCTURED.check_options(options)["criterion"]
    if scope != "layer":
        raise ValueError("structured pruning supports scope='layer' only")
    _check_structured_model(model)
    units0 = {name: units_of(model.get_layer(name)) for name in targets}
    final = {name: units0[name] - min(int(round(s * units0[name])), units0[name] - 1) for name, s in targets.items()}
    stages = 1
    if schedule == "polynomial" and fine_tune is not None:
        stages = min(3, fine_tune.epochs)
    epochs = [len(e) for e in np.array_split(np.arange(fine_tune.epochs), stages)] if fine_tune else []
    current, histories = model, []
    for stage in range(1, stages + 1):
        frac = 1.0 - (1.0 - stage / stages) ** 3
        remove = {}
        for name in targets:
            goal = units0[name] - int(round(frac * (units0[name] - final[name])))
            remove[name] = units_of(current.get_layer(name)) - goal
        current = _structured_once(current, remove, criterion)
        if fine_tune is not None and epochs[stage - 1] > 0:
            histories.append(_fit(current, fine_tune.with_epochs(epochs[stage - 1])))
    if current is model:
        current = copy_model(model)
    info = {"criterion": criterion, "stages": stages, "fine_tuned": fine_tune is not None,
            "units": {name: [units0[name], units_of(current.get_layer(name))] for name in targets}}
    if histories:
        info["history"] = histories
    return current, info



STRUCTURED = register_pruning_method(PruningMethod.from_catalog("structured", _structured_layers, _prune_structured))
