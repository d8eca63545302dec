"""Computational complexity of the equalizers: RMpS, BoP and NABS of NN equalizers, CDC and DBP.

This module is the project's statement of cost. It follows the metrics of Freire et al., "Reducing
Computational Complexity of Neural Networks in Optical Channel Equalization: From Concepts to
Implementation", JLT 41(14), 4557-4581, 2023 (arXiv:2208.12866), and their layer formulas of Freire et al.,
"Performance versus Complexity Study of Neural Network Equalizers in Coherent Optical Systems", JLT 39(19), 2021.
Every convention below is a choice; where it differs from the papers it says so.

Metrics
=======
- **RMpS**: real multiplications per recovered symbol.
- **BoP**: bit operations per recovered symbol (Baskin et al., "UNIQ", ACM TOCS 37, 2021, as used by Freire et al.
  2023): a multiplication of a ``b1``-bit by a ``b2``-bit operand costs ``b1*b2``; an addition that accumulates
  ``K`` terms, each a product of ``b1``- and ``b2``-bit operands, is done at the accumulator width
  ``b1 + b2 + ceil(log2 K)`` and costs that many bit operations. (Baskin et al. write ``log2`` without the
  ceiling; we round up because an accumulator has an integer number of bits.)
- **NABS**: number of additions and bit shifts per recovered symbol, when every multiplication by a *constant*
  (a trained weight, an FFT twiddle, a filter coefficient) is replaced by shifts and adds: a constant whose
  magnitude has ``k`` non-zero digits in canonical signed digit (CSD = non-adjacent form) at its bit width costs
  ``k`` shifts and ``k - 1`` additions (``2k - 1``; nothing if it quantizes to 0). A multiplication of two
  variables (e.g. the LSTM gate products) is a generic shift-and-add multiplier over the ``b_a`` bits of one
  operand: ``b_a`` shifts and ``b_a - 1`` additions (``2 b_a - 1``). Every other addition counts 1.

What a "recovered symbol" is
============================
One complex QAM symbol of one polarization. An NN equalizer maps a window of ``T = 2N + 1`` time slots with 4
features (I/Q of both polarizations) to 2 real outputs (one symbol of one polarization) or 4 (the symbols of both
polarizations): its per-window cost is divided by ``symbols_per_window = (number of real outputs) / 2`` (1 or 2;
override it with the argument of that name, e.g. 1 to get the cost per window). CDC filters each polarization
separately, so its per-sample cost of one polarization is already per symbol of that polarization; DBP processes
both polarizations together, so its cost per time slot is divided by 2. The three are thus on one scale.

Neural-network layers (cost of one window, i.e. one inference)
===============================================================
A *matrix-vector product* ``y_j = sum_i x_i W_ij + b_j`` (``W`` of shape ``(n_in, n_out)``) is counted on the
ACTUAL weights:

- multiplications ``= sum_i D_i``, where ``D_i`` is the number of distinct non-zero values in row ``i`` of ``W``
  (the weights that multiply input ``x_i``): each input is multiplied once by each distinct non-zero value and the
  product is reused by every output that has that weight. Pruned (exactly zero) weights cost nothing; with
  unshared float weights ``D_i`` is the number of non-zero weights of row ``i`` (barring two float weights that
  happen to be equal, which are then legitimately shared), so a dense unpruned layer costs ``n_in n_out``
  (Freire et al.); a clustered layer with ``C`` clusters costs at most ``n_in min(C, n_out)``.
- additions: output ``j`` sums ``K_j = nnz(W[:, j]) + [b_j != 0]`` terms with ``max(K_j - 1, 0)`` additions
  (the bias is a term of the sum when the layer uses a bias and it is non-zero).
- BoP ``= mults * b_w b_a + sum_j max(K_j - 1, 0) (b_w + b_a + ceil(log2 K_j))``.
- NABS ``= sum_i sum_{distinct v in row i} (2 k(v) - 1) + additions`` with ``k(v)`` the CSD digit count of ``v``
  quantized to ``b_w`` bits (see below).

Layers:

- **Dense** ``(n_i -> n_n)``: one matrix-vector product per position (``P = 1`` for a 2-D input; a Dense applied
  to ``(T, C)`` acts on each of the ``T`` positions). Unpruned: RMpS ``= P n_i n_n`` (Freire 2021/2023).
- **LSTM** (``n_i`` inputs, ``n_h`` units, keras gate order i, f, c, o): per time step one matrix-vector product
  of ``[x_t, h_{t-1}]`` (``n_i + n_h`` inputs) with ``[W; U]`` (``4 n_h`` outputs, bias ``b``), then
  ``c_t = f c_{t-1} + i g`` (2 n_h multiplications, n_h additions) and ``h_t = o tanh(c_t)`` (n_h
  multiplications). The whole window recurrence is counted for every recovered symbol, all ``T`` steps alike
  (the zero initial state is not exploited), whether or not the layer returns sequences. Unpruned:
  RMpS ``= T (4 n_h n_i + 4 n_h^2 + 3 n_h)`` = ``T n_h (4 n_i + 4 n_h + 3)`` (the LSTM formula of Freire et
  al. 2021 and 2023 with ``n_s = T``). The 3 n_h gate products multiply two variables (BoP ``b_a^2`` each, NABS
  ``2 b_a - 1`` each); the cell update adds two ``b_a x b_a`` products (BoP ``2 b_a + 1`` each).
- **Bidirectional(LSTM)**: the forward and the backward LSTM, each over the whole window (twice the LSTM), plus
  the merge: "concat" is free, "sum" adds ``n_h`` per output position, "mul" multiplies ``n_h`` per position,
  "ave" adds and multiplies by the constant 0.5 (1 CSD digit) ``n_h`` per position.
- **Conv1D** (``kernel_size`` K, ``C_in`` channels, ``F`` filters, stride s, dilation d, padding valid / same /
  causal, ``groups = 1``): the window is zero-padded as keras does, and every one of the ``L_out`` output
  positions of the layer is computed for every symbol (the per-window convention of Freire et al. 2021, whose
  formula ``F C_in K ((T + 2 pad - d (K - 1) - 1)/s + 1)`` also counts the products with the padded zeros; we do
  the same). Products are shared per input element ``x[p, c]`` (of the padded input) over the distinct non-zero
  values ``W[k, c, f]`` of the taps ``k`` that reach it; unpruned: RMpS ``= L_out K C_in F``. Each output
  ``(o, f)`` sums ``nnz(W[:, :, f]) + [b_f != 0]`` terms.
- **Activation functions** (of Dense, Conv1D, LSTM and ``Activation`` layers): ReLU and linear cost nothing.
  Leaky ReLU (the ``LeakyReLU`` layer, slope ``alpha``, or the ``"leaky_relu"`` function, slope 0.2) costs one
  multiplication by the constant ``alpha`` per element, for every element (a data-independent count: any element
  may be negative); in BoP ``b_w b_a``, in NABS ``2 k - 1`` with ``k`` the CSD digits of
  ``round(alpha 2^(b_w - 1))``. Every evaluation of any other function (sigmoid, tanh, elu, gelu, swish, ...) is
  counted in ``activations_per_window`` and costs
  ``activation_multiplications`` real multiplications (default 0: a look-up table; the layer RMpS formulas of
  Freire et al. contain no activation term either). A non-zero value is charged as variable x variable products
  in BoP (``b_a^2``) and NABS (``2 b_a - 1``).
- **Free layers**: InputLayer, Flatten, Reshape, Permute, Dropout (and its variants), GaussianNoise,
  ActivityRegularization, and ReLU layers with ``negative_slope = threshold = 0``: no arithmetic at inference.
  Nested models are expanded. Any other layer type raises :class:`ComplexityError`; so do TFMOT wrappers (strip
  them first).

Bit widths
==========
``weight_bits`` (``b_w``) and ``activation_bits`` (``b_a``): integers in [2, 32]; ``None`` means unquantized
32-bit float, for which BoP and NABS are computed as if the operands were 32-bit fixed point (the common baseline
of the BoP literature; a float32 multiplier is not cheaper than a 32-bit integer one). For NABS every weight
tensor (kernel, recurrent kernel) is put on the symmetric two's-complement ``b_w``-bit grid of
:func:`eqnn.compress.quantize_array`: ``q = clip(round(w / s), -2^(b_w-1), 2^(b_w-1) - 1)``,
``s = max(max(W) / (2^(b_w-1) - 1), -min(W) / 2^(b_w-1))``, per tensor, or per index of the last axis when the
weights lie exactly on such per-channel grids and not on the per-tensor one; ``k(w)`` is the number of non-zero
CSD digits of ``|q|``. Weights quantized to ``b_w`` bits by that function thus give their own integers back
exactly; for any other weights the digits are those of the nearest grid point.

Classical DSP
=============
- **Dispersion memory** (taps): ``N_CD = ceil(|beta2| L 2 pi B F_s)``: the group-delay spread
  ``|beta2| L 2 pi B`` of the signal bandwidth ``B = R_s (1 + rolloff)`` over length ``L``, in samples at
  ``F_s = sps R_s``. (Savory's tap count, Opt. Express 16(2), 2008, uses ``B = F_s``; beta3 is neglected.)
- **CDC**: frequency-domain overlap-save per polarization (Spinnler, IEEE JSTQE 16(5), 2010; Freire et al.
  2021/2023): a block of ``N_FFT`` samples costs a radix-2 FFT and IFFT (``(N_FFT/2) log2 N_FFT`` complex
  multiplications each, no trivial-twiddle savings) and ``N_FFT`` filter coefficients, i.e. ``N_FFT (log2 N_FFT +
  1)`` complex multiplications of 4 real multiplications and 2 real additions; each butterfly adds 2 complex
  additions (4 real). The block yields ``N_FFT - N_CD + 1`` samples, so
  ``RMpS_CDC = sps * 4 N_FFT (log2 N_FFT + 1) / (N_FFT - N_CD + 1)``, with ``N_FFT`` the power of two that
  minimizes it (unless given).
- **DBP** with ``k`` steps per span over ``n_spans`` spans at ``sps`` samples per symbol: ``n_spans k`` steps,
  each a linear step (dispersion of ``L_span / k``) by overlap-save as for CDC with its own tap count and optimal
  FFT size, on both polarizations, plus a nonlinear step per dual-polarization sample: ``|A_x|^2 + |A_y|^2`` (4
  multiplications, 3 additions), the phase scale ``xi (8/9) gamma L_eff`` (1 multiplication by a constant),
  ``exp(j phi)`` by a look-up table of cos/sin (``exp_multiplications = 0``; a 2nd-order Taylor series would be
  about 2), and the rotation of both polarizations (2 complex multiplications: 8 multiplications, 4 additions).
  The span loss is folded into the filter coefficients. Per single-polarization symbol:
  ``RMpS_DBP = n_spans k sps (2 RMpS_lin + 13 + exp_multiplications) / 2`` with ``RMpS_lin`` the overlap-save
  multiplications per sample of one polarization.
- DSP BoP and NABS at ``bits`` (default 32): multiplications ``b^2``; additions that sum two products (inside a
  complex multiplication, and the power) at ``2b + 1`` bits, other additions (FFT butterflies) at ``b + 1`` (the
  fixed-point FFT rounds each stage back to ``b`` bits). In NABS, multiplications by constants (twiddles, filter
  coefficients, the phase scale) cost ``2 k_avg - 1`` with ``k_avg = (b - 1)/3 + 1/9`` the average CSD digit
  count of a ``(b - 1)``-bit magnitude; products of two variables cost ``2b - 1``.

Verification
============
:func:`count_multiplications_reference` runs the forward pass of a model on one window in NumPy (float64),
performing exactly the operations described above one by one (per input, one product per distinct non-zero weight,
reused; zero weights skipped), and counts them; its output equals ``model.predict`` and its counts equal
:func:`model_complexity` (tests/test_complexity.py).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import numpy as np

from channel.config import LinkConfig

DEFAULT_BITS = 32
MIN_BITS, MAX_BITS = 2, 32

_FREE_ACTIVATIONS = frozenset({"linear", "relu"})
_LEAKY_RELU_FUNCTION_ALPHA = 0.2  # slope of tf.nn.leaky_relu, what keras' "leaky_relu" string resolves to
_FREE_LAYER_TYPES = ("InputLayer", "Flatten", "Reshape", "Permute", "Dropout", "SpatialDropout1D",
                     "SpatialDropout2D", "GaussianNoise", "GaussianDropout", "AlphaDropout",
                     "ActivityRegularization")
_MERGE_MODES = ("concat", "sum", "mul", "ave")
_UNSUPPORTED_SUBCLASSES = frozenset({"Conv1DTranspose"})  # subclasses of supported types that compute otherwise


class ComplexityError(ValueError):
    """A model, layer or argument that this module cannot cost."""


# ----------------------------------------------------------------------------------------------- helpers


def _check_bits(name: str, value: Optional[int]) -> int:
    if value is None:
        return DEFAULT_BITS
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ComplexityError(f"{name} = {value!r}: must be an integer in [{MIN_BITS}, {MAX_BITS}] or None "
                              f"(unquantized, counted as {DEFAULT_BITS} bits)")
    if not MIN_BITS <= int(value) <= MAX_BITS:
        raise ComplexityError(f"{name} = {value!r} is out of range: allowed integers in [{MIN_BITS}, {MAX_BITS}] "
                              f"or None (unquantized, counted as {DEFAULT_BITS} bits)")
    return int(value)


def _check_count(name: str, value: Any, low: int, high: Optional[int] = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low \
            or (high is not None and value > high):
        rng = f"[{low}, {'inf' if high is None else high}]"
        raise ComplexityError(f"{name} = {value!r}: allowed integers in {rng}")
    return int(value)


def _ceil_log2(k: int) -> int:
    return 0 if k <= 1 else int(k - 1).bit_length()


def csd_digit_count(values) -> np.ndarray:
    """Number of non-zero digits of the canonical signed digit (non-adjacent form) of each integer's magnitude.

    The NAF has the fewest non-zero digits of all signed-digit representations, no two adjacent. Examples:
    ``7 = 8 - 1`` has 2, ``11 = 16 - 4 - 1`` has 3, ``0`` has 0.
    """
    n = np.abs(np.asarray(values, dtype=np.int64))
    count = np.zeros(n.shape, dtype=np.int64)
    while np.any(n):
        odd = (n & 1) == 1
        digit = np.where(odd, 2 - (n & 3), 0)  # +1 if n % 4 == 1, -1 if n % 4 == 3
        count += odd
        n = (n - digit) >> 1
    return count


def _grid(w: np.ndarray, bits: int, axes) -> tuple[np.ndarray, bool]:
    hi, lo = 2.0 ** (bits - 1) - 1, 2.0 ** (bits - 1)
    scale = np.maximum(np.max(w, axis=axes, keepdims=True) / hi, -np.min(w, axis=axes, keepdims=True) / lo)
    scale = np.maximum(scale, 0.0)
    ratio = w / np.where(scale > 0, scale, 1.0)
    q = np.clip(np.rint(ratio), -lo, hi)
    # float32 weights carry a relative rounding error of ~1e-7 (value and scale): tolerate it, far below 1/2
    exact = bool(np.all(np.abs(ratio - q) <= 1e-3 + 1e-6 * np.abs(q)))
    return q.astype(np.int64), exact


def quantize_to_integers(weights: np.ndarray, bits: int) -> np.ndarray:
    """Signed integers of ``weights`` on the symmetric two's-complement grid of ``bits`` bits.

    ``q = clip(round(w / s), -2^(bits-1), 2^(bits-1) - 1)`` with ``s = max(max(w) / (2^(bits-1) - 1),
    -min(w) / 2^(bits-1))`` (the rule of :func:`eqnn.compress.quantize_array`), per tensor; per index of the last
    axis instead if the weights lie exactly on per-channel grids but not on the per-tensor one. All zeros for an
    all-zero tensor.
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.size == 0:
        return np.zeros(w.shape, dtype=np.int64)
    q, exact = _grid(w, bits, None)
    if exact or w.ndim < 2:
        return q
    q_channel, exact_channel = _grid(w, bits, tuple(range(w.ndim - 1)))
    return q_channel if exact_channel else q


