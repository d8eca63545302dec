"""EDFA: gain that restores the span loss, and amplified spontaneous emission (ASE) noise.

ASE noise power per polarization in the simulation bandwidth B (= sample rate) is::

    P_ase = n_sp h nu (G - 1) B,   n_sp = (NF G - 1) / (2 (G - 1))   =>   P_ase = (NF G - 1) h nu B / 2

(the "NF G - 1" form, exact for the NF definition NF = (1 + 2 n_sp (G - 1)) / G; tools that use
NF G instead add 0.16 dB more noise at G = 10 dB, NF = 4.5 dB). The noise is circular complex white
Gaussian, drawn fresh for every amplifier from its own stream ``(seed, STREAM_ASE, span)``, bin by bin
in order of increasing |frequency| (see :func:`frequency_order`).
"""

from __future__ import annotations

import math

import numpy as np

from .config import PLANCK, LinkConfig
from .streams import STREAM_ASE, rng_stream


def loss_compensating_gain(alpha: float, span_length: float) -> float:
    """Power gain ``G = exp(alpha L)`` (linear) that restores the loss of a span of ``span_length`` L (m) of fiber
    with power attenuation ``alpha`` (1/m)."""
    return math.exp(alpha * span_length)


def span_gain(config: LinkConfig) -> float:
    """Power gain G = exp(alpha L_span) that restores the span loss of the link ``config`` (linear)."""
    return loss_compensating_gain(config.fiber.alpha, config.link.span_length)


def ase_noise_power(noise_figure_db: float, gain: float, carrier_frequency: float, bandwidth: float) -> float:
    """ASE power per polarization in W: ``(NF G - 1) h nu B / 2``.

    Args:
        noise_figure_db: noise figure in dB.  gain: linear power gain G.
        carrier_frequency: nu in Hz.  bandwidth: B in Hz.
    """
    nf = 10 ** (noise_figure_db / 10)
    return max(nf * gain - 1.0, 0.0) * PLANCK * carrier_frequency * bandwidth / 2


def ase_limited_snr_db(launch_power: float, n_spans: int, gain: float, noise_figure_db: float,
                       carrier_frequency: float, symbol_rate: float) -> float:
    """Closed-form SNR (dB) of a chain of ``n_spans`` amplifiers with ASE only, in the signal bandwidth.

    ``SNR = P_launch / (N_spans (NF G - 1) h nu Rs)``: launch power per channel (W) over the ASE of both
    polarizations accumulated over all amplifiers (gain G linear, NF in dB, carrier nu in Hz), in the
    matched-filter noise bandwidth Rs (the symbol rate, Hz).
    """
    p_ase = 2 * ase_noise_power(noise_figure_db, gain, carrier_frequency, symbol_rate)
    return 10 * math.log10(launch_power / (n_spans * p_ase))


def ase_only_snr_db(config: LinkConfig) -> float:
    """Closed-form SNR (dB) of the link ``config`` with ASE only, in the signal bandwidth (the symbol rate):
    :func:`ase_limited_snr_db` of its launch power, spans, gain :func:`span_gain`, noise figure and carrier."""
    return ase_limited_snr_db(config.transmitter.launch_power_w, config.link.n_spans, span_gain(config),
                              config.link.noise_figure_db, config.fiber.carrier_frequency,
                              config.transmitter.symbol_rate)


#: frequency bins per block of ASE noise drawn and added at once (bounds the temporary memory)
NOISE_BLOCK = 65536


