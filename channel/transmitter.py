"""Dual-polarization square-QAM transmitter: Gray mapping, seeded symbols, RRC shaping, WDM.

Random draws come from :func:`channel.streams.rng_stream`: one seed per run, an independent stream per purpose
(symbols of each channel, ASE noise of each span), so changing one block never shifts another's draws.

WDM: channel ``c`` of ``n_channels`` (0-based, centre ``(n_channels-1)/2``) sits
:func:`channel.wdm.channel_offset_bins` FFT bins from the centre of the simulation grid, i.e. at the frequency
:func:`channel.wdm.channel_frequency` ~ ``(c - centre) * spacing``. Its symbols come from the stream keyed by its
position relative to the centre (:func:`channel_symbol_indices`), so the centre channel (and any channel
at a given offset) carries the same data whatever the number of channels: a WDM run and the
single-channel run of the same seed share the data of the channel under test.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Optional

import numpy as np

from .config import TransmitterConfig
from .fft import empty_aligned, fft_in_place
from .streams import STREAM_ASE, STREAM_SYMBOLS, rng_stream  # noqa: F401 - STREAM_ASE re-exported (old home)
from .wdm import centre_channel, channel_frequency, channel_offset_bins  # noqa: F401 - re-exported (old home)


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


def channel_symbol_indices(config: TransmitterConfig, channel: int) -> np.ndarray:
    """Symbol indices of channel ``channel``, int64 (2, n_symbols) (x and y polarization).

    Uniform i.i.d. draws from the stream ``(seed, STREAM_SYMBOLS, k)`` with ``k`` the channel's position
    relative to the centre ``d = c - centre`` folded onto 0, 1, 2, ...: ``k = 2d - 1`` for ``d > 0``,
    ``k = -2d`` for ``d <= 0`` (centre 0, then +1, -1, +2, -2, ...). Different channels draw from
    independent streams; the centre channel draws from the same stream as a single-channel link.
    """
    if not 0 <= channel < config.n_channels:
        raise ValueError(f"channel = {channel}: allowed [0, {config.n_channels - 1}]")
    d = channel - centre_channel(config)
    key = 2 * d - 1 if d > 0 else -2 * d
    n_points = len(qam_constellation(config.modulation)[0])
    return rng_stream(config.seed, STREAM_SYMBOLS, key).integers(0, n_points, size=(2, config.n_symbols))


@dataclass(frozen=True)
class TransmittedSignal:
    """Output of :func:`transmit`.

    Attributes:
        field: complex, shape (2, n_symbols * samples_per_symbol): the optical field of both
            polarizations in sqrt(W) at the simulation sample rate; mean of |Ex|^2 + |Ey|^2 is the
            launch power times the number of channels (for i.i.d. symbols).
        symbol_indices: int64, shape (2, n_symbols): transmitted symbol indices of channel ``channel``
            (the received one), x and y polarization.
        symbols: complex128, shape (2, n_symbols): the corresponding unit-energy constellation points.
        channel: the 0-based index of the channel whose symbols these are.
    """

    field: np.ndarray
    symbol_indices: np.ndarray
    symbols: np.ndarray
    channel: int = 0


def shape_symbols(symbols: np.ndarray, samples_per_symbol: int, spectrum: np.ndarray,
                  out: Optional[np.ndarray] = None) -> np.ndarray:
    """Upsample ``symbols`` (..., n) by zero insertion and filter with ``samples_per_symbol * spectrum``.

    With ``spectrum`` the RRC response, unit-energy i.i.d. symbols give unit mean power per sample.
    Returns the frequency-domain signal (unnormalized FFT), shape (..., n * samples_per_symbol), computed
    in ``out`` (complex128, that shape) if given, else in a new array.
    """
    n = symbols.shape[-1]
    shape = symbols.shape[:-1] + (n * samples_per_symbol,)
    upsampled = empty_aligned(shape, complex) if out is None else out
    upsampled.fill(0)
    upsampled[..., ::samples_per_symbol] = symbols
    shaped = fft_in_place(upsampled, inverse=False)
    shaped *= samples_per_symbol * spectrum
    return shaped


def _add_rolled(total: np.ndarray, spectrum: np.ndarray, shift: int) -> None:
    """``total += np.roll(spectrum, shift, axis=-1)`` without the rolled copy."""
    n = total.shape[-1]
    k = shift % n
    if k == 0:
        total += spectrum
        return
    total[..., k:] += spectrum[..., :n - k]
    total[..., :k] += spectrum[..., n - k:]


def transmit(config: TransmitterConfig, dtype: str = "complex128", channel: Optional[int] = None) -> TransmittedSignal:
    """Generate the launched dual-polarization field.

    Each of the ``n_channels`` channels carries independent uniformly drawn Gray-mapped QAM symbols on
    both polarizations (:func:`channel_symbol_indices`), RRC-shaped, scaled to ``launch_power / 2`` per
    polarization, and shifted by :func:`channel_offset_bins` (``(c - (n_channels-1)/2) * spacing`` rounded
    to the FFT grid, bin spacing Rs/n_symbols): the sum of the channels' spectra, one inverse FFT.

    Args:
        config: the transmitter.
        dtype: dtype of the returned field.
        channel: the channel whose symbols are returned (0-based; default: the centre one).
    """
    channel = centre_channel(config) if channel is None else int(channel)
    if not 0 <= channel < config.n_channels:
        raise ValueError(f"channel = {channel}: allowed [0, {config.n_channels - 1}]")
    n_sym, sps = config.n_symbols, config.samples_per_symbol
    n = n_sym * sps
    points, _ = qam_constellation(config.modulation)
    spectrum = rrc_spectrum(n, config.sample_rate, config.symbol_rate, config.rolloff)
    amplitude = np.sqrt(config.launch_power_w / 2)
    # memory: the sum and one work array of the field's size (no per-channel copies); one channel: one array
    single = config.n_channels == 1
    total = None if single else empty_aligned((2, n), complex)
    work = None if single else empty_aligned((2, n), complex)
    if not single:
        total.fill(0)
    for c in range(config.n_channels):
        indices = channel_symbol_indices(config, c)
        symbols = points[indices]
        spec = shape_symbols(symbols, sps, spectrum, out=work)
        spec *= amplitude
        if single:
            total = spec  # the only channel, at offset 0
        else:
            _add_rolled(total, spec, channel_offset_bins(config, c))
        if c == channel:
            selected_indices, selected_symbols = indices, symbols
    del work, spec
    field = fft_in_place(total, inverse=True).astype(dtype, copy=False)
    return TransmittedSignal(field=field, symbol_indices=selected_indices, symbols=selected_symbols,
                             channel=channel)