def _constant_digits(value: float, bits: int) -> int:
    """CSD digits of a constant ``|value| < 2`` as a fixed-point number with ``bits - 1`` fractional bits."""
    return int(csd_digit_count([int(round(abs(value) * 2 ** (bits - 1)))])[0])


def average_csd_digits(bits: int) -> float:
    """Average non-zero CSD digit count of a ``bits``-bit constant (sign + ``bits - 1`` magnitude bits):
    ``(bits - 1)/3 + 1/9``."""
    return (bits - 1) / 3 + 1 / 9


def _activation_name(fn) -> str:
    if fn is None:
        return "linear"
    return getattr(fn, "__name__", type(fn).__name__)


def _is_free_activation(fn) -> bool:
    return _activation_name(fn) in _FREE_ACTIVATIONS


# ----------------------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Complexity:
    """Cost of a classical DSP block per recovered single-polarization symbol.

    Attributes:
        name: "CDC" or "DBP-<k>" (k steps per span).
        rmps: real multiplications per symbol.
        additions: real additions per symbol.
        bop: bit operations per symbol at ``bits``.
        nabs: additions and bit shifts per symbol at ``bits``.
        bits: the bit width of samples and coefficients used for BoP/NABS.
        details: the parameters behind the numbers (FFT sizes, taps, samples per symbol, ...).
    """

    name: str
    rmps: float
    additions: float
    bop: float
    nabs: float
    bits: int
    details: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class LayerComplexity:
    """Cost of one layer: per window (one inference, integers) and per recovered symbol (floats).

    Attributes:
        name, type: the layer's name and class name.
        rmps, additions, bop, nabs: per recovered symbol (per-window values / ``symbols_per_window``).
        multiplications_per_window: real multiplications of one inference, activation cost included.
        additions_per_window, bop_per_window, nabs_per_window: the same for the other metrics.
        activations_per_window: evaluations of non-free activation functions (sigmoid, tanh, ...).
        n_weights: multiplicative weights (kernel, recurrent kernel; biases excluded).
        n_nonzero: non-zero ones among them.
        n_distinct: distinct non-zero values among them.
    """

    name: str
    type: str
    rmps: float
    additions: float
    bop: float
    nabs: float
    multiplications_per_window: int
    additions_per_window: int
    bop_per_window: int
    nabs_per_window: int
    activations_per_window: int
    n_weights: int
    n_nonzero: int
    n_distinct: int

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class ModelComplexity:
    """Cost of a whole NN equalizer: totals per recovered symbol and the per-layer breakdown.

    Attributes:
        rmps, additions, bop, nabs: totals per recovered single-polarization symbol.
        multiplications_per_window, additions_per_window, bop_per_window, nabs_per_window,
        activations_per_window: totals for one inference (one window).
        symbols_per_window: recovered symbols per inference (real outputs / 2 unless given).
        weight_bits, activation_bits: bit widths used (32 when unquantized).
        quantized: False if both widths were None (unquantized float).
        activation_multiplications: multiplications charged per non-free activation evaluation.
        n_weights, n_nonzero, n_distinct: summed over layers (n_distinct: per layer, summed).
        layers: tuple of :class:`LayerComplexity`, in model order (free layers included, at zero cost).
    """

    rmps: float
    additions: float
    bop: float
    nabs: float
    multiplications_per_window: int
    additions_per_window: int
    bop_per_window: int
    nabs_per_window: int
    activations_per_window: int
    symbols_per_window: int
    weight_bits: int
    activation_bits: int
    quantized: bool
    activation_multiplications: int
    n_weights: int
    n_nonzero: int
    n_distinct: int
    layers: tuple = ()

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["layers"] = [layer.to_dict() for layer in self.layers]
        return d


