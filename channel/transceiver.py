"""Transceiver electronics: electrical noise at the transmitter and the receiver, DAC and ADC resolution with clipping.

Electrical noise (:func:`add_electrical_noise`). White circular Gaussian noise of (complex baseband) power spectral
density ``N0`` (W/Hz per polarization) is added to each polarization of a waveform sampled at ``fs``.
The SNR is stated over the symbol rate ``Rs`` (the noise bandwidth of the RRC matched filter, so it is the SNR per
symbol ``Es/N0`` a back-to-back receiver measures after the matched filter):

    SNR = P / (N0 Rs),     noise variance per complex sample  sigma^2 = N0 fs = P (fs / Rs) / SNR

with ``P`` the signal power per polarization (W): at the transmitter the launch power per channel over 2 (so with
WDM each channel gets the stated SNR in its band), at the receiver the mean power of the selected channel's field
(signal plus any ASE in the receiver's band) per polarization, as an AGC'd receiver sees it.

Converters (:func:`quantize`). Each of the four real converters (I and Q of both polarizations) has its own gain
control: its full scale is ``+-A`` with ``A = k * rms(x)`` (``k`` the clipping ratio, ``rms`` over the block),
``2^ENOB`` uniform levels of step ``Delta = 2 A / 2^ENOB`` (mid-rise: levels ``Delta (i + 1/2)``), and inputs
beyond the full scale are clipped to the outermost level. For a fine quantizer the granular noise is uniform,
of power ``Delta^2 / 12``, so for an unclipped input of power ``sigma^2 = rms^2``

    SQNR = 12 * 2^(2 ENOB) / (4 k^2) = 6.02 ENOB + 4.77 - 20 log10(k)  dB

(a full-scale sinusoid, ``k = sqrt(2)``: the textbook ``6.02 ENOB + 1.76`` dB). A Gaussian input adds the clipping
distortion ``2 [(sigma^2 + A^2) Q(A/sigma) - A sigma phi(A/sigma)]`` (``Q``, ``phi``: the normal tail and density);
tests/test_transceiver.py checks both. A non-integer ENOB keeps the step ``2 A / 2^ENOB`` (a model of a converter
whose noise equals that of an ideal ``ENOB``-bit one).

Where they act in the link (:mod:`channel.link`): transmitter ``DAC -> driver noise`` on the launched field at the
simulation rate (before the laser); receiver ``noise -> ADC`` on the selected channel at ``dbp_samples_per_symbol``
(the ADC rate), after LO mixing and channel selection and before CDC. The noise is white over the sampled band, so
after the matched filter the quantization noise is ``10 log10(fs / Rs)`` dB below its waveform level.

Random draws: streams ``(transmitter.seed, STREAM_TX_NOISE)`` and ``(transmitter.seed, STREAM_RX_NOISE)``
(:mod:`channel.streams`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

from .streams import STREAM_RX_NOISE, STREAM_TX_NOISE, rng_stream
from .validation import ConfigError, check_number

SNR_BOUNDS_DB = (-10.0, 100.0)
ENOB_BOUNDS = (1.0, 24.0)
CLIPPING_RATIO_BOUNDS = (1.0, 20.0)
DEFAULT_CLIPPING_RATIO = 3.5


@dataclass(frozen=True)
class TransceiverConfig:
    """Electrical SNR and converter resolution of the transmitter and the receiver (``[transceiver]``; all off).

    Attributes:
        tx_snr_db: electrical SNR of the transmitter (DAC and driver) in dB over the symbol rate, [-10, 100];
            unset: no transmitter noise.
        rx_snr_db: electrical SNR of the receiver (photodiodes, TIA) in dB over the symbol rate, [-10, 100];
            unset: no receiver noise.
        dac_enob: effective number of bits of the DAC, [1, 24]; unset: ideal (no quantization).
        adc_enob: effective number of bits of the ADC, [1, 24]; unset: ideal.
        dac_clipping_ratio: DAC full scale over the RMS of each quadrature, [1, 20] (3.5); needs ``dac_enob``.
        adc_clipping_ratio: ADC full scale over the RMS of each quadrature, [1, 20] (3.5); needs ``adc_enob``.

    The section is left out of :meth:`LinkConfig.to_dict` (and the digest) at its default.
    """

    tx_snr_db: Optional[float] = None
    rx_snr_db: Optional[float] = None
    dac_enob: Optional[float] = None
    adc_enob: Optional[float] = None
    dac_clipping_ratio: float = DEFAULT_CLIPPING_RATIO
    adc_clipping_ratio: float = DEFAULT_CLIPPING_RATIO

    def __post_init__(self) -> None:
        for key in ("tx_snr_db", "rx_snr_db"):
            if getattr(self, key) is not None:
                check_number(f"transceiver.{key}", getattr(self, key), *SNR_BOUNDS_DB)
        for side in ("dac", "adc"):
            enob = getattr(self, f"{side}_enob")
            if enob is not None:
                check_number(f"transceiver.{side}_enob", enob, *ENOB_BOUNDS)
            ratio = getattr(self, f"{side}_clipping_ratio")
            check_number(f"transceiver.{side}_clipping_ratio", ratio, *CLIPPING_RATIO_BOUNDS)
            if enob is None and ratio != DEFAULT_CLIPPING_RATIO:
                raise ConfigError(f"transceiver.{side}_clipping_ratio = {ratio!r} has no effect without "
                                  f"transceiver.{side}_enob: set the {side.upper()} resolution in "
                                  f"[{ENOB_BOUNDS[0]:g}, {ENOB_BOUNDS[1]:g}] or remove the ratio")


def noise_variance(signal_power: float | np.ndarray, snr_db: float, samples_per_symbol: float) -> float | np.ndarray:
    """``sigma^2 = P (fs / Rs) / SNR``: noise variance per complex sample (W) for the SNR ``snr_db`` over the symbol
    rate, signal power ``P`` (W) and oversampling ``fs / Rs = samples_per_symbol``."""
    return signal_power * samples_per_symbol / 10 ** (snr_db / 10)


def add_electrical_noise(field: np.ndarray, snr_db: float, samples_per_symbol: float,
                         signal_power: float | np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``field + n``, ``n`` circular complex Gaussian of variance :func:`noise_variance` per sample.

    Args: field complex (..., n) in sqrt(W); ``signal_power`` P in W, a scalar or shape (...,) (per row);
        ``samples_per_symbol`` the field's ``fs / Rs``.
    Returns: a new array of the field's shape and dtype.
    """
    sigma = np.sqrt(np.asarray(noise_variance(signal_power, snr_db, samples_per_symbol), dtype=float) / 2)
    sigma = sigma[..., None] if np.ndim(sigma) else sigma
    noise = rng.standard_normal(field.shape) + 1j * rng.standard_normal(field.shape)
    return (field + sigma * noise).astype(field.dtype, copy=False)


