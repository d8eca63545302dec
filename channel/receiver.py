"""Coherent receiver: channel selection and resampling, CDC, matched filter, sampling, normalization.

All filters are applied in the frequency domain on the whole (circular) block, so they are exact:
the chromatic-dispersion compensation (CDC) is the exact inverse transfer function of the whole link,
and the zero-phase RRC matched filter puts symbol k exactly on sample ``k * samples_per_symbol``.
"""

from __future__ import annotations

import numpy as np
import scipy.fft as sfft

from .config import LinkConfig
from .fiber import angular_frequencies, dispersion_exponent, fft_workers
from .transmitter import rrc_spectrum


def resample_spectrum(spectrum: np.ndarray, n_out: int) -> np.ndarray:
    """Keep the ``n_out`` lowest-frequency bins of an FFT spectrum (ideal low-pass + decimation).

    For an even ``n_out`` the output Nyquist bin keeps the input's bin at ``-n_out/2`` (the pass band
    is [-fs_out/2, fs_out/2)); signals of this package have no content there.
    Input (..., n_in) in numpy.fft order; output (..., n_out), scaled so that the time-domain
    amplitude is unchanged. ``n_out > n_in`` zero-pads (ideal interpolation).
    """
    n_in = spectrum.shape[-1]
    if n_out == n_in:
        return spectrum.copy()
    out = np.zeros(spectrum.shape[:-1] + (n_out,), dtype=spectrum.dtype)
    n = min(n_in, n_out)
    pos = (n + 1) // 2
    neg = n // 2
    out[..., :pos] = spectrum[..., :pos]
    out[..., n_out - neg:] = spectrum[..., n_in - neg:]
    return out * (n_out / n_in)


def select_channel(field: np.ndarray, config: LinkConfig) -> np.ndarray:
    """Low-pass the received field to ``dbp_samples_per_symbol`` samples per symbol (centre channel).

    Args: field complex (2, n_symbols * samples_per_symbol) at the simulation rate.
    Returns: complex128 (2, n_symbols * dbp_samples_per_symbol): the input of CDC and of DBP.
    """
    n_out = config.transmitter.n_symbols * config.receiver.dbp_samples_per_symbol
    spectrum = sfft.fft(np.asarray(field, dtype=complex), axis=-1, workers=fft_workers())
    return sfft.ifft(resample_spectrum(spectrum, n_out), axis=-1, workers=fft_workers())


def cd_compensation_response(n_samples: int, config: LinkConfig, samples_per_symbol: int) -> np.ndarray:
    """Inverse dispersion of the whole link, ``exp[-(j beta2/2 w^2 - j beta3/6 w^3) L]``, shape (n_samples,)."""
    omega = angular_frequencies(n_samples, samples_per_symbol * config.transmitter.symbol_rate)
    return np.exp(-dispersion_exponent(omega, config.fiber.beta2, config.fiber.beta3) * config.total_length)


def cd_compensate(signal: np.ndarray, config: LinkConfig, samples_per_symbol: int) -> np.ndarray:
    """Frequency-domain CDC of the whole link (:func:`cd_compensation_response`; L = total length).

    Args: signal complex (..., n) at ``samples_per_symbol``.
    Returns: the compensated signal, same shape.
    """
    h = cd_compensation_response(signal.shape[-1], config, samples_per_symbol)
    return sfft.ifft(sfft.fft(signal, axis=-1, workers=fft_workers()) * h, axis=-1, workers=fft_workers())


def matched_filter_and_sample(signal: np.ndarray, config: LinkConfig, samples_per_symbol: int,
                              cdc: bool = False) -> np.ndarray:
    """RRC matched filter (after CDC if ``cdc``, in the same frequency-domain pass) and sampling at the
    symbol instants ``k * samples_per_symbol``.

    Args: signal complex (..., n_symbols * samples_per_symbol).
    Returns: complex (..., n_symbols): ``sqrt(P/2) a_k`` + noise for a launched power P (per channel)
    on a linear link; see :func:`normalize`.
    """
    n = signal.shape[-1]
    tx = config.transmitter
    h = rrc_spectrum(n, samples_per_symbol * tx.symbol_rate, tx.symbol_rate, tx.rolloff)
    if cdc:
        h = h * cd_compensation_response(n, config, samples_per_symbol)
    filtered = sfft.ifft(sfft.fft(signal, axis=-1, workers=fft_workers()) * h, axis=-1, workers=fft_workers())
    return filtered[..., ::samples_per_symbol]


def complex_gain(received: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Least-squares complex gain per polarization, ``c = sum(y conj(a)) / sum(|a|^2)``, shape (...,)."""
    return np.sum(received * np.conj(reference), axis=-1) / np.sum(np.abs(reference) ** 2, axis=-1)


def normalize(received: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Remove one complex gain per polarization (mean nonlinear phase rotation and power scaling).

    Data-aided: ``y / c`` with ``c`` from :func:`complex_gain` against the transmitted unit-energy
    symbols, as a pilot-aided carrier-phase and gain recovery with a block-long average would do.
    The result is on the scale of the unit-energy constellation.
    """
    return received / complex_gain(received, reference)[..., None]
