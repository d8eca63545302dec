"""Conv1D (``kernel_size`` K, ``C_in`` channels, ``F`` filters, stride s, dilation d, padding valid / same /
causal, ``groups = 1``, channels last): ``y[o, f] = act(sum_{k, c} x_pad[o s + k d, c] W[k, c, f] + b_f)``.

Cost per window (see :mod:`eqnn.complexity`): every one of the ``L_out`` output positions, products shared per
padded input element over the distinct non-zero taps reaching it; unpruned ``L_out K C_in F``. Structured pruning
removes filters (the last axis of ``W``).
"""

from __future__ import annotations

import numpy as np
import tf_keras as keras

from ..complexity.counting import (
    ComplexityError,
    ceil_log2,
    input_shape,
    ref_sum,
)
from .registry import LayerType, register_layer_type, resize_config_key, slice_output_axis


def conv_geometry(layer, length: int) -> tuple[int, int, int, int, int]:
    """(left padding, padded length, output length, stride, dilation) of a Conv1D, as keras pads."""
    k = int(layer.kernel_size[0])
    s = int(layer.strides[0])
    d = int(layer.dilation_rate[0])
    span = d * (k - 1) + 1
    if layer.padding == "valid":
        left, total = 0, 0
    elif layer.padding == "causal":
        left, total = span - 1, span - 1
    else:  # same
        out = -(-length // s)
        total = max((out - 1) * s + span - length, 0)
        left = total // 2
    padded = length + total
    out_len = (padded - span) // s + 1
    return left, padded, out_len, s, d


def check_conv(layer) -> None:
    if layer.data_format != "channels_last" or int(getattr(layer, "groups", 1)) != 1:
        raise ComplexityError(f"layer {layer.name!r}: Conv1D is supported with data_format='channels_last' and "
                              "groups=1 only")


def tally(t, layer) -> tuple:
    check_conv(layer)
    bw, ba = t.bw, t.ba
    shape = input_shape(layer)
    length, channels = int(shape[1]), int(shape[2])
    left, padded, out_len, s, d = conv_geometry(layer, length)
    kernel = layer.kernel.numpy()  # (K, C_in, F)
    bias = layer.bias.numpy() if layer.use_bias else None
    csd = t.digits(kernel)
    n_taps = kernel.shape[0]
    mults, digits = 0, []
    for p in range(padded):
        taps = [k for k in range(n_taps) if (p - k * d) >= 0 and (p - k * d) % s == 0
                and (p - k * d) // s < out_len]
        if not taps:
            continue
        for c in range(channels):
            vals = kernel[taps, c, :].ravel()
            ks = csd[taps, c, :].ravel()
            nz = vals != 0
            values, first = np.unique(vals[nz], return_index=True)
            mults += len(values)
            digits.append(ks[nz][first])
    t.const_products(mults, np.concatenate(digits) if digits else np.zeros(0, np.int64))
    terms = np.count_nonzero(kernel, axis=(0, 1))
    if bias is not None:
        terms = terms + (bias != 0)
    for n_terms in terms:
        if n_terms > 1:
            t.adds(out_len * int(n_terms - 1), bw + ba + ceil_log2(int(n_terms)))
    t.activate(layer.activation, out_len * int(layer.filters))
    return (kernel,)


def reference(counter, layer, x: np.ndarray) -> np.ndarray:
    check_conv(layer)
    kernel = layer.kernel.numpy()
    bias = layer.bias.numpy() if layer.use_bias else None
    n_taps, channels, filters = kernel.shape
    left, padded, out_len, s, d = conv_geometry(layer, x.shape[0])
    xp = np.zeros((padded, channels))
    xp[left:left + x.shape[0]] = x
    # per padded input element, one product per distinct non-zero weight among the taps that reach it
    tables: dict[tuple[int, int], dict[float, float]] = {}
    for o in range(out_len):
        for k in range(n_taps):
            p = o * s + k * d
            for c in range(channels):
                table = tables.setdefault((p, c), {})
                for f in range(filters):
                    w = float(kernel[k, c, f])
                    if w != 0 and w not in table:
                        table[w] = counter.mul(float(xp[p, c]), w)
    out = np.zeros((out_len, filters))
    for o in range(out_len):
        for f in range(filters):
            terms = [tables[(o * s + k * d, c)][float(kernel[k, c, f])]
                     for k in range(n_taps) for c in range(channels) if kernel[k, c, f] != 0]
            if bias is not None and bias[f] != 0:
                terms.append(float(bias[f]))
            out[o, f] = ref_sum(counter, terms)
    return counter.activation(layer.activation, out)


def in_norms(layer, weights: list) -> np.ndarray:
    """Squared L2 norm of the kernel ``(K, C_in, F)`` per input channel."""
    return np.sum(weights[0] ** 2, axis=(0, 2))


def out_norms(layer, weights: list) -> np.ndarray:
    """Squared L2 norm of each filter ``W[:, :, f]`` plus its bias squared."""
    kernel = weights[0]
    total = np.sum(kernel ** 2, axis=tuple(range(kernel.ndim - 1)))
    if len(weights) > 1:
        total = total + weights[1] ** 2
    return total


def slice_in(layer, weights: list, keep: np.ndarray) -> list:
    return [weights[0][:, keep, :]] + weights[1:]


CONV1D = register_layer_type(LayerType(
    name="Conv1D",
    # subclasses that compute otherwise (Conv1DTranspose) are not Conv1D here
    matches=lambda layer: isinstance(layer, keras.layers.Conv1D) and type(layer).__name__ != "Conv1DTranspose",
    tally=tally, reference=reference, structure="units",
    structured=lambda layer: type(layer) is keras.layers.Conv1D and layer.groups == 1,
    units=lambda layer: layer.filters, resize=resize_config_key("filters"), in_norms=in_norms, out_norms=out_norms,
    slice_in=slice_in,
    slice_out=slice_output_axis, qat=lambda layer: type(layer) is keras.layers.Conv1D))
