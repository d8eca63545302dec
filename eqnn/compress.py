"""Compression of trained equalizers: pruning, weight clustering, quantization, and their pipeline.

Every technique is a function on a trained ``tf_keras`` (Keras 2) model that returns a NEW plain
``tf_keras`` model (no TensorFlow Model Optimization (TFMOT) wrappers, no custom layer classes), so it predicts,
saves and loads like any other model, and downstream code (complexity counting) reads its actual weights. The
input model is never modified: TFMOT wraps the original layer objects, so every function works on a clone
(``clone_model`` + ``set_weights``) or on freshly built layers.

What works on which layer (all measured by ``tests/test_compress.py``):

==================  =========================  ==========================  ====================================
technique           Dense / Conv1D             LSTM                        Bidirectional(LSTM)
==================  =========================  ==========================  ====================================
prune "magnitude"   TFMOT prune_low_magnitude  TFMOT (kernel + recurrent   TFMOT through
                    (kernel)                   kernel)                     :class:`PrunableBidirectional` (both
                                                                           cells' kernels and recurrent kernels)
prune "structured"  neurons / filters removed  units removed (4 gate       units removed per direction
                                               columns + recurrent rows)
cluster             TFMOT cluster_weights      TFMOT                       TFMOT (also after pruning)
quantize "ptq"      numpy rounding             numpy rounding              numpy rounding
quantize "qat"      TFMOT + KBitQuantizeConfig TFMOT + KBitQuantizeConfig  TFMOT + KBitQuantizeConfig (cells)
==================  =========================  ==========================  ====================================

QAT uses the one k-bit :class:`KBitQuantizeConfig` for every layer type, Dense included: TFMOT's built-in schemes
(8-bit ``quantize_model``, the experimental n-bit scheme) reject LSTM, Bidirectional and Conv1D here, and one config
gives every layer the same grid. Other layers with kernels (e.g. SeparableConv1D, GRU) are quantized post-training
after the QAT fine-tuning and listed under ``ptq_fallback`` in the model's info. Structured pruning needs a chain
model of Dense, Conv1D, LSTM, Bidirectional(LSTM), Flatten, BatchNormalization and weightless per-feature layers
(Dropout, Activation, ...); it returns a Sequential model. The last layer with weights (the model outputs) is
never pruned structurally.

Conventions
-----------
* Pruned / clustered / quantized tensors are the *multiplicative* weights: ``kernel`` and ``recurrent_kernel``
  (also ``depthwise_kernel``, ``pointwise_kernel``, ``embeddings`` where a layer has them). Biases stay float
  unless ``quantize(..., quantize_bias=True)``; they cost additions, not multiplications.
* ``sparsity`` is the fraction of the multiplicative weights set to zero, per tensor (TFMOT keeps the
  ``round(n * (1 - s))`` largest magnitudes, at least one). With ``scope="global"`` one magnitude threshold is
  chosen over all pruned layers (on the trained weights, before fine-tuning) and turned into per-layer fractions.
  Structured pruning reads ``sparsity`` as the fraction of units (neurons, filters, LSTM units) removed per layer.
* ``fine_tune=None`` means one shot: pruning masks the smallest magnitudes in numpy, clustering assigns the
  weights to their centroids, quantization rounds; no training happens.
* Quantization grid (both modes, the two's-complement grid of TFMOT's symmetric ``LastValueQuantizer``):
  ``w_q = s * q``, ``q`` integer in ``[-2^(k-1), 2^(k-1) - 1]``, ``s = max(max(w) / (2^(k-1) - 1), -min(w) / 2^(k-1))``
  per tensor (or per output channel, the last axis, with ``per_channel=True``, PTQ only). Zero stays zero and a
  tensor has at most ``2^k`` distinct values.
* QAT export: after fine-tuning the QAT model, each quantized variable is passed once more through its own
  TFMOT quantizer (which refreshes the range from the final weights) and the fake-quantized values are written
  into a plain copy of the model. Activation quantization (``activation_bits``) is simulated only while training
  (``MovingAverageQuantizer`` on layer outputs, and on the gate activations of LSTM cells); the returned plain
  model computes float activations, and the learned activation ranges are recorded in its info.
* QAT fine-tuning keeps zero weights at zero and weights that share a value (after clustering) sharing one value:
  after every batch each such tensor is projected back onto its structure (every group of tied weights is
  replaced by its mean, the zero group by 0). So prune -> cluster -> qat keeps the sparsity and the clusters.
* Each returned model carries a record of what was done: :func:`compression_info` (``model.eqnn_info``), a dict
  with ``steps`` (one dict per technique, including any fallback), ``weight_bits``, ``activation_bits``.
* Seeds: when ``fine_tune`` is given, ``keras.utils.set_random_seed(fine_tune.seed)`` is called before the
  technique (seed 0 otherwise), which makes results reproducible (this resets the global random state).

Model size (``weight_stats``): per tensor with ``n`` entries, ``z`` non-zero, ``d`` distinct non-zero values and
``b`` bits per stored value (``weight_bits`` for quantized tensors, else 32)::

    dense      n * b
    nonzero    z * b                                   (values only, no positions)
    compressed min( n * b,                             dense
                    n + z * b,                         1-bit occupancy mask + non-zero values
                    d * b + n * ceil(log2(d + 1)),     codebook + an index per entry (index 0 = zero)
                    d * b + n + z * ceil(log2(d)) )    codebook + mask + an index per non-zero entry

Pruning methods are a registry (:data:`PRUNING_METHODS`) of :class:`PruningMethod` with one interface, so that
a search can pick the method as a categorical hyperparameter (``prune(model, s, method=name)``,
``CompressionConfig(prune_method=name)``) and new methods (iterative magnitude pruning with rewinding, a one-cycle
schedule, LSTM gate pre-activation sparsification, ...) can be added with :func:`register_pruning_method`::

    PruningMethod(name, prunable=lambda model: [layer names], apply=fn)
    fn(model, targets: {layer name: fraction}, *, schedule, scope, fine_tune, options) -> (new plain model, info)

:func:`prune` validates the arguments, resolves ``sparsity`` / ``per_layer`` / ``scope`` into ``targets`` over the
method's prunable layers, seeds, calls ``apply`` and records ``info``. ``apply`` must not modify ``model``.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import numbers
import os
import time
import types
from collections.abc import Callable, Mapping, Sequence
from typing import Any

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_model_optimization as tfmot  # noqa: E402
import tf_keras as keras  # noqa: E402
from tensorflow_model_optimization.python.core.clustering.keras import cluster_wrapper  # noqa: E402
from tensorflow_model_optimization.python.core.clustering.keras.clustering_registry import (  # noqa: E402
    ClusteringRegistry,
)
from tensorflow_model_optimization.python.core.quantization.keras import quantize_wrapper  # noqa: E402
from tensorflow_model_optimization.python.core.sparsity.keras import pruning_wrapper  # noqa: E402
from tensorflow_model_optimization.python.core.sparsity.keras.prune_registry import PruneRegistry  # noqa: E402

__all__ = [
    "FineTune", "prune", "cluster", "quantize", "compress", "CompressionConfig", "CompressionResult", "StepReport",
    "PruningMethod", "PRUNING_METHODS", "register_pruning_method", "PrunableBidirectional", "KBitQuantizeConfig",
    "compression_info", "weight_stats", "kernel_weights", "quantize_array", "SCHEDULES", "CLUSTER_INITS",
    "QUANTIZE_MODES",
]

KERNEL_NAMES = frozenset({"kernel", "recurrent_kernel", "depthwise_kernel", "pointwise_kernel", "embeddings"})
SCHEDULES = ("constant", "polynomial")
SCOPES = ("layer", "global")
CLUSTER_INITS = {
    "kmeans++": tfmot.clustering.keras.CentroidInitialization.KMEANS_PLUS_PLUS,
    "linear": tfmot.clustering.keras.CentroidInitialization.LINEAR,
    "density": tfmot.clustering.keras.CentroidInitialization.DENSITY_BASED,
    "random": tfmot.clustering.keras.CentroidInitialization.RANDOM,
}
QUANTIZE_MODES = ("ptq", "qat")
MIN_BITS, MAX_BITS = 2, 16
FLOAT_BITS = 32
_TFMOT_WRAPPERS = (pruning_wrapper.PruneLowMagnitude, cluster_wrapper.ClusterWeights,
                   quantize_wrapper.QuantizeWrapper)
# Layers without weights that act on each feature separately: structured pruning passes channels through them.
_PASS_THROUGH = (keras.layers.Dropout, keras.layers.Activation, keras.layers.GaussianNoise,
                 keras.layers.GaussianDropout, keras.layers.AlphaDropout, keras.layers.ActivityRegularization,
                 keras.layers.ReLU, keras.layers.LeakyReLU, keras.layers.ELU, keras.layers.Softmax)


# ----------------------------------------------------------------------------------------------- validation

def _check_model(model: Any) -> None:
    if not isinstance(model, keras.Model):
        kind = f"{type(model).__module__}.{type(model).__qualname__}"
        hint = ""
        if type(model).__module__.startswith("keras"):
            hint = " (this looks like a Keras 3 model: build models with `import tf_keras as keras`)"
        raise TypeError(f"expected a tf_keras (Keras 2) Model, got {kind}{hint}")
    if not (isinstance(model, keras.Sequential) or getattr(model, "_is_graph_network", False)):
        raise TypeError(f"model {model.name!r} is a subclassed tf_keras Model: only Sequential and functional "
                        "models can be compressed")
    if not model.built or not model.inputs:
        raise ValueError(f"model {model.name!r} is not built: give it an input shape (keras.Input)")
    for layer in model.layers:
        if isinstance(layer, _TFMOT_WRAPPERS):
            raise ValueError(f"layer {layer.name!r} is a TFMOT wrapper: pass a stripped (plain) model")


def _check_fraction(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{what} must be a number in [0, 1), got {value!r}")
    value = float(value)
    if not (0.0 <= value < 1.0):
        raise ValueError(f"{what} must be in [0, 1), got {value}")
    return value


def _check_int(value: Any, what: str, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        if isinstance(value, numbers.Real) and float(value).is_integer():
            value = int(value)
        else:
            raise TypeError(f"{what} must be an integer, got {value!r}")
    value = int(value)
    if value < low or (high is not None and value > high):
        bound = f"in {low}..{high}" if high is not None else f">= {low}"
        raise ValueError(f"{what} must be {bound}, got {value}")
    return value


def _check_bits(value: Any, what: str) -> int:
    return _check_int(value, what, MIN_BITS, MAX_BITS)


def _check_choice(value: Any, what: str, choices: Sequence[str]) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a string, one of {list(choices)}, got {value!r}")
    value = str(value)  # np.str_ -> str
    if value not in choices:
        raise ValueError(f"unknown {what} {value!r}: expected one of {list(choices)}")
    return value


def _check_clusters(n_clusters: Any, preserve_sparsity: bool) -> int:
    low = 3 if preserve_sparsity else 2
    what = "n_clusters" + (" (with preserve_sparsity=True, one cluster is the zeros)" if preserve_sparsity else "")
    return _check_int(n_clusters, what, low)


def _check_fine_tune(fine_tune: Any) -> None:
    if fine_tune is not None and not isinstance(fine_tune, FineTune):
        raise TypeError(f"fine_tune must be a FineTune or None, got {type(fine_tune).__name__}")


# ----------------------------------------------------------------------------------------------- fine-tuning

@dataclasses.dataclass(frozen=True, eq=False)
class FineTune:
    """Training data and settings for fine-tuning (Adam, mean squared error).

    ``x``: windows ``(n, 2N+1, 4)`` (or any shape the model takes), ``y``: targets ``(n, outputs)``.
    ``validation_split`` takes the last fraction of the windows for validation, as ``keras.Model.fit`` does.
    """

    x: Any
    y: Any
    epochs: int = 1
    batch_size: int = 256
    learning_rate: float = 1e-3
    validation_split: float = 0.0
    seed: int = 0
    verbose: int = 0

    def __post_init__(self):
        x, y = np.asarray(self.x), np.asarray(self.y)
        if x.ndim < 2 or y.ndim < 1:
            raise ValueError(f"FineTune: x must be (n, ...) and y (n, ...), got shapes {x.shape} and {y.shape}")
        if len(x) != len(y):
            raise ValueError(f"FineTune: x and y differ in length ({len(x)} != {len(y)})")
        object.__setattr__(self, "x", x.astype(np.float32, copy=False))
        object.__setattr__(self, "y", y.astype(np.float32, copy=False))
        object.__setattr__(self, "epochs", _check_int(self.epochs, "FineTune.epochs", 1))
        object.__setattr__(self, "batch_size", _check_int(self.batch_size, "FineTune.batch_size", 1))
        object.__setattr__(self, "seed", _check_int(self.seed, "FineTune.seed", 0))
        lr = self.learning_rate
        if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not (math.isfinite(lr) and lr > 0):
            raise ValueError(f"FineTune.learning_rate must be a positive number, got {lr!r}")
        object.__setattr__(self, "learning_rate", float(lr))
        object.__setattr__(self, "validation_split",
                           _check_fraction(self.validation_split, "FineTune.validation_split"))
        if self.n_train < 1:
            raise ValueError("FineTune: no training windows left after the validation split")

    @property
    def n_train(self) -> int:
        # tf_keras: split_at = floor(n * (1 - validation_split))
        return int(math.floor(len(self.x) * (1.0 - self.validation_split)))

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.n_train / self.batch_size)

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    def with_epochs(self, epochs: int) -> FineTune:
        return dataclasses.replace(self, epochs=epochs)


def _seed(fine_tune: FineTune | None) -> None:
    keras.utils.set_random_seed(fine_tune.seed if fine_tune is not None else 0)


def _fit(model: keras.Model, fine_tune: FineTune, callbacks: Sequence[keras.callbacks.Callback] = ()) -> dict:
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=fine_tune.learning_rate), loss="mse")
    history = model.fit(fine_tune.x, fine_tune.y, epochs=fine_tune.epochs, batch_size=fine_tune.batch_size,
                        validation_split=fine_tune.validation_split, shuffle=True, verbose=fine_tune.verbose,
                        callbacks=list(callbacks))
    return {k: [float(v) for v in vals] for k, vals in history.history.items()}


# ----------------------------------------------------------------------------------------------- model helpers

def _copy(model: keras.Model) -> keras.Model:
    """A new model with the same architecture and weights, sharing no layer or variable."""
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


def _plain_class(layer: keras.layers.Layer) -> type:
    """The nearest tf_keras class of ``layer`` (maps e.g. :class:`PrunableBidirectional` to ``Bidirectional``)."""
    for cls in type(layer).__mro__:
        if cls.__module__.startswith("tf_keras."):
            return cls
    raise TypeError(f"layer {layer.name!r} ({type(layer).__name__}) is not a tf_keras layer")


def _plain_rebuild(model: keras.Model) -> keras.Model:
    """A copy of a stripped model in which every layer is a fresh instance of its plain tf_keras class."""
    for layer in model.layers:
        if isinstance(layer, _TFMOT_WRAPPERS):
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


def _weight_entries(layer: keras.layers.Layer) -> list[tuple[str, str, tf.Variable]]:
    """``(key, short name, variable)`` for every weight of a plain layer, in ``layer.weights`` order.

    ``key`` is ``"<layer>/<short>"``, or ``"<layer>/forward/<short>"`` / ``"<layer>/backward/<short>"`` inside a
    Bidirectional wrapper; ``short`` is the variable's own name (``kernel``, ``recurrent_kernel``, ``bias`` ...).
    """
    forward = set()
    if isinstance(layer, keras.layers.Bidirectional):
        forward = {v.ref() for v in layer.forward_layer.weights}
    entries, seen = [], set()
    for var in layer.weights:
        short = var.name.split(":")[0].split("/")[-1]
        if isinstance(layer, keras.layers.Bidirectional):
            key = f"{layer.name}/{'forward' if var.ref() in forward else 'backward'}/{short}"
        else:
            key = f"{layer.name}/{short}"
        base, i = key, 1
        while key in seen:
            key, i = f"{base}_{i}", i + 1
        seen.add(key)
        entries.append((key, short, var))
    return entries


def _kernel_entries(layer: keras.layers.Layer) -> list[tuple[str, tf.Variable]]:
    return [(key, var) for key, short, var in _weight_entries(layer) if short in KERNEL_NAMES]


def kernel_weights(model: keras.Model) -> dict[str, np.ndarray]:
    """The multiplicative weights (kernels, recurrent kernels) of a plain model: ``{"layer/name": array}``."""
    _check_model(model)
    return {key: var.numpy() for layer in model.layers for key, var in _kernel_entries(layer)}


def compression_info(model: keras.Model) -> dict:
    """What was done to ``model`` by this module (a copy): ``{"steps": [...], "weight_bits", "activation_bits"}``."""
    info = getattr(model, "eqnn_info", None)
    return copy.deepcopy(info) if info else {"steps": [], "weight_bits": None, "activation_bits": None}


def _attach_info(new: keras.Model, source: keras.Model, step: dict, **fields: Any) -> keras.Model:
    info = compression_info(source)
    info["steps"].append(step)
    info.update(fields)
    # object.__setattr__: a plain Python attribute, not tracked by Keras (saving is unaffected).
    object.__setattr__(new, "eqnn_info", info)
    return new


def _layer_kind(layer: keras.layers.Layer) -> str:
    if isinstance(layer, keras.layers.Bidirectional):
        return f"Bidirectional({type(layer.forward_layer).__name__})"
    return type(layer).__name__


# ----------------------------------------------------------------------------------------------- pruning

class PrunableBidirectional(keras.layers.Bidirectional, tfmot.sparsity.keras.PrunableLayer):
    """A ``Bidirectional`` that TFMOT can prune: the kernels and recurrent kernels of both cells.

    Used only inside :func:`prune`; the returned models hold plain ``Bidirectional`` layers again.
    """

    def get_prunable_weights(self):
        weights = []
        for rnn in (self.forward_layer, self.backward_layer):
            cell = rnn.cell
            weights += [w for w in (getattr(cell, "kernel", None), getattr(cell, "recurrent_kernel", None))
                        if w is not None]
        return weights


def _magnitude_prunable(layer: keras.layers.Layer) -> bool:
    if not _kernel_entries(layer):
        return False
    if isinstance(layer, keras.layers.Bidirectional):
        return PruneRegistry.supports(layer.forward_layer) and PruneRegistry.supports(layer.backward_layer)
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


def _global_fractions(model: keras.Model, names: Sequence[str], sparsity: float) -> dict[str, float]:
    """Per-layer fractions from one magnitude threshold over the kernels of ``names``."""
    if not names or sparsity == 0.0:
        return {name: sparsity for name in names}
    mags, owner = [], []
    for i, name in enumerate(names):
        for _, var in _kernel_entries(model.get_layer(name)):
            a = np.abs(var.numpy()).ravel()
            mags.append(a)
            owner.append(np.full(a.size, i))
    mags, owner = np.concatenate(mags), np.concatenate(owner)
    n_prune = int(round(sparsity * mags.size))
    pruned = owner[np.argsort(mags, kind="stable")[:n_prune]]
    sizes = np.bincount(owner, minlength=len(names))
    counts = np.bincount(pruned, minlength=len(names))
    return {name: float(min(counts[i] / sizes[i], (sizes[i] - 1) / sizes[i])) for i, name in enumerate(names)}


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
        for key, var in _kernel_entries(model.get_layer(name)):
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
        pruned = _copy(model)
        for name, s in active.items():
            for _, var in _kernel_entries(pruned.get_layer(name)):
                w = var.numpy()
                var.assign(np.where(_topk_mask(w, s), w, 0.0).astype(w.dtype))
        info["fine_tuned"] = False
    else:
        schedules = {}

        def wrap(layer):
            s = active.get(layer.name, 0.0)
            cls = PrunableBidirectional if (s > 0.0 and isinstance(layer, keras.layers.Bidirectional)) else None
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


# ---- structured pruning --------------------------------------------------------------------------------------

def _is_structured_layer(layer: keras.layers.Layer) -> bool:
    if isinstance(layer, keras.layers.Bidirectional):
        return (type(layer.forward_layer) is keras.layers.LSTM and type(layer.backward_layer) is keras.layers.LSTM)
    if isinstance(layer, keras.layers.Conv1D):
        return type(layer) is keras.layers.Conv1D and layer.groups == 1
    return type(layer) in (keras.layers.Dense, keras.layers.LSTM)


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


def _units(layer) -> int:
    if isinstance(layer, keras.layers.Bidirectional):
        return layer.forward_layer.units
    return layer.filters if isinstance(layer, keras.layers.Conv1D) else layer.units


def _structured_layers(model: keras.Model) -> list[str]:
    """Layers whose units can be removed: Dense, Conv1D, LSTM, Bidirectional(LSTM), except the last weighted one."""
    try:
        layers = _chain_layers(model)
    except ValueError:
        return []
    weighted = [layer for layer in layers if layer.weights]
    return [layer.name for layer in weighted[:-1] if _is_structured_layer(layer) and _units(layer) > 1]


def _lstm_cols(units: int, keep: np.ndarray) -> np.ndarray:
    return np.concatenate([g * units + keep for g in range(4)])


def _in_norms(layer, weights: list[np.ndarray]) -> np.ndarray:
    """Squared L2 norm of the weights that read each input feature of ``layer``."""
    if isinstance(layer, keras.layers.Bidirectional):
        half = len(weights) // 2
        return _in_norms(layer.forward_layer, weights[:half]) + _in_norms(layer.backward_layer, weights[half:])
    kernel = weights[0]
    if kernel.ndim == 3:  # Conv1D (k, in, f)
        return np.sum(kernel ** 2, axis=(0, 2))
    return np.sum(kernel ** 2, axis=1)  # Dense (in, u), LSTM (in, 4u)


def _out_norms(layer, weights: list[np.ndarray]) -> np.ndarray:
    """Squared L2 norm of each unit's incoming weights (and bias), ordered as the layer's output features."""
    if isinstance(layer, keras.layers.Bidirectional):
        half = len(weights) // 2
        return np.concatenate([_out_norms(layer.forward_layer, weights[:half]),
                               _out_norms(layer.backward_layer, weights[half:])])
    if isinstance(layer, keras.layers.LSTM):
        u = layer.units
        total = np.sum(weights[0] ** 2, axis=0) + np.sum(weights[1] ** 2, axis=0)
        if len(weights) > 2:
            total = total + weights[2] ** 2
        return total.reshape(4, u).sum(axis=0)
    kernel = weights[0]
    total = np.sum(kernel ** 2, axis=tuple(range(kernel.ndim - 1)))
    if len(weights) > 1:
        total = total + weights[1] ** 2
    return total


def _slice_in(layer, weights: list[np.ndarray], keep: np.ndarray) -> list[np.ndarray]:
    if isinstance(layer, keras.layers.Bidirectional):
        half = len(weights) // 2
        return _slice_in(layer.forward_layer, weights[:half], keep) + _slice_in(layer.backward_layer,
                                                                                weights[half:], keep)
    if isinstance(layer, keras.layers.BatchNormalization):
        return [w[keep] for w in weights]
    if isinstance(layer, keras.layers.Conv1D):
        return [weights[0][:, keep, :]] + weights[1:]
    return [weights[0][keep]] + weights[1:]


def _slice_out(layer, weights: list[np.ndarray], keep: np.ndarray | tuple) -> list[np.ndarray]:
    if isinstance(layer, keras.layers.Bidirectional):
        half = len(weights) // 2
        return (_slice_out(layer.forward_layer, weights[:half], keep[0])
                + _slice_out(layer.backward_layer, weights[half:], keep[1]))
    if isinstance(layer, keras.layers.LSTM):
        cols = _lstm_cols(layer.units, keep)
        out = [weights[0][:, cols], weights[1][keep][:, cols]]
        return out + ([weights[2][cols]] if len(weights) > 2 else [])
    return [weights[0][..., keep]] + ([weights[1][keep]] if len(weights) > 1 else [])


def _resized_config(layer, n_keep: int) -> dict:
    config = layer.get_config()
    if isinstance(layer, keras.layers.Bidirectional):
        config["layer"]["config"]["units"] = n_keep
        if config.get("backward_layer"):
            config["backward_layer"]["config"]["units"] = n_keep
    elif isinstance(layer, keras.layers.Conv1D):
        config["filters"] = n_keep
    else:
        config["units"] = n_keep
    return config


def _structured_once(model: keras.Model, remove: Mapping[str, int], criterion: str) -> keras.Model:
    """Remove ``remove[name]`` units from each named layer; returns a new (smaller) plain Sequential model."""
    layers = _chain_layers(model)
    weights = {layer.name: layer.get_weights() for layer in layers}

    # 1) choose the kept units of each layer (indices of its output features; (fwd, bwd) for Bidirectional)
    keeps: dict[str, Any] = {}
    for i, layer in enumerate(layers):
        n_remove = int(remove.get(layer.name, 0))
        if n_remove <= 0:
            continue
        units = _units(layer)
        if criterion == "incoming":
            scores = _out_norms(layer, weights[layer.name])
        else:  # outgoing: the weights of the next weighted layer that read each output feature
            consumer, flat = None, None
            shape = layer.output_shape
            for nxt in layers[i + 1:]:
                if isinstance(nxt, keras.layers.Flatten):
                    flat = shape[1:]
                elif nxt.weights and not isinstance(nxt, keras.layers.BatchNormalization):
                    consumer = nxt
                    break
            norms = _in_norms(consumer, weights[consumer.name])
            if flat is not None:
                norms = norms.reshape(int(np.prod(flat[:-1])), flat[-1]).sum(axis=0)
            scores = norms
        n_keep = units - n_remove

        def top(s):
            return np.sort(np.argsort(-s, kind="stable")[:n_keep])

        if isinstance(layer, keras.layers.Bidirectional):
            if layer.merge_mode == "concat":
                keeps[layer.name] = (top(scores[:units]), top(scores[units:]))
            else:  # sum / mul / ave pair forward unit j with backward unit j
                both = top(scores[:units] + scores[units:]) if scores.size == 2 * units else top(scores)
                keeps[layer.name] = (both, both)
        else:
            keeps[layer.name] = top(scores)

    # 2) rebuild with sliced weights, tracking which original features of the current tensor are kept
    new_layers, new_weights = [], []
    feature_keep = None  # None: all features of the current tensor are kept
    for layer in layers:
        w = weights[layer.name]
        if feature_keep is not None and layer.weights:
            w = _slice_in(layer, w, feature_keep)
        config = layer.get_config()
        if isinstance(layer, keras.layers.Flatten):
            if feature_keep is not None:
                shape = layer.input_shape[1:]
                channels = shape[-1]
                steps = int(np.prod(shape[:-1]))
                feature_keep = np.add.outer(np.arange(steps) * channels, feature_keep).ravel()
        elif layer.name in keeps:
            keep = keeps[layer.name]
            w = _slice_out(layer, w, keep)
            n_keep = len(keep[0]) if isinstance(keep, tuple) else len(keep)
            config = _resized_config(layer, n_keep)
            if isinstance(keep, tuple):
                units = layer.forward_layer.units
                feature_keep = (np.concatenate([keep[0], units + keep[1]]) if layer.merge_mode == "concat"
                                else keep[0])
            else:
                feature_keep = keep
        elif layer.weights and not isinstance(layer, keras.layers.BatchNormalization):
            feature_keep = None  # a layer that keeps all its units: its outputs are complete
        config.pop("batch_input_shape", None)
        new_layers.append(_plain_class(layer).from_config(config))
        new_weights.append(w)

    rebuilt = keras.Sequential([keras.Input(shape=model.input_shape[1:], dtype=model.inputs[0].dtype),
                                *new_layers], name=model.name)
    for layer, w in zip(new_layers, new_weights):
        if w:
            layer.set_weights(w)
    return rebuilt


def _check_structured_model(model: keras.Model) -> None:
    layers = _chain_layers(model)
    for layer in layers:
        if isinstance(layer, (keras.layers.InputLayer, keras.layers.Flatten, keras.layers.BatchNormalization,
                              *_PASS_THROUGH)):
            continue
        if not _is_structured_layer(layer):
            raise ValueError(f"structured pruning supports chains of Dense, Conv1D, LSTM, Bidirectional(LSTM), "
                             f"Flatten, BatchNormalization, Dropout/Activation layers; layer {layer.name!r} is "
                             f"{_layer_kind(layer)}")


def _prune_structured(model: keras.Model, targets: Mapping[str, float], *, schedule: str, scope: str,
                      fine_tune: FineTune | None, options: Mapping[str, Any]) -> tuple[keras.Model, dict]:
    unknown = set(options) - {"criterion"}
    if unknown:
        raise ValueError(f"structured pruning options are ['criterion'], got {sorted(unknown)}")
    criterion = _check_choice(options.get("criterion", "outgoing"), "criterion", ("outgoing", "incoming"))
    if scope != "layer":
        raise ValueError("structured pruning supports scope='layer' only")
    _check_structured_model(model)
    units0 = {name: _units(model.get_layer(name)) for name in targets}
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
            remove[name] = _units(current.get_layer(name)) - goal
        current = _structured_once(current, remove, criterion)
        if fine_tune is not None and epochs[stage - 1] > 0:
            histories.append(_fit(current, fine_tune.with_epochs(epochs[stage - 1])))
    if current is model:
        current = _copy(model)
    info = {"criterion": criterion, "stages": stages, "fine_tuned": fine_tune is not None,
            "units": {name: [units0[name], _units(current.get_layer(name))] for name in targets}}
    if histories:
        info["history"] = histories
    return current, info


@dataclasses.dataclass(frozen=True)
class PruningMethod:
    """A pruning method of the registry.

    ``prunable(model)``: the names of the layers the method can prune. ``apply(model, targets, *, schedule,
    scope, fine_tune, options)``: prune the named layers to their target fractions (``targets`` maps every prunable
    layer to its fraction, 0 = untouched) and return ``(new plain model, info dict)``; it must not modify ``model``.
    """

    name: str
    prunable: Callable[[keras.Model], list[str]]
    apply: Callable[..., tuple[keras.Model, dict]]
    description: str = ""


PRUNING_METHODS: dict[str, PruningMethod] = {}


def register_pruning_method(method: PruningMethod) -> PruningMethod:
    """Add (or replace) a method in :data:`PRUNING_METHODS`; ``prune(..., method=name)`` then uses it."""
    if not isinstance(method, PruningMethod):
        raise TypeError("register_pruning_method takes a PruningMethod")
    PRUNING_METHODS[method.name] = method
    return method


register_pruning_method(PruningMethod(
    "magnitude", _magnitude_layers, _prune_magnitude,
    "unstructured low-magnitude pruning of kernels and recurrent kernels (TFMOT prune_low_magnitude)"))
register_pruning_method(PruningMethod(
    "structured", _structured_layers, _prune_structured,
    "removes whole units (Dense neurons, Conv1D filters, LSTM units) with the smallest L2 norm; smaller model"))


def _prune_targets(model: keras.Model, sparsity: Any, method: Any, schedule: Any, per_layer: Any,
                   scope: Any) -> tuple[PruningMethod, str, str, dict[str, float]]:
    """Validate the arguments of :func:`prune`; returns (method, schedule, scope, per-layer targets)."""
    _check_model(model)
    name = _check_choice(method, "pruning method", list(PRUNING_METHODS))
    pm = PRUNING_METHODS[name]
    schedule = _check_choice(schedule, "schedule", SCHEDULES)
    scope = _check_choice(scope, "scope", SCOPES)
    sparsity = _check_fraction(sparsity, "sparsity")
    prunable = pm.prunable(model)
    if per_layer is not None and not isinstance(per_layer, Mapping):
        raise TypeError(f"per_layer must be a dict {{layer name: sparsity}}, got {type(per_layer).__name__}")
    overrides: dict[str, float] = {}
    for layer_name, s in (per_layer or {}).items():
        layer_name = str(layer_name)
        names = [layer.name for layer in model.layers]
        if layer_name not in names:
            raise ValueError(f"per_layer: no layer {layer_name!r} in model {model.name!r} (layers: {names})")
        if layer_name not in prunable:
            raise ValueError(f"per_layer: layer {layer_name!r} cannot be pruned by method {name!r} "
                             f"(prunable: {prunable})")
        overrides[layer_name] = _check_fraction(s, f"per_layer[{layer_name!r}]")
    if not prunable:
        raise ValueError(f"model {model.name!r} has no layer that method {name!r} can prune")
    rest = [n for n in prunable if n not in overrides]
    if scope == "global":
        targets = _global_fractions(model, rest, sparsity) if name == "magnitude" else None
        if targets is None:
            raise ValueError(f"scope='global' is supported by the magnitude method only, not {name!r}")
    else:
        targets = {n: sparsity for n in rest}
    targets.update(overrides)
    return pm, schedule, scope, {n: targets[n] for n in prunable}


def prune(model: keras.Model, sparsity: float, *, method: str = "magnitude", schedule: str = "constant",
          per_layer: Mapping[str, float] | None = None, fine_tune: FineTune | None = None, scope: str = "layer",
          options: Mapping[str, Any] | None = None) -> keras.Model:
    """Prune a trained model; returns a new plain tf_keras model (``model`` is unchanged).

    ``sparsity``: fraction in [0, 1) for every prunable layer (``method="magnitude"``: of its kernels' weights;
    ``"structured"``: of its units). ``per_layer``: ``{layer name: fraction}`` overriding ``sparsity`` for those
    layers (0 leaves a layer untouched). ``scope="global"`` (magnitude only): one magnitude threshold over the
    layers not in ``per_layer``. ``schedule``: ``"constant"`` (TFMOT ConstantSparsity) or ``"polynomial"``
    (PolynomialDecay from 0, reaching the target after ~70 % of the fine-tuning steps; structured: 3 stages).
    ``fine_tune=None``: one-shot. ``options``: method-specific (structured: ``criterion="outgoing"|"incoming"``).
    """
    pm, schedule, scope, targets = _prune_targets(model, sparsity, method, schedule, per_layer, scope)
    _check_fine_tune(fine_tune)
    if options is not None and not isinstance(options, Mapping):
        raise TypeError("options must be a dict or None")
    _seed(fine_tune)
    start = time.perf_counter()
    if any(s > 0.0 for s in targets.values()):
        pruned, info = pm.apply(model, targets, schedule=schedule, scope=scope, fine_tune=fine_tune,
                                options=dict(options or {}))
    else:  # nothing to prune: no training either
        pruned, info = _copy(model), {"fine_tuned": False, "note": "all targets are 0: model copied unchanged"}
    step = {"step": "prune", "method": pm.name, "schedule": schedule, "scope": scope,
            "targets": {k: float(v) for k, v in targets.items()}, "seconds": time.perf_counter() - start, **info}
    return _attach_info(pruned, model, step)


# ----------------------------------------------------------------------------------------------- clustering

def _clusterable(layer: keras.layers.Layer) -> bool:
    if not _kernel_entries(layer) or not layer.trainable_weights:
        return False
    try:
        return bool(ClusteringRegistry.supports(layer))
    except Exception:  # noqa: BLE001 - the registry inspects cells and may raise on exotic layers
        return False


_MIN_TFMOT_CLUSTERS = {False: 2, True: 3}  # cluster_weights' smallest number_of_clusters (by preserve_sparsity)


def _cluster_plan(layer: keras.layers.Layer, n_clusters: int, init: str, preserve_sparsity: bool) -> dict:
    """How :func:`cluster` treats one clusterable layer: ``{"skip": bool, "n_clusters": int, "init": str}``.

    A layer whose every kernel already has at most ``n_clusters`` distinct values (zero included) is skipped. TFMOT
    gives all kernels of a layer one cluster count, and its kmeans++ initialization fails when it has to place more
    centroids than there are weights: without ``preserve_sparsity`` it needs ``n_clusters <= size`` for every
    kernel, with it ``n_clusters - 1 <= non-zeros`` for every kernel that has any (the zero centroid is added, the
    others are split between the negative and the positive weights in proportion to their counts). A kmeans++
    layer is therefore capped to the largest count that every kernel admits; where that is below TFMOT's minimum
    (2, or 3 with ``preserve_sparsity``), the layer keeps ``n_clusters`` and is initialized linearly instead.
    """
    tensors = [var.numpy() for _, var in _kernel_entries(layer)]
    if all(np.unique(w).size <= n_clusters for w in tensors):
        return {"skip": True, "n_clusters": n_clusters, "init": init}
    if init != "kmeans++":
        return {"skip": False, "n_clusters": n_clusters, "init": init}
    if preserve_sparsity:
        limits = [int(np.count_nonzero(w)) + 1 for w in tensors if np.count_nonzero(w)]
    else:
        limits = [int(w.size) for w in tensors]
    cap = min([n_clusters, *limits])
    if cap < _MIN_TFMOT_CLUSTERS[preserve_sparsity]:
        return {"skip": False, "n_clusters": n_clusters, "init": "linear"}
    return {"skip": False, "n_clusters": cap, "init": init}


def cluster(model: keras.Model, n_clusters: int, *, init: str = "kmeans++", preserve_sparsity: bool = False,
            fine_tune: FineTune | None = None) -> keras.Model:
    """Weight clustering (TFMOT ``cluster_weights`` + ``strip_clustering``); returns a new plain model.

    Every kernel / recurrent kernel of the supported layers (Dense, Conv1D, LSTM, Bidirectional) gets at most
    ``n_clusters`` distinct values (one codebook per tensor). ``preserve_sparsity=True`` keeps zero weights at zero
    (the zeros form one of the clusters, so it needs ``n_clusters >= 3``). ``init``: ``"kmeans++"``,
    ``"linear"``, ``"density"``, ``"random"``. ``fine_tune`` trains the centroids; ``None``: one-shot.

    Few weights (e.g. after strong pruning, or clustering twice):

    * A layer whose every kernel already has at most ``n_clusters`` distinct values (zero included) is not
      clustered: its weights are kept exactly. With ``fine_tune`` it trains like the clustered layers, its kernels
      projected back after every batch (weights that shared a value share their mean, zeros stay zero), so they
      keep at most ``n_clusters`` distinct values and their zeros.
    * TFMOT clusters all kernels of a layer (an LSTM's kernel and recurrent kernel, a Bidirectional's four) with
      one count, and kmeans++ cannot place more centroids than a kernel has weights (non-zero weights with
      ``preserve_sparsity``; the zeros get their own centroid). With ``init="kmeans++"`` the count of such a layer
      is capped to what its sparsest kernel admits (``size``, or ``non-zeros + 1``); if that is below TFMOT's
      minimum (2, or 3 with ``preserve_sparsity``: a kernel with a single non-zero weight), the layer keeps
      ``n_clusters`` and is initialized with ``"linear"`` instead. Both only lower the number of distinct values.

    The step's info records ``layers`` (every supported layer), ``not_clustered`` (layers with kernels that TFMOT
    cannot cluster; left as they are), ``skipped_few_values`` (the layers of the first point),
    ``clusters_per_layer`` (the count TFMOT used per clustered layer), ``capped`` (``{layer: count}`` below
    ``n_clusters``), ``init_fallback`` (``{layer: "linear"}``) and ``distinct_values`` per kernel afterwards.
    """
    _check_model(model)
    if not isinstance(preserve_sparsity, (bool, np.bool_)):
        raise TypeError(f"preserve_sparsity must be a bool, got {preserve_sparsity!r}")
    preserve_sparsity = bool(preserve_sparsity)
    n_clusters = _check_clusters(n_clusters, preserve_sparsity)
    init = _check_choice(init, "cluster init", list(CLUSTER_INITS))
    _check_fine_tune(fine_tune)
    names = [layer.name for layer in model.layers if _clusterable(layer)]
    if not names:
        raise ValueError(f"model {model.name!r} has no layer that can be clustered")
    skipped = [layer.name for layer in model.layers if _kernel_entries(layer) and layer.name not in names]
    plans = {name: _cluster_plan(model.get_layer(name), n_clusters, init, preserve_sparsity) for name in names}
    clustered_names = [name for name in names if not plans[name]["skip"]]
    _seed(fine_tune)
    start = time.perf_counter()

    def wrap(layer):
        # cluster_weights wraps (and training changes) the layer object it is given: give it a built copy, whose
        # weights the centroid initialization reads, never the input model's layer.
        if layer.name not in clustered_names:
            return type(layer).from_config(layer.get_config())
        plan = plans[layer.name]
        return tfmot.clustering.keras.cluster_weights(_fresh_built(layer), number_of_clusters=plan["n_clusters"],
                                                      cluster_centroids_init=CLUSTER_INITS[plan["init"]],
                                                      preserve_sparsity=preserve_sparsity)

    wrapped = keras.models.clone_model(model, clone_function=wrap)
    for layer in wrapped.layers:  # the unwrapped layers with weights (left as they are, or not supported)
        if layer.weights and not isinstance(layer, cluster_wrapper.ClusterWeights):
            layer.set_weights(model.get_layer(layer.name).get_weights())
    info: dict[str, Any] = {"fine_tuned": fine_tune is not None}
    if fine_tune is not None:
        few = [var for name in names if plans[name]["skip"] for _, var in _kernel_entries(wrapped.get_layer(name))]
        info["history"] = _fit(wrapped, fine_tune, [_ProjectStructure(few)] if few else [])
    clustered = tfmot.clustering.keras.strip_clustering(wrapped)
    if not _is_plain(clustered):
        clustered = _plain_rebuild(clustered)
    distinct = {key: int(np.unique(var.numpy()).size)
                for name in names for key, var in _kernel_entries(clustered.get_layer(name))}
    step = {"step": "cluster", "n_clusters": n_clusters, "init": init, "preserve_sparsity": preserve_sparsity,
            "layers": names, "not_clustered": skipped,
            "skipped_few_values": [name for name in names if plans[name]["skip"]],
            "clusters_per_layer": {name: plans[name]["n_clusters"] for name in clustered_names},
            "capped": {name: plans[name]["n_clusters"] for name in clustered_names
                       if plans[name]["n_clusters"] < n_clusters},
            "init_fallback": {name: plans[name]["init"] for name in clustered_names if plans[name]["init"] != init},
            "distinct_values": distinct, "seconds": time.perf_counter() - start, **info}
    return _attach_info(clustered, model, step)


# ----------------------------------------------------------------------------------------------- quantization

def quantize_array(w: np.ndarray, bits: int, *, per_channel: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric uniform ``bits``-bit quantization (two's-complement grid); returns ``(values, scales)``.

    ``values = scale * q``, ``q`` integer in ``[-2^(bits-1), 2^(bits-1) - 1]``; the scale is per tensor, or per
    index of the last axis with ``per_channel``. Zeros stay zero; an all-zero tensor (or channel) is returned as is.
    """
    bits = _check_bits(bits, "bits")
    w = np.asarray(w)
    axes = tuple(range(w.ndim - 1)) if (per_channel and w.ndim > 1) else None
    hi = float(2 ** (bits - 1) - 1)
    lo = float(2 ** (bits - 1))
    w64 = w.astype(np.float64)
    scale = np.maximum(np.max(w64, axis=axes, keepdims=True) / hi, -np.min(w64, axis=axes, keepdims=True) / lo)
    scale = np.maximum(scale, 0.0)
    safe = np.where(scale > 0, scale, 1.0)
    q = np.clip(np.rint(w64 / safe), -lo, hi)
    # The scale is rounded to the weights' dtype first, so every value is exactly q * scale in that dtype.
    scale_t = np.where(scale > 0, safe, 0.0).astype(w.dtype)
    out = (q.astype(w.dtype) * scale_t).astype(w.dtype)
    return out, scale_t.reshape(-1)