class Amplifier:
    """EDFA applied to the frequency-domain field between spans (a hook of ``SplitStepFourier``).

    ``X -> sqrt(G) X + N``, with N white in frequency with per-bin variance ``n_samples * P_ase``
    (the FFT of time-domain white noise of variance ``P_ase`` per sample and polarization).

    Args:
        gain: linear power gain G (see :func:`loss_compensating_gain`).
        noise_figure_db: NF in dB.
        carrier_frequency: nu in Hz.
        bandwidth: simulation bandwidth B in Hz (the sample rate of the field it amplifies).
        seed: the run's seed; the noise of span ``s`` comes from the stream ``(seed, STREAM_ASE, s)``.
        noiseless: no ASE (gain only).

    ``P_ase`` is :func:`ase_noise_power` ``(NF, G, nu, B)``. :meth:`from_link` builds the amplifier of a link.
    The old form ``Amplifier(config)`` (a :class:`LinkConfig`) is still accepted and means ``from_link(config)``.
    """

    def __init__(self, gain, noise_figure_db: float = 0.0, carrier_frequency: float = 0.0,
                 bandwidth: float = 0.0, seed: int = 0, noiseless: bool = False):
        if isinstance(gain, LinkConfig):  # the old form Amplifier(config)
            config = gain
            gain = span_gain(config)
            noise_figure_db, carrier_frequency = config.link.noise_figure_db, config.fiber.carrier_frequency
            bandwidth, seed, noiseless = config.transmitter.sample_rate, config.transmitter.seed, config.link.noiseless
        self.gain = float(gain)
        self.noiseless = bool(noiseless)
        self.seed = int(seed)
        self.noise_power = ase_noise_power(noise_figure_db, self.gain, carrier_frequency, bandwidth)

    @classmethod
    def from_link(cls, config: LinkConfig) -> "Amplifier":
        """The EDFA of ``config``: gain :func:`span_gain`, the link's noise figure, the fiber's carrier frequency,
        the transmitter's sample rate and seed."""
        return cls(span_gain(config), config.link.noise_figure_db, config.fiber.carrier_frequency,
                   config.transmitter.sample_rate, config.transmitter.seed, config.link.noiseless)

    def __call__(self, spectrum: np.ndarray, span: int) -> np.ndarray:
        """Amplify ``spectrum`` (complex (..., n), the unnormalized FFT of the field) in place and return it.

        The noise is added in blocks of :data:`NOISE_BLOCK` bins (drawn in the same order as one draw of
        the whole block would be, so the values do not depend on the block size): no temporary array of
        the field's size.
        """
        spectrum *= spectrum.real.dtype.type(math.sqrt(self.gain))
        if self.noiseless or self.noise_power == 0:
            return spectrum
        rng = rng_stream(self.seed, STREAM_ASE, span)
        n = spectrum.shape[-1]
        scale = math.sqrt(n * self.noise_power / 2)
        rows = spectrum.reshape(-1, n)
        # frequency-major draws: bin i of the |f| order takes draws [i, :] (re/im of each polarization)
        for start in range(0, n, NOISE_BLOCK):
            bins = frequency_bins(n, start, start + NOISE_BLOCK)
            draws = rng.standard_normal((len(bins), rows.shape[0], 2), dtype=np.float64)
            noise = (scale * (draws[..., 0] + 1j * draws[..., 1])).T.astype(spectrum.dtype, copy=False)
            rows[:, bins] += noise
        return spectrum


def frequency_bins(n: int, start: int = 0, stop: int | None = None) -> np.ndarray:
    """Positions ``start:stop`` of the FFT bins ordered by frequency: 0, +1, -1, +2, -2, ... (numpy.fft order).

    Position ``p`` holds bin ``m = ceil(p/2)`` if ``p`` is odd, else ``(n - m) % n`` (the negative frequency -m);
    for even ``n`` the last position is the Nyquist bin ``n/2``. Computed per block, so the amplifier needs no
    array of ``n`` indices.

    Noise drawn in this order puts the same draws on the same physical frequencies whatever the
    oversampling (the bin spacing Rs / n_symbols does not depend on it), so one seed gives the same
    in-band ASE at 2, 4 or 8 samples per symbol and comparisons across oversampling are not statistics.
    """
    p = np.arange(start, n if stop is None else min(stop, n), dtype=np.int64)
    m = (p + 1) // 2
    return np.where(p % 2 == 1, m, (n - m) % n)


def frequency_order(n: int) -> np.ndarray:
    """All of :func:`frequency_bins`: bin indices ordered by frequency, length n."""
    return frequency_bins(n)