@dataclass(frozen=True)
class ReferenceCount:
    """Result of :func:`count_multiplications_reference` for one window.

    Attributes:
        output: the model output for the window, float64, shape ``model.output_shape[1:]``.
        multiplications: real multiplications performed (activation cost included).
        additions: real additions performed.
        activations: non-free activation evaluations performed.
    """

    output: np.ndarray
    multiplications: int
    additions: int
    activations: int


# ----------------------------------------------------------------------------------------------- classical DSP


def dispersion_taps(config: LinkConfig, length_m: float, samples_per_symbol: int,
                    bandwidth_hz: Optional[float] = None) -> int:
    """``N_CD = max(1, ceil(|beta2| L 2 pi B F_s))``: dispersion memory of ``length_m`` of fiber in samples.

    ``B`` defaults to the signal bandwidth ``R_s (1 + rolloff)``; ``F_s = samples_per_symbol * R_s``.
    """
    if bandwidth_hz is None:
        bandwidth_hz = config.transmitter.symbol_rate * (1 + config.transmitter.rolloff)
    elif not (isinstance(bandwidth_hz, (int, float)) and math.isfinite(bandwidth_hz) and bandwidth_hz > 0):
        raise ComplexityError(f"bandwidth_hz = {bandwidth_hz!r}: allowed a finite number > 0 (Hz) or None")
    fs = samples_per_symbol * config.transmitter.symbol_rate
    spread_samples = abs(config.fiber.beta2) * length_m * 2 * math.pi * bandwidth_hz * fs
    return max(1, math.ceil(spread_samples - 1e-9))


