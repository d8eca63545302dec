"""What every compression step shares: argument checks, copies of models, weight entries, the info record.

Multiplicative weights (:data:`KERNEL_NAMES`: ``kernel``, ``recurrent_kernel``, ``depthwise_kernel``,
``pointwise_kernel``, ``embeddings``) are what pruning, clustering and quantization act on; biases stay float
unless quantized explicitly.
"""

from __future__ import annotations

import copy
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras as keras
from tensorflow_model_optimization.python.core.clustering.keras import cluster_wrapper
from tensorflow_model_optimization.python.core.quantization.keras import quantize_wrapper
from tensorflow_model_optimization.python.core.sparsity.keras import pruning_wrapper

from channel.validation import check_choice, check_int, check_number

from ..keras2 import not_tf_keras_message
from ..layers import find_layer_type, layer_kind
from ..limits import FLOAT_BITS, MAX_BITS, MIN_BITS, SCOPES
from .catalog import SCHEDULES

__all__ = ["FLOAT_BITS", "KERNEL_NAMES", "MAX_BITS", "MIN_BITS", "SCHEDULES", "SCOPES", "attach_info",
           "compression_info", "copy_model", "is_multiplicative", "kernel_entries", "kernel_weights", "layer_kind",
           "weight_entries"]

KERNEL_NAMES = frozenset({"kernel", "recurrent_kernel", "depthwise_kernel", "pointwise_kernel", "embeddings"})
TFMOT_WRAPPERS = (pruning_wrapper.PruneLowMagnitude, cluster_wrapper.ClusterWeights,
                  quantize_wrapper.QuantizeWrapper)


# ----------------------------------------------------------------------------------------------- validation

def _check_model(model: Any) -> None:
    if not isinstance(model, keras.Model):
        raise TypeError(not_tf_keras_message(model))
    if not (isinstance(model, keras.Sequential) or getattr(model, "_is_graph_network", False)):
        raise TypeError(f"model {model.name!r} is a subclassed tf_keras Model: only Sequential and functional "
                        "models can be compressed")
    if not model.built or not model.inputs:
        raise ValueError(f"model {model.name!r} is not built: give it an input shape (keras.Input)")
    for layer in model.layers:
        if isinstance(layer, TFMOT_WRAPPERS):
            raise ValueError(f"layer {layer.name!r} is a TFMOT wrapper: pass a stripped (plain) model")



def _check_fraction(value: Any, what: str) -> float:
    """A fraction in [0, 1): TypeError if not a real number, ValueError if out of range."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{what} must be a number in [0, 1), got {value!r}")
    return check_number(what, value, 0.0, 1.0, high_open=True, error=ValueError)


def _check_int(value: Any, what: str, low: int, high: int | None = None) -> int:
    """An integer (or an integral float, e.g. from a search) in ``[low, high]``: TypeError / ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        if isinstance(value, numbers.Real) and float(value).is_integer():
            value = int(value)
        else:
            raise TypeError(f"{what} must be an integer, got {value!r}")
    return check_int(what, int(value), low, high, error=ValueError)


def _check_bits(value: Any, what: str) -> int:
    return _check_int(value, what, MIN_BITS, MAX_BITS)


def _check_choice(value: Any, what: str, choices: Sequence[str]) -> str:
    """One of ``choices`` as a ``str``: TypeError if not a string, ValueError if unknown."""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a string, one of {list(choices)}, got {value!r}")
    return check_choice(what, value, list(choices), error=ValueError)


def _check_clusters(n_clusters: Any, preserve_sparsity: bool) -> int:
    low = 3 if preserve_sparsity else 2
    what = "n_clusters" + (" (with preserve_sparsity=True, one cluster is the zeros)" if preserve_sparsity else "")
    return _check_int(n_clusters, what, low)



# ----------------------------------------------------------------------------------------------- model helpers

def copy_model(model: keras.Model) -> keras.Model:
    """A new model with the same architecture and weights, sharing no layer or variable."""
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


def _plain_class(layer: keras.layers.Layer) -> type:
    """The class of ``layer`` before any wrapping subclass of eqnn or TFMOT (e.g. :class:`PrunableBidirectional`
    -> ``Bidirectional``); a plain layer's own class (a tf_keras class, or a registered custom layer type)."""
    for cls in type(layer).__mro__:
        if not cls.__module__.startswith(("eqnn.compression", "tensorflow_model_optimization")):
            return cls
    raise TypeError(f"layer {layer.name!r} ({type(layer).__name__}) is not a tf_keras layer")