def _ptq_layer(layer: keras.layers.Layer, bits: int, per_channel: bool,
               quantize_bias: bool) -> dict[str, list[float]]:
    """Round the layer's kernels (and biases) in place; returns the scales (one, or one per channel) per tensor."""
    scales = {}
    for key, short, var in _weight_entries(layer):
        if short in KERNEL_NAMES or (quantize_bias and short == "bias"):
            values, scale = quantize_array(var.numpy(), bits, per_channel=per_channel and short != "bias")
            var.assign(values)
            scales[key] = [float(v) for v in scale]
    return scales


def _qat_supported(layer: keras.layers.Layer) -> bool:
    if isinstance(layer, keras.layers.Bidirectional):
        return type(layer.forward_layer) is keras.layers.LSTM and type(layer.backward_layer) is keras.layers.LSTM
    return type(layer) in (keras.layers.Dense, keras.layers.Conv1D, keras.layers.LSTM)


class KBitQuantizeConfig(tfmot.quantization.keras.QuantizeConfig):
    """k-bit TFMOT ``QuantizeConfig`` for Dense, Conv1D, LSTM and Bidirectional(LSTM).

    Weights: ``LastValueQuantizer(num_bits=k, symmetric=True, narrow_range=False, per_axis=False)`` on the kernels
    (RNNs: ``cell.kernel`` and ``cell.recurrent_kernel`` of each cell; Bidirectional: the forward and backward
    cells), and on the biases with ``quantize_bias``. Activations (``activation_bits``):
    ``MovingAverageQuantizer`` on the layer output and, for LSTM cells, on the cell's ``activation`` and
    ``recurrent_activation``.
    """

    def __init__(self, weight_bits: int, activation_bits: int | None = None, quantize_bias: bool = False):
        self.weight_bits = int(weight_bits)
        self.activation_bits = None if activation_bits is None else int(activation_bits)
        self.quantize_bias = bool(quantize_bias)

    @staticmethod
    def _cells(layer):
        if isinstance(layer, keras.layers.Bidirectional):
            return [layer.forward_layer.cell, layer.backward_layer.cell]
        if isinstance(layer, keras.layers.RNN):
            return [layer.cell]
        return []

    def _weight_slots(self, layer):
        cells = self._cells(layer)
        owners = cells or [layer]
        slots = []
        for owner in owners:
            names = ["kernel", "recurrent_kernel"] if cells else ["kernel"]
            if self.quantize_bias and getattr(owner, "use_bias", False):
                names.append("bias")
            slots += [(owner, name) for name in names if getattr(owner, name, None) is not None]
        return slots

    def _weight_quantizer(self):
        return tfmot.quantization.keras.quantizers.LastValueQuantizer(
            num_bits=self.weight_bits, symmetric=True, narrow_range=False, per_axis=False)

    def _activation_quantizer(self):
        return tfmot.quantization.keras.quantizers.MovingAverageQuantizer(
            num_bits=self.activation_bits, symmetric=False, narrow_range=False, per_axis=False)

    def get_weights_and_quantizers(self, layer):
        return [(getattr(owner, name), self._weight_quantizer()) for owner, name in self._weight_slots(layer)]

    def get_activations_and_quantizers(self, layer):
        if self.activation_bits is None:
            return []
        out = []
        for cell in self._cells(layer):
            out += [(cell.activation, self._activation_quantizer()),
                    (cell.recurrent_activation, self._activation_quantizer())]
        return out

    def set_quantize_weights(self, layer, quantize_weights):
        slots = self._weight_slots(layer)
        if len(slots) != len(quantize_weights):
            raise ValueError(f"{layer.name}: expected {len(slots)} quantized weights, got {len(quantize_weights)}")
        for (owner, name), value in zip(slots, quantize_weights):
            setattr(owner, name, value)

    def set_quantize_activations(self, layer, quantize_activations):
        if self.activation_bits is None:
            return
        it = iter(quantize_activations)
        for cell in self._cells(layer):
            cell.activation = next(it)
            cell.recurrent_activation = next(it)
        # tf_keras LSTM decides at construction to run its fused kernel, which hard-codes tanh / sigmoid and would
        # bypass the quantize-aware gate activations: force the per-step cell loop.
        rnns = [layer.forward_layer, layer.backward_layer] if isinstance(layer, keras.layers.Bidirectional) else [
            layer]
        for rnn in rnns:
            if hasattr(rnn, "_could_use_gpu_kernel"):
                rnn._could_use_gpu_kernel = False

    def get_output_quantizers(self, layer):
        return [] if self.activation_bits is None else [self._activation_quantizer()]

    def get_config(self):
        return {"weight_bits": self.weight_bits, "activation_bits": self.activation_bits,
                "quantize_bias": self.quantize_bias}


