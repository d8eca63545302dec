"""Lasers: Lorentzian-linewidth phase noise of the transmitter laser and of the local oscillator (LO), and the
carrier frequency offset between them.

A laser of (full-width at half-maximum, Lorentzian) linewidth ``dnu`` has a Wiener phase process: sampled at
``fs`` (Hz), its phase is

    phi[0] ~ U[0, 2 pi),    phi[n] = phi[n-1] + d[n],    d[n] ~ N(0, sigma^2),    sigma^2 = 2 pi dnu / fs  (rad^2)

(the increments over a time ``tau`` have the variance ``2 pi dnu tau``, which gives the Lorentzian field spectrum
of FWHM ``dnu``). One laser feeds both polarizations, so both carry the same phase.

* Transmitter laser (:func:`apply_transmitter_laser`): the launched field ``E`` (2, n) becomes
  ``E exp(j phi_tx)`` at the simulation rate. With WDM (``n_channels > 1``) every channel gets the same phase
  process (the channels are modelled as carved from one comb line set, i.e. a common laser).
* Local oscillator (:func:`mix_local_oscillator`): the coherent receiver's front end beats the received field with
  the LO, so the baseband field is ``E exp(j (2 pi df t - phi_lo))``, with ``df = frequency_offset_hz`` the carrier
  frequency minus the LO frequency (the received channel appears at ``+df`` at baseband) and ``t = n / fs``.
  It acts on the whole field at the simulation rate, before channel selection and CDC, as in a real receiver.

The block is circular like the rest of the simulator: neither ``phi`` nor ``2 pi df t`` is periodic over the
block, so the frequency-domain filters of the receiver smear the jump at the block's ends over their impulse
response (a few symbols at each end).

Random draws: the stream ``(transmitter.seed, STREAM_TX_LASER)`` for the transmitter laser and
``(transmitter.seed, STREAM_LO_LASER)`` for the LO (:mod:`channel.streams`); at a zero linewidth nothing is drawn.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .streams import STREAM_LO_LASER, STREAM_TX_LASER, rng_stream
from .validation import ConfigError, check_number

#: upper bound of the linewidths, Hz
MAX_LINEWIDTH_HZ = 100e6


@dataclass(frozen=True)
class LaserConfig:
    """The transmitter laser and the local oscillator (the ``[laser]`` section; all off by default).

    Attributes:
        tx_linewidth_hz: Lorentzian (FWHM) linewidth of the transmitter laser in Hz, [0, 1e8]; 0: no phase noise.
        lo_linewidth_hz: linewidth of the local oscillator in Hz, [0, 1e8]; 0: no phase noise.
        frequency_offset_hz: carrier frequency minus LO frequency in Hz; at most ``dbp_samples_per_symbol *
            symbol_rate / 8`` in magnitude (the range of the 4th-power frequency-offset estimator of
            :mod:`channel.carrier_recovery`; ``symbol_rate / 8`` with the MIMO on and the estimator on, as it then
            takes the MIMO's outputs) and within the channel filter (checked with the link,
            :func:`check_frequency_offset`); 0: none.

    The section is left out of :meth:`LinkConfig.to_dict` (and the digest) at its default.
    """

    tx_linewidth_hz: float = 0.0
    lo_linewidth_hz: float = 0.0
    frequency_offset_hz: float = 0.0

    def __post_init__(self) -> None:
        check_number("laser.tx_linewidth_hz", self.tx_linewidth_hz, 0, MAX_LINEWIDTH_HZ)
        check_number("laser.lo_linewidth_hz", self.lo_linewidth_hz, 0, MAX_LINEWIDTH_HZ)
        check_number("laser.frequency_offset_hz", self.frequency_offset_hz)


def phase_increment_variance(linewidth_hz: float, sample_rate: float) -> float:
    """``2 pi dnu / fs`` in rad^2: the variance of the Wiener phase increment per sample."""
    return 2 * math.pi * linewidth_hz / sample_rate


def wiener_phase(linewidth_hz: float, sample_rate: float, n_samples: int, rng: np.random.Generator) -> np.ndarray:
    """A Wiener phase process ``phi`` (rad), float64 shape (n_samples,): ``phi[0] ~ U[0, 2 pi)``, then increments
    ``N(0, 2 pi linewidth_hz / sample_rate)`` (module docstring). ``sample_rate`` in Hz."""
    start = rng.uniform(0, 2 * math.pi)
    steps = rng.normal(0.0, math.sqrt(phase_increment_variance(linewidth_hz, sample_rate)), n_samples - 1)
    phase = np.empty(n_samples)
    phase[0] = start
    np.cumsum(steps, out=phase[1:])
    phase[1:] += start
    return phase


def _rotate(field: np.ndarray, phase: np.ndarray) -> np.ndarray:
    """``field * exp(j phase)`` in the field's dtype; field (..., n), phase (n,)."""
    return field * np.exp(1j * phase).astype(field.dtype, copy=False)


