"""Compression of trained equalizers: pruning, weight clustering, quantization, and their pipeline.

Every technique is a function on a trained ``tf_keras`` (Keras 2) model that returns a NEW plain
``tf_keras`` model (no TensorFlow Model Optimization (TFMOT) wrappers, no custom layer classes), so it predicts,
saves and loads like any other model, and downstream code (complexity counting) reads its actual weights. The
input model is never modified: TFMOT wraps the original layer objects, so every function works on a clone
(``clone_model`` + ``set_weights``) or on freshly built layers.

What works on which layer (all measured by ``tests/test_compress.py``; GRU and Bidirectional(GRU) as their LSTM
columns, with 3 gate columns per unit instead of 4, by ``tests/test_recurrent.py``):

==================  =========================  ==========================  ====================================
technique           Dense / Conv1D             LSTM                        Bidirectional(LSTM)
==================  =========================  ==========================  ====================================
prune "magnitude"   TFMOT prune_low_magnitude  TFMOT (kernel + recurrent   TFMOT through
                    (kernel)                   kernel)                     :class:`PrunableBidirectional` (both
                                                                           cells' kernels and recurrent kernels)
prune "structured"  neurons / filters removed  units removed (4 gate       units removed per direction
                                               columns + recurrent rows)
prune "obc"         OBS per kernel row on the  OBS per gate column: input  as LSTM, per direction
                    calibration inputs         kernel on the inputs,
                    (Conv1D: im2col patches)   recurrent on the states
prune "filters"     Conv1D filters removed     --                          --
prune "gates"       -                          gate pre-activation groups  the same, per direction
                                               (or neurons, or weights)
                                               zeroed: constant gates
cluster             TFMOT cluster_weights      TFMOT                       TFMOT (also after pruning)
quantize "ptq"      numpy rounding             numpy rounding              numpy rounding
quantize "qat"      TFMOT + KBitQuantizeConfig TFMOT + KBitQuantizeConfig  TFMOT + KBitQuantizeConfig (cells)
quantize "pow2"     numpy rounding to sums of  the same                    the same
grid (ptq)          <= k signed powers of two
==================  =========================  ==========================  ====================================

QAT uses the one k-bit :class:`KBitQuantizeConfig` for every layer type, Dense included: TFMOT's built-in schemes
(8-bit ``quantize_model``, the experimental n-bit scheme) reject LSTM, Bidirectional and Conv1D here, and one config
gives every layer the same grid. Other layers with kernels (e.g. SeparableConv1D, SimpleRNN) are quantized post-training
after the QAT fine-tuning and listed under ``ptq_fallback`` in the model's info. Structured pruning needs a chain
model of Dense, Conv1D, LSTM, GRU, their Bidirectional forms, Flatten, BatchNormalization and weightless per-feature
layers (Dropout, Activation, ...); it returns a Sequential model. Through a Flatten, removing a unit removes the
inputs of the next layer that read it at every time step. The last layer with weights (the model outputs) is
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

    PruningMethod(name, prunable=lambda model: [layer names], apply=fn, structured=False,
                  supports_global_scope=False, needs_fine_tune=False, check_options=None)
    fn(model, targets: {layer name: fraction}, *, schedule, scope, fine_tune, options) -> (new plain model, info)
    check_options(options, epochs) -> options completed with defaults (a one-line ValueError naming a bad key)

Registered: "magnitude", "structured", and three that prune while training, whose fine-tuning epochs are their
whole training budget: "lottery_ticket" (iterative magnitude pruning over rounds; ``rewind="weights"``: the
survivors go back to their values at an early step of the method's own training from a fresh initialization,
Frankle & Carbin 2019 / Frankle et al. 2020; ``"learning_rate"``: from the trained model, each short retraining
restarts a linearly decaying learning rate, Zimmer et al. 2023), "one_cycle" (one training run from a fresh
initialization, sparsity on a logistic one-cycle schedule, Hubens et al. 2022) and "gradual_structured" (units
masked while the trained model trains on, then removed: a smaller model).

The capability flags (``structured``, ``supports_global_scope``, ``needs_fine_tune``) are what the rest of the
code asks; no code compares method names.

:func:`prune` validates the arguments, resolves ``sparsity`` / ``per_layer`` / ``scope`` into ``targets`` over the
method's prunable layers, seeds, calls ``apply`` and records ``info``. ``apply`` must not modify ``model``.

Layout
------
:mod:`.common` (checks, copies, weight entries, the info record), :mod:`.fine_tune` (:class:`FineTune`),
:mod:`.calibration` (:class:`Calibration`: windows of the post-training methods),
:mod:`.pruning` (registry; :mod:`.pruning.magnitude`, :mod:`.pruning.structured`, :mod:`.pruning.obc`,
:mod:`.pruning.filters`, :mod:`.pruning.gates`), :mod:`.clustering`,
:mod:`.quantization`, :mod:`.stats` (:func:`weight_stats`), :mod:`.pipeline` (:class:`CompressionConfig`,
:func:`compress`), :mod:`.catalog` (the names and settings a configuration is checked against: the pruning methods
with their options, schedules, centroid initializations, quantization modes and grids; no TensorFlow). What a layer
type allows (structured slicing, QAT weights, TFMOT prunable weights) comes from :mod:`eqnn.layers`.
``eqnn.compress`` re-exports the public names.

Importing this package does not import TensorFlow: the names are loaded from their modules on first use (PEP 562),
so that :mod:`.catalog` serves a configuration check before TensorFlow starts.
"""

from __future__ import annotations

import importlib
from typing import Any

from .catalog import FLOAT_BITS, MAX_BITS, MIN_BITS, QUANTIZE_GRIDS, QUANTIZE_MODES, SCHEDULES, SCOPES

# name -> the submodule that defines it (imported, with TensorFlow, on first use)
_LAZY = {
    "Calibration": "calibration",
    "CLUSTER_INITS": "clustering", "cluster": "clustering",
    "KERNEL_NAMES": "common", "compression_info": "common", "copy_model": "common", "kernel_entries": "common",
    "kernel_weights": "common", "layer_kind": "common",
    "FineTune": "fine_tune",
    "is_ldbp": "ldbp",
    "CompressionConfig": "pipeline", "CompressionResult": "pipeline", "StepReport": "pipeline", "compress": "pipeline",
    "PRUNING_METHODS": "pruning", "PrunableBidirectional": "pruning", "PruningMethod": "pruning",
    "method_for": "pruning", "prune": "pruning", "register_pruning_method": "pruning", "units_of": "pruning",
    "unregister_pruning_method": "pruning",
    "KBitQuantizeConfig": "quantization", "quantize": "quantization", "quantize_array": "quantization",
    "tensor_size_bits": "stats", "weight_stats": "stats",
}

__all__ = [
    "FineTune", "Calibration", "prune", "cluster", "quantize", "compress", "CompressionConfig", "CompressionResult",
    "StepReport",
    "PruningMethod", "PRUNING_METHODS", "register_pruning_method", "unregister_pruning_method",
    "PrunableBidirectional", "KBitQuantizeConfig", "compression_info", "weight_stats", "kernel_weights",
    "quantize_array", "SCHEDULES", "SCOPES", "CLUSTER_INITS", "QUANTIZE_GRIDS", "QUANTIZE_MODES", "MIN_BITS",
    "MAX_BITS", "FLOAT_BITS", "KERNEL_NAMES", "copy_model", "kernel_entries", "layer_kind", "tensor_size_bits",
    "units_of",
    "method_for", "is_ldbp",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