def overlap_save_rmps_per_sample(fft_size: int, taps: int) -> float:
    """Real multiplications per output sample of one polarization: ``4 N (log2 N + 1) / (N - N_CD + 1)``."""
    return 4 * fft_size * (math.log2(fft_size) + 1) / (fft_size - taps + 1)


def optimal_fft_size(taps: int, max_log2: int = 24) -> int:
    """The power of two ``N >= max(2, taps)`` minimizing :func:`overlap_save_rmps_per_sample` (smallest on ties)."""
    start = max(1, math.ceil(math.log2(max(taps, 2))))
    best, best_cost = None, math.inf
    for m in range(start, max(start, max_log2) + 1):
        n = 2**m
        cost = overlap_save_rmps_per_sample(n, taps)
        if cost < best_cost - 1e-12:
            best, best_cost = n, cost
    return best


def _overlap_save_ops(fft_size: int, taps: int) -> dict:
    """Operations per output sample of one polarization of an overlap-save filter (see module docstring)."""
    n, lg = fft_size, math.log2(fft_size)
    outputs = n - taps + 1
    complex_mults = n * lg + n  # FFT + IFFT twiddles (n/2 log2 n each) + n filter coefficients
    return {"const_mults": 4 * complex_mults / outputs,
            "product_adds": 2 * complex_mults / outputs,
            "plain_adds": 2 * (2 * n * lg) / outputs}  # 2 transforms x (n/2 log2 n butterflies x 4 real adds)


def _dsp_result(name: str, ops: dict, bits: int, details: dict) -> Complexity:
    """Combine operation counts per symbol into a :class:`Complexity`."""
    mults = ops["const_mults"] + ops["var_mults"]
    adds = ops["product_adds"] + ops["plain_adds"]
    bop = mults * bits * bits + ops["product_adds"] * (2 * bits + 1) + ops["plain_adds"] * (bits + 1)
    nabs = ops["const_mults"] * (2 * average_csd_digits(bits) - 1) + ops["var_mults"] * (2 * bits - 1) + adds
    return Complexity(name=name, rmps=mults, additions=adds, bop=bop, nabs=nabs, bits=bits, details=details)


def _check_config(config) -> None:
    if not isinstance(config, LinkConfig):
        raise ComplexityError(f"config: expected a channel.LinkConfig, got {type(config).__name__}")


def cdc_complexity(config: LinkConfig, samples_per_symbol: int = 2, fft_size: Optional[int] = None,
                   bits: Optional[int] = None, bandwidth_hz: Optional[float] = None) -> Complexity:
    """Frequency-domain (overlap-save) CDC of the whole link, per recovered symbol of one polarization.

    ``RMpS = sps * 4 N_FFT (log2 N_FFT + 1) / (N_FFT - N_CD + 1)`` (Spinnler 2010; Freire et al. 2021/2023),
    ``N_CD = ceil(|beta2| L_total 2 pi B F_s)``, ``N_FFT`` the optimal power of two unless given.

    Args:
        config: the link.
        samples_per_symbol: oversampling of the CDC, integer in [1, 64] (default 2).
        fft_size: a power of two >= N_CD, or None for the cheapest.
        bits: sample/coefficient width for BoP and NABS, integer in [2, 32] (None: 32).
        bandwidth_hz: bandwidth B of the dispersion memory (default ``R_s (1 + rolloff)``).
    """
    _check_config(config)
    sps = _check_count("samples_per_symbol", samples_per_symbol, 1, 64)
    b = _check_bits("bits", bits)
    taps = dispersion_taps(config, config.total_length, sps, bandwidth_hz)
    n = _check_fft_size(fft_size, taps)
    per_sample = _overlap_save_ops(n, taps)
    ops = {"const_mults": sps * per_sample["const_mults"], "var_mults": 0.0,
           "product_adds": sps * per_sample["product_adds"], "plain_adds": sps * per_sample["plain_adds"]}
    details = {"fft_size": n, "taps": taps, "samples_per_symbol": sps, "outputs_per_block": n - taps + 1,
               "length_m": config.total_length, "scheme": "overlap-save, radix-2 FFT/IFFT, per polarization"}
    return _dsp_result("CDC", ops, b, details)


