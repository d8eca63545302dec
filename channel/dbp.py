"""Digital back-propagation (DBP): the inverse link by split-step, at ``dbp_samples_per_symbol``.

Each span is undone in reverse order: the amplifier gain is removed (field / sqrt(G)), then the span
is propagated with the stepper of :mod:`channel.fiber` using negated ``alpha, beta2, beta3`` and the
nonlinear coefficient ``-xi gamma``, with ``steps_per_span`` equal steps. ``xi = 1`` with the forward
step plan inverts a noiseless forward propagation on the same grid exactly (up to rounding).

WDM: single-channel DBP of the received channel (the output of :func:`channel.receiver.select_channel`,
in the channel's own frame) with its local dispersion ``beta2_c`` (:func:`channel.receiver.channel_dispersion`;
``beta2`` for the centre channel or without dispersion slope). The neighbours are not back-propagated, so
their cross-phase modulation and four-wave mixing stay in the signal.

:class:`DigitalBackPropagation` holds what DBP needs (the fiber's SI parameters with the channel's dispersion,
the span length, number of spans and amplifier gain, the symbol rate and oversampling, and the receiver whose
matched filter follows); :meth:`DigitalBackPropagation.from_link` builds it from a :class:`LinkConfig`. The module
functions taking a ``config`` are the same operations on ``DigitalBackPropagation.from_link(config)``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Optional

import numpy as np
from scipy import optimize

from .amplifier import span_gain
from .config import LinkConfig
from .fiber import FiberParameters, SplitStepFourier
from .metrics import effective_snr_db
from .receiver import CoherentReceiver, normalize


@dataclass(frozen=True)
class DigitalBackPropagation:
    """Single-channel DBP of the channel under test of a link of identical spans.

    Attributes:
        params: forward :class:`FiberParameters` (SI) of the fiber as the channel sees it: ``beta2`` is the
            channel's ``beta2_c`` (:meth:`CoherentReceiver.channel_dispersion`); DBP uses their inverse.
        span_length: L_span in m.  n_spans: number of spans.
        gain: linear power gain G of each amplifier (removed before each span is undone).
        symbol_rate: Rs in Hz.  samples_per_symbol: default oversampling of the input.
        receiver: the receiver whose matched filter and sampling follow DBP (:meth:`symbols`).
    """

    params: FiberParameters
    span_length: float
    n_spans: int
    gain: float
    symbol_rate: float
    samples_per_symbol: int
    receiver: CoherentReceiver

    @classmethod
    def from_link(cls, config: LinkConfig) -> "DigitalBackPropagation":
        """DBP of the received channel of ``config`` at ``config.receiver.dbp_samples_per_symbol``."""
        receiver = CoherentReceiver.from_link(config)
        beta2, beta3 = receiver.channel_dispersion()
        params = dataclasses.replace(FiberParameters.from_config(config.fiber), beta2=beta2, beta3=beta3)
        return cls(params=params, span_length=config.link.span_length, n_spans=config.link.n_spans,
                   gain=span_gain(config), symbol_rate=config.transmitter.symbol_rate,
                   samples_per_symbol=config.receiver.dbp_samples_per_symbol, receiver=receiver)

    def backpropagate(self, signal: np.ndarray, steps_per_span: int, xi: float,
                      samples_per_symbol: Optional[int] = None, steps: Optional[np.ndarray] = None) -> np.ndarray:
        """Back-propagate the received field through the whole link.

        Args:
            signal: complex (2, n_symbols * samples_per_symbol), the received field in sqrt(W) (after the
                last amplifier) of the channel under test, as returned by :meth:`CoherentReceiver.select_channel`.
            steps_per_span: number of equal DBP steps per span (ignored if ``steps`` is given).
            xi: nonlinear scaling of gamma, >= 0.
            samples_per_symbol: oversampling of ``signal`` (default: ``self.samples_per_symbol``).
            steps: optional explicit step lengths (m) of one *forward* span; DBP applies them in reverse.

        Returns: complex128 (2, n): the field at the transmitter, before matched filtering.
        """
        sps = samples_per_symbol or self.samples_per_symbol
        if steps is None:
            if steps_per_span < 1:
                raise ValueError(f"steps_per_span = {steps_per_span}: allowed integers >= 1")
            steps = np.full(steps_per_span, self.span_length / steps_per_span)
        solver = SplitStepFourier(signal.shape[-1], sps * self.symbol_rate,
                                  self.params.inverse(xi), np.asarray(steps)[::-1], precision="complex128")
        inv_gain = 1 / math.sqrt(self.gain)

        def remove_gain(spectrum: np.ndarray, span: int) -> np.ndarray:
            spectrum *= inv_gain
            return spectrum

        return solver.propagate(signal, self.n_spans, before_span=remove_gain)

    def symbols(self, signal: np.ndarray, steps_per_span: int, xi: float, tx_symbols: np.ndarray) -> np.ndarray:
        """DBP, matched filter, sampling and gain normalization: (2, n_symbols) unit-scale symbols.

        ``signal`` complex (2, n) at ``self.samples_per_symbol``; ``tx_symbols`` complex (2, n_symbols).
        """
        sps = self.samples_per_symbol
        out = self.backpropagate(signal, steps_per_span, xi)
        return normalize(self.receiver.matched_filter_and_sample(out, sps, overwrite_input=True), tx_symbols)

    def optimize_xi(self, signal: np.ndarray, steps_per_span: int, tx_symbols: np.ndarray,
                    bounds: tuple[float, float] = (0.0, 1.5), tolerance: float = 0.01) -> float:
        """The xi that maximizes the effective SNR of the first half of the block.

        Bounded scalar minimization (Brent) of ``-SNR(xi)``; each evaluation is one full DBP. The SNR is
        measured on symbols ``[0, n/2)`` only. Metrics are then reported on the whole block: fitting one
        scalar on tens of thousands of symbols biases them far less than their confidence interval.
        """
        half = tx_symbols.shape[-1] // 2

        def negative_snr(xi: float) -> float:
            rx = self.symbols(signal, steps_per_span, xi, tx_symbols)
            return -effective_snr_db(normalize(rx[:, :half], tx_symbols[:, :half]), tx_symbols[:, :half])

        res = optimize.minimize_scalar(negative_snr, bounds=bounds, method="bounded",
                                       options={"xatol": tolerance})
        return float(res.x)


def backpropagate(signal: np.ndarray, config: LinkConfig, steps_per_span: int, xi: float,
                  samples_per_symbol: Optional[int] = None, steps: Optional[np.ndarray] = None) -> np.ndarray:
    """:meth:`DigitalBackPropagation.backpropagate` of the link ``config``: complex128 (2, n) from (2, n)."""
    return DigitalBackPropagation.from_link(config).backpropagate(signal, steps_per_span, xi, samples_per_symbol,
                                                                  steps)


def dbp_symbols(signal: np.ndarray, config: LinkConfig, steps_per_span: int, xi: float,
                tx_symbols: np.ndarray) -> np.ndarray:
    """:meth:`DigitalBackPropagation.symbols` of the link ``config``: (2, n_symbols) unit-scale symbols."""
    return DigitalBackPropagation.from_link(config).symbols(signal, steps_per_span, xi, tx_symbols)


def optimize_xi(signal: np.ndarray, config: LinkConfig, steps_per_span: int, tx_symbols: np.ndarray,
                bounds: tuple[float, float] = (0.0, 1.5), tolerance: float = 0.01) -> float:
    """:meth:`DigitalBackPropagation.optimize_xi` of the link ``config``."""
    return DigitalBackPropagation.from_link(config).optimize_xi(signal, steps_per_span, tx_symbols, bounds, tolerance)