class _NoTransform:
    """Layout transformer that changes nothing (no input QuantizeLayer, no 8-bit folding patterns)."""

    def apply(self, model, layer_quantize_map):
        return model, layer_quantize_map


class _EmptyRegistry(tfmot.quantization.keras.QuantizeRegistry):
    """Quantizes nothing by default: only the layers annotated with :class:`KBitQuantizeConfig` are quantized."""

    def get_quantize_config(self, layer):
        return None

    def supports(self, layer):
        return False


class _KBitScheme(tfmot.quantization.keras.QuantizeScheme):
    def get_layout_transformer(self):
        return _NoTransform()

    def get_quantize_registry(self):
        return _EmptyRegistry()


class _ProjectStructure(keras.callbacks.Callback):
    """After every batch: zeros back to zero and tied weights (equal values) back to their group mean."""

    def __init__(self, variables: Sequence[tf.Variable]):
        super().__init__()
        self.groups = []
        for var in variables:
            w = var.numpy().ravel()
            values, labels = np.unique(w, return_inverse=True)
            if values.size == w.size and not np.any(w == 0):
                continue  # nothing shared, nothing pruned
            counts = np.bincount(labels, minlength=values.size).astype(np.float64)
            zero = np.flatnonzero(values == 0.0)
            self.groups.append((var, labels, counts, zero))

    def project(self):
        for var, labels, counts, zero in self.groups:
            w = var.numpy()
            means = np.bincount(labels, weights=w.ravel().astype(np.float64), minlength=counts.size) / counts
            means[zero] = 0.0
            var.assign(means[labels].reshape(w.shape).astype(w.dtype))

    def on_train_batch_end(self, batch, logs=None):
        self.project()


