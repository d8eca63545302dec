"""Dual-polarization square-QAM transmitter: Gray mapping, seeded symbols, RRC shaping, WDM.

Random draws come from :func:`rng_stream`: one seed per run, an independent stream per purpose
(symbols of each channel, ASE noise of each span), so changing one block never shifts another's draws.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.fft as sfft

from .config import TransmitterConfig

STREAM_SYMBOLS = 0
STREAM_ASE = 1


def rng_stream(seed: int, *key: int) -> np.random.Generator:
    """An independent random generator for ``(seed, key...)`` (NumPy ``SeedSequence`` spawn keys)."""
    return np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=tuple(int(k) for k in key)))


@lru_cache(maxsize=None)
def qam_constellation(modulation: str) -> tuple[np.ndarray, np.ndarray]:
    """Gray-mapped square QAM of unit mean energy.

    Symbol index ``s = i_I * L + i_Q`` with level indices ``i_I, i_Q`` in ``[0, L)``, ``L = sqrt(M)``,
    amplitude ``(2 i - (L - 1)) / sqrt(2 (L^2 - 1) / 3)``. Its bits are the Gray code
    ``i ^ (i >> 1)`` of ``i_I`` (MSB first) followed by that of ``i_Q``: neighbours differ in one bit.

    Returns:
        points: complex128, shape (M,), E|a|^2 = 1.
        bits: uint8, shape (M, log2 M).
    """
    m = {"QPSK": 2, "16QAM": 4, "64QAM": 6, "256QAM": 8}[modulation]
    n_levels = 2 ** (m // 2)
    levels = pam_levels(n_levels)
    i_i, i_q = np.divmod(np.arange(n_levels * n_levels), n_levels)
    points = levels[i_i] + 1j * levels[i_q]
    gray = np.arange(n_levels) ^ (np.arange(n_levels) >> 1)
    half = m // 2
    shifts = np.arange(half - 1, -1, -1)
    bits_i = (gray[i_i][:, None] >> shifts) & 1
    bits_q = (gray[i_q][:, None] >> shifts) & 1
    bits = np.concatenate([bits_i, bits_q], axis=1).astype(np.uint8)
    points.setflags(write=False)
    bits.setflags(write=False)
    return points, bits


def pam_levels(n_levels: int) -> np.ndarray:
    """Amplitudes of one dimension of the unit-energy square QAM with ``n_levels`` per dimension."""
    return (2 * np.arange(n_levels) - (n_levels - 1)) / np.sqrt(2 * (n_levels**2 - 1) / 3)


def raised_cosine_spectrum(n_samples: int, sample_rate: float, symbol_rate: float, rolloff: float) -> np.ndarray:
    """Raised-cosine transfer function H_rc(f) (peak 1) on the FFT frequency grid.

    H_rc = 1 for |f| <= (1-b) Rs/2; 0.5 (1 + cos(pi/(b Rs) (|f| - (1-b) Rs/2))) up to (1+b) Rs/2; else 0.
    Real and even: its impulse response is centred on sample 0 of the (circular) sample grid.

    Returns: float64, shape (n_samples,), in ``numpy.fft`` bin order.
    """
    f = np.abs(np.fft.fftfreq(n_samples, d=1 / sample_rate))
    f1 = (1 - rolloff) * symbol_rate / 2
    f2 = (1 + rolloff) * symbol_rate / 2
    h = np.zeros(n_samples)
    h[f <= f1] = 1.0
    if rolloff > 0:
        band = (f > f1) & (f <= f2)
        h[band] = 0.5 * (1 + np.cos(np.pi / (rolloff * symbol_rate) * (f[band] - f1)))
    return h


def rrc_spectrum(n_samples: int, sample_rate: float, symbol_rate: float, rolloff: float) -> np.ndarray:
    """Root-raised-cosine transfer function sqrt(H_rc(f)) (peak 1); see :func:`raised_cosine_spectrum`."""
    return np.sqrt(raised_cosine_spectrum(n_samples, sample_rate, symbol_rate, rolloff))


@dataclass(frozen=True)
class TransmittedSignal:
    """Output of :func:`transmit`.

    Attributes:
        field: complex, shape (2, n_symbols * samples_per_symbol): the optical field of both
            polarizations in sqrt(W) at the simulation sample rate; mean of |Ex|^2 + |Ey|^2 is the
            launch power times the number of channels (for i.i.d. symbols).
        symbol_indices: int64, shape (2, n_symbols): transmitted symbol indices of the received (centre)
            channel, x and y polarization.
        symbols: complex128, shape (2, n_symbols): the corresponding unit-energy constellation points.
    """

    field: np.ndarray
    symbol_indices: np.ndarray
    symbols: np.ndarray


def shape_symbols(symbols: np.ndarray, samples_per_symbol: int, spectrum: np.ndarray) -> np.ndarray:
    """Upsample ``symbols`` (..., n) by zero insertion and filter with ``samples_per_symbol * spectrum``.

    With ``spectrum`` the RRC response, unit-energy i.i.d. symbols give unit mean power per sample.
    Returns the frequency-domain signal (unnormalized FFT), shape (..., n * samples_per_symbol).
    """
    n = symbols.shape[-1]
    upsampled = np.zeros(symbols.shape[:-1] + (n * samples_per_symbol,), dtype=complex)
    upsampled[..., ::samples_per_symbol] = symbols
    return sfft.fft(upsampled, axis=-1) * (samples_per_symbol * spectrum)


def transmit(config: TransmitterConfig, dtype: str = "complex128") -> TransmittedSignal:
    """Generate the launched dual-polarization field.

    Each of the ``n_channels`` channels carries independent uniformly drawn Gray-mapped QAM symbols on
    both polarizations (stream ``(seed, STREAM_SYMBOLS, channel)``), RRC-shaped, scaled to
    ``launch_power / 2`` per polarization, and shifted to ``(c - (n_channels-1)/2) * spacing``
    (rounded to the FFT grid, spacing Rs/n_symbols). The centre channel is channel ``(n_channels-1)//2``.
    """
    n_sym, sps = config.n_symbols, config.samples_per_symbol
    n = n_sym * sps
    points, _ = qam_constellation(config.modulation)
    spectrum = rrc_spectrum(n, config.sample_rate, config.symbol_rate, config.rolloff)
    amplitude = np.sqrt(config.launch_power_w / 2)
    centre = (config.n_channels - 1) // 2
    total = np.zeros((2, n), dtype=complex)
    for channel in range(config.n_channels):
        rng = rng_stream(config.seed, STREAM_SYMBOLS, channel)
        indices = rng.integers(0, len(points), size=(2, n_sym))
        symbols = points[indices]
        spec = shape_symbols(symbols, sps, spectrum) * amplitude
        offset_bins = int(round((channel - centre) * config.channel_spacing_ghz * 1e9 * n / config.sample_rate))
        total += np.roll(spec, offset_bins, axis=-1)
        if channel == centre:
            centre_indices, centre_symbols = indices, symbols
    field = sfft.ifft(total, axis=-1).astype(dtype)
    return TransmittedSignal(field=field, symbol_indices=centre_indices, symbols=centre_symbols)