def _check_fft_size(fft_size, taps: int) -> int:
    if fft_size is None:
        return optimal_fft_size(taps)
    if isinstance(fft_size, bool) or not isinstance(fft_size, (int, np.integer)) or fft_size < max(taps, 2) \
            or (int(fft_size) & (int(fft_size) - 1)) != 0:
        raise ComplexityError(f"fft_size = {fft_size!r}: allowed a power of two >= max(2, N_CD = {taps}), or None "
                              "for the cheapest")
    return int(fft_size)


def dbp_complexity(config: LinkConfig, steps_per_span: int, samples_per_symbol: Optional[int] = None,
                   fft_size: Optional[int] = None, exp_multiplications: int = 0, bits: Optional[int] = None,
                   bandwidth_hz: Optional[float] = None) -> Complexity:
    """Split-step DBP with ``steps_per_span`` steps per span, per recovered symbol of one polarization.

    ``RMpS = n_spans k sps (2 * 4 N (log2 N + 1)/(N - N_CD,step + 1) + 4 + 1 + exp_multiplications + 8) / 2``
    with ``N_CD,step = ceil(|beta2| (L_span / k) 2 pi B F_s)`` and ``N`` its optimal FFT size; see the module
    docstring for every term.

    Args:
        config: the link.
        steps_per_span: k, integer in [1, 1000].
        samples_per_symbol: DBP oversampling (default ``config.receiver.dbp_samples_per_symbol``), [1, 64].
        fft_size: FFT size of each linear step (power of two >= N_CD,step), or None for the cheapest.
        exp_multiplications: real multiplications to evaluate ``exp(j phi)`` per sample (0: cos/sin look-up table).
        bits: sample/coefficient width for BoP and NABS, [2, 32] (None: 32).
        bandwidth_hz: bandwidth B of the dispersion memory (default ``R_s (1 + rolloff)``).
    """
    _check_config(config)
    k = _check_count("steps_per_span", steps_per_span, 1, 1000)
    sps = _check_count("samples_per_symbol", config.receiver.dbp_samples_per_symbol
                       if samples_per_symbol is None else samples_per_symbol, 1, 64)
    exp_m = _check_count("exp_multiplications", exp_multiplications, 0)
    b = _check_bits("bits", bits)
    taps = dispersion_taps(config, config.link.span_length / k, sps, bandwidth_hz)
    n = _check_fft_size(fft_size, taps)
    lin = _overlap_save_ops(n, taps)
    n_steps = config.link.n_spans * k
    # per time slot (dual-polarization sample) of one step; divided by 2 polarizations at the end
    per_slot = {"const_mults": 2 * lin["const_mults"] + 1,          # both pols' filters + phase scale
                "var_mults": 4 + exp_m + 8,                          # |A|^2, exp(j phi), 2 complex rotations
                "product_adds": 2 * lin["product_adds"] + 3 + 4,    # power sum, rotations
                "plain_adds": 2 * lin["plain_adds"]}
    ops = {key: value * n_steps * sps / 2 for key, value in per_slot.items()}
    details = {"steps_per_span": k, "n_steps": n_steps, "fft_size": n, "taps_per_step": taps,
               "samples_per_symbol": sps, "outputs_per_block": n - taps + 1,
               "linear_rmps_per_sample_per_pol": 4 * (n * math.log2(n) + n) / (n - taps + 1),
               "nonlinear_rmps_per_dual_pol_sample": 13 + exp_m, "exp_multiplications": exp_m,
               "scheme": "per step: overlap-save linear step on both polarizations + nonlinear phase rotation"}
    return _dsp_result(f"DBP-{k}", ops, b, details)


# ----------------------------------------------------------------------------------------------- NN: model checks


def _keras():
    import tf_keras

    return tf_keras


def _check_model(model) -> None:
    keras = _keras()
    if not isinstance(model, keras.Model):
        origin = type(model).__module__
        hint = (" (this is a Keras 3 model: build equalizers with `import tf_keras as keras`)"
                if origin.startswith("keras") else "")
        raise ComplexityError(f"model: expected a tf_keras.Model, got {type(model).__name__} from {origin}{hint}")
    if not model.built:
        raise ComplexityError("model: the model is not built; give it an input shape, e.g. keras.Input((2N+1, 4))")


def _flatten_layers(model) -> list:
    keras = _keras()
    out = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            out.extend(_flatten_layers(layer))
        else:
            out.append(layer)
    return out


def _check_supported(layer) -> None:
    keras = _keras()
    module = type(layer).__module__
    name = type(layer).__name__
    if "tensorflow_model_optimization" in module:
        raise ComplexityError(
            f"layer {layer.name!r} is a TFMOT wrapper ({name}): strip it first "
            "(tfmot.sparsity.keras.strip_pruning, tfmot.clustering.keras.strip_clustering; for quantization, "
            "copy the quantized weights into the plain model with set_weights and pass weight_bits)")
    if name in _UNSUPPORTED_SUBCLASSES:
        pass
    elif isinstance(layer, (keras.layers.Dense, keras.layers.LSTM, keras.layers.Conv1D, keras.layers.Activation)):
        return
    elif isinstance(layer, keras.layers.Bidirectional):
        if not isinstance(layer.forward_layer, keras.layers.LSTM) or \
                not isinstance(layer.backward_layer, keras.layers.LSTM):
            raise ComplexityError(f"layer {layer.name!r}: Bidirectional is supported around LSTM only, got "
                                  f"{type(layer.forward_layer).__name__}")
        if layer.merge_mode not in _MERGE_MODES:
            raise ComplexityError(f"layer {layer.name!r}: merge_mode = {layer.merge_mode!r}; allowed "
                                  f"{', '.join(map(repr, _MERGE_MODES))}")
        return
    elif name == "ReLU" and (float(layer.negative_slope) != 0 or float(layer.threshold) != 0):
        raise ComplexityError(f"layer {layer.name!r}: ReLU with negative_slope or threshold is not supported; use "
                              "LeakyReLU")
    elif name in _FREE_LAYER_TYPES or name in ("LeakyReLU", "ReLU"):
        return
    raise ComplexityError(
        f"layer {layer.name!r} of type {name} is not supported; supported: Dense, LSTM, Bidirectional(LSTM), "
        f"Conv1D, Activation, LeakyReLU, ReLU and the arithmetic-free {', '.join(_FREE_LAYER_TYPES)}")