def quantize(x: np.ndarray, enob: float, clipping_ratio: float) -> np.ndarray:
    """Uniform mid-rise quantizer with clipping on a real array (module docstring).

    Args: x real (..., n): one converter per row (its full scale ``A = clipping_ratio * rms`` over the row);
        ``enob`` the resolution in bits; ``clipping_ratio`` ``A / rms``.
    Returns: float64 (..., n): ``Delta (floor(x / Delta) + 1/2)`` limited to ``+-Delta (floor(A / Delta - 1/2) + 1/2)``,
        ``Delta = 2 A / 2^enob``.
    """
    x = np.asarray(x, dtype=float)
    rms = np.sqrt(np.mean(x**2, axis=-1, keepdims=True))
    full_scale = clipping_ratio * rms
    step = 2 * full_scale / 2.0**enob
    step = np.where(step > 0, step, 1.0)  # an all-zero row stays zero
    top = step * (np.floor(full_scale / step - 0.5) + 0.5)
    return np.clip(step * (np.floor(x / step) + 0.5), -top, top) * (rms > 0)


def quantize_field(field: np.ndarray, enob: float, clipping_ratio: float) -> np.ndarray:
    """:func:`quantize` of the I and Q of each row (polarization) of a complex field (..., n); same dtype."""
    out = quantize(field.real, enob, clipping_ratio) + 1j * quantize(field.imag, enob, clipping_ratio)
    return out.astype(field.dtype, copy=False)


def transmitter_electronics(field: np.ndarray, transceiver: TransceiverConfig, samples_per_symbol: int,
                            channel_power: float, seed: int) -> np.ndarray:
    """DAC (``dac_enob``, ``dac_clipping_ratio``), then driver noise (``tx_snr_db``) on the launched field.

    Args: field complex (2, n) in sqrt(W) at ``samples_per_symbol`` samples per symbol; ``channel_power`` the launch
        power per channel in W (the noise reference is half of it per polarization); ``seed`` the run's seed.
    Returns: (2, n), same dtype; ``field`` itself when both are off.
    """
    if transceiver.dac_enob is not None:
        field = quantize_field(field, transceiver.dac_enob, transceiver.dac_clipping_ratio)
    if transceiver.tx_snr_db is not None:
        field = add_electrical_noise(field, transceiver.tx_snr_db, samples_per_symbol, channel_power / 2,
                                     rng_stream(seed, STREAM_TX_NOISE))
    return field


def receiver_electronics(field: np.ndarray, transceiver: TransceiverConfig, samples_per_symbol: int,
                         seed: int) -> np.ndarray:
    """Receiver noise (``rx_snr_db``, relative to each polarization's mean power), then ADC (``adc_enob``,
    ``adc_clipping_ratio``).

    Args: field complex (2, n) in sqrt(W): the selected channel at ``samples_per_symbol`` (the ADC rate);
        ``seed`` the run's seed.
    Returns: (2, n), same dtype; ``field`` itself when both are off.
    """
    if transceiver.rx_snr_db is not None:
        power = np.mean(np.abs(field) ** 2, axis=-1)
        field = add_electrical_noise(field, transceiver.rx_snr_db, samples_per_symbol, power,
                                     rng_stream(seed, STREAM_RX_NOISE))
    if transceiver.adc_enob is not None:
        field = quantize_field(field, transceiver.adc_enob, transceiver.adc_clipping_ratio)
    return field


def sqnr_db(enob: float, clipping_ratio: float) -> float:
    """Granular SQNR of :func:`quantize` for an unclipped input, ``6.02 ENOB + 4.77 - 20 log10(k)`` dB (exactly
    ``10 log10(3 * 2^(2 ENOB) / k^2)``)."""
    return 10 * math.log10(3 * 4.0**enob / clipping_ratio**2)
