"""Carrier recovery: frequency-offset estimation, blind phase search, pilot-aided cycle-slip correction.

Receive chain (:mod:`channel.link`, :mod:`channel.receiver_dsp`): LO mixing -> channel selection -> receiver
electronics -> **frequency-offset estimation and removal** -> CDC (or DBP) -> matched filter, sampling (or the MIMO
equalizer) -> **phase recovery** -> normalize.

Frequency offset (:func:`estimate_frequency_offset`, 4th-power spectral peak). For square QAM ``E[a^2] = 0`` and
``E[a^4] != 0``, so the 4th power of the (CD-compensated) field ``y(t) = exp(j 2 pi df t) sum_k a_k g(t - kT)`` has a
spectral line at ``4 df``:

    df_hat = argmax_f sum_pol |FFT(y^4)|^2(f) / 4     (parabolic interpolation between bins)

unambiguous for ``|df| < fs / 8`` (fs the field's sample rate). The estimate is taken on a CD-compensated copy of
the field, or with the MIMO equalizer on its blind outputs at one sample per symbol (:mod:`channel.receiver_dsp`),
and the offset removed from the field itself (``y exp(-j 2 pi df_hat n / fs)``), before CDC and DBP.

Phase (:func:`blind_phase_search`, Pfau, Hoffmann & Noe, JLT 27(8), 2009). The symbols ``y_k`` (per polarization,
scaled to unit mean power) are rotated by ``B`` test phases ``phi_b = (b / B - 1/2) pi/2``, ``b = 0..B-1``; each
rotated symbol is decided (nearest point of the square QAM) and the squared distances are summed over a window of
``W`` symbols centred on ``k`` (truncated at the block's ends):

    phi_hat_k = argmin_b  sum_{|m - k| <= (W-1)/2}  |y_m e^{j phi_b} - D(y_m e^{j phi_b})|^2    in [-pi/4, pi/4)

The pi/2 symmetry of square QAM makes ``phi_hat`` ambiguous modulo pi/2; it is unwrapped (``phi_k = phi_hat_k +
(pi/2) round((phi_{k-1} - phi_hat_k) / (pi/2))``, i.e. ``numpy.unwrap`` with period pi/2) and the output is
``y_k exp(j phi_k)``. With ``joint_polarizations`` the distances of both polarizations are summed (one phase for
both, as both share the lasers).

Cycle slips. A wrong unwrapping step (or a true phase jump of pi/2) leaves every later symbol rotated by a multiple
of pi/2. :func:`quadrant_offsets` estimates the rotation against known symbols ``a_k`` over blocks:
``q = round(arg(sum y_k conj(a_k)) / (pi/2)) mod 4``; a change of ``q`` from one block to the next is a cycle slip.
With pilots (``pilot_rate > 0``) the symbols at ``k = 0, P, 2P, ...`` (``P = round(1 / pilot_rate)``) are known to
the receiver; the rotation is estimated over each group of ``pilot_block`` pilots and removed from the symbols of
that group's span (this also resolves the absolute quadrant); the number of changes is reported as the slips
corrected. The pilots stay in the block (they are counted by the metrics like the other symbols).
:func:`count_cycle_slips` is the same count with every transmitted symbol as a reference, over
:data:`SLIP_COUNT_BLOCK` symbols: what the link reports (``Transmission.info["carrier_recovery"]``) as the slips
left in each output.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Optional

import numpy as np

from .validation import ConfigError, check_bool, check_choice, check_int, check_number

METHODS = ("none", "blind_phase_search")
#: symbols per block of the data-aided cycle-slip count of the link's outputs
SLIP_COUNT_BLOCK = 256
#: complex values per chunk of the blind phase search (n_pol x test_phases x symbols): bounds its memory
CHUNK_VALUES = 2**19


@dataclass(frozen=True)
class CarrierRecoveryConfig:
    """Carrier recovery of the receiver (the ``[carrier_recovery]`` section; off by default).

    Attributes:
        method: "none" (only the data-aided complex gain of :func:`channel.receiver.normalize`) or
            "blind_phase_search" (:func:`blind_phase_search`).
        test_phases: number B of test phases over pi/2, integer in [4, 1024].
        window_symbols: length W of the averaging window in symbols, odd integer in [1, 4095].
        joint_polarizations: one phase for both polarizations (distances summed) instead of one per polarization.
        pilot_rate: fraction of pilot symbols, [0, 0.5]; 0: no pilots (the pilot spacing is round(1 / pilot_rate)).
        pilot_block: pilots per quadrant decision, integer in [1, 4096].
        frequency_offset_estimation: estimate and remove a carrier frequency offset (4th-power spectral peak)
            before CDC; independent of ``method``.

    The keys other than ``method`` and ``frequency_offset_estimation`` require ``method = "blind_phase_search"``.
    The section is left out of :meth:`LinkConfig.to_dict` (and the digest) at its default.
    """

    method: str = "none"
    test_phases: int = 32
    window_symbols: int = 33
    joint_polarizations: bool = False
    pilot_rate: float = 0.0
    pilot_block: int = 8
    frequency_offset_estimation: bool = False

    def __post_init__(self) -> None:
        check_choice("carrier_recovery.method", self.method, METHODS)
        check_int("carrier_recovery.test_phases", self.test_phases, 4, 1024)
        check_int("carrier_recovery.window_symbols", self.window_symbols, 1, 4095)
        if self.window_symbols % 2 != 1:
            raise ConfigError(f"carrier_recovery.window_symbols = {self.window_symbols}: allowed odd integers in "
                              "[1, 4095] (a window centred on the symbol)")
        check_bool("carrier_recovery.joint_polarizations", self.joint_polarizations)
        check_number("carrier_recovery.pilot_rate", self.pilot_rate, 0, 0.5)
        check_int("carrier_recovery.pilot_block", self.pilot_block, 1, 4096)
        check_bool("carrier_recovery.frequency_offset_estimation", self.frequency_offset_estimation)
        if self.method == "none":
            defaults = {f.name: f.default for f in fields(self)}
            for key in ("test_phases", "window_symbols", "joint_polarizations", "pilot_rate", "pilot_block"):
                if getattr(self, key) != defaults[key]:
                    raise ConfigError(f"carrier_recovery.{key} = {getattr(self, key)!r} has no effect with "
                                      "carrier_recovery.method = 'none': allowed with 'blind_phase_search'")

    @property
    def pilot_spacing(self) -> Optional[int]:
        """Symbols from one pilot to the next, ``round(1 / pilot_rate)``; None without pilots."""
        return max(2, round(1 / self.pilot_rate)) if self.pilot_rate > 0 else None


def _decide(symbols: np.ndarray, modulation: str) -> np.ndarray:
    from .metrics import hard_decision  # here: channel.config imports this module, metrics imports the config
    from .transmitter import qam_constellation
    return qam_constellation(modulation)[0][hard_decision(symbols, modulation)]


def trial_phases(test_phases: int) -> np.ndarray:
    """``phi_b = (b / B - 1/2) pi / 2``, b = 0..B-1: float64 (B,) in [-pi/4, pi/4)."""
    return (np.arange(test_phases) / test_phases - 0.5) * (np.pi / 2)


def blind_phase_search(symbols: np.ndarray, modulation: str, test_phases: int, window_symbols: int,
                       joint_polarizations: bool = False) -> np.ndarray:
    """The unwrapped phase correction ``phi`` (rad) of blind phase search (module docstring).

    Args: symbols complex (n_pol, n) at one sample per symbol (any scale: each row is scaled to unit mean power);
        ``modulation`` a square QAM of :func:`channel.transmitter.qam_constellation`; ``test_phases`` B;
        ``window_symbols`` W (odd).
    Returns: float64 (n_pol, n): ``symbols * exp(j phi)`` is the recovered constellation (up to a multiple of pi/2
        per cycle slip).
    """
    y = np.asarray(symbols)
    y = y / np.sqrt(np.mean(np.abs(y) ** 2, axis=-1, keepdims=True))
    n_pol, n = y.shape
    phases = trial_phases(test_phases)
    rotations = np.exp(1j * phases)[None, :, None]
    half = window_symbols // 2
    estimate = np.empty((1 if joint_polarizations else n_pol, n))
    chunk = max(256, CHUNK_VALUES // (n_pol * test_phases))
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        lo, hi = max(0, start - half), min(n, stop + half)
        rotated = y[:, None, lo:hi] * rotations                           # (n_pol, B, L)
        distance = np.abs(rotated - _decide(rotated, modulation)) ** 2
        if joint_polarizations:
            distance = distance.sum(axis=0, keepdims=True)
        cumulative = np.concatenate([np.zeros(distance.shape[:2] + (1,)), np.cumsum(distance, axis=-1)], axis=-1)
        k = np.arange(start, stop)
        first, last = np.maximum(k - half, 0) - lo, np.minimum(k + half + 1, n) - lo
        window_sum = cumulative[..., last] - cumulative[..., first]        # (n_pol, B, stop - start)
        estimate[:, start:stop] = phases[np.argmin(window_sum, axis=1)]
    phase = np.unwrap(estimate, period=np.pi / 2, axis=-1)
    return np.broadcast_to(phase, (n_pol, n)).copy()


def _block_sums(received: np.ndarray, reference: np.ndarray, block: int, joint_polarizations: bool) -> np.ndarray:
    """``sum_block received conj(reference)`` per block of ``block`` symbols (the last one may be shorter):
    complex (n_pol, ceil(m / block)), one row with ``joint_polarizations``."""
    z = received * np.conj(reference)
    m = z.shape[-1]
    n_blocks = -(-m // block)
    padded = np.zeros(z.shape[:-1] + (n_blocks * block,), dtype=complex)
    padded[..., :m] = z
    sums = padded.reshape(z.shape[:-1] + (n_blocks, block)).sum(axis=-1)
    return sums.sum(axis=0, keepdims=True) if joint_polarizations else sums


def _quarter_turns(angle: np.ndarray) -> np.ndarray:
    """``round(angle / (pi/2)) mod 4``, int64."""
    return np.rint(np.asarray(angle) / (np.pi / 2)).astype(np.int64) % 4


def quadrant_offsets(received: np.ndarray, reference: np.ndarray, block: int,
                     joint_polarizations: bool = False) -> np.ndarray:
    """Rotation of ``received`` against ``reference`` in quarter turns, per block of ``block`` symbols.

    Args: received, reference complex (n_pol, m) (the reference: known transmitted symbols).
    Returns: int64 (n_pol, ceil(m / block)) (1 row with ``joint_polarizations``) in {0, 1, 2, 3}:
        ``round(arg(sum_block received conj(reference)) / (pi/2)) mod 4``.
    """
    return _quarter_turns(np.angle(_block_sums(received, reference, block, joint_polarizations)))


def count_cycle_slips(received: np.ndarray, reference: np.ndarray, block: int = SLIP_COUNT_BLOCK,
                      joint_polarizations: bool = False) -> int:
    """Cycle slips of ``received`` (n_pol, n) against the transmitted ``reference`` (n_pol, n), summed over rows:
    the blocks (of ``block`` symbols) rotated by a nonzero number of quarter turns against the previous block,
    ``round(arg(S_j conj(S_{j-1})) / (pi/2)) mod 4 != 0`` with ``S_j`` the block sums of :func:`quadrant_offsets`.
    Relative to the previous block, so a common rotation of the whole block (e.g. the data-aided gain of
    :func:`channel.receiver.normalize` on a block with a slip) does not count."""
    sums = _block_sums(received, reference, block, joint_polarizations)
    return int(np.count_nonzero(_quarter_turns(np.angle(sums[..., 1:] * np.conj(sums[..., :-1])))))


def pilot_correction(received: np.ndarray, reference: np.ndarray, pilot_spacing: int, pilot_block: int,
                     joint_polarizations: bool = False) -> tuple[np.ndarray, int]:
    """Remove the quarter-turn rotation estimated on the pilots (module docstring).

    Args: received complex (n_pol, n) after phase recovery; reference complex (n_pol, n), of which only the pilots
        ``reference[:, ::pilot_spacing]`` are used.
    Returns: (corrected (n_pol, n), number of quadrant changes between pilot groups: the slips corrected).
    """
    pilots = slice(0, None, pilot_spacing)
    quadrants = quadrant_offsets(received[:, pilots], reference[:, pilots], pilot_block, joint_polarizations)
    group = np.arange(received.shape[-1]) // (pilot_spacing * pilot_block)
    correction = np.exp(-0.5j * np.pi * quadrants[:, group])
    return received * correction, int(np.count_nonzero(np.diff(quadrants, axis=-1)))


def estimate_frequency_offset(field: np.ndarray, sample_rate: float) -> float:
    """4th-power spectral-peak estimate of the carrier frequency offset (module docstring), Hz.

    Args: field complex (n_pol, n) at ``sample_rate`` (Hz), CD-compensated. Returns a float in [-fs/8, fs/8).
    """
    field = np.asarray(field)
    field = field / np.sqrt(np.mean(np.abs(field) ** 2))
    power = np.sum(np.abs(np.fft.fft(field**4, axis=-1)) ** 2, axis=0)
    n = power.size
    k = int(np.argmax(power))
    left, centre, right = power[k - 1], power[k], power[(k + 1) % n]
    denominator = left - 2 * centre + right
    delta = 0.5 * (left - right) / denominator if denominator != 0 else 0.0
    frequency = ((k + delta + n / 2) % n - n / 2) * sample_rate / n
    return frequency / 4


@dataclass(frozen=True)
class CarrierRecoveryResult:
    """Output of :class:`CarrierRecovery`.

    Attributes:
        symbols: complex (n_pol, n): the input rotated by ``exp(j phase)`` and, with pilots, quadrant-corrected.
        phase: float64 (n_pol, n): the blind-phase-search correction (rad), before the pilot quadrant correction.
        cycle_slips_corrected: quadrant changes found on the pilots (0 without pilots).
    """

    symbols: np.ndarray
    phase: np.ndarray
    cycle_slips_corrected: int = 0


@dataclass(frozen=True)
class CarrierRecovery:
    """The carrier recovery of one receiver: its :class:`CarrierRecoveryConfig` and the modulation."""

    config: CarrierRecoveryConfig
    modulation: str

    @classmethod
    def from_link(cls, config: Any) -> Optional["CarrierRecovery"]:
        """The carrier recovery of a :class:`channel.LinkConfig`; None when its section is off (the default)."""
        section = config.carrier_recovery
        if section.method == "none" and not section.frequency_offset_estimation:
            return None
        return cls(config=section, modulation=config.transmitter.modulation)

    def remove_frequency_offset(self, field: np.ndarray, receiver: Any, samples_per_symbol: int,
                                demultiplexed: Optional[np.ndarray] = None) -> tuple[np.ndarray, Optional[float]]:
        """``(field exp(-j 2 pi df_hat n / fs), df_hat)``; ``(field, None)`` when the estimator is off.

        Args: field complex (2, n) at ``samples_per_symbol``; ``demultiplexed``: complex (2, n_symbols), the
            polarization-demultiplexed outputs of a blind MIMO equalizer at one sample per symbol on which ``df_hat``
            is estimated (:func:`channel.receiver_dsp.acquire_frequency_offset`); None: ``df_hat`` is estimated on
            ``receiver.cd_compensate`` of ``field``.
        """
        if not self.config.frequency_offset_estimation:
            return field, None
        sample_rate = samples_per_symbol * receiver.symbol_rate
        offset = (estimate_frequency_offset(receiver.cd_compensate(field, samples_per_symbol), sample_rate)
                  if demultiplexed is None else estimate_frequency_offset(demultiplexed, receiver.symbol_rate))
        ramp = np.exp(-2j * math.pi * offset / sample_rate * np.arange(field.shape[-1]))
        return field * ramp, float(offset)

    def __call__(self, symbols: np.ndarray, reference: np.ndarray) -> CarrierRecoveryResult:
        """Phase recovery of ``symbols`` (n_pol, n) at one sample per symbol; ``reference`` (n_pol, n) the
        transmitted symbols, of which only the pilots are used. Identity (phase 0) for method "none"."""
        c = self.config
        if c.method == "none":
            return CarrierRecoveryResult(symbols=symbols, phase=np.zeros(symbols.shape))
        phase = blind_phase_search(symbols, self.modulation, c.test_phases, c.window_symbols, c.joint_polarizations)
        out = symbols * np.exp(1j * phase)
        slips = 0
        if c.pilot_spacing is not None:
            out, slips = pilot_correction(out, reference, c.pilot_spacing, c.pilot_block, c.joint_polarizations)
        return CarrierRecoveryResult(symbols=out, phase=phase, cycle_slips_corrected=slips)