def _aligned_variables(qlayer: keras.layers.Layer, plain: keras.layers.Layer) -> list[tf.Variable]:
    """The variables of a (QAT-wrapped) layer in the order of the plain layer's weights."""
    candidates = qlayer.weights[:len(plain.weights)]
    for a, b in zip(candidates, plain.weights):
        short_a = a.name.split(":")[0].split("/")[-1]
        short_b = b.name.split(":")[0].split("/")[-1]
        if tuple(a.shape) != tuple(b.shape) or short_a != short_b:
            raise RuntimeError(f"cannot align the QAT weights of {plain.name!r}: {a.name} vs {b.name}")
    return candidates


def _qat(model: keras.Model, bits: int, activation_bits: int | None, quantize_bias: bool,
         fine_tune: FineTune, preserve_structure: bool) -> tuple[keras.Model, dict]:
    supported = [layer.name for layer in model.layers if _kernel_entries(layer) and _qat_supported(layer)]
    fallback = [layer.name for layer in model.layers if _kernel_entries(layer) and layer.name not in supported]
    qa = tfmot.quantization.keras

    def annotate(layer):
        fresh = type(layer).from_config(layer.get_config())
        if layer.name in supported:
            return qa.quantize_annotate_layer(fresh, KBitQuantizeConfig(bits, activation_bits, quantize_bias))
        return fresh

    annotated = keras.models.clone_model(model, clone_function=annotate)
    annotated.set_weights(model.get_weights())
    with qa.quantize_scope({"KBitQuantizeConfig": KBitQuantizeConfig}):
        qmodel = qa.quantize_apply(annotated, scheme=_KBitScheme())
    by_name = {(layer.layer.name if isinstance(layer, quantize_wrapper.QuantizeWrapper) else layer.name): layer
               for layer in qmodel.layers}
    pairs = [(layer, by_name[layer.name]) for layer in model.layers if layer.weights]
    callbacks = []
    if preserve_structure:
        tied = []
        for plain, qlayer in pairs:
            aligned = _aligned_variables(qlayer, plain)
            tied += [var for (_, short, _), var in zip(_weight_entries(plain), aligned)
                     if short in KERNEL_NAMES or (quantize_bias and short == "bias")]
        callbacks.append(_ProjectStructure(tied))
    history = _fit(qmodel, fine_tune, callbacks)

    out = _copy(model)
    ranges: dict[str, dict[str, float]] = {}
    scales: dict[str, list[float]] = {}
    for plain, qlayer in pairs:
        aligned = _aligned_variables(qlayer, plain)
        values = {var.ref(): var.numpy() for var in aligned}
        keys = {var.ref(): key for (key, _, _), var in zip(_weight_entries(plain), aligned)}
        if isinstance(qlayer, quantize_wrapper.QuantizeWrapper):
            for var, quantizer, qvars in qlayer._weight_vars:  # noqa: SLF001 - (variable, quantizer, range vars)
                # training=True: the range is refreshed from the final weights (LastValueQuantizer semantics)
                values[var.ref()] = quantizer(tf.convert_to_tensor(var), training=True, weights=qvars).numpy()
                lo, hi = float(qvars["min_var"].numpy()), float(qvars["max_var"].numpy())
                # the step of fake_quant (its nudging moves only the zero point)
                scales[keys[var.ref()]] = [(hi - lo) / (2 ** bits - 1)]
            found = [w for w in qlayer.weights
                     if w.shape.rank == 0 and ("activation_m" in w.name or "output_m" in w.name)]
            ranges[plain.name] = {f"{i // 2}:{w.name.split(':')[0].split('/')[-1]}": float(w.numpy())
                                  for i, w in enumerate(found)}
        out.get_layer(plain.name).set_weights([values[var.ref()] for var in aligned])
    for name in fallback:
        scales.update(_ptq_layer(out.get_layer(name), bits, False, quantize_bias))
    info = {"qat_layers": supported, "ptq_fallback": fallback, "history": history, "scales": scales,
            "activation_ranges": ranges if activation_bits is not None else {},
            "activation_quantization": ("simulated during QAT on the outputs of " + ", ".join(supported)
                                        + " and on LSTM gate activations; the returned model computes float "
                                        "activations") if activation_bits is not None else None}
    return out, info