def apply_transmitter_laser(field: np.ndarray, laser: LaserConfig, sample_rate: float, seed: int) -> np.ndarray:
    """The launched field modulated onto the transmitter laser: ``E exp(j phi_tx)``.

    Args: field complex (2, n) (or (..., n)) in sqrt(W) at ``sample_rate`` (Hz); ``seed`` the run's seed.
    Returns: the same shape and dtype; ``field`` itself when ``tx_linewidth_hz = 0``.
    """
    if laser.tx_linewidth_hz == 0:
        return field
    phase = wiener_phase(laser.tx_linewidth_hz, sample_rate, field.shape[-1], rng_stream(seed, STREAM_TX_LASER))
    return _rotate(field, phase)


def mix_local_oscillator(field: np.ndarray, laser: LaserConfig, sample_rate: float, seed: int) -> np.ndarray:
    """Coherent detection against the LO: ``E exp(j (2 pi df n / fs - phi_lo[n]))`` (module docstring).

    Args: field complex (2, n) in sqrt(W) at ``sample_rate`` (Hz), the whole received field before channel
        selection; ``seed`` the run's seed.
    Returns: the same shape and dtype; ``field`` itself when the LO is ideal (zero linewidth and offset).
    """
    if laser.lo_linewidth_hz == 0 and laser.frequency_offset_hz == 0:
        return field
    n = field.shape[-1]
    phase = 2 * math.pi * laser.frequency_offset_hz / sample_rate * np.arange(n)
    if laser.lo_linewidth_hz > 0:
        phase -= wiener_phase(laser.lo_linewidth_hz, sample_rate, n, rng_stream(seed, STREAM_LO_LASER))
    return _rotate(field, phase)


def check_frequency_offset(frequency_offset_hz: float, symbol_rate: float, receiver_samples_per_symbol: int,
                           rolloff: float, channel_filter_hz: float, on_mimo_outputs: bool = False) -> None:
    """Raise :class:`ConfigError` unless ``|df| <= min(sps_rx Rs / 8, (B_filter - (1 + rolloff) Rs) / 2)``: within
    the 4th-power estimator's unambiguous range at the receiver's oversampling (``sps_rx = 1`` with
    ``on_mimo_outputs``: the estimate taken on the MIMO's outputs, :mod:`channel.receiver_dsp`) and inside the channel
    filter of full width ``B_filter`` (Hz). All in Hz."""
    sps = 1 if on_mimo_outputs else receiver_samples_per_symbol
    limit = min(sps * symbol_rate / 8, (channel_filter_hz - (1 + rolloff) * symbol_rate) / 2)
    if abs(frequency_offset_hz) > limit:
        estimator = ("symbol rate / 8 (estimated on the MIMO outputs)" if on_mimo_outputs
                     else "dbp_samples_per_symbol * symbol rate / 8")
        raise ConfigError(f"laser.frequency_offset_hz = {frequency_offset_hz!r} is out of range: allowed "
                          f"[{-limit:g}, {limit:g}] (min of {estimator} and the channel filter's margin)")