def _input_shape(layer) -> tuple:
    try:
        shape = layer.input_shape
    except AttributeError as exc:
        raise ComplexityError(f"layer {layer.name!r}: {exc} (a layer called more than once is not supported)") \
            from exc
    if isinstance(shape, list):
        raise ComplexityError(f"layer {layer.name!r} has several inputs: not supported")
    if any(d is None for d in shape[1:]):
        raise ComplexityError(f"layer {layer.name!r}: input shape {shape} is not fixed; build the model with a "
                              "fixed window, e.g. keras.Input((2N+1, 4))")
    return tuple(shape)


def _conv_geometry(layer, length: int) -> tuple[int, int, int, int, int]:
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


def _check_conv(layer) -> None:
    if layer.data_format != "channels_last" or int(getattr(layer, "groups", 1)) != 1:
        raise ComplexityError(f"layer {layer.name!r}: Conv1D is supported with data_format='channels_last' and "
                              "groups=1 only")


# ----------------------------------------------------------------------------------------------- NN: formulas


@dataclass
class _Tally:
    """Operation counts of one window for one layer."""

    bw: int
    ba: int
    act_mult: int
    multiplications: int = 0
    additions: int = 0
    activations: int = 0
    bop: int = 0
    nabs: int = 0

    def const_products(self, count: int, csd_digits: np.ndarray, times: int = 1) -> None:
        """``count`` products of a variable by constants with the given CSD digit counts, ``times`` over."""
        k = np.asarray(csd_digits, dtype=np.int64)
        self.multiplications += times * count
        self.bop += times * count * self.bw * self.ba
        self.nabs += times * int(np.sum(np.where(k > 0, 2 * k - 1, 0)))

    def var_products(self, count: int) -> None:
        self.multiplications += count
        self.bop += count * self.ba * self.ba
        self.nabs += count * (2 * self.ba - 1)

    def adds(self, count: int, width: int) -> None:
        self.additions += count
        self.bop += count * width
        self.nabs += count

    def activate(self, fn, count: int) -> None:
        if not count or _is_free_activation(fn):
            return
        if _activation_name(fn) == "leaky_relu":
            self.leaky(_LEAKY_RELU_FUNCTION_ALPHA, count)
            return
        self.activations += count
        self.var_products(count * self.act_mult)

    def leaky(self, alpha: float, count: int) -> None:
        """Leaky ReLU on ``count`` elements: one product by the constant ``alpha`` each."""
        self.const_products(count, np.full(count, _constant_digits(alpha, self.bw)))


def _matvec(tally: _Tally, W: np.ndarray, csd: np.ndarray, bias: Optional[np.ndarray], times: int) -> None:
    """Count ``times`` products ``y = x W + b`` with per-input sharing of distinct non-zero weights."""
    mults, nabs_digits = 0, []
    for i in range(W.shape[0]):
        row = W[i]
        nz = row != 0
        values, first = np.unique(row[nz], return_index=True)
        mults += len(values)
        nabs_digits.append(csd[i][nz][first])
    digits = np.concatenate(nabs_digits) if nabs_digits else np.zeros(0, np.int64)
    tally.const_products(mults, digits, times)
    terms = np.count_nonzero(W, axis=0)
    if bias is not None:
        terms = terms + (bias != 0)
    for t in terms:
        if t > 1:
            tally.adds(times * int(t - 1), tally.bw + tally.ba + _ceil_log2(int(t)))


def _weight_stats(*kernels: np.ndarray) -> tuple[int, int, int]:
    flat = np.concatenate([np.ravel(k) for k in kernels]) if kernels else np.zeros(0)
    nz = flat[flat != 0]
    return int(flat.size), int(nz.size), int(np.unique(nz).size)


def _lstm_tally(tally: _Tally, lstm, steps: int) -> tuple:
    kernel = lstm.cell.kernel.numpy()
    recurrent = lstm.cell.recurrent_kernel.numpy()
    bias = lstm.cell.bias.numpy() if lstm.cell.use_bias else None
    n_h = int(lstm.units)
    W = np.vstack([kernel, recurrent])
    csd = np.vstack([csd_digit_count(quantize_to_integers(kernel, tally.bw)),
                     csd_digit_count(quantize_to_integers(recurrent, tally.bw))])
    _matvec(tally, W, csd, bias, steps)
    tally.var_products(steps * 3 * n_h)                       # f*c, i*g, o*act(c)
    tally.adds(steps * n_h, 2 * tally.ba + 1)                 # c = f*c + i*g
    tally.activate(lstm.recurrent_activation, steps * 3 * n_h)
    tally.activate(lstm.activation, steps * 2 * n_h)          # g and act(c)
    return kernel, recurrent


def _layer_tally(layer, bw: int, ba: int, act_mult: int) -> tuple[_Tally, tuple]:
    keras = _keras()
    tally = _Tally(bw=bw, ba=ba, act_mult=act_mult)
    kernels: tuple = ()
    if isinstance(layer, keras.layers.Dense):
        shape = _input_shape(layer)
        positions = int(np.prod(shape[1:-1])) if len(shape) > 2 else 1
        kernel = layer.kernel.numpy()
        bias = layer.bias.numpy() if layer.use_bias else None
        _matvec(tally, kernel, csd_digit_count(quantize_to_integers(kernel, bw)), bias, positions)
        tally.activate(layer.activation, positions * int(layer.units))
        kernels = (kernel,)
    elif isinstance(layer, keras.layers.LSTM):
        shape = _input_shape(layer)
        kernels = _lstm_tally(tally, layer, int(shape[1]))
    elif isinstance(layer, keras.layers.Bidirectional):
        shape = _input_shape(layer)
        steps = int(shape[1])
        kernels = _lstm_tally(tally, layer.forward_layer, steps) + _lstm_tally(tally, layer.backward_layer, steps)
        positions = steps if layer.return_sequences else 1
        n = positions * int(layer.forward_layer.units)
        if layer.merge_mode == "sum":
            tally.adds(n, ba + 1)
        elif layer.merge_mode == "mul":
            tally.var_products(n)
        elif layer.merge_mode == "ave":
            tally.adds(n, ba + 1)
            tally.const_products(n, np.ones(n, np.int64))
    elif isinstance(layer, keras.layers.Conv1D):
        _check_conv(layer)
        shape = _input_shape(layer)
        length, channels = int(shape[1]), int(shape[2])
        left, padded, out_len, s, d = _conv_geometry(layer, length)
        kernel = layer.kernel.numpy()  # (K, C_in, F)
        bias = layer.bias.numpy() if layer.use_bias else None
        csd = csd_digit_count(quantize_to_integers(kernel, bw))
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
        tally.const_products(mults, np.concatenate(digits) if digits else np.zeros(0, np.int64))
        terms = np.count_nonzero(kernel, axis=(0, 1))
        if bias is not None:
            terms = terms + (bias != 0)
        for t in terms:
            if t > 1:
                tally.adds(out_len * int(t - 1), bw + ba + _ceil_log2(int(t)))
        tally.activate(layer.activation, out_len * int(layer.filters))
        kernels = (kernel,)
    elif isinstance(layer, keras.layers.Activation):
        shape = _input_shape(layer)
        tally.activate(layer.activation, int(np.prod(shape[1:])))
    elif type(layer).__name__ == "LeakyReLU":
        shape = _input_shape(layer)
        tally.leaky(float(layer.alpha), int(np.prod(shape[1:])))
    return tally, kernels


