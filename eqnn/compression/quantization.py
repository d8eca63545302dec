"""k-bit quantization: post-training rounding in numpy ("ptq"), quantization-aware fine-tuning with TFMOT and
:class:`KBitQuantizeConfig` ("qat"), or post-training Optimal Brain Quantization ("obq", Frantar & Alistarh 2022:
each weight fixed to the grid in turn, the others compensated by the OBS update on calibration windows,
:mod:`.obs`); see :func:`quantize`.

Grid (both modes, the two's-complement grid of TFMOT's symmetric ``LastValueQuantizer``): ``w_q = s q``, ``q``
integer in ``[-2^(k-1), 2^(k-1) - 1]``, ``s = max(max(w) / (2^(k-1) - 1), -min(w) / 2^(k-1))`` per tensor (or per
output channel, the last axis).

Power-of-two grid (``grid="pow2"``, PTQ; additive powers of two, Li et al., "Additive Powers-of-Two
Quantization", ICLR 2020; the shift-and-add weights of the NABS metric of Freire et al., JLT 41(14), 2023):
``w_q = s q`` with ``q`` a sum of at most ``m = pow2_terms`` signed powers of two, ``q = sum_{j<=m} sigma_j
2^(e_j)``, ``sigma_j = +-1``, i.e. an integer whose canonical signed digit form has at most ``m`` non-zero digits,
with ``|q| <= Q = 2^(k-1) - 1`` (``m >= 2``) or ``Q = 2^(k-2)`` (``m = 1``: plain powers of two and zero);
``s = max|w| / Q`` per tensor (or per output channel) and ``q`` the level nearest to ``|w| / s`` (ties to the
smaller), with the sign of ``w``. A product by such a weight is ``m' <= m`` shifts and ``m' - 1`` additions (then
the scale, folded into the next stage as on the uniform grid); ``eqnn.complexity.model_complexity(...,
pow2_terms=m)`` counts it so. Which layers QAT covers and which of their weights it quantizes (kernels; the
``cell.kernel`` / ``cell.recurrent_kernel`` of each RNN) comes from the layer's :class:`eqnn.layers.LayerType`
(``qat``, ``recurrent``).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_model_optimization as tfmot
import tf_keras as keras
from tensorflow_model_optimization.python.core.quantization.keras import quantize_wrapper

from ..complexity.counting import MAX_POW2_TERMS, pow2_levels
from ..layers import find_layer_type, recurrent_layers
from .calibration import calibration_data
from .catalog import QUANTIZE_GRIDS, QUANTIZE_MODES
from .common import (
    KERNEL_NAMES,
    _check_bits,
    _check_choice,
    _check_int,
    _check_model,
    attach_info,
    copy_model,
    is_multiplicative,
    kernel_entries,
    weight_entries,
)
from .fine_tune import FineTune, _check_fine_tune, _fit, _ProjectStructure, _seed
from .ldbp import is_ldbp
from .obs import hessian, obs_model, obs_rows, obs_supported

OBQ_DAMPING = 0.01  # dampening of the OBQ Hessian (lambda of :func:`eqnn.compression.obs.hessian`)


def _check_pow2_terms(grid: str, pow2_terms: Any) -> int | None:
    """``pow2_terms`` for ``grid``: an integer in [1, MAX_POW2_TERMS] with "pow2" (default 2), None with "uniform"."""
    if grid == "uniform":
        if pow2_terms is not None:
            raise ValueError(f"pow2_terms = {pow2_terms!r} needs grid='pow2' (got grid='uniform')")
        return None
    return 2 if pow2_terms is None else _check_int(pow2_terms, "pow2_terms", 1, MAX_POW2_TERMS)


def quantize_array(w: np.ndarray, bits: int, *, per_channel: bool = False, grid: str = "uniform",
                   pow2_terms: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric ``bits``-bit quantization; returns ``(values, scales)``.

    ``grid="uniform"`` (two's-complement grid): ``values = scale * q``, ``q`` integer in ``[-2^(bits-1),
    2^(bits-1) - 1]``. ``grid="pow2"``: ``q`` a sum of at most ``pow2_terms`` (1..8, default 2) signed powers of
    two, ``|q| <= Q`` (module notes). The scale is per tensor, or per index of the last axis with ``per_channel``.
    Zeros stay zero; an all-zero tensor (or channel) is returned as is.
    """
    bits = _check_bits(bits, "bits")
    grid = _check_choice(grid, "quantization grid", QUANTIZE_GRIDS)
    terms = _check_pow2_terms(grid, pow2_terms)
    w = np.asarray(w)
    axes = tuple(range(w.ndim - 1)) if (per_channel and w.ndim > 1) else None
    w64 = w.astype(np.float64)
    if grid == "pow2":
        levels = pow2_levels(bits, terms)
        scale = np.max(np.abs(w64), axis=axes, keepdims=True) / float(levels[-1])
        safe = np.where(scale > 0, scale, 1.0)
        ratio = np.abs(w64) / safe
        index = np.clip(np.searchsorted(levels, ratio), 1, len(levels) - 1)
        lower, upper = levels[index - 1], levels[index]
        q = np.sign(w64) * np.where(ratio - lower <= upper - ratio, lower, upper)
    else:
        hi = float(2 ** (bits - 1) - 1)
        lo = float(2 ** (bits - 1))
        scale = np.maximum(np.max(w64, axis=axes, keepdims=True) / hi, -np.min(w64, axis=axes, keepdims=True) / lo)
        scale = np.maximum(scale, 0.0)
        safe = np.where(scale > 0, scale, 1.0)
        q = np.clip(np.rint(w64 / safe), -lo, hi)
    # The scale is rounded to the weights' dtype first, so every value is exactly q * scale in that dtype.
    scale_t = np.where(scale > 0, safe, 0.0).astype(w.dtype)
    out = (q.astype(w.dtype) * scale_t).astype(w.dtype)
    return out, scale_t.reshape(-1)


