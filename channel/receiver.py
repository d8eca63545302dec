"""Coherent receiver: channel selection and resampling, CDC, matched filter, sampling, normalization.

All filters are applied in the frequency domain on the whole (circular) block, so they are exact:
the chromatic-dispersion compensation (CDC) is the exact inverse transfer function of the whole link,
and the zero-phase RRC matched filter puts symbol k exactly on sample ``k * samples_per_symbol``.

WDM: the channel under test ``c = config.received_channel`` at ``w_c = 2 pi f_c`` on the simulation grid
(:meth:`channel.wdm.ChannelGrid.frequency`) sees, at baseband frequency ``w``, the dispersion exponent
``E(w_c + w) = E(w_c) + E'(w_c) w + E_c(w)`` (``E`` = :func:`channel.fiber.dispersion_exponent`): a constant phase,
a group delay (the walk-off against the centre of the grid) and the dispersion of a fiber with the channel's local
``beta2_c = beta2 - beta3 w_c`` and the same ``beta3`` (:meth:`CoherentReceiver.channel_dispersion`).
:meth:`CoherentReceiver.select_channel` removes the first two (a carrier phase and a timing offset, which a real
receiver recovers), so CDC and single-channel DBP act on the channel with ``beta2_c, beta3`` exactly as on a
single-channel link. For the centre channel, or ``beta3 = 0`` (no dispersion slope), ``beta2_c = beta2``.

:class:`CoherentReceiver` holds what the receiver needs (its :class:`ReceiverConfig`, the channel grid, the
channel under test, the symbol rate and roll-off, the fiber's dispersion and the link length);
:meth:`CoherentReceiver.from_link` builds it from a :class:`LinkConfig`. The module functions taking a
``config`` (``select_channel(field, config)``, ...) are the same operations on ``CoherentReceiver.from_link(config)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from . import fft
from .config import LinkConfig, ReceiverConfig
from .fft import angular_frequencies
from .fiber import dispersion_exponent
from .transmitter import rrc_spectrum
from .wdm import ChannelGrid


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
    out *= n_out / n_in
    return out


@dataclass(frozen=True)
class CoherentReceiver:
    """The coherent receiver of one channel of a link.

    Attributes:
        receiver: its settings (``dbp_samples_per_symbol``: the oversampling of the selected channel).
        grid: the WDM channels on the simulation grid (:class:`channel.wdm.ChannelGrid`).
        channel: the 0-based index of the channel under test.
        n_symbols: symbols per polarization of the block.
        symbol_rate: Rs in Hz.  rolloff: RRC roll-off of the matched filter, [0, 1].
        beta2: fiber group-velocity dispersion in s^2/m.  beta3: dispersion slope in s^3/m (at the grid centre).
        length: total fiber length L of the link in m (what CDC and the walk-off removal undo).
    """

    receiver: ReceiverConfig
    grid: ChannelGrid
    channel: int
    n_symbols: int
    symbol_rate: float
    rolloff: float
    beta2: float
    beta3: float
    length: float

    @classmethod
    def from_link(cls, config: LinkConfig) -> "CoherentReceiver":
        """The receiver of ``config.received_channel`` of the link ``config``."""
        tx = config.transmitter
        return cls(receiver=config.receiver, grid=ChannelGrid.from_transmitter(tx), channel=config.received_channel,
                   n_symbols=tx.n_symbols, symbol_rate=tx.symbol_rate, rolloff=tx.rolloff,
                   beta2=config.fiber.beta2, beta3=config.fiber.beta3, length=config.total_length)

    def channel_dispersion(self) -> tuple[float, float]:
        """``(beta2_c, beta3)`` in s^2/m, s^3/m: the dispersion of the received channel about its own carrier.

        ``beta2_c = beta2 - beta3 w_c`` (the ``w^2`` coefficient of ``E(w_c + w)``; the sign follows the
        ``numpy.fft`` convention of :mod:`channel.fiber`), ``w_c`` the channel's angular frequency on the
        simulation grid; ``beta2_c = beta2`` for the centre channel.
        """
        beta2, beta3 = self.beta2, self.beta3
        omega_c = 2 * np.pi * self.grid.frequency(self.channel)
        return (beta2 - beta3 * omega_c if beta3 != 0 and omega_c != 0 else beta2), beta3

    def channel_filter_bandwidth(self) -> float:
        """Full width (Hz) of the ideal channel filter of :meth:`select_channel`.

        WDM: the channel's slot on the grid, ``min(spacing, dbp_samples_per_symbol * Rs)``: the widest
        band-pass that rejects every neighbour completely (a neighbour's band starts at
        ``spacing - (1 + rolloff) Rs / 2 >= spacing / 2`` since the spacing is at least the signal bandwidth
        ``(1 + rolloff) Rs``), so it keeps the whole signal band and part of its nonlinear broadening.
        Single channel: the whole output band ``dbp_samples_per_symbol * Rs``.
        """
        band = self.receiver.dbp_samples_per_symbol * self.symbol_rate
        return min(self.grid.channel_spacing_ghz * 1e9, band) if self.grid.n_channels > 1 else band

    def select_channel(self, field: np.ndarray, overwrite_input: bool = False) -> np.ndarray:
        """Receive the channel under test: shift to baseband, channel filter, decimate, remove walk-off.

        1. Shift the channel ``c = self.channel`` to baseband by rolling the spectrum by
           ``-offset_bins(c)`` bins (exact: the transmitter's rounding, :meth:`ChannelGrid.offset_bins`).
        2. Keep the ``n_symbols * dbp_samples_per_symbol`` lowest-frequency bins (ideal low-pass and
           decimation, :func:`resample_spectrum`) and, for WDM, zero every bin with
           ``|f| > channel_filter_bandwidth / 2`` (ideal brick-wall channel filter, :meth:`channel_filter_bandwidth`).
        3. Off-centre channel: multiply by ``exp(-(E(w_c) + E'(w_c) w) L)`` (``L`` the link length; module
           docstring): removes the channel's carrier phase and group delay relative to the grid centre, so
           that CDC (:meth:`cd_compensate`) and DBP with :meth:`channel_dispersion` undo its dispersion exactly.

        A single-channel link only goes through step 2 (the centre channel: no shift, no filter beyond the
        decimation, no delay).

        Args: field complex (2, n_symbols * samples_per_symbol) at the simulation rate (all channels), sqrt(W);
            ``overwrite_input``: a complex128 ``field`` may be used as work memory (its content is then undefined).
        Returns: complex128 (2, n_symbols * dbp_samples_per_symbol): the input of CDC and of DBP, in sqrt(W).
        """
        sps = self.receiver.dbp_samples_per_symbol
        n_out = self.n_symbols * sps
        spectrum = fft.fft(np.asarray(field, dtype=complex), overwrite_x=overwrite_input)
        offset = self.grid.offset_bins(self.channel)
        if offset:
            spectrum = np.roll(spectrum, -offset, axis=-1)
        out = resample_spectrum(spectrum, n_out)
        del spectrum
        if self.grid.n_channels > 1:
            f = np.fft.fftfreq(n_out, d=1 / (sps * self.symbol_rate))
            out[..., np.abs(f) > self.channel_filter_bandwidth() / 2] = 0
        if offset:
            omega_c = 2 * np.pi * self.grid.frequency(self.channel)
            omega = angular_frequencies(n_out, sps * self.symbol_rate)
            beta2, beta3 = self.beta2, self.beta3
            phase = dispersion_exponent(np.array(omega_c), beta2, beta3)          # E(w_c)
            slope = 1j * (beta2 * omega_c - beta3 / 2 * omega_c**2)               # E'(w_c)
            out *= np.exp(-(phase + slope * omega) * self.length)
        return fft.ifft(out)

    def cd_compensation_response(self, n_samples: int, samples_per_symbol: int) -> np.ndarray:
        """Inverse dispersion of the whole link, ``exp[-(j beta2_c/2 w^2 - j beta3/6 w^3) L]``, shape (n_samples,),
        on the grid of ``n_samples`` samples at ``samples_per_symbol * Rs``.

        ``beta2_c`` of the received channel (:meth:`channel_dispersion`; ``beta2`` for the centre channel).
        """
        omega = angular_frequencies(n_samples, samples_per_symbol * self.symbol_rate)
        beta2, beta3 = self.channel_dispersion()
        return np.exp(-dispersion_exponent(omega, beta2, beta3) * self.length)

    def cd_compensate(self, signal: np.ndarray, samples_per_symbol: int) -> np.ndarray:
        """Frequency-domain CDC of the whole link (:meth:`cd_compensation_response`; L = total length).

        Args: signal complex (..., n) at ``samples_per_symbol``.
        Returns: the compensated signal, same shape.
        """
        h = self.cd_compensation_response(signal.shape[-1], samples_per_symbol)
        return fft.ifft(fft.fft(signal) * h)

    def matched_filter(self, signal: np.ndarray, samples_per_symbol: int, cdc: bool = False,
                       overwrite_input: bool = False, output_samples_per_symbol: Optional[int] = None) -> np.ndarray:
        """RRC matched filter (after CDC if ``cdc``, in the same frequency-domain pass), optionally resampled.

        Args: signal complex (..., n_symbols * samples_per_symbol); ``output_samples_per_symbol``: the output's
            oversampling (default ``samples_per_symbol``), reached by keeping the lowest-frequency bins
            (:func:`resample_spectrum`: exact for 2 or more, as the filtered band is ``(1 + rolloff) Rs / 2 <= Rs``).
        Returns: complex (..., n_symbols * output_samples_per_symbol); symbol k at sample
            ``k * output_samples_per_symbol`` (the filter has zero phase).
        """
        n = signal.shape[-1]
        h = rrc_spectrum(n, samples_per_symbol * self.symbol_rate, self.symbol_rate, self.rolloff)
        if cdc:
            h = h * self.cd_compensation_response(n, samples_per_symbol)
        spectrum = fft.fft(signal, overwrite_x=overwrite_input)
        spectrum *= h
        if output_samples_per_symbol is not None and output_samples_per_symbol != samples_per_symbol:
            spectrum = resample_spectrum(spectrum, n // samples_per_symbol * output_samples_per_symbol)
        return fft.ifft(spectrum, overwrite_x=True)

    def matched_filter_and_sample(self, signal: np.ndarray, samples_per_symbol: int, cdc: bool = False,
                                  overwrite_input: bool = False) -> np.ndarray:
        """RRC matched filter (after CDC if ``cdc``, in the same frequency-domain pass: :meth:`matched_filter`)
        and sampling at the symbol instants ``k * samples_per_symbol``.

        Args: signal complex (..., n_symbols * samples_per_symbol).
        Returns: complex (..., n_symbols): ``sqrt(P/2) a_k`` + noise for a launched power P (per channel)
        on a linear link; see :func:`normalize`.
        """
        filtered = self.matched_filter(signal, samples_per_symbol, cdc, overwrite_input)
        return filtered[..., ::samples_per_symbol].copy()  # the copy frees the oversampled array


def channel_dispersion(config: LinkConfig) -> tuple[float, float]:
    """``(beta2_c, beta3)`` of the received channel of ``config``: :meth:`CoherentReceiver.channel_dispersion`."""
    return CoherentReceiver.from_link(config).channel_dispersion()


def channel_filter_bandwidth(config: LinkConfig) -> float:
    """Channel filter width (Hz) of ``config``'s receiver: :meth:`CoherentReceiver.channel_filter_bandwidth`."""
    return CoherentReceiver.from_link(config).channel_filter_bandwidth()


def select_channel(field: np.ndarray, config: LinkConfig, overwrite_input: bool = False) -> np.ndarray:
    """:meth:`CoherentReceiver.select_channel` of the receiver of ``config``: complex128
    (2, n_symbols * dbp_samples_per_symbol) from the field (2, n_symbols * samples_per_symbol) of all channels."""
    return CoherentReceiver.from_link(config).select_channel(field, overwrite_input)


def cd_compensation_response(n_samples: int, config: LinkConfig, samples_per_symbol: int) -> np.ndarray:
    """:meth:`CoherentReceiver.cd_compensation_response` of the receiver of ``config``, shape (n_samples,)."""
    return CoherentReceiver.from_link(config).cd_compensation_response(n_samples, samples_per_symbol)


def cd_compensate(signal: np.ndarray, config: LinkConfig, samples_per_symbol: int) -> np.ndarray:
    """:meth:`CoherentReceiver.cd_compensate` of the receiver of ``config``; signal complex (..., n)."""
    return CoherentReceiver.from_link(config).cd_compensate(signal, samples_per_symbol)


def matched_filter_and_sample(signal: np.ndarray, config: LinkConfig, samples_per_symbol: int,
                              cdc: bool = False, overwrite_input: bool = False) -> np.ndarray:
    """:meth:`CoherentReceiver.matched_filter_and_sample` of the receiver of ``config``: (..., n_symbols)."""
    return CoherentReceiver.from_link(config).matched_filter_and_sample(signal, samples_per_symbol, cdc,
                                                                          overwrite_input)


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