def _symbols_per_window(model, symbols_per_window) -> int:
    if symbols_per_window is not None:
        return _check_count("symbols_per_window", symbols_per_window, 1)
    shape = model.output_shape
    if isinstance(shape, list) or any(d is None for d in shape[1:]):
        raise ComplexityError(f"model output shape {shape}: cannot infer symbols_per_window; pass it")
    n_out = int(np.prod(shape[1:]))
    if n_out % 2:
        raise ComplexityError(f"model has {n_out} real outputs, not a whole number of complex symbols: pass "
                              "symbols_per_window")
    return n_out // 2


def model_complexity(model, weight_bits: Optional[int] = None, activation_bits: Optional[int] = None,
                     activation_multiplications: int = 0,
                     symbols_per_window: Optional[int] = None) -> ModelComplexity:
    """RMpS, BoP and NABS of a tf_keras equalizer, per layer and in total, from its actual weights.

    Args:
        model: a built tf_keras model of Dense, LSTM, Bidirectional(LSTM), Conv1D, Activation and arithmetic-free
            layers (TFMOT wrappers stripped), with a fixed input window ``(2N+1, 4)``.
        weight_bits: b_w, integer in [2, 32], or None (unquantized float, counted as 32).
        activation_bits: b_a, integer in [2, 32], or None (unquantized float, counted as 32).
        activation_multiplications: real multiplications per evaluation of a non-ReLU, non-linear activation
            (sigmoid, tanh, ...), integer >= 0; default 0 (look-up table).
        symbols_per_window: recovered single-polarization symbols per inference; default real outputs / 2.

    Returns: :class:`ModelComplexity`; every formula is in the module docstring.

    Raises: :class:`ComplexityError` for a non-tf_keras model, an unsupported layer or a bad argument.
    """
    _check_model(model)
    bw = _check_bits("weight_bits", weight_bits)
    ba = _check_bits("activation_bits", activation_bits)
    act_mult = _check_count("activation_multiplications", activation_multiplications, 0)
    layers = _flatten_layers(model)
    for layer in layers:
        _check_supported(layer)
    spw = _symbols_per_window(model, symbols_per_window)
    results = []
    for layer in layers:
        tally, kernels = _layer_tally(layer, bw, ba, act_mult)
        n_w, n_nz, n_d = _weight_stats(*kernels) if kernels else (0, 0, 0)
        results.append(LayerComplexity(
            name=layer.name, type=type(layer).__name__, rmps=tally.multiplications / spw,
            additions=tally.additions / spw, bop=tally.bop / spw, nabs=tally.nabs / spw,
            multiplications_per_window=tally.multiplications, additions_per_window=tally.additions,
            bop_per_window=tally.bop, nabs_per_window=tally.nabs, activations_per_window=tally.activations,
            n_weights=n_w, n_nonzero=n_nz, n_distinct=n_d))
    tot = {key: sum(getattr(r, key) for r in results)
           for key in ("multiplications_per_window", "additions_per_window", "bop_per_window", "nabs_per_window",
                       "activations_per_window", "n_weights", "n_nonzero", "n_distinct")}
    return ModelComplexity(
        rmps=tot["multiplications_per_window"] / spw, additions=tot["additions_per_window"] / spw,
        bop=tot["bop_per_window"] / spw, nabs=tot["nabs_per_window"] / spw, symbols_per_window=spw,
        weight_bits=bw, activation_bits=ba, quantized=not (weight_bits is None and activation_bits is None),
        activation_multiplications=act_mult, layers=tuple(results), **tot)


# ----------------------------------------------------------------------------------------------- NN: reference