def _ptq_layer(layer: keras.layers.Layer, bits: int, per_channel: bool,
               quantize_bias: bool, grid: str = "uniform", pow2_terms: int | None = None) -> dict[str, list[float]]:
    """Round the layer's kernels (and biases) in place; returns the scales (one, or one per channel) per tensor.
    The kernels go on ``grid``; the biases (added, never multiplied) on the uniform grid."""
    scales = {}
    for key, short, var in weight_entries(layer):
        if is_multiplicative(layer, short) or (quantize_bias and short == "bias"):
            kernel = short != "bias"
            values, scale = quantize_array(var.numpy(), bits, per_channel=per_channel and short != "bias",
                                           grid=grid if kernel else "uniform",
                                           pow2_terms=pow2_terms if kernel else None)
            var.assign(values)
            scales[key] = [float(v) for v in scale]
    return scales



def obq_rows(w: np.ndarray, x: np.ndarray, bits: int, per_channel: bool, damping: float = OBQ_DAMPING
             ) -> np.ndarray:
    """Optimal Brain Quantization of rows ``w`` ``(rows, d)`` (one tensor; a row is an output channel) reading
    inputs ``x`` ``(n, d)``: every weight ends on the grid of :func:`quantize_array` for the original tensor, in the
    greedy OBS order (least ``(w_q - grid(w_q))^2 / [H^-1]_qq`` first), the free weights compensated. Zeros stay
    zero, and the weight that sets the scale (per tensor, or per row with ``per_channel``) is fixed first, so that
    the result has the same grid (and :func:`quantize_array` of it is the identity)."""
    tensor = np.asarray(w).T  # (d, rows): the last axis is the channel, as quantize_array reads it
    _, scale = quantize_array(tensor, bits, per_channel=per_channel)
    scale = np.broadcast_to(scale.astype(np.float64), (w.shape[0],))
    if not np.any(scale > 0):
        return np.array(w, copy=True)
    hi, lo = float(2 ** (bits - 1) - 1), float(2 ** (bits - 1))
    safe = np.where(scale > 0, scale, 1.0)

    def grid(values, rows):
        s = safe[rows]
        return np.where(scale[rows] > 0, np.clip(np.rint(values / s), -lo, hi) * s, 0.0)

    w64 = np.asarray(w, np.float64)
    first = w64 == 0.0
    # the extreme weight that sets each scale: max(w) / hi or -min(w) / lo, whichever is larger
    for part, mark in ([(row, first[i]) for i, row in enumerate(w64)] if per_channel else [(w64, first)]):
        extreme = np.argmax(part) if np.max(part) / hi >= -np.min(part) / lo else np.argmin(part)
        mark[np.unravel_index(extreme, part.shape)] = True
    out = obs_rows(w64, hessian(x, damping), w.shape[1], grid, first=first)
    return out.astype(np.asarray(w).dtype)