def _activation_ranges(model: keras.Model, x: np.ndarray) -> dict[str, list[float]]:
    """min / max of every layer's output on ``x`` (PTQ calibration record)."""
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    probe = keras.Model(model.inputs, [layer.output for layer in layers])
    outputs = probe.predict(x, batch_size=4096, verbose=0)
    if len(layers) == 1:
        outputs = [outputs]
    return {layer.name: [float(np.min(o)), float(np.max(o))] for layer, o in zip(layers, outputs)}


def quantize(model: keras.Model, weight_bits: int, *, activation_bits: int | None = None, mode: str = "ptq",
             per_channel: bool = False, quantize_bias: bool = False, preserve_structure: bool = True,
             fine_tune: FineTune | None = None) -> keras.Model:
    """k-bit quantization (``weight_bits`` in 2..16); returns a new plain model whose weights lie on the grid.

    ``mode="ptq"``: post-training rounding in numpy (per tensor, or per output channel with ``per_channel``);
    ``fine_tune``, if given, serves only as calibration data for the recorded activation ranges.
    ``mode="qat"``: quantization-aware fine-tuning with TFMOT and :class:`KBitQuantizeConfig` (needs
    ``fine_tune``); layers with kernels that the config does not cover are quantized post-training after the
    fine-tuning and listed under ``ptq_fallback`` in :func:`compression_info`. ``preserve_structure`` (QAT):
    keep zeros and clustered (shared) values during fine-tuning. ``activation_bits`` (2..16): simulated in QAT,
    recorded in both modes (see the module notes).
    """
    _check_model(model)
    weight_bits = _check_bits(weight_bits, "weight_bits")
    if activation_bits is not None:
        activation_bits = _check_bits(activation_bits, "activation_bits")
    mode = _check_choice(mode, "quantization mode", QUANTIZE_MODES)
    _check_fine_tune(fine_tune)
    if mode == "qat" and fine_tune is None:
        raise ValueError("mode='qat' needs fine_tune (training data for quantization-aware training)")
    if mode == "qat" and per_channel:
        raise ValueError("per_channel quantization is available with mode='ptq' only")
    if not any(_kernel_entries(layer) for layer in model.layers):
        raise ValueError(f"model {model.name!r} has no kernel to quantize")
    _seed(fine_tune)
    start = time.perf_counter()
    if mode == "ptq":
        out = _copy(model)
        scales = {}
        for layer in out.layers:
            scales.update(_ptq_layer(layer, weight_bits, bool(per_channel), bool(quantize_bias)))
        info: dict[str, Any] = {"scales": scales, "fine_tuned": False}
        if activation_bits is not None:
            info["activation_quantization"] = "recorded only (PTQ quantizes weights); the model computes float"
            if fine_tune is not None:
                info["activation_ranges"] = _activation_ranges(out, fine_tune.x)
    else:
        out, info = _qat(model, weight_bits, activation_bits, bool(quantize_bias), fine_tune,
                         bool(preserve_structure))
        info["fine_tuned"] = True
    step = {"step": "quantize", "mode": mode, "weight_bits": weight_bits, "activation_bits": activation_bits,
            "per_channel": bool(per_channel), "quantize_bias": bool(quantize_bias),
            "seconds": time.perf_counter() - start, **info}
    return _attach_info(out, model, step, weight_bits=weight_bits, activation_bits=activation_bits,
                        quantize_bias=bool(quantize_bias))