def _plain_rebuild(model: keras.Model) -> keras.Model:
    """A copy of a stripped model in which every layer is a fresh instance of its plain tf_keras class."""
    for layer in model.layers:
        if isinstance(layer, TFMOT_WRAPPERS):
            raise RuntimeError(f"layer {layer.name!r} is still wrapped ({type(layer).__name__})")

    def rebuild(layer):
        return _plain_class(layer).from_config(layer.get_config())

    plain = keras.models.clone_model(model, clone_function=rebuild)
    for layer in plain.layers:
        if layer.weights:
            layer.set_weights(model.get_layer(layer.name).get_weights())
    return plain


def _is_plain(model: keras.Model) -> bool:
    return all(type(layer) is _plain_class(layer) for layer in model.layers)


def _fresh_built(layer: keras.layers.Layer) -> keras.layers.Layer:
    """A new, built instance of ``layer``'s class with a copy of its weights (for wrappers that read the weights
    when they are built, e.g. clustering's centroid initialization)."""
    fresh = type(layer).from_config(layer.get_config())
    fresh.build(layer.input_shape)
    fresh.set_weights(layer.get_weights())
    return fresh


def weight_entries(layer: keras.layers.Layer) -> list[tuple[str, str, tf.Variable]]:
    """``(key, short name, variable)`` for every weight of a plain layer, in ``layer.weights`` order.

    ``key`` is ``"<layer>/<short>"``, or ``"<layer>/forward/<short>"`` / ``"<layer>/backward/<short>"`` inside a
    Bidirectional wrapper; ``short`` is the variable's own name (``kernel``, ``recurrent_kernel``, ``bias`` ...).
    """
    # a two-direction wrapper (Bidirectional) names its weights by direction
    directions = hasattr(layer, "forward_layer") and hasattr(layer, "backward_layer")
    forward = {v.ref() for v in layer.forward_layer.weights} if directions else set()
    entries, seen = [], set()
    for var in layer.weights:
        short = var.name.split(":")[0].split("/")[-1]
        if directions:
            key = f"{layer.name}/{'forward' if var.ref() in forward else 'backward'}/{short}"
        else:
            key = f"{layer.name}/{short}"
        base, i = key, 1
        while key in seen:
            key, i = f"{base}_{i}", i + 1
        seen.add(key)
        entries.append((key, short, var))
    return entries


def is_multiplicative(layer: keras.layers.Layer, short: str) -> bool:
    """Whether the weight ``short`` of ``layer`` is multiplicative: a name in :data:`KERNEL_NAMES`, or one of the
    ``weight_names`` of the layer's :class:`eqnn.layers.LayerType` (learned DBP's phase scale and power filter)."""
    if short in KERNEL_NAMES:
        return True
    layer_type = find_layer_type(layer)
    return layer_type is not None and short in layer_type.weight_names


def kernel_entries(layer: keras.layers.Layer) -> list[tuple[str, tf.Variable]]:
    return [(key, var) for key, short, var in weight_entries(layer) if is_multiplicative(layer, short)]


def kernel_weights(model: keras.Model) -> dict[str, np.ndarray]:
    """The multiplicative weights (kernels, recurrent kernels) of a plain model: ``{"layer/name": array}``."""
    _check_model(model)
    return {key: var.numpy() for layer in model.layers for key, var in kernel_entries(layer)}


def compression_info(model: keras.Model) -> dict:
    """What was done to ``model`` by this module (a copy): ``{"steps": [...], "weight_bits", "activation_bits"}``."""
    info = getattr(model, "eqnn_info", None)
    return copy.deepcopy(info) if info else {"steps": [], "weight_bits": None, "activation_bits": None}


def attach_info(new: keras.Model, source: keras.Model, step: dict, **fields: Any) -> keras.Model:
    info = compression_info(source)
    info["steps"].append(step)
    info.update(fields)
    # object.__setattr__: a plain Python attribute, not tracked by Keras (saving is unaffected).
    object.__setattr__(new, "eqnn_info", info)
    return new