def _obq(model: keras.Model, bits: int, per_channel: bool, quantize_bias: bool, x: np.ndarray
         ) -> tuple[keras.Model, dict]:
    out = copy_model(model)
    scales = {}
    covered = [layer.name for layer in out.layers if obs_supported(layer)]
    for layer in out.layers:  # the grid of every tensor, from the weights before OBQ
        for key, short, var in weight_entries(layer):
            if short in KERNEL_NAMES:
                scales[key] = [float(v) for v in quantize_array(var.numpy(), bits, per_channel=per_channel)[1]]
    obs_model(out, [(name, lambda w, xin: obq_rows(w, xin, bits, per_channel)) for name in covered], x)
    fallback = [layer.name for layer in out.layers if kernel_entries(layer) and layer.name not in covered]
    for layer in out.layers:
        if layer.name in fallback:
            scales.update(_ptq_layer(layer, bits, per_channel, quantize_bias))
        elif quantize_bias and layer.name in covered:
            for key, short, var in weight_entries(layer):
                if short == "bias":
                    values, scale = quantize_array(var.numpy(), bits)
                    var.assign(values)
                    scales[key] = [float(v) for v in scale]
    return out, {"scales": scales, "obq_layers": covered, "ptq_fallback": fallback, "calibration_samples": len(x),
                 "damping": OBQ_DAMPING}


def _qat_supported(layer: keras.layers.Layer) -> bool:
    layer_type = find_layer_type(layer)
    return bool(layer_type is not None and layer_type.qat is not None and layer_type.qat(layer))