# ----------------------------------------------------------------------------------------------- statistics

def _tensor_size_bits(n: int, nnz: int, distinct: int, bits: int) -> dict[str, int]:
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
        for key, short, var in _weight_entries(layer):
            w = var.numpy()
            quantized = weight_bits is not None and (short in KERNEL_NAMES or (quantize_bias and short == "bias"))
            bits = int(weight_bits) if quantized else FLOAT_BITS
            nz = w[w != 0]
            t = {"name": key, "shape": list(w.shape), "kernel": short in KERNEL_NAMES, "bits": bits,
                 "n_weights": int(w.size), "n_nonzero": int(nz.size), "n_distinct_nonzero": int(np.unique(nz).size)}
            t.update(_tensor_size_bits(t["n_weights"], t["n_nonzero"], t["n_distinct_nonzero"], bits))
            tensors.append(t)
            for k in keys:
                row[k] += t[k]
        kern = [t for t in tensors if t["kernel"]]
        n_kern = sum(t["n_weights"] for t in kern)
        row.update({"layer": layer.name, "type": _layer_kind(layer), "tensors": tensors,
                    "kernel_sparsity": (1.0 - sum(t["n_nonzero"] for t in kern) / n_kern) if n_kern else 0.0})
        layers.append(row)
        for k in keys:
            total[k] += row[k]
    total["sparsity"] = 1.0 - total["n_nonzero"] / total["n_weights"] if total["n_weights"] else 0.0
    return {"layers": layers, "total": total}


