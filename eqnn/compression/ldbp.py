"""Compression of learned DBP (:mod:`eqnn.models.ldbp`) in NumPy: what TFMOT cannot wrap (its custom layers).

The layers of an LDBP (:mod:`eqnn.layers.ldbp`) are custom Keras layers; TFMOT's pruning, clustering and QAT
wrappers do not apply to them. Their multiplicative weights are the complex taps of every :class:`ComplexFIR`
(``kernel`` ``(N, 2)`` = ``[Re w_k, Im w_k]``) and the constants of every :class:`NonlinearPhase` (the phase
``scale`` theta and the power filter ``g``, :attr:`eqnn.layers.LayerType.weight_names`), which
:func:`eqnn.compression.common.kernel_entries` lists, so that:

- **pruning** is the methods of :mod:`eqnn.compression.pruning.ldbp_taps` ("ldbp_taps", "ldbp_edges"), which
  :func:`eqnn.compression.pruning.registry.method_for` picks for "magnitude" / "structured" on an LDBP;
- **clustering** (:func:`cluster_ldbp`, called by :func:`eqnn.compression.cluster` for an LDBP): a 1-D k-means in
  NumPy of the real and imaginary parts of each FIR's taps together (one codebook per tensor), of each power
  filter, and of the phase scales of all steps together (one codebook for the model's scalars); at most
  ``n_clusters`` distinct values per tensor (zeros kept at zero, as one of the clusters, with
  ``preserve_sparsity``);
- **quantization** is the post-training rounding of :func:`eqnn.compression.quantize` (k-bit grid per tensor;
  a scalar scale is exactly on its own grid); quantization-aware training is not available for these layers.

What each step saves depends on the domain of each filter (``filter_domain``, :mod:`eqnn.layers.ldbp`): in the time
domain every zeroed tap and every shared value saves products; in the frequency domain (overlap-save) only a
shorter filter saves anything (a larger share of each FFT block is output), so "ldbp_taps" pruning and clustering
save nothing there, while "ldbp_edges" does, and with "auto" a filter trimmed to 8 taps or fewer is applied in the
time domain again (:func:`eqnn.compression.pruning.ldbp_taps.trim_edges` rebuilds it).

Fine-tuning (optional, :class:`eqnn.compression.FineTune` of the training blocks of the field) trains the whole
model with Adam on the mean squared error, the pruned taps held at zero and the tied (clustered, or the symmetric
taps of a DBP initialization) values tied after every batch. A model whose filters were shortened reads a shorter
input: :func:`fitted_to` crops the training blocks of the original model symmetrically (the field is centred on
the symbols, so the cropped block holds exactly the samples the shorter model needs).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import tf_keras as keras

from ..layers.ldbp import ComplexFIR, NonlinearPhase
from .common import copy_model, kernel_entries, weight_entries
from .fine_tune import FineTune, _fit, _ProjectStructure

__all__ = ["cluster_ldbp", "fine_tune_ldbp", "fir_layers", "fitted_to", "is_ldbp", "required_input"]

LDBP_LAYERS = (ComplexFIR, NonlinearPhase)
KMEANS_ITERATIONS = 100


def is_ldbp(model: keras.Model) -> bool:
    """Whether ``model`` holds learned-DBP layers (then compressed by this module's rules)."""
    return any(type(layer) in LDBP_LAYERS for layer in model.layers)


def fir_layers(model: keras.Model) -> list[str]:
    """Names of the :class:`ComplexFIR` layers of ``model`` (the prunable filters), in model order."""
    return [layer.name for layer in model.layers if type(layer) is ComplexFIR]


def required_input(model: keras.Model, symbols: int) -> int:
    """Input samples the chain ``model`` needs for ``symbols`` outputs (every filter "valid")."""
    n = int(symbols)
    for layer in reversed(model.layers):
        if type(layer) is ComplexFIR:
            n = (n - 1) * layer.stride + layer.taps
        elif type(layer) is NonlinearPhase:
            n += layer.power_taps - 1
    return n


def fitted_to(model: keras.Model, fine_tune: FineTune | None) -> FineTune | None:
    """``fine_tune`` with its input blocks cropped (symmetrically) to what ``model`` needs for the target blocks."""
    if fine_tune is None or fine_tune.y.ndim != 3:
        return fine_tune
    length = fine_tune.x.shape[1]
    extra = length - required_input(model, fine_tune.y.shape[1])
    if extra == 0:
        return fine_tune
    if extra < 0 or extra % 2:
        raise ValueError(f"fine-tuning blocks of {length} samples do not fit model {model.name!r} "
                         f"({required_input(model, fine_tune.y.shape[1])} needed)")
    return dataclasses.replace(fine_tune, x=fine_tune.x[:, extra // 2:length - extra // 2])


def fine_tune_ldbp(model: keras.Model, fine_tune: FineTune) -> dict:
    """Train ``model`` in place on ``fine_tune`` (cropped to it), zeros kept at zero and tied values tied."""
    tied = [var for layer in model.layers if type(layer) in LDBP_LAYERS for _, var in kernel_entries(layer)]
    return _fit(model, fitted_to(model, fine_tune), [_ProjectStructure(tied)])


# ------------------------------------------------------------------------------------------------ clustering


def _initial_centroids(values: np.ndarray, k: int, init: str, rng: np.random.Generator) -> np.ndarray:
    lo, hi = float(values.min()), float(values.max())
    if init == "linear":
        return np.linspace(lo, hi, k)
    if init == "density":  # equal-count quantiles of the values' distribution
        return np.quantile(values, (np.arange(k) + 0.5) / k)
    if init == "random":
        return np.sort(rng.uniform(lo, hi, k))
    # kmeans++: the first centroid at random, each next one with probability ~ squared distance to the nearest
    centroids = [values[rng.integers(values.size)]]
    for _ in range(1, k):
        d2 = np.min((values[:, None] - np.asarray(centroids)[None, :]) ** 2, axis=1)
        if not np.any(d2 > 0):
            break
        centroids.append(values[rng.choice(values.size, p=d2 / d2.sum())])
    return np.sort(np.asarray(centroids))


def kmeans_1d(values: np.ndarray, k: int, init: str, rng: np.random.Generator) -> np.ndarray:
    """``values`` (float64, 1-D) replaced by the nearest of at most ``k`` centroids (Lloyd's iterations from
    ``init``); returned unchanged when they hold at most ``k`` distinct values."""
    if np.unique(values).size <= k:
        return values.copy()
    centroids = _initial_centroids(values, k, init, rng)
    labels = None
    for _ in range(KMEANS_ITERATIONS):
        new = np.argmin(np.abs(values[:, None] - centroids[None, :]), axis=1)
        if labels is not None and np.array_equal(new, labels):
            break
        labels = new
        for c in range(centroids.size):
            members = values[labels == c]
            if members.size:
                centroids[c] = members.mean()
    return centroids[labels]


def _cluster_tensor(w: np.ndarray, k: int, init: str, preserve_sparsity: bool, rng) -> np.ndarray:
    flat = w.astype(np.float64).ravel()
    out = flat.copy()
    if preserve_sparsity:
        nz = flat != 0
        if np.any(nz):
            out[nz] = kmeans_1d(flat[nz], k - 1, init, rng)
    else:
        out = kmeans_1d(flat, k, init, rng)
    return out.reshape(w.shape).astype(w.dtype)


def cluster_ldbp(model: keras.Model, n_clusters: int, init: str, preserve_sparsity: bool,
                 fine_tune: FineTune | None, seed: int) -> tuple[keras.Model, dict[str, Any]]:
    """The clustering of an LDBP (module docstring); returns ``(new model, info)``."""
    rng = np.random.default_rng(seed)
    out = copy_model(model)
    layers = [layer for layer in out.layers if type(layer) in LDBP_LAYERS]
    scalars = [(key, var) for layer in layers for key, short, var in weight_entries(layer) if short == "scale"]
    groups = [[(key, var)] for layer in layers for key, var in kernel_entries(layer) if var.shape.rank > 0]
    if scalars:
        groups.append(scalars)
    for group in groups:
        values = np.concatenate([var.numpy().ravel() for _, var in group])
        clustered = _cluster_tensor(values, n_clusters, init, preserve_sparsity, rng)
        start = 0
        for _, var in group:
            size = int(np.prod(var.shape))
            var.assign(clustered[start:start + size].reshape(var.shape).astype(var.dtype.as_numpy_dtype))
            start += size
    info: dict[str, Any] = {"fine_tuned": fine_tune is not None, "method": "ldbp (numpy k-means per tensor; the "
                            "phase scales of all steps as one tensor)", "layers": [layer.name for layer in layers]}
    if fine_tune is not None:
        before = np.array([float(var.numpy()) for _, var in scalars])
        info["history"] = fine_tune_ldbp(out, fine_tune)
        if scalars:  # the scales that shared a value before training share their mean after it
            _, labels = np.unique(before, return_inverse=True)
            after = np.array([float(var.numpy()) for _, var in scalars])
            means = np.bincount(labels, weights=after) / np.bincount(labels)
            for (_, var), label in zip(scalars, labels):
                var.assign(np.float32(means[label]))
    info["distinct_values"] = {
        " + ".join(key for key, _ in group): int(np.unique(np.concatenate([var.numpy().ravel() for _, var in group])
                                                           ).size) for group in groups}
    return out, info
