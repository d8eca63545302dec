"""Model inputs of field equalizers (learned DBP, :mod:`eqnn.models.ldbp`): blocks of the received field before CDC.

The field is :attr:`channel.Transmission.rx_field`: complex (2, n sps), the channel under test at ``sps =
receiver.dbp_samples_per_symbol`` samples per symbol, in sqrt(W); symbol ``k`` sits on sample ``k sps`` (the
receiver samples there after its zero-phase matched filter). Features: float32 ``(T, 4)`` = ``[Re A_x, Im A_x, Re A_y,
Im A_y]`` in sqrt(mW) (:data:`eqnn.models.ldbp.FIELD_UNIT_W`): a fixed physical unit, not a fitted normalization,
since the nonlinear phase depends on the absolute power.

A block delivering the symbols ``k0 .. k0 + B - 1`` reads the input samples ``sps k0 - R .. sps (k0 + B - 1) + R``
(``R`` = the model's reach, :attr:`eqnn.models.ldbp.LDBPConfig.reach`), taken circularly (modulo the block of the
transmission): the simulated block is circular (its dispersion and DBP wrap around), so this is exact, and no
symbol is lost at the edges.

Training (:func:`make_field_blocks`): consecutive blocks of ``block_length`` L symbols over the window centres of
the data config (``[guard + N, n - guard - N)``; the rest of a last short block is dropped), targets the transmitted
symbols of the target polarizations ``(L, n_outputs)`` (not residual, not normalized). Inference
(:func:`predict_field`): the window centres in blocks of ``inference_block`` symbols, so that the equalizer is
evaluated on the very symbols the other methods are.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence, Union

import numpy as np

from channel import Transmission

from .data import (
    DataConfig,
    DataError,
    ItemSet,
    Normalization,
    _as_list,
    _check_same_geometry,
    symbol_targets,
    window_centres,
)

__all__ = ["FieldSet", "field_features", "field_windows", "identity_normalization", "make_field_blocks",
           "predict_field"]

FIELD_UNIT_W = 1e-3


def identity_normalization(n_outputs: int) -> Normalization:
    """The :class:`eqnn.data.Normalization` that changes nothing (a field model's record)."""
    return Normalization(x_mean=(0.0,) * 4, x_std=(1.0,) * 4, y_mean=(0.0,) * n_outputs, y_std=(1.0,) * n_outputs)


def field_features(transmission: Transmission) -> np.ndarray:
    """float32 ``(n sps, 4)``: the received field before CDC in sqrt(mW) (module docstring)."""
    f = np.asarray(transmission.rx_field) / math.sqrt(FIELD_UNIT_W)
    return np.stack([f[0].real, f[0].imag, f[1].real, f[1].imag], axis=-1).astype(np.float32)


def field_windows(features: np.ndarray, starts: np.ndarray, sps: int, reach: int, symbols: int) -> np.ndarray:
    """float32 ``(len(starts), sps (symbols - 1) + 1 + 2 reach, 4)``: the inputs of blocks delivering ``symbols``
    symbols from each first symbol in ``starts``, read circularly."""
    length = sps * (symbols - 1) + 1 + 2 * reach
    idx = (np.asarray(starts, np.int64)[:, None] * sps - reach + np.arange(length)[None, :]) % features.shape[0]
    return features[idx]


@dataclass
class FieldSet(ItemSet):
    """Training blocks of a field equalizer (module docstring).

    Attributes:
        x: float32 (n_blocks, T, 4) field inputs.  y: float32 (n_blocks, L, n_outputs) transmitted symbols.
        starts: int64 (n_blocks,) first symbol delivered by each block.  block: int64 (n_blocks,) which transmission.
        taps, guard: of the data config.  normalization: the identity (kept for the equalizer record).
        launch_powers_dbm, seeds, modulation: of the transmissions.
    """

    x: np.ndarray
    y: np.ndarray
    starts: np.ndarray
    block: np.ndarray
    taps: int
    guard: int
    normalization: Normalization
    launch_powers_dbm: list[float] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    modulation: str = ""
    augment: tuple[str, ...] = ()
    y_swap: None = None

    ITEM_AXES = {**ItemSet.ITEM_AXES, "starts": 0}

    @property
    def targets_per_item(self) -> int:
        return int(self.y.shape[1])


def _geometry(config) -> tuple[int, int]:
    if config.link is None:
        raise DataError(f"model {config.name!r}: the link is not resolved (prepare the config from the training "
                        "transmissions first)")
    return config.sps, config.reach


def make_field_blocks(transmissions: Union[Transmission, Sequence[Transmission]], data_config: DataConfig,
                      config) -> FieldSet:
    """Training blocks of ``config.block_length`` symbols of each transmission (module docstring)."""
    items = _as_list(transmissions)
    taps, guard = _check_same_geometry(items, data_config)
    sps, reach = _geometry(config)
    L = int(config.block_length)
    pols = list(data_config.polarizations)
    xs, ys, ss, bs = [], [], [], []
    for b, t in enumerate(items):
        if t.rx_field.shape[-1] != sps * t.tx_indices.shape[-1]:
            raise DataError(f"the received field has {t.rx_field.shape[-1]} samples for {t.tx_indices.shape[-1]} "
                            f"symbols: model {config.name!r} was prepared for {sps} samples per symbol")
        centres = window_centres(t.tx_indices.shape[-1], taps, guard)
        n_blocks = centres.size // L
        if n_blocks < 1:
            raise DataError(f"{centres.size} usable symbols are fewer than one training block of block_length = {L} "
                            f"(model {config.name!r}): simulate more symbols or reduce block_length")
        starts = centres[0] + L * np.arange(n_blocks, dtype=np.int64)
        xs.append(field_windows(field_features(t), starts, sps, reach, L))
        symbols = t.tx_symbols[pols][:, centres[0]:centres[0] + n_blocks * L]
        ys.append(symbol_targets(symbols, range(len(pols))).astype(np.float32).reshape(n_blocks, L, 2 * len(pols)))
        ss.append(starts)
        bs.append(np.full(n_blocks, b, dtype=np.int64))
    return FieldSet(x=np.concatenate(xs), y=np.concatenate(ys), starts=np.concatenate(ss), block=np.concatenate(bs),
                    taps=taps, guard=guard, normalization=identity_normalization(2 * len(pols)),
                    launch_powers_dbm=[t.config.transmitter.launch_power_dbm for t in items],
                    seeds=[t.config.transmitter.seed for t in items], modulation=items[0].modulation)


def predict_field(model, config, transmission: Transmission, data_config: DataConfig, batch_size: int = 8192
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(equalized symbols complex (n_pol, n_centres), centres int64): the model over the window centres of
    ``data_config`` (taps and guard resolved) in blocks of ``config.inference_block`` symbols."""
    sps, reach = _geometry(config)
    centres = window_centres(transmission.tx_indices.shape[-1], int(data_config.taps),
                             int(data_config.guard_symbols))
    B = min(int(config.inference_block), centres.size)
    starts = np.arange(centres[0], centres[-1] + 1, B, dtype=np.int64)
    starts[-1] = min(starts[-1], centres[-1] + 1 - B)  # the last block ends at the last centre
    features = field_features(transmission)
    per_batch = max(1, int(batch_size) // B)
    outs = []
    for i in range(0, len(starts), per_batch):
        x = field_windows(features, starts[i:i + per_batch], sps, reach, B)
        outs.append(np.asarray(model(x, training=False)))
    out = np.concatenate(outs)  # (n_blocks, B, n_outputs)
    y = np.empty((centres.size, out.shape[-1]), np.float64)
    for s, o in zip(starts, out):
        y[s - centres[0]:s - centres[0] + B] = o
    if y.shape[-1] != data_config.n_outputs:
        raise ValueError(f"model has {y.shape[-1]} outputs, the data {data_config.n_outputs}")
    return (y[:, 0::2] + 1j * y[:, 1::2]).T, centres
