"""Digital back-propagation (DBP): the inverse link by split-step, at ``dbp_samples_per_symbol``.

Each span is undone in reverse order: the amplifier gain is removed (field / sqrt(G)), then the span
is propagated with the stepper of :mod:`channel.fiber` using negated ``alpha, beta2, beta3`` and the
nonlinear coefficient ``-xi gamma``, with ``steps_per_span`` equal steps. ``xi = 1`` with the forward
step plan inverts a noiseless forward propagation on the same grid exactly (up to rounding).

Position of the nonlinear step. A DBP step undoes a forward step ``[z0, z0 + h]`` of a span; the field's power
is highest at ``z0`` (the step's high-power end, reached last by DBP, whose field grows with ``exp(+alpha s)``).
``nonlinear_position = p`` in [0, 1] puts the nonlinear step at ``z0 + p h``, the fraction ``p`` of the step from
its high-power end: DBP applies L((1 - p) h) N(h) L(p h) (in its own order) with the effective length of that
position (:func:`channel.fiber.effective_length` with ``q = 1 - p``). ``p = 1/2`` (the default) is the symmetric
step, bit for bit; ``p = 0``: the nonlinear step at the high-power end. With one step per span the best ``p`` is
well below 1/2 (the nonlinearity of a span acts mostly near its start), at no cost in multiplications.

Filtered DBP (Du & Lowery, "Improved single channel backpropagation for intra-channel fiber nonlinearity
compensation in long-haul optical communication systems", Opt. Express 18(16), 17075, 2010): the power
``P = |A_x|^2 + |A_y|^2`` is low-pass filtered before the phase rotation, ``A <- A exp[j phi_step (g * P)]``, which
accounts for the walk-off between frequency components over a long step (the rotation of a coarse step then sees
an average of the power over neighbouring samples). Here ``g`` is a short real symmetric FIR of
``power_filter_taps = 2M + 1`` taps sampled from a Gaussian of (amplitude) 3-dB bandwidth ``B``
(:func:`power_filter`), ``g[m] ~ exp(-(m - M)^2 / (2 sigma^2))``, ``sigma = sps sqrt(ln 2) / (2 pi B / R_s)``
samples, normalized to ``sum g = 1`` (the mean nonlinear phase is unchanged), applied circularly over the block.
Its cost is in :func:`eqnn.complexity.dbp_complexity`.

The parameters ``xi``, ``nonlinear_position`` and ``power_filter_bandwidth`` are fixed or searched together
(:meth:`DigitalBackPropagation.optimize`) on the first half of the block, as xi alone is.

WDM: single-channel DBP of the received channel (the output of :func:`channel.receiver.select_channel`,
in the channel's own frame) with its local dispersion ``beta2_c`` (:func:`channel.receiver.channel_dispersion`;
``beta2`` for the centre channel or without dispersion slope). The neighbours are not back-propagated, so
their cross-phase modulation and four-wave mixing stay in the signal.

:class:`DigitalBackPropagation` holds what DBP needs (the fiber's SI parameters with the channel's dispersion,
the span length, number of spans and amplifier gain, the symbol rate and oversampling, the receiver whose
matched filter follows, and the length of the power filter); :meth:`DigitalBackPropagation.from_link` builds it
from a :class:`LinkConfig`. The module functions taking a ``config`` are the same operations on
``DigitalBackPropagation.from_link(config)``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Optional, Union

import numpy as np
from scipy import optimize

from .amplifier import span_gain
from .carrier_recovery import CarrierRecovery
from .config import DBP_FILTER_BANDWIDTH_BOUNDS, LinkConfig
from .fiber import FiberParameters, SplitStepFourier
from .metrics import effective_snr_db
from .mimo import AdaptiveEqualizer
from .receiver import CoherentReceiver, normalize
from .receiver_dsp import recover_symbols

#: search interval and tolerance (absolute) of each parameter set to "optimize"
XI_BOUNDS, XI_TOLERANCE = (0.0, 1.5), 0.01
POSITION_BOUNDS, POSITION_TOLERANCE = (0.0, 1.0), 0.01
#: the power-filter bandwidth (in units of the symbol rate) is searched on log10(B), to this tolerance (decades)
FILTER_BANDWIDTH_BOUNDS, FILTER_LOG_TOLERANCE = DBP_FILTER_BANDWIDTH_BOUNDS, 0.01
#: joint search: at most this many rounds over the free parameters; it stops earlier when a round improves the best
#: half-block SNR by less than :data:`ROUND_IMPROVEMENT_DB`
MAX_ROUNDS, ROUND_IMPROVEMENT_DB = 3, 0.005

Optimizable = Union[float, str, None]


def power_filter(n_taps: int, bandwidth: float, samples_per_symbol: int) -> np.ndarray:
    """The FIR of filtered DBP, shape (n_taps,): a sampled Gaussian of amplitude 3-dB bandwidth ``B``.

    ``g[m] = exp(-(m - M)^2 / (2 sigma^2)) / sum_m exp(...)``, ``m = 0 .. n_taps - 1``, ``M = (n_taps - 1) / 2``,
    ``sigma = samples_per_symbol sqrt(ln 2) / (2 pi bandwidth)`` samples: the continuous Gaussian whose transfer
    function ``exp(-2 pi^2 sigma_t^2 f^2)`` is ``1/sqrt(2)`` at ``f = B``, truncated to ``n_taps`` taps.

    Args:
        n_taps: odd integer >= 1 (1: the identity [1.0]).
        bandwidth: B in units of the symbol rate, > 0.
        samples_per_symbol: the DBP oversampling (samples per symbol of the filtered power).
    """
    if isinstance(n_taps, bool) or not isinstance(n_taps, (int, np.integer)) or n_taps < 1 or n_taps % 2 != 1:
        raise ValueError(f"n_taps = {n_taps!r}: allowed odd integers >= 1")
    if not (isinstance(bandwidth, (int, float)) and math.isfinite(bandwidth) and bandwidth > 0):
        raise ValueError(f"bandwidth = {bandwidth!r}: allowed a finite number > 0 (in units of the symbol rate)")
    sigma = samples_per_symbol * math.sqrt(math.log(2)) / (2 * math.pi * bandwidth)
    m = np.arange(n_taps) - (n_taps - 1) / 2
    taps = np.exp(-m**2 / (2 * sigma**2))
    return taps / taps.sum()


@dataclass(frozen=True)
class DBPSettings:
    """The parameters of one DBP variant: ``xi`` (>= 0), ``nonlinear_position`` (p in [0, 1], from the step's
    high-power end; 0.5: symmetric) and ``power_filter_bandwidth`` (B in units of the symbol rate; None: no filter),
    and ``half_block_snr_db``, the effective SNR (dB) on the first half of the block where the joint search
    (:meth:`DigitalBackPropagation.optimize`) measured it."""

    xi: float
    nonlinear_position: float = 0.5
    power_filter_bandwidth: Optional[float] = None
    half_block_snr_db: Optional[float] = None


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
        power_filter_taps: number of taps 2M + 1 of the power filter of filtered DBP (:func:`power_filter`);
            1 (default): no filter.
        carrier_recovery: applied to the sampled symbols before the gain normalization of :meth:`symbols`
            (:class:`channel.carrier_recovery.CarrierRecovery`); None (default): none.
        equalizer: the adaptive 2x2 MIMO equalizer that follows the matched filter (at 2 sps) in :meth:`symbols`
            (:class:`channel.mimo.AdaptiveEqualizer`, ``receiver.mimo``); None (default): plain sampling.
    """

    params: FiberParameters
    span_length: float
    n_spans: int
    gain: float
    symbol_rate: float
    samples_per_symbol: int
    receiver: CoherentReceiver
    power_filter_taps: int = 1
    carrier_recovery: Optional[CarrierRecovery] = None
    equalizer: Optional[AdaptiveEqualizer] = None

    @classmethod
    def from_link(cls, config: LinkConfig) -> "DigitalBackPropagation":
        """DBP of the received channel of ``config`` at ``config.receiver.dbp_samples_per_symbol``, with the power
        filter length ``config.receiver.dbp_power_filter_taps``."""
        receiver = CoherentReceiver.from_link(config)
        beta2, beta3 = receiver.channel_dispersion()
        params = dataclasses.replace(FiberParameters.from_config(config.fiber), beta2=beta2, beta3=beta3)
        return cls(params=params, span_length=config.link.span_length, n_spans=config.link.n_spans,
                   gain=span_gain(config), symbol_rate=config.transmitter.symbol_rate,
                   samples_per_symbol=config.receiver.dbp_samples_per_symbol, receiver=receiver,
                   power_filter_taps=config.receiver.dbp_power_filter_taps,
                   carrier_recovery=CarrierRecovery.from_link(config),
                   equalizer=AdaptiveEqualizer.from_link(config))

    def backpropagate(self, signal: np.ndarray, steps_per_span: int, xi: float,
                      samples_per_symbol: Optional[int] = None, steps: Optional[np.ndarray] = None,
                      nonlinear_position: float = 0.5, power_filter_bandwidth: Optional[float] = None) -> np.ndarray:
        """Back-propagate the received field through the whole link.

        Args:
            signal: complex (2, n_symbols * samples_per_symbol), the received field in sqrt(W) (after the
                last amplifier) of the channel under test, as returned by :meth:`CoherentReceiver.select_channel`.
            steps_per_span: number of equal DBP steps per span (ignored if ``steps`` is given).
            xi: nonlinear scaling of gamma, >= 0.
            samples_per_symbol: oversampling of ``signal`` (default: ``self.samples_per_symbol``).
            steps: optional explicit step lengths (m) of one *forward* span; DBP applies them in reverse.
            nonlinear_position: p in [0, 1], the nonlinear step's place in each step as a fraction of the step
                from its high-power end (module docstring); 0.5: the symmetric step.
            power_filter_bandwidth: B of the power filter in units of the symbol rate (required, and used, only
                when ``power_filter_taps > 1``).

        Returns: complex128 (2, n): the field at the transmitter, before matched filtering.
        """
        sps = samples_per_symbol or self.samples_per_symbol
        if steps is None:
            if steps_per_span < 1:
                raise ValueError(f"steps_per_span = {steps_per_span}: allowed integers >= 1")
            steps = np.full(steps_per_span, self.span_length / steps_per_span)
        if not 0.0 <= nonlinear_position <= 1.0:
            raise ValueError(f"nonlinear_position = {nonlinear_position!r}: allowed [0, 1]")
        taps = None
        if self.power_filter_taps > 1:
            if power_filter_bandwidth is None:
                raise ValueError(f"power_filter_bandwidth is required with power_filter_taps = "
                                 f"{self.power_filter_taps}")
            taps = power_filter(self.power_filter_taps, power_filter_bandwidth, sps)
        # the stepper's position is measured from the start of each DBP step, its low-power end
        position = 0.5 if nonlinear_position == 0.5 else 1.0 - nonlinear_position
        solver = SplitStepFourier(signal.shape[-1], sps * self.symbol_rate,
                                  self.params.inverse(xi), np.asarray(steps)[::-1], precision="complex128",
                                  nonlinear_position=position, power_filter=taps)
        inv_gain = 1 / math.sqrt(self.gain)

        def remove_gain(spectrum: np.ndarray, span: int) -> np.ndarray:
            spectrum *= inv_gain
            return spectrum

        return solver.propagate(signal, self.n_spans, before_span=remove_gain)

    def symbols(self, signal: np.ndarray, steps_per_span: int, xi: float, tx_symbols: np.ndarray,
                nonlinear_position: float = 0.5, power_filter_bandwidth: Optional[float] = None) -> np.ndarray:
        """DBP, matched filter, sampling and gain normalization: (2, n_symbols) unit-scale symbols.

        ``signal`` complex (2, n) at ``self.samples_per_symbol``; ``tx_symbols`` complex (2, n_symbols);
        ``nonlinear_position``, ``power_filter_bandwidth`` as in :meth:`backpropagate`.
        """
        sps = self.samples_per_symbol
        out = self.backpropagate(signal, steps_per_span, xi, nonlinear_position=nonlinear_position,
                                 power_filter_bandwidth=power_filter_bandwidth)
        # receiver.mimo (channel.mimo), carrier recovery: the chain of CDC (channel.receiver_dsp)
        return recover_symbols(out, sps, tx_symbols, self.receiver, self.equalizer, self.carrier_recovery,
                               overwrite_input=True)[0]

    def half_block_snr_db(self, signal: np.ndarray, steps_per_span: int, tx_symbols: np.ndarray,
                          settings: DBPSettings) -> float:
        """Effective SNR (dB) of DBP with ``settings`` on symbols ``[0, n/2)``: what the searches maximize."""
        half = tx_symbols.shape[-1] // 2
        rx = self.symbols(signal, steps_per_span, settings.xi, tx_symbols, settings.nonlinear_position,
                          settings.power_filter_bandwidth)
        return effective_snr_db(normalize(rx[:, :half], tx_symbols[:, :half]), tx_symbols[:, :half])

    def optimize_xi(self, signal: np.ndarray, steps_per_span: int, tx_symbols: np.ndarray,
                    bounds: tuple[float, float] = XI_BOUNDS, tolerance: float = XI_TOLERANCE,
                    nonlinear_position: float = 0.5, power_filter_bandwidth: Optional[float] = None) -> float:
        """The xi that maximizes the effective SNR of the first half of the block.

        Bounded scalar minimization (Brent) of ``-SNR(xi)``; each evaluation is one full DBP. The SNR is
        measured on symbols ``[0, n/2)`` only. Metrics are then reported on the whole block: fitting one
        scalar on tens of thousands of symbols biases them far less than their confidence interval.
        The other parameters are held at ``nonlinear_position`` and ``power_filter_bandwidth``.
        """
        def negative_snr(xi: float) -> float:
            return -self.half_block_snr_db(signal, steps_per_span, tx_symbols,
                                           DBPSettings(xi, nonlinear_position, power_filter_bandwidth))

        res = optimize.minimize_scalar(negative_snr, bounds=bounds, method="bounded",
                                       options={"xatol": tolerance})
        return float(res.x)

    def optimize(self, signal: np.ndarray, steps_per_span: int, tx_symbols: np.ndarray,
                 xi: Union[float, str] = "optimize", nonlinear_position: Union[float, str] = 0.5,
                 power_filter_bandwidth: Optimizable = None) -> DBPSettings:
        """The DBP parameters: each one given as a number is fixed, each one given as ``"optimize"`` is searched
        to maximize the effective SNR of the first half of the block (:meth:`half_block_snr_db`).

        Search: xi alone is one bounded Brent search (:meth:`optimize_xi`, exactly as before the other parameters
        existed). Several free parameters are searched by coordinate ascent: each round runs one bounded Brent
        search per free parameter in the order xi, nonlinear_position, power_filter_bandwidth, the others held at
        the best point so far, over xi in :data:`XI_BOUNDS` (tolerance :data:`XI_TOLERANCE`), p in
        :data:`POSITION_BOUNDS` (:data:`POSITION_TOLERANCE`) and log10 B over :data:`FILTER_BANDWIDTH_BOUNDS`
        (:data:`FILTER_LOG_TOLERANCE` decades); at most :data:`MAX_ROUNDS` rounds, fewer once a round gains less
        than :data:`ROUND_IMPROVEMENT_DB`. The result is the best point evaluated (each evaluation is one DBP).
        Starting point: xi = 1, p = 0.5, B = the upper bound of its interval (the least filtering).

        Args:
            signal, steps_per_span, tx_symbols: as in :meth:`symbols`.
            xi: a number >= 0 or "optimize".  nonlinear_position: a number in [0, 1] or "optimize".
            power_filter_bandwidth: a number > 0 (units of the symbol rate) or "optimize" with
                ``power_filter_taps > 1``; None without the filter.
        Returns: :class:`DBPSettings` (``half_block_snr_db`` set by the joint search of several parameters).
        """
        if self.power_filter_taps > 1 and power_filter_bandwidth is None:
            raise ValueError(f"power_filter_bandwidth is required with power_filter_taps = {self.power_filter_taps}")
        if self.power_filter_taps == 1 and power_filter_bandwidth is not None:
            raise ValueError("power_filter_bandwidth is given but power_filter_taps = 1 (no filter)")
        free = [name for name, value in (("xi", xi), ("nonlinear_position", nonlinear_position),
                                         ("power_filter_bandwidth", power_filter_bandwidth)) if value == "optimize"]
        start = DBPSettings(xi=1.0 if xi == "optimize" else float(xi),
                            nonlinear_position=0.5 if nonlinear_position == "optimize" else float(nonlinear_position),
                            power_filter_bandwidth=None if power_filter_bandwidth is None else
                            FILTER_BANDWIDTH_BOUNDS[1] if power_filter_bandwidth == "optimize"
                            else float(power_filter_bandwidth))
        if not free:
            return start
        if free == ["xi"]:
            best_xi = self.optimize_xi(signal, steps_per_span, tx_symbols, nonlinear_position=start.nonlinear_position,
                                       power_filter_bandwidth=start.power_filter_bandwidth)
            return dataclasses.replace(start, xi=best_xi)
        evaluated: dict[DBPSettings, float] = {}

        def snr(settings: DBPSettings) -> float:
            if settings not in evaluated:
                evaluated[settings] = self.half_block_snr_db(signal, steps_per_span, tx_symbols, settings)
            return evaluated[settings]

        coordinates = {  # name -> (bounds, tolerance, settings from the searched value)
            "xi": (XI_BOUNDS, XI_TOLERANCE, lambda s, v: dataclasses.replace(s, xi=float(v))),
            "nonlinear_position": (POSITION_BOUNDS, POSITION_TOLERANCE,
                                   lambda s, v: dataclasses.replace(s, nonlinear_position=float(v))),
            "power_filter_bandwidth": (tuple(math.log10(b) for b in FILTER_BANDWIDTH_BOUNDS), FILTER_LOG_TOLERANCE,
                                       lambda s, v: dataclasses.replace(s, power_filter_bandwidth=float(10.0**v))),
        }
        best = start
        best_snr = snr(best)
        for _ in range(MAX_ROUNDS):
            round_start = best_snr
            for name in free:
                bounds, tolerance, make = coordinates[name]
                base = best
                optimize.minimize_scalar(lambda v: -snr(make(base, v)), bounds=bounds, method="bounded",
                                         options={"xatol": tolerance})
                best = max(evaluated, key=evaluated.get)
                best_snr = evaluated[best]
            if best_snr - round_start < ROUND_IMPROVEMENT_DB:
                break
        return dataclasses.replace(best, half_block_snr_db=best_snr)


