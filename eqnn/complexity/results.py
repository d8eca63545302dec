"""Results of complexity counting: :class:`Complexity` (CDC, DBP), :class:`LayerComplexity`,
:class:`ModelComplexity` and :class:`ReferenceCount` (NN equalizers). Units: per recovered single-polarization
symbol unless the name says ``_per_window`` (one inference)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np


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
        shifts, shift_additions: with ``shift_add_bits``, the shifts and the additions of the shift-and-add
            products by the weights (each product by a weight of ``k`` CSD digits: ``k`` shifts, ``k - 1``
            additions; these additions are not in ``additions``); 0 otherwise.
    """

    output: np.ndarray
    multiplications: int
    additions: int
    activations: int
    shifts: int = 0
    shift_additions: int = 0

