"""The WDM channel plan on the simulation grid: the facts the transmitter and the receiver share.

Channel ``c`` of ``n_channels`` (0-based; centre ``(n_channels - 1) // 2``) sits
``round((c - centre) * spacing / df)`` FFT bins from the centre of the simulation grid, ``df = Fs / N`` the
bin spacing (``N = n_symbols * samples_per_symbol`` samples at ``Fs = samples_per_symbol * Rs``, so
``df = Rs / n_symbols`` at any oversampling), i.e. at the grid frequency ``offset_bins * df``. This one rounding
rule is what makes a channel shifted back by :meth:`ChannelGrid.offset_bins` bins exactly at baseband.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import TransmitterConfig


@dataclass(frozen=True)
class ChannelGrid:
    """The WDM channels on the FFT grid of the simulation.

    Attributes:
        n_channels: number of channels (1: a single channel at the centre).
        channel_spacing_ghz: channel spacing in GHz.
        n_samples: samples per polarization of the simulation grid (``n_symbols * samples_per_symbol``).
        sample_rate: simulation sample rate in Hz.
    """

    n_channels: int
    channel_spacing_ghz: float
    n_samples: int
    sample_rate: float

    @classmethod
    def from_transmitter(cls, tx: TransmitterConfig) -> "ChannelGrid":
        """The grid of the transmitter ``tx``: its channels, spacing, ``n_symbols * samples_per_symbol`` samples."""
        return cls(n_channels=tx.n_channels, channel_spacing_ghz=tx.channel_spacing_ghz,
                   n_samples=tx.n_symbols * tx.samples_per_symbol, sample_rate=tx.sample_rate)

    @property
    def centre(self) -> int:
        """Index of the centre channel, ``(n_channels - 1) // 2`` (0 for a single channel)."""
        return (self.n_channels - 1) // 2

    def check(self, channel: int) -> int:
        """``channel`` if it is in [0, n_channels - 1]; else ValueError."""
        if not 0 <= channel < self.n_channels:
            raise ValueError(f"channel = {channel}: allowed [0, {self.n_channels - 1}]")
        return channel

    def offset_bins(self, channel: int) -> int:
        """FFT-bin offset of ``channel`` from the grid centre: ``round((c - centre) * spacing * N / Fs)``.

        Positive: higher ``numpy.fft`` frequency.
        """
        return int(round((channel - self.centre) * self.channel_spacing_ghz * 1e9 * self.n_samples / self.sample_rate))

    def frequency(self, channel: int) -> float:
        """Frequency of ``channel`` on the simulation grid in Hz: ``offset_bins * Fs / N``."""
        return self.offset_bins(channel) * self.sample_rate / self.n_samples


def centre_channel(config: TransmitterConfig) -> int:
    """Index of the centre channel, ``(n_channels - 1) // 2`` (0 for a single channel)."""
    return (config.n_channels - 1) // 2


def channel_offset_bins(config: TransmitterConfig, channel: int) -> int:
    """FFT-bin offset of channel ``channel`` from the grid centre: ``round((c - centre) * spacing / df)``.

    ``df = sample_rate / (n_symbols * samples_per_symbol) = Rs / n_symbols`` is the bin spacing, the same
    at any oversampling. The one rounding rule of the transmitter (:func:`channel.transmitter.transmit`) and
    the receiver (:func:`channel.receiver.select_channel`): a channel shifted back by this many bins is exactly
    at baseband. Positive: higher ``numpy.fft`` frequency. See :meth:`ChannelGrid.offset_bins`.
    """
    return ChannelGrid.from_transmitter(config).offset_bins(channel)


def channel_frequency(config: TransmitterConfig, channel: int) -> float:
    """Frequency of channel ``channel`` on the simulation grid in Hz: ``channel_offset_bins * Rs / n_symbols``."""
    return ChannelGrid.from_transmitter(config).frequency(channel)


__all__ = ["ChannelGrid", "centre_channel", "channel_frequency", "channel_offset_bins"]