class KBitQuantizeConfig(tfmot.quantization.keras.QuantizeConfig):
    """k-bit TFMOT ``QuantizeConfig`` for Dense, Conv1D, LSTM, GRU and their Bidirectional forms.

    Weights: ``LastValueQuantizer(num_bits=k, symmetric=True, narrow_range=False, per_axis=False)`` on the kernels
    (RNNs: ``cell.kernel`` and ``cell.recurrent_kernel`` of each cell; Bidirectional: the forward and backward
    cells), and on the biases with ``quantize_bias``. Activations (``activation_bits``):
    ``MovingAverageQuantizer`` on the layer output and, for RNN cells, on the cell's ``activation`` and
    ``recurrent_activation``.
    """

    def __init__(self, weight_bits: int, activation_bits: int | None = None, quantize_bias: bool = False):
        self.weight_bits = int(weight_bits)
        self.activation_bits = None if activation_bits is None else int(activation_bits)
        self.quantize_bias = bool(quantize_bias)

    @staticmethod
    def _cells(layer):
        return [rnn.cell for rnn in recurrent_layers(layer)]

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
        # tf_keras LSTM / GRU decide at construction to run their fused kernel, which hard-codes tanh / sigmoid and
        # would bypass the quantize-aware gate activations: force the per-step cell loop.
        for rnn in recurrent_layers(layer):
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
    supported = [layer.name for layer in model.layers if kernel_entries(layer) and _qat_supported(layer)]
    fallback = [layer.name for layer in model.layers if kernel_entries(layer) and layer.name not in supported]
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
            tied += [var for (_, short, _), var in zip(weight_entries(plain), aligned)
                     if short in KERNEL_NAMES or (quantize_bias and short == "bias")]
        callbacks.append(_ProjectStructure(tied))
    history = _fit(qmodel, fine_tune, callbacks)

    out = copy_model(model)
    ranges: dict[str, dict[str, float]] = {}
    scales: dict[str, list[float]] = {}
    for plain, qlayer in pairs:
        aligned = _aligned_variables(qlayer, plain)
        values = {var.ref(): var.numpy() for var in aligned}
        keys = {var.ref(): key for (key, _, _), var in zip(weight_entries(plain), aligned)}
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
                                        + " and on RNN gate activations; the returned model computes float "
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
             fine_tune: FineTune | None = None, calibration: Any = None, grid: str = "uniform",
             pow2_terms: int | None = None) -> keras.Model:
    """k-bit quantization (``weight_bits`` in 2..16); returns a new plain model whose weights lie on the grid.

    ``mode="ptq"``: post-training rounding in numpy (per tensor, or per output channel with ``per_channel``);
    ``fine_tune``, if given, serves only as calibration data for the recorded activation ranges.
    ``mode="qat"``: quantization-aware fine-tuning with TFMOT and :class:`KBitQuantizeConfig` (needs
    ``fine_tune``); layers with kernels that the config does not cover are quantized post-training after the
    fine-tuning and listed under ``ptq_fallback`` in :func:`compression_info`. ``preserve_structure`` (QAT):
    keep zeros and clustered (shared) values during fine-tuning. ``activation_bits`` (2..16): simulated in QAT,
    recorded in all modes (see the module notes). ``grid="pow2"`` (``mode="ptq"`` only): the kernels become
    sums of at most ``pow2_terms`` (1..8, default 2) signed powers of two times a scale (module notes); the info
    records ``pow2_terms`` for :func:`eqnn.complexity.model_complexity`.
    ``mode="obq"``: Optimal Brain Quantization (:func:`obq_rows`) of the Dense, Conv1D, LSTM and GRU kernels on
    ``calibration`` (a :class:`eqnn.compress.Calibration`, an ``(x, y)`` pair or inputs; None: the fine-tuning
    windows; all of them are used), layer by layer; same grid as "ptq" (per tensor or ``per_channel``), zeros kept;
    other layers with kernels are rounded ("ptq") and listed under ``ptq_fallback``. No training.
    """
    _check_model(model)
    weight_bits = _check_bits(weight_bits, "weight_bits")
    if activation_bits is not None:
        activation_bits = _check_bits(activation_bits, "activation_bits")
    mode = _check_choice(mode, "quantization mode", QUANTIZE_MODES)
    grid = _check_choice(grid, "quantization grid", QUANTIZE_GRIDS)
    pow2_terms = _check_pow2_terms(grid, pow2_terms)
    if grid == "pow2" and mode != "ptq":
        raise ValueError("grid='pow2' is available with mode='ptq' only")
    _check_fine_tune(fine_tune)
    if mode == "qat" and fine_tune is None:
        raise ValueError("mode='qat' needs fine_tune (training data for quantization-aware training)")
    if mode == "qat" and per_channel:
        raise ValueError("per_channel quantization is available with mode='ptq' only")
    if not any(kernel_entries(layer) for layer in model.layers):
        raise ValueError(f"model {model.name!r} has no kernel to quantize")
    data = calibration_data(calibration, fine_tune) if mode == "obq" else None
    if mode == "obq" and data is None:
        raise ValueError("mode='obq' needs calibration data (a few training windows): pass calibration= (or "
                         "fine_tune, whose windows are then used)")
    if mode != "ptq" and is_ldbp(model):
        raise ValueError(f"model {model.name!r} is a learned DBP: quantize_mode {mode!r} is not available for its "
                         "layers (custom layers, quantized post-training); use 'ptq'")
    _seed(fine_tune)
    start = time.perf_counter()
    if mode == "ptq":
        out = copy_model(model)
        scales = {}
        for layer in out.layers:
            scales.update(_ptq_layer(layer, weight_bits, bool(per_channel), bool(quantize_bias), grid, pow2_terms))
        info: dict[str, Any] = {"scales": scales, "fine_tuned": False}
    elif mode == "obq":
        out, info = _obq(model, weight_bits, bool(per_channel), bool(quantize_bias), data.x)
        info["fine_tuned"] = False
    if mode in ("ptq", "obq"):
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
    extra = {} if grid == "uniform" else {"pow2_terms": pow2_terms}
    if grid != "uniform":
        step.update(grid=grid, pow2_terms=pow2_terms)
    return attach_info(out, model, step, weight_bits=weight_bits, activation_bits=activation_bits,
                        quantize_bias=bool(quantize_bias), **extra)