# ----------------------------------------------------------------------------------------------- pipeline

@dataclasses.dataclass(frozen=True)
class CompressionConfig:
    """Which steps :func:`compress` runs (each optional), in the order prune -> cluster -> quantize.

    Pruning runs when ``sparsity > 0`` or ``per_layer`` is given; clustering when ``n_clusters`` is set;
    quantization when ``weight_bits`` is set. ``preserve_sparsity=None`` (clustering): ``True`` when a magnitude
    pruning step precedes and ``n_clusters >= 3``. numpy scalars (e.g. from scikit-optimize) are cast.
    """

    prune_method: str = "magnitude"
    sparsity: float = 0.0
    per_layer: Mapping[str, float] | None = None
    schedule: str = "constant"
    scope: str = "layer"
    prune_options: Mapping[str, Any] | None = None
    n_clusters: int | None = None
    cluster_init: str = "kmeans++"
    preserve_sparsity: bool | None = None
    weight_bits: int | None = None
    activation_bits: int | None = None
    quantize_mode: str = "ptq"
    per_channel: bool = False
    quantize_bias: bool = False

    def __post_init__(self):
        def put(name, value):
            object.__setattr__(self, name, value)

        put("prune_method", _check_choice(self.prune_method, "pruning method", list(PRUNING_METHODS)))
        put("sparsity", _check_fraction(self.sparsity, "sparsity"))
        if self.per_layer is not None:
            if not isinstance(self.per_layer, Mapping):
                raise TypeError("per_layer must be a dict {layer name: sparsity} or None")
            put("per_layer", types.MappingProxyType(
                {str(k): _check_fraction(v, f"per_layer[{k!r}]") for k, v in self.per_layer.items()}))
        put("schedule", _check_choice(self.schedule, "schedule", SCHEDULES))
        put("scope", _check_choice(self.scope, "scope", SCOPES))
        if self.prune_options is not None:
            if not isinstance(self.prune_options, Mapping):
                raise TypeError("prune_options must be a dict or None")
            put("prune_options", types.MappingProxyType(dict(self.prune_options)))
        put("cluster_init", _check_choice(self.cluster_init, "cluster init", list(CLUSTER_INITS)))
        if self.preserve_sparsity is not None:
            put("preserve_sparsity", bool(self.preserve_sparsity))
        if self.n_clusters is not None:
            put("n_clusters", _check_clusters(self.n_clusters, bool(self.preserve_sparsity)))
        if self.weight_bits is not None:
            put("weight_bits", _check_bits(self.weight_bits, "weight_bits"))
        if self.activation_bits is not None:
            put("activation_bits", _check_bits(self.activation_bits, "activation_bits"))
            if self.weight_bits is None:
                raise ValueError("activation_bits needs weight_bits (the quantization step)")
        put("quantize_mode", _check_choice(self.quantize_mode, "quantization mode", QUANTIZE_MODES))
        put("per_channel", bool(self.per_channel))
        put("quantize_bias", bool(self.quantize_bias))
        if self.per_channel and self.quantize_mode == "qat":
            raise ValueError("per_channel quantization is available with quantize_mode='ptq' only")

    @property
    def prunes(self) -> bool:
        return self.sparsity > 0.0 or bool(self.per_layer)

    @property
    def steps(self) -> list[str]:
        return (["prune"] if self.prunes else []) + (["cluster"] if self.n_clusters is not None else []) + (
            ["quantize"] if self.weight_bits is not None else [])

    def cluster_preserves_sparsity(self) -> bool:
        if self.preserve_sparsity is not None:
            return self.preserve_sparsity
        return self.prunes and self.prune_method != "structured" and (self.n_clusters or 0) >= 3

    def to_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for key in ("per_layer", "prune_options"):
            out[key] = None if out[key] is None else dict(out[key])
        return out