def backpropagate(signal: np.ndarray, config: LinkConfig, steps_per_span: int, xi: float,
                  samples_per_symbol: Optional[int] = None, steps: Optional[np.ndarray] = None,
                  nonlinear_position: float = 0.5, power_filter_bandwidth: Optional[float] = None) -> np.ndarray:
    """:meth:`DigitalBackPropagation.backpropagate` of the link ``config``: complex128 (2, n) from (2, n)."""
    return DigitalBackPropagation.from_link(config).backpropagate(signal, steps_per_span, xi, samples_per_symbol,
                                                                  steps, nonlinear_position, power_filter_bandwidth)


def dbp_symbols(signal: np.ndarray, config: LinkConfig, steps_per_span: int, xi: float,
                tx_symbols: np.ndarray, nonlinear_position: float = 0.5,
                power_filter_bandwidth: Optional[float] = None) -> np.ndarray:
    """:meth:`DigitalBackPropagation.symbols` of the link ``config``: (2, n_symbols) unit-scale symbols."""
    return DigitalBackPropagation.from_link(config).symbols(signal, steps_per_span, xi, tx_symbols,
                                                            nonlinear_position, power_filter_bandwidth)


def optimize_xi(signal: np.ndarray, config: LinkConfig, steps_per_span: int, tx_symbols: np.ndarray,
                bounds: tuple[float, float] = XI_BOUNDS, tolerance: float = XI_TOLERANCE) -> float:
    """:meth:`DigitalBackPropagation.optimize_xi` of the link ``config``."""
    return DigitalBackPropagation.from_link(config).optimize_xi(signal, steps_per_span, tx_symbols, bounds, tolerance)


def optimize_dbp(signal: np.ndarray, config: LinkConfig, steps_per_span: int, tx_symbols: np.ndarray) -> DBPSettings:
    """:meth:`DigitalBackPropagation.optimize` of the link ``config`` with its receiver's ``dbp_xi``,
    ``dbp_nonlinear_position`` and (with ``dbp_power_filter_taps > 1``) ``dbp_power_filter_bandwidth``."""
    rx = config.receiver
    return DigitalBackPropagation.from_link(config).optimize(
        signal, steps_per_span, tx_symbols, rx.dbp_xi, rx.dbp_nonlinear_position,
        rx.dbp_power_filter_bandwidth if rx.dbp_power_filter_taps > 1 else None)