class _Counter:
    def __init__(self) -> None:
        self.multiplications = 0
        self.additions = 0
        self.activations = 0

    def mul(self, a: float, b: float) -> float:
        self.multiplications += 1
        return a * b

    def add(self, a: float, b: float) -> float:
        self.additions += 1
        return a + b

    def leaky(self, alpha: float, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        scaled = np.array([self.mul(alpha, v) for v in x.ravel()]).reshape(x.shape)  # every element: data-free
        return np.where(x > 0, x, scaled)

    def activation(self, fn, x: np.ndarray) -> np.ndarray:
        name = _activation_name(fn)
        x = np.asarray(x, dtype=np.float64)
        if name == "leaky_relu":
            return self.leaky(_LEAKY_RELU_FUNCTION_ALPHA, x)
        if name not in _FREE_ACTIVATIONS:
            self.activations += x.size
        if name == "linear":
            return x
        if name == "relu":
            return np.maximum(x, 0.0)
        if name == "sigmoid":
            return 1.0 / (1.0 + np.exp(-x))
        if name == "tanh":
            return np.tanh(x)
        import tensorflow as tf  # any other activation: keras' own function, in float64

        return np.asarray(fn(tf.constant(x, dtype=tf.float64)), dtype=np.float64)


def _ref_sum(counter: _Counter, terms: Sequence[float]) -> float:
    if not terms:
        return 0.0
    acc = terms[0]
    for t in terms[1:]:
        acc = counter.add(acc, t)
    return acc


def _ref_matvec(counter: _Counter, x: np.ndarray, W: np.ndarray, bias: Optional[np.ndarray]) -> np.ndarray:
    """``x W + b``: per input one product per distinct non-zero weight (a table), then per output its sum."""
    tables = []
    for i in range(W.shape[0]):
        table: dict[float, float] = {}
        for w in W[i]:
            w = float(w)
            if w != 0 and w not in table:
                table[w] = counter.mul(float(x[i]), w)
        tables.append(table)
    out = np.zeros(W.shape[1])
    for j in range(W.shape[1]):
        terms = [tables[i][float(W[i, j])] for i in range(W.shape[0]) if W[i, j] != 0]
        if bias is not None and bias[j] != 0:
            terms.append(float(bias[j]))
        out[j] = _ref_sum(counter, terms)
    return out


def _ref_lstm(counter: _Counter, lstm, x: np.ndarray) -> np.ndarray:
    """Returns the hidden states in processing order, shape (T, n_h) (reversed input if go_backwards)."""
    W = np.vstack([lstm.cell.kernel.numpy(), lstm.cell.recurrent_kernel.numpy()])
    bias = lstm.cell.bias.numpy() if lstm.cell.use_bias else None
    n = int(lstm.units)
    seq = x[::-1] if lstm.go_backwards else x
    h, c = np.zeros(n), np.zeros(n)
    outputs = []
    for x_t in seq:
        z = _ref_matvec(counter, np.concatenate([x_t, h]), W, bias)
        i = counter.activation(lstm.recurrent_activation, z[:n])
        f = counter.activation(lstm.recurrent_activation, z[n:2 * n])
        g = counter.activation(lstm.activation, z[2 * n:3 * n])
        o = counter.activation(lstm.recurrent_activation, z[3 * n:])
        c = np.array([counter.add(counter.mul(f[u], c[u]), counter.mul(i[u], g[u])) for u in range(n)])
        tc = counter.activation(lstm.activation, c)
        h = np.array([counter.mul(o[u], tc[u]) for u in range(n)])
        outputs.append(h)
    return np.array(outputs)


def _ref_conv1d(counter: _Counter, layer, x: np.ndarray) -> np.ndarray:
    kernel = layer.kernel.numpy()
    bias = layer.bias.numpy() if layer.use_bias else None
    n_taps, channels, filters = kernel.shape
    left, padded, out_len, s, d = _conv_geometry(layer, x.shape[0])
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
            out[o, f] = _ref_sum(counter, terms)
    return counter.activation(layer.activation, out)


def _ref_layer(counter: _Counter, layer, x: np.ndarray) -> np.ndarray:
    keras = _keras()
    if isinstance(layer, keras.layers.Dense):
        kernel = layer.kernel.numpy()
        bias = layer.bias.numpy() if layer.use_bias else None
        flat = x.reshape(-1, x.shape[-1])
        out = np.array([_ref_matvec(counter, row, kernel, bias) for row in flat])
        out = out.reshape(x.shape[:-1] + (kernel.shape[1],))
        return counter.activation(layer.activation, out)
    if isinstance(layer, keras.layers.LSTM):
        seq = _ref_lstm(counter, layer, x)
        return seq if layer.return_sequences else seq[-1]
    if isinstance(layer, keras.layers.Bidirectional):
        fwd = _ref_lstm(counter, layer.forward_layer, x)
        bwd = _ref_lstm(counter, layer.backward_layer, x)
        if layer.return_sequences:
            a, b = fwd, bwd[::-1]
        else:
            a, b = fwd[-1], bwd[-1]
        if layer.merge_mode == "concat":
            return np.concatenate([a, b], axis=-1)
        fa, fb = a.ravel(), b.ravel()
        if layer.merge_mode == "sum":
            merged = [counter.add(u, v) for u, v in zip(fa, fb)]
        elif layer.merge_mode == "mul":
            merged = [counter.mul(u, v) for u, v in zip(fa, fb)]
        else:  # ave
            merged = [counter.mul(counter.add(u, v), 0.5) for u, v in zip(fa, fb)]
        return np.array(merged).reshape(a.shape)
    if isinstance(layer, keras.layers.Conv1D):
        _check_conv(layer)
        return _ref_conv1d(counter, layer, x)
    if isinstance(layer, keras.layers.Activation):
        return counter.activation(layer.activation, x)
    name = type(layer).__name__
    if name == "LeakyReLU":
        return counter.leaky(float(layer.alpha), x)
    if name == "ReLU":
        return np.maximum(x, 0.0) if layer.max_value is None else np.clip(x, 0.0, float(layer.max_value))
    if name == "Flatten":
        return x.reshape(-1)
    if name == "Reshape":
        return x.reshape(layer.target_shape)
    if name == "Permute":
        return np.transpose(x, [d - 1 for d in layer.dims])
    return x  # InputLayer, Dropout, noise: identity at inference


def _chain(model) -> list:
    """The layers of a model whose graph is a chain (each layer consumes the previous one's output)."""
    keras = _keras()
    if isinstance(model, keras.Sequential):
        out = []
        for layer in model.layers:
            out.extend(_chain(layer) if isinstance(layer, keras.Model) else [layer])
        return out
    layers = model.layers
    for prev, layer in zip(layers[:-1], layers[1:]):
        if getattr(layer, "input", None) is not getattr(prev, "output", None):
            raise ComplexityError("count_multiplications_reference supports models whose layers form a chain "
                                  f"(layer {layer.name!r} does not take the output of {prev.name!r})")
    out = []
    for layer in layers:
        out.extend(_chain(layer) if isinstance(layer, keras.Model) else [layer])
    return out


def count_multiplications_reference(model, window, activation_multiplications: int = 0) -> ReferenceCount:
    """Run the model on one window in NumPy (float64), counting every operation it performs.

    Matrix-vector products follow the rule of the module docstring literally: for each input, a table of its
    products with each distinct non-zero weight is filled (one multiplication each), and each output sums the
    looked-up products of its non-zero weights and its non-zero bias (one addition per term after the first).
    LSTM steps, Bidirectional merges and Conv1D positions are performed one by one; each evaluation of a non-free
    activation adds ``activation_multiplications``.

    Args:
        model: as for :func:`model_complexity`, with layers forming a chain.
        window: one input window, shape ``model.input_shape[1:]`` (or with a leading batch axis of 1).
        activation_multiplications: cost of one non-free activation evaluation, integer >= 0.

    Returns: :class:`ReferenceCount` (output and counts of this one window).
    """
    _check_model(model)
    act_mult = _check_count("activation_multiplications", activation_multiplications, 0)
    layers = _chain(model)
    for layer in layers:
        _check_supported(layer)
    expected = tuple(model.input_shape[1:])
    x = np.asarray(window, dtype=np.float64)
    if x.shape == (1,) + expected:
        x = x[0]
    if x.shape != expected:
        raise ComplexityError(f"window: shape {x.shape} does not match the model input {expected}")
    counter = _Counter()
    for layer in layers:
        x = _ref_layer(counter, layer, x)
    return ReferenceCount(output=x, multiplications=counter.multiplications + act_mult * counter.activations,
                          additions=counter.additions, activations=counter.activations)