@dataclasses.dataclass(frozen=True)
class StepReport:
    """The model after one step: weight statistics (:func:`weight_stats`) and the injected measurements.

    ``model`` is the model after this step (the next step works on a copy of it, so it stays as reported).
    """

    step: str
    params: dict
    layers: list[dict]
    total: dict
    evaluation: dict | None
    complexity: dict | None
    seconds: float
    info: dict
    model: keras.Model | None = dataclasses.field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        """JSON-ready (without the model)."""
        return copy.deepcopy({f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "model"})


@dataclasses.dataclass(frozen=True)
class CompressionResult:
    model: keras.Model
    config: CompressionConfig
    baseline: StepReport
    steps: list[StepReport]

    def to_dict(self) -> dict:
        return {"config": self.config.to_dict(), "baseline": self.baseline.to_dict(),
                "steps": [s.to_dict() for s in self.steps]}


def _step_report(step: str, params: dict, model: keras.Model, seconds: float, evaluate, complexity) -> StepReport:
    info = compression_info(model)
    stats = weight_stats(model)
    evaluation = None
    if evaluate is not None:
        evaluation = evaluate(model)
        if not isinstance(evaluation, Mapping):
            raise TypeError(f"evaluate(model) must return a dict, got {type(evaluation).__name__}")
        evaluation = dict(evaluation)
    cost = None
    if complexity is not None:
        cost = complexity(model, info.get("weight_bits"), info.get("activation_bits"))
        if not isinstance(cost, Mapping):
            raise TypeError(f"complexity(model, weight_bits, activation_bits) must return a dict, got "
                            f"{type(cost).__name__}")
        cost = dict(cost)
    last = info["steps"][-1] if info["steps"] and step != "original" else {}
    return StepReport(step=step, params=params, layers=stats["layers"], total=stats["total"], evaluation=evaluation,
                      complexity=cost, seconds=seconds, info=last, model=model)


def compress(model: keras.Model, config: CompressionConfig, fine_tune: FineTune | None = None,
             evaluate: Callable[[keras.Model], Mapping] | None = None,
             complexity: Callable[[keras.Model, int | None, int | None], Mapping] | None = None
             ) -> CompressionResult:
    """Run prune -> cluster -> quantize as configured, reporting the model before and after each step.

    ``evaluate(model) -> dict`` (e.g. Q-factor on the test set) and ``complexity(model, weight_bits,
    activation_bits) -> dict`` (RMpS, BoP, NABS; bits are ``None`` while the model is float) are injected so this
    module depends on neither training nor complexity code. Every argument is checked before any training.
    """
    _check_model(model)
    if not isinstance(config, CompressionConfig):
        raise TypeError(f"config must be a CompressionConfig, got {type(config).__name__}")
    _check_fine_tune(fine_tune)
    for fn, what in ((evaluate, "evaluate"), (complexity, "complexity")):
        if fn is not None and not callable(fn):
            raise TypeError(f"{what} must be callable or None")
    if config.prunes:
        _prune_targets(model, config.sparsity, config.prune_method, config.schedule, config.per_layer, config.scope)
    if config.weight_bits is not None and config.quantize_mode == "qat" and fine_tune is None:
        raise ValueError("quantize_mode='qat' needs fine_tune")
    if config.n_clusters is not None:
        _check_clusters(config.n_clusters, config.cluster_preserves_sparsity())

    baseline = _step_report("original", {}, model, 0.0, evaluate, complexity)
    reports, current = [], model
    if config.prunes:
        params = {"method": config.prune_method, "sparsity": config.sparsity, "schedule": config.schedule,
                  "scope": config.scope, "per_layer": dict(config.per_layer or {})}
        start = time.perf_counter()
        current = prune(current, config.sparsity, method=config.prune_method, schedule=config.schedule,
                        per_layer=config.per_layer, fine_tune=fine_tune, scope=config.scope,
                        options=config.prune_options)
        reports.append(_step_report("prune", params, current, time.perf_counter() - start, evaluate, complexity))
    if config.n_clusters is not None:
        params = {"n_clusters": config.n_clusters, "init": config.cluster_init,
                  "preserve_sparsity": config.cluster_preserves_sparsity()}
        start = time.perf_counter()
        current = cluster(current, config.n_clusters, init=config.cluster_init,
                          preserve_sparsity=params["preserve_sparsity"], fine_tune=fine_tune)
        reports.append(_step_report("cluster", params, current, time.perf_counter() - start, evaluate, complexity))
    if config.weight_bits is not None:
        params = {"weight_bits": config.weight_bits, "activation_bits": config.activation_bits,
                  "mode": config.quantize_mode, "per_channel": config.per_channel,
                  "quantize_bias": config.quantize_bias}
        start = time.perf_counter()
        current = quantize(current, config.weight_bits, activation_bits=config.activation_bits,
                           mode=config.quantize_mode, per_channel=config.per_channel,
                           quantize_bias=config.quantize_bias, fine_tune=fine_tune)
        reports.append(_step_report("quantize", params, current, time.perf_counter() - start, evaluate,
                                    complexity))
    if current is model:
        current = _copy(model)
        object.__setattr__(current, "eqnn_info", compression_info(model))
    return CompressionResult(model=current, config=config, baseline=baseline, steps=reports)
