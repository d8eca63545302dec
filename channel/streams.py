"""Independent random streams: one seed per run, one stream per purpose.

``rng_stream(seed, *key)`` is a NumPy ``Generator`` on ``SeedSequence(entropy=seed, spawn_key=key)``:
streams with different keys are statistically independent, and the draws of one purpose never depend on
how many numbers another purpose drew. Keys used by this package:

* ``(seed, STREAM_SYMBOLS, k)``: the symbols of the WDM channel at folded offset ``k`` from the centre
  (:func:`channel.transmitter.channel_symbol_indices`);
* ``(seed, STREAM_ASE, span)``: the ASE noise of the amplifier after span ``span`` (:mod:`channel.amplifier`);
* ``(seed, STREAM_TX_LASER)``, ``(seed, STREAM_LO_LASER)``: the phase noise of the transmitter laser and of the
  local oscillator (:mod:`channel.laser`);
* ``(seed, STREAM_TX_NOISE)``, ``(seed, STREAM_RX_NOISE)``: the electrical noise of the transmitter and of the
  receiver (:mod:`channel.transceiver`).
"""

from __future__ import annotations

import numpy as np

STREAM_SYMBOLS = 0
STREAM_ASE = 1
STREAM_TX_LASER = 10
STREAM_LO_LASER = 11
STREAM_TX_NOISE = 12
STREAM_RX_NOISE = 13


def rng_stream(seed: int, *key: int) -> np.random.Generator:
    """An independent random generator for ``(seed, key...)`` (NumPy ``SeedSequence`` spawn keys)."""
    return np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=tuple(int(k) for k in key)))


__all__ = ["STREAM_ASE", "STREAM_LO_LASER", "STREAM_RX_NOISE", "STREAM_SYMBOLS", "STREAM_TX_LASER", "STREAM_TX_NOISE",
           "rng_stream"]
