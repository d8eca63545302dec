"""Dense: ``y = act(x W + b)``, ``W`` of shape ``(n_in, n_out)``, applied at each of the ``P`` positions of its
input (``P = 1`` for a 2-D input ``(batch, n_in)``, ``P = T`` for ``(batch, T, n_in)``).

Cost per window (see :mod:`eqnn.complexity`): ``P`` matrix-vector products, unpruned ``P n_in n_out`` real
multiplications, plus ``P n_out`` activations. Structured pruning removes output neurons (columns of ``W``).
"""

from __future__ import annotations

import numpy as np
import tf_keras as keras

from ..complexity.counting import input_shape, matvec, ref_matvec
from .registry import LayerType, register_layer_type, resize_config_key, slice_output_axis


def tally(t, layer) -> tuple:
    shape = input_shape(layer)
    positions = int(np.prod(shape[1:-1])) if len(shape) > 2 else 1
    kernel = layer.kernel.numpy()
    bias = layer.bias.numpy() if layer.use_bias else None
    matvec(t, kernel, t.digits(kernel), bias, positions)
    t.activate(layer.activation, positions * int(layer.units))
    return (kernel,)


def reference(counter, layer, x: np.ndarray) -> np.ndarray:
    kernel = layer.kernel.numpy()
    bias = layer.bias.numpy() if layer.use_bias else None
    flat = x.reshape(-1, x.shape[-1])
    integers = counter.integers(kernel)
    out = np.array([ref_matvec(counter, row, kernel, bias, integers) for row in flat])
    out = out.reshape(x.shape[:-1] + (kernel.shape[1],))
    return counter.activation(layer.activation, out)


def in_norms(layer, weights: list) -> np.ndarray:
    """Squared L2 norm of each kernel row ``(n_in, n_out)``: the weights reading each input feature."""
    return np.sum(weights[0] ** 2, axis=1)


def out_norms(layer, weights: list) -> np.ndarray:
    """Squared L2 norm of each unit's incoming weights, plus its bias squared."""
    kernel = weights[0]
    total = np.sum(kernel ** 2, axis=tuple(range(kernel.ndim - 1)))
    if len(weights) > 1:
        total = total + weights[1] ** 2
    return total


def slice_in(layer, weights: list, keep: np.ndarray) -> list:
    return [weights[0][keep]] + weights[1:]


DENSE = register_layer_type(LayerType(
    name="Dense", matches=lambda layer: isinstance(layer, keras.layers.Dense), tally=tally, reference=reference,
    structure="units", structured=lambda layer: type(layer) is keras.layers.Dense, units=lambda layer: layer.units,
    resize=resize_config_key("units"), in_norms=in_norms, out_norms=out_norms, slice_in=slice_in,
    slice_out=slice_output_axis,
    qat=lambda layer: type(layer) is keras.layers.Dense))
