"""Model size and sparsity per layer and tensor (:func:`weight_stats`).

Per tensor with ``n`` entries, ``z`` non-zero, ``d`` distinct non-zero values and ``b`` bits per stored value
(``weight_bits`` for quantized tensors, else 32)::

    dense      n * b
    nonzero    z * b                                   (values only, no positions)
    compressed min( n * b,                             dense
                    n + z * b,                         1-bit occupancy mask + non-zero values
                    d * b + n * ceil(log2(d + 1)),     codebook + an index per entry (index 0 = zero)
                    d * b + n + z * ceil(log2(d)) )    codebook + mask + an index per non-zero entry
"""

from __future__ import annotations

import math

import numpy as np
import tf_keras as keras

from .common import FLOAT_BITS, _check_model, compression_info, is_multiplicative, layer_kind, weight_entries


def tensor_size_bits(n: int, nnz: int, distinct: int, bits: int) -> dict[str, int]:
    dense = n * bits
    candidates = [dense, n + nnz * bits]
    if distinct > 0:
        candidates.append(distinct * bits + n * math.ceil(math.log2(distinct + 1)))
        candidates.append(distinct * bits + n + nnz * math.ceil(math.log2(distinct)))
    return {"dense_bits": dense, "nonzero_bits": nnz * bits, "compressed_bits": int(min(candidates))}


def weight_stats(model: keras.Model, weight_bits: int | None = None, quantize_bias: bool | None = None) -> dict:
    """Per layer and per tensor: weights, non-zero weights, distinct non-zero values, size in bits.

    ``weight_bits``: bits of the quantized tensors (kernels; biases too with ``quantize_bias``); ``None`` reads
    :func:`compression_info` (32-bit floats if the model was not quantized). Returns ``{"layers": [...],
    "total": {...}}``; the size formulas are in the module docstring.
    """
    _check_model(model)
    info = compression_info(model)
    if weight_bits is None:
        weight_bits = info.get("weight_bits")
    if quantize_bias is None:
        quantize_bias = bool(info.get("quantize_bias", False))
    keys = ("n_weights", "n_nonzero", "n_distinct_nonzero", "dense_bits", "nonzero_bits", "compressed_bits")
    layers, total = [], dict.fromkeys(keys, 0)
    for layer in model.layers:
        if not layer.weights:
            continue
        tensors, row = [], dict.fromkeys(keys, 0)
        for key, short, var in weight_entries(layer):
            w = var.numpy()
            kernel = is_multiplicative(layer, short)
            quantized = weight_bits is not None and (kernel or (quantize_bias and short == "bias"))
            bits = int(weight_bits) if quantized else FLOAT_BITS
            nz = w[w != 0]
            t = {"name": key, "shape": list(w.shape), "kernel": kernel, "bits": bits,
                 "n_weights": int(w.size), "n_nonzero": int(nz.size), "n_distinct_nonzero": int(np.unique(nz).size)}
            t.update(tensor_size_bits(t["n_weights"], t["n_nonzero"], t["n_distinct_nonzero"], bits))
            tensors.append(t)
            for k in keys:
                row[k] += t[k]
        kern = [t for t in tensors if t["kernel"]]
        n_kern = sum(t["n_weights"] for t in kern)
        row.update({"layer": layer.name, "type": layer_kind(layer), "tensors": tensors,
                    "kernel_sparsity": (1.0 - sum(t["n_nonzero"] for t in kern) / n_kern) if n_kern else 0.0})
        layers.append(row)
        for k in keys:
            total[k] += row[k]
    total["sparsity"] = 1.0 - total["n_nonzero"] / total["n_weights"] if total["n_weights"] else 0.0
    return {"layers": layers, "total": total}

