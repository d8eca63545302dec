"""Layers without multiplicative weights: activations, reshaping, dropout and noise, BatchNormalization.

Complexity (see :mod:`eqnn.complexity`): ``Activation`` layers cost their function per element (ReLU and linear:
nothing); ``LeakyReLU`` one product by the constant ``alpha`` per element; ``ReLU`` (with ``negative_slope =
threshold = 0``) and the arithmetic-free layers (:data:`FREE_LAYER_TYPES`) nothing. ELU, Softmax and
BatchNormalization cannot be costed. Structured pruning passes channels through the per-feature layers
(``"pass"``), re-indexes them through ``Flatten`` and slices BatchNormalization's per-feature weights.
"""

from __future__ import annotations

import numpy as np
import tf_keras as keras

from ..complexity.counting import ComplexityError, input_shape
from .registry import LayerType, register_layer_type

FREE_LAYER_TYPES = ("InputLayer", "Flatten", "Reshape", "Permute", "Dropout", "SpatialDropout1D",
                    "SpatialDropout2D", "GaussianNoise", "GaussianDropout", "AlphaDropout", "ActivityRegularization")
# weightless layers that act on each feature separately: structured pruning passes channels through them
_PER_FEATURE = (keras.layers.Dropout, keras.layers.GaussianNoise, keras.layers.GaussianDropout,
                keras.layers.AlphaDropout, keras.layers.ActivityRegularization)


def _named(*names):
    return lambda layer: type(layer).__name__ in names


def _free_tally(t, layer) -> tuple:
    return ()


def _identity(counter, layer, x):
    return x  # InputLayer, Dropout, noise: identity at inference


def _free_only(layer):
    return type(layer).__name__ in FREE_LAYER_TYPES  # a subclass under another name is not costed


def _activation_tally(t, layer) -> tuple:
    t.activate(layer.activation, int(np.prod(input_shape(layer)[1:])))
    return ()


def _leaky_tally(t, layer) -> tuple:
    t.leaky(float(layer.alpha), int(np.prod(input_shape(layer)[1:])))
    return ()


def _relu_check(layer):
    if type(layer).__name__ != "ReLU":
        return False
    if float(layer.negative_slope) != 0 or float(layer.threshold) != 0:
        raise ComplexityError(f"layer {layer.name!r}: ReLU with negative_slope or threshold is not supported; use "
                              "LeakyReLU")


def _relu_reference(counter, layer, x):
    return np.maximum(x, 0.0) if layer.max_value is None else np.clip(x, 0.0, float(layer.max_value))


def _batch_norm_slice_in(layer, weights: list, keep: np.ndarray) -> list:
    return [w[keep] for w in weights]


register_layer_type(LayerType(
    name="InputLayer", matches=_named("InputLayer"), tally=_free_tally, reference=_identity,
    free_names=("InputLayer",), structure="pass"))
register_layer_type(LayerType(
    name="Flatten", matches=_named("Flatten"), tally=_free_tally, reference=lambda counter, layer, x: x.reshape(-1),
    free_names=("Flatten",), structure="flatten"))
register_layer_type(LayerType(
    name="Reshape", matches=_named("Reshape"), tally=_free_tally,
    reference=lambda counter, layer, x: x.reshape(layer.target_shape), free_names=("Reshape",)))
register_layer_type(LayerType(
    name="Permute", matches=_named("Permute"), tally=_free_tally,
    reference=lambda counter, layer, x: np.transpose(x, [d - 1 for d in layer.dims]), free_names=("Permute",)))
register_layer_type(LayerType(
    name="Dropout and noise", matches=lambda layer: isinstance(layer, _PER_FEATURE), check=_free_only,
    tally=_free_tally, reference=_identity, structure="pass",
    free_names=tuple(n for n in FREE_LAYER_TYPES if n not in ("InputLayer", "Flatten", "Reshape", "Permute"))))
register_layer_type(LayerType(
    name="Activation", matches=lambda layer: isinstance(layer, keras.layers.Activation), tally=_activation_tally,
    reference=lambda counter, layer, x: counter.activation(layer.activation, x), structure="pass"))
register_layer_type(LayerType(
    name="LeakyReLU", matches=lambda layer: isinstance(layer, keras.layers.LeakyReLU), check=_named("LeakyReLU"),
    tally=_leaky_tally, reference=lambda counter, layer, x: counter.leaky(float(layer.alpha), x), structure="pass"))
register_layer_type(LayerType(
    name="ReLU", matches=lambda layer: isinstance(layer, keras.layers.ReLU), check=_relu_check, tally=_free_tally,
    reference=_relu_reference, structure="pass"))
register_layer_type(LayerType(  # not costed (tally=None)
    name="ELU, Softmax", matches=lambda layer: isinstance(layer, (keras.layers.ELU, keras.layers.Softmax)),
    structure="pass"))
register_layer_type(LayerType(  # not costed (tally=None)
    name="BatchNormalization", matches=lambda layer: isinstance(layer, keras.layers.BatchNormalization),
    structure="per_feature", slice_in=_batch_norm_slice_in))
