"""Counting primitives of the NN cost: bit checks, CSD digits, the grid of quantized weights, the per-layer tally
of the formulas and the operation-counting reference inference (no TensorFlow import).

Layer types (:mod:`eqnn.layers`) count their operations with :class:`Tally` (the formulas, from the weights) and
:class:`Counter` (the reference: every operation performed one by one in NumPy float64); the rules are in the
docstring of :mod:`eqnn.complexity`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np

from channel.validation import check_int

from ..limits import COUNT_MAX_BITS as MAX_BITS
from ..limits import COUNT_MIN_BITS as MIN_BITS
from ..limits import DEFAULT_COUNT_BITS as DEFAULT_BITS

FREE_ACTIVATIONS = frozenset({"linear", "relu"})
LEAKY_RELU_FUNCTION_ALPHA = 0.2  # slope of tf.nn.leaky_relu, what keras' "leaky_relu" string resolves to
MAX_POW2_TERMS = 8  # terms of a power-of-two weight (sums of at most this many signed powers of two)


class ComplexityError(ValueError):
    """A model, layer or argument that this module cannot cost."""


def check_bits(name: str, value: Optional[int]) -> int:
    """A bit width in [2, 32], or ``DEFAULT_BITS`` (32) for ``None`` (unquantized); else :class:`ComplexityError`."""
    if value is None:
        return DEFAULT_BITS
    try:
        return check_int(name, value, MIN_BITS, MAX_BITS, error=ComplexityError)
    except ComplexityError as exc:
        raise ComplexityError(f"{exc} or None (unquantized, counted as {DEFAULT_BITS} bits)") from None


def check_count(name: str, value: Any, low: int, high: Optional[int] = None) -> int:
    """An integer count in ``[low, high]``; else :class:`ComplexityError`."""
    return check_int(name, value, low, high, error=ComplexityError)


def ceil_log2(k: int) -> int:
    """``ceil(log2 k)`` for ``k >= 1`` (0 for k <= 1): the extra accumulator bits of a sum of ``k`` terms."""
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


def pow2_max_level(bits: int, terms: int) -> int:
    """The largest integer magnitude of the power-of-two grid (:func:`eqnn.compress.quantize_array` with
    ``grid="pow2"``): ``2^(bits-1) - 1`` (two CSD digits, ``2^(bits-1) - 2^0``) for ``terms >= 2``, ``2^(bits-2)``
    for ``terms = 1``."""
    return 2 ** (bits - 1) - 1 if terms >= 2 else 2 ** (bits - 2)


def pow2_levels(bits: int, terms: int) -> np.ndarray:
    """The non-negative integers of the power-of-two grid: ``0 .. pow2_max_level(bits, terms)`` whose canonical
    signed digit form has at most ``terms`` non-zero digits (sums of at most ``terms`` signed powers of two)."""
    candidates = np.arange(pow2_max_level(bits, terms) + 1, dtype=np.int64)
    return candidates[csd_digit_count(candidates) <= terms]


def pow2_integers(weights: np.ndarray, bits: int, terms: int) -> np.ndarray:
    """Signed integers of ``weights`` on the power-of-two grid of ``bits`` bits and ``terms`` terms: scale
    ``s = max|w| / pow2_max_level(bits, terms)`` per tensor (per index of the last axis instead if the weights lie
    on such per-channel grids and not on the per-tensor one), ``q = round(w / s)`` (then the nearest level of
    :func:`pow2_levels`). Weights quantized by ``quantize_array(w, bits, grid="pow2", pow2_terms=terms)`` give
    their own integers back exactly."""
    w = np.asarray(weights, dtype=np.float64)
    if w.size == 0:
        return np.zeros(w.shape, dtype=np.int64)
    levels = pow2_levels(bits, terms)
    top = float(levels[-1])

    def grid(axes):
        scale = np.max(np.abs(w), axis=axes, keepdims=True) / top
        ratio = np.abs(w) / np.where(scale > 0, scale, 1.0)
        index = np.clip(np.searchsorted(levels, ratio), 1, len(levels) - 1)
        lower, upper = levels[index - 1], levels[index]
        q = np.where(ratio - lower <= upper - ratio, lower, upper)
        exact = bool(np.all(np.abs(ratio - q) <= 1e-3 + 1e-6 * q))
        return (np.sign(w) * q).astype(np.int64), exact

    q, exact = grid(None)
    if exact or w.ndim < 2:
        return q
    q_channel, exact_channel = grid(tuple(range(w.ndim - 1)))
    return q_channel if exact_channel else q


def signed_digits(value: int) -> list[tuple[int, int]]:
    """The canonical signed digits of an integer: ``[(sign, exponent), ...]`` with ``value = sum sign 2^exponent``
    (the non-adjacent form; ``len`` is :func:`csd_digit_count`)."""
    n, sign, exponent, out = abs(int(value)), 1 if value >= 0 else -1, 0, []
    while n:
        if n & 1:
            digit = 2 - (n & 3)
            out.append((sign * digit, exponent))
            n -= digit
        n >>= 1
        exponent += 1
    return out


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


def constant_digits(value: float, bits: int) -> int:
    """CSD digits of a constant ``|value| < 2`` as a fixed-point number with ``bits - 1`` fractional bits."""
    return int(csd_digit_count([int(round(abs(value) * 2 ** (bits - 1)))])[0])


def average_csd_digits(bits: int) -> float:
    """Average non-zero CSD digit count of a ``bits``-bit constant (sign + ``bits - 1`` magnitude bits):
    ``(bits - 1)/3 + 1/9``."""
    return (bits - 1) / 3 + 1 / 9


def activation_name(fn) -> str:
    if fn is None:
        return "linear"
    return getattr(fn, "__name__", type(fn).__name__)


def is_free_activation(fn) -> bool:
    return activation_name(fn) in FREE_ACTIVATIONS



# ----------------------------------------------------------------------------------------------- formulas


@dataclass
class Tally:
    """Operation counts of one window for one layer, by the formulas of :mod:`eqnn.complexity`.

    ``bw``, ``ba``: weight and activation bits; ``act_mult``: multiplications per non-free activation. Each call
    adds to ``multiplications``, ``additions``, ``activations``, ``bop`` and ``nabs``: ``const_products`` (variable x
    constant: ``b_w b_a`` BoP, ``2k - 1`` NABS), ``var_products`` (variable x variable: ``b_a^2``, ``2 b_a - 1``),
    ``adds`` (at an accumulator ``width``), ``activate`` (an activation on ``count`` elements), ``leaky``.
    ``pow2_terms``: None (weights on the uniform grid: a product by a constant costs ``b_w b_a`` BoP), or ``k``
    (weights on the power-of-two grid of :func:`pow2_integers`): every product by a constant of ``k'`` CSD digits
    is ``k'`` shifts (no bit operation: wiring) and ``k' - 1`` additions at ``b_w + b_a`` bits, in BoP
    ``(k' - 1)(b_w + b_a)``; NABS is ``2 k' - 1`` on either grid. :meth:`integers` gives the weights' integers on
    the grid in use.
    """

    bw: int
    ba: int
    act_mult: int
    pow2_terms: Optional[int] = None
    multiplications: int = 0
    additions: int = 0
    activations: int = 0
    bop: int = 0
    nabs: int = 0

    def const_products(self, count: int, csd_digits: np.ndarray, times: int = 1) -> None:
        """``count`` products of a variable by constants with the given CSD digit counts, ``times`` over."""
        k = np.asarray(csd_digits, dtype=np.int64)
        self.multiplications += times * count
        if self.pow2_terms is None:
            self.bop += times * count * self.bw * self.ba
        else:
            self.bop += times * int(np.sum(np.maximum(k - 1, 0))) * (self.bw + self.ba)
        self.nabs += times * int(np.sum(np.where(k > 0, 2 * k - 1, 0)))

    def integers(self, weights: np.ndarray) -> np.ndarray:
        """The integers of a weight tensor on the grid in use (:func:`quantize_to_integers` or, with
        ``pow2_terms``, :func:`pow2_integers`)."""
        if self.pow2_terms is None:
            return quantize_to_integers(weights, self.bw)
        return pow2_integers(weights, self.bw, self.pow2_terms)

    def digits(self, weights: np.ndarray) -> np.ndarray:
        """CSD digit counts of the weights' integers on the grid in use."""
        return csd_digit_count(self.integers(weights))

    def var_products(self, count: int) -> None:
        self.multiplications += count
        self.bop += count * self.ba * self.ba
        self.nabs += count * (2 * self.ba - 1)

    def adds(self, count: int, width: int) -> None:
        self.additions += count
        self.bop += count * width
        self.nabs += count

    def activate(self, fn, count: int) -> None:
        if not count or is_free_activation(fn):
            return
        if activation_name(fn) == "leaky_relu":
            self.leaky(LEAKY_RELU_FUNCTION_ALPHA, count)
            return
        self.activations += count
        self.var_products(count * self.act_mult)

    def leaky(self, alpha: float, count: int) -> None:
        """Leaky ReLU on ``count`` elements: one product by the constant ``alpha`` each."""
        self.const_products(count, np.full(count, constant_digits(alpha, self.bw)))


def count_products(tally: Tally, W: np.ndarray, csd: np.ndarray, times: int) -> None:
    """Count ``times`` products of each input ``x_i`` with the distinct non-zero weights of row ``i`` of ``W``."""
    mults, nabs_digits = 0, []
    for i in range(W.shape[0]):
        row = W[i]
        nz = row != 0
        values, first = np.unique(row[nz], return_index=True)
        mults += len(values)
        nabs_digits.append(csd[i][nz][first])
    digits = np.concatenate(nabs_digits) if nabs_digits else np.zeros(0, np.int64)
    tally.const_products(mults, digits, times)


def count_sums(tally: Tally, W: np.ndarray, bias: Optional[np.ndarray], times: int) -> None:
    """Count ``times`` the sums of each column of ``x W + b``: ``nnz(W[:, j]) + [b_j != 0]`` terms each."""
    terms = np.count_nonzero(W, axis=0)
    if bias is not None:
        terms = terms + (bias != 0)
    for t in terms:
        if t > 1:
            tally.adds(times * int(t - 1), tally.bw + tally.ba + ceil_log2(int(t)))


def matvec(tally: Tally, W: np.ndarray, csd: np.ndarray, bias: Optional[np.ndarray], times: int) -> None:
    """Count ``times`` products ``y = x W + b`` with per-input sharing of distinct non-zero weights."""
    count_products(tally, W, csd, times)
    count_sums(tally, W, bias, times)


def kernel_stats(*kernels: np.ndarray) -> tuple[int, int, int]:
    """(weights, non-zero weights, distinct non-zero values) over all ``kernels`` together."""
    flat = np.concatenate([np.ravel(k) for k in kernels]) if kernels else np.zeros(0)
    nz = flat[flat != 0]
    return int(flat.size), int(nz.size), int(np.unique(nz).size)



# ----------------------------------------------------------------------------------------------- reference


class Counter:
    """Operations performed by the reference inference, one call per real multiplication / addition.

    ``activation(fn, x)`` evaluates an activation in float64 and counts its non-free evaluations
    (``activations``); leaky ReLU counts one product by its slope per element instead.
    ``shift_add_bits`` (None: products are plain multiplications): the weights are read as integers on their
    ``b_w``-bit grid (:meth:`integers`: the uniform grid, or the power-of-two grid of ``pow2_terms`` terms), and
    ``weight_product(x, w, q)`` (the product of a variable by a weight of integer ``q``) is performed as shifts and
    adds of ``x`` by the canonical signed digits of ``q`` (counted in ``shifts`` and ``shift_additions``), then
    scaled by the tensor's scale ``w / q`` (folded into the next stage on any grid, not counted). It counts one
    multiplication either way (RMpS does not depend on the grid).
    """

    def __init__(self, shift_add_bits: Optional[int] = None, pow2_terms: Optional[int] = None) -> None:
        self.multiplications = 0
        self.additions = 0
        self.activations = 0
        self.shift_add_bits = shift_add_bits
        self.pow2_terms = pow2_terms
        self.shift_add = shift_add_bits is not None
        self.shifts = 0
        self.shift_additions = 0

    def integers(self, weights: np.ndarray) -> Optional[np.ndarray]:
        """The weights' integers on their grid for shift-and-add products, or None (plain multiplications)."""
        if not self.shift_add:
            return None
        if self.pow2_terms is None:
            return quantize_to_integers(weights, self.shift_add_bits)
        return pow2_integers(weights, self.shift_add_bits, self.pow2_terms)

    def mul(self, a: float, b: float) -> float:
        self.multiplications += 1
        return a * b

    def weight_product(self, x: float, w: float, q: Optional[int] = None) -> float:
        if not self.shift_add or q is None or q == 0:
            return self.mul(x, w)
        self.multiplications += 1
        digits = signed_digits(q)
        acc = None
        for sign, exponent in digits:
            self.shifts += 1
            term = sign * np.ldexp(float(x), exponent)
            if acc is None:
                acc = term
            else:
                self.shift_additions += 1
                acc = acc + term
        return acc * (float(w) / float(q))

    def add(self, a: float, b: float) -> float:
        self.additions += 1
        return a + b

    def leaky(self, alpha: float, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        scaled = np.array([self.mul(alpha, v) for v in x.ravel()]).reshape(x.shape)  # every element: data-free
        return np.where(x > 0, x, scaled)

    def activation(self, fn, x: np.ndarray) -> np.ndarray:
        name = activation_name(fn)
        x = np.asarray(x, dtype=np.float64)
        if name == "leaky_relu":
            return self.leaky(LEAKY_RELU_FUNCTION_ALPHA, x)
        if name not in FREE_ACTIVATIONS:
            self.activations += x.size
        return activation_value(fn, x)


def activation_value(fn, x: np.ndarray) -> np.ndarray:
    """An activation function evaluated in float64, nothing counted (e.g. a constant computed offline)."""
    name = activation_name(fn)
    x = np.asarray(x, dtype=np.float64)
    if name == "linear":
        return x
    if name == "relu":
        return np.maximum(x, 0.0)
    if name == "leaky_relu":
        return np.where(x > 0, x, LEAKY_RELU_FUNCTION_ALPHA * x)
    if name == "sigmoid":
        with np.errstate(over="ignore"):  # exp overflows to inf for x < -709: the sigmoid is then exactly 0
            return 1.0 / (1.0 + np.exp(-x))
    if name == "tanh":
        return np.tanh(x)
    import tensorflow as tf  # any other activation: keras' own function, in float64

    return np.asarray(fn(tf.constant(x, dtype=tf.float64)), dtype=np.float64)


def ref_sum(counter: Counter, terms: Sequence[float]) -> float:
    """``sum(terms)`` with ``len(terms) - 1`` counted additions (0 for no term)."""
    if not terms:
        return 0.0
    acc = terms[0]
    for t in terms[1:]:
        acc = counter.add(acc, t)
    return acc


def ref_products(counter: Counter, x: np.ndarray, W: np.ndarray,
                 integers: Optional[np.ndarray] = None) -> list[dict]:
    """Per input ``x_i``, a table ``{w: x_i w}`` of its products with the distinct non-zero weights of row ``i``
    (``integers``: the weights' integers on their grid, for a ``shift_add`` counter)."""
    tables = []
    for i in range(W.shape[0]):
        table: dict[float, float] = {}
        for j, w in enumerate(W[i]):
            w = float(w)
            if w != 0 and w not in table:
                table[w] = counter.weight_product(float(x[i]), w, None if integers is None else int(integers[i, j]))
        tables.append(table)
    return tables


def ref_sums(counter: Counter, tables: Sequence[dict], W: np.ndarray, bias: Optional[np.ndarray]) -> np.ndarray:
    """Per column ``j`` of ``W`` (rows: the inputs of ``tables``), the sum of the looked-up products and ``b_j``."""
    out = np.zeros(W.shape[1])
    for j in range(W.shape[1]):
        terms = [tables[i][float(W[i, j])] for i in range(W.shape[0]) if W[i, j] != 0]
        if bias is not None and bias[j] != 0:
            terms.append(float(bias[j]))
        out[j] = ref_sum(counter, terms)
    return out


def ref_matvec(counter: Counter, x: np.ndarray, W: np.ndarray, bias: Optional[np.ndarray],
               integers: Optional[np.ndarray] = None) -> np.ndarray:
    """``x W + b``: per input one product per distinct non-zero weight (a table), then per output its sum."""
    return ref_sums(counter, ref_products(counter, x, W, integers), W, bias)


# ----------------------------------------------------------------------------------------------- layer geometry


def input_shape(layer) -> tuple:
    """The fixed input shape ``(None, ...)`` of a layer called once, else :class:`ComplexityError`."""
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

