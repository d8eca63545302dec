"""Model inputs of sequence (many-to-many) equalizers: blocks of consecutive received symbols, one target each.

Conventions are those of windows (:mod:`eqnn.data`): features ``[Re x, Im x, Re y, Im y]`` of the received symbols
after CDC, residual targets ``a_k - r_k`` (unless ``residual = false``), the same :class:`eqnn.data.Normalization`
(fitted by :func:`eqnn.data.fit_normalization` on the training data), and ``guard`` symbols discarded at each end of
the transmission. The usable *stream* of a transmission of ``n`` symbols is ``[guard, n - guard)``: exactly the
symbols the windows of the same data config read.

Training (:func:`make_blocks`): the stream is cut into consecutive, non-overlapping blocks of ``L`` symbols (the rest
is dropped): ``x`` float32 ``(n_blocks, L, 4)``, ``y`` float32 ``(n_blocks, L, n_outputs)``; every position has
its target.

Inference (:func:`block_plan`, :func:`stitch`): the stream of ``S`` symbols is cut into blocks of ``B`` symbols
that overlap by ``O`` symbols on each side; block ``i`` starts at ``i D`` with ``D = B - 2 O`` (the last block is
moved left to end at the stream end) and delivers the outputs ``[start + O, start + O + D)``; the first block also
delivers its first ``O`` outputs and the last block its last ones (nothing precedes or follows them). Every stream
symbol is delivered exactly once. A stream shorter than ``B`` is one block. The evaluated symbols are the window
centres ``[guard + N, n - guard - N)`` (N = ``data.taps``), so a sequence model is evaluated on the very symbols a
windowed model of the same data config is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence, Union

import numpy as np

from channel import Transmission

from .data import (
    FEATURES_PER_SYMBOL,
    DataConfig,
    DataError,
    ItemSet,
    Normalization,
    _as_list,
    _check_same_geometry,
    _raw_targets,
    symbol_features,
    targets_to_complex,
    window_centres,
)

__all__ = ["BlockPlan", "BlockSet", "block_plan", "cut", "make_blocks", "stream_features", "stitch"]


@dataclass
class BlockSet(ItemSet):
    """Training blocks of one or several transmissions, normalized, ready for a sequence model.

    Attributes:
        x: float32 (n_blocks, L, 4) normalized features.
        y: float32 (n_blocks, L, n_outputs) normalized targets (residual mode: of ``a_k - r_k``).
        starts: int64 (n_blocks,) block index of each block's first symbol in its transmission.
        block: int64 (n_blocks,) which transmission (of the list given) each block comes from.
        taps: N of the data config (the evaluated symbols).  guard: guard symbols per edge.
        normalization: what was applied.  launch_powers_dbm, seeds, modulation: of the transmissions.
        augment, y_swap: as :class:`eqnn.data.WindowSet`'s (``y_swap`` shaped like ``y``).
        offset: complex128 (n_blocks, L, n_pol) added to the de-normalized outputs to give the equalized symbols
            (the received symbols in residual mode, zeros otherwise), or None (unknown: no symbols from outputs).
        tx_indices: int64 (n_blocks, L, n_pol) transmitted symbol indices at every position (target
            polarizations), or None.
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
    y_swap: np.ndarray | None = None
    offset: np.ndarray | None = None
    tx_indices: np.ndarray | None = None

    ITEM_AXES = {**ItemSet.ITEM_AXES, "starts": 0, "offset": 0, "tx_indices": 0}

    def outputs_to_symbols(self, outputs: np.ndarray) -> np.ndarray:
        """Model outputs (n_blocks, L, n_outputs), normalized -> equalized symbols, complex (n_pol, n_blocks L),
        block after block."""
        if self.offset is None:
            raise DataError("these blocks carry no offsets (made without make_blocks): no symbols from outputs")
        outputs = np.asarray(outputs).reshape(-1, self.n_outputs)
        return targets_to_complex(self.normalization.invert_y(outputs)) + self.offset.reshape(-1,
                                                                                                self.offset.shape[-1]).T

    def symbol_indices(self) -> np.ndarray:
        """int64 (n_pol, n_blocks L): the transmitted indices in the order of :meth:`outputs_to_symbols`."""
        if self.tx_indices is None:
            raise DataError("these blocks carry no transmitted indices (made without make_blocks)")
        return self.tx_indices.reshape(-1, self.tx_indices.shape[-1]).T

    @property
    def block_length(self) -> int:
        return int(self.x.shape[1])

    @property
    def targets_per_item(self) -> int:
        """Targets per block (``L``): a window has 1."""
        return self.block_length


def stream_features(transmission: Transmission, guard: int, normalization: Normalization) -> np.ndarray:
    """Normalized features float32 ``(n - 2 guard, 4)`` of the stream ``[guard, n - guard)``."""
    n = transmission.rx_cdc.shape[-1]
    if n - 2 * guard < 1:
        raise DataError(f"a block of {n} symbols leaves no symbol with data.guard_symbols = {guard}")
    feats = symbol_features(transmission.rx_cdc)[guard:n - guard]
    return normalization.apply_x(feats).astype(np.float32)


def make_blocks(transmissions: Union[Transmission, Sequence[Transmission]], config: DataConfig,
                normalization: Normalization, block_length: int) -> BlockSet:
    """Consecutive non-overlapping blocks of ``block_length`` symbols of the stream of each transmission
    (concatenated in order), with one normalized target per position."""
    items = _as_list(transmissions)
    taps, guard = _check_same_geometry(items, config)
    if len(normalization.x_mean) != FEATURES_PER_SYMBOL or len(normalization.y_mean) != config.n_outputs:
        raise DataError(f"normalization has {len(normalization.x_mean)} features / {len(normalization.y_mean)} "
                        f"outputs; the data config needs {FEATURES_PER_SYMBOL} / {config.n_outputs}")
    L = int(block_length)
    xs, ys, ss, bs, swaps, offsets, indices = [], [], [], [], [], [], []
    pols = list(config.polarizations)
    for b, t in enumerate(items):
        n = t.rx_cdc.shape[-1]
        window_centres(n, taps, guard)  # the same length checks as windows
        feats = stream_features(t, guard, normalization)
        n_blocks = feats.shape[0] // L
        if n_blocks < 1:
            raise DataError(f"a stream of {feats.shape[0]} symbols (block of {n} symbols minus guard {guard} on each "
                            f"side) is shorter than one training block of block_length = {L}: simulate more symbols "
                            "or reduce block_length")
        positions = np.arange(guard, guard + n_blocks * L, dtype=np.int64)
        targets = normalization.apply_y(_raw_targets(t, positions, config)).astype(np.float32)
        xs.append(feats[:n_blocks * L].reshape(n_blocks, L, FEATURES_PER_SYMBOL))
        ys.append(targets.reshape(n_blocks, L, config.n_outputs))
        if "polarization_swap" in config.augment:
            swapped = normalization.apply_y(_raw_targets(t, positions, config, swapped=True)).astype(np.float32)
            swaps.append(swapped.reshape(n_blocks, L, config.n_outputs))
        offset = t.rx_cdc[pols][:, positions] if config.residual else np.zeros((len(pols), positions.size))
        offsets.append(offset.T.reshape(n_blocks, L, len(pols)).astype(np.complex128))
        indices.append(t.tx_indices[pols][:, positions].T.reshape(n_blocks, L, len(pols)).astype(np.int64))
        ss.append(guard + L * np.arange(n_blocks, dtype=np.int64))
        bs.append(np.full(n_blocks, b, dtype=np.int64))
    return BlockSet(x=np.concatenate(xs), y=np.concatenate(ys), starts=np.concatenate(ss), block=np.concatenate(bs),
                    taps=taps, guard=guard, normalization=normalization,
                    launch_powers_dbm=[t.config.transmitter.launch_power_dbm for t in items],
                    seeds=[t.config.transmitter.seed for t in items], modulation=items[0].modulation,
                    augment=config.augment, y_swap=np.concatenate(swaps) if swaps else None,
                    offset=np.concatenate(offsets), tx_indices=np.concatenate(indices))


@dataclass(frozen=True)
class BlockPlan:
    """How a stream of ``length`` symbols is cut into inference blocks (module docstring).

    Attributes:
        length: stream length S.  block: block length actually used (``min(B, S)``).  overlap: O.
        starts: int64 (n_blocks,) first stream index of each block.
        delivered: int64 (n_blocks, 2) ``[lo, hi)`` stream indices each block delivers (disjoint, covering S).
    """

    length: int
    block: int
    overlap: int
    starts: np.ndarray
    delivered: np.ndarray


def block_plan(length: int, block: int, overlap: int) -> BlockPlan:
    """The inference blocks of a stream of ``length`` symbols: blocks of ``block`` symbols overlapping by
    ``overlap`` on each side (``block > 2 overlap``)."""
    length, block, overlap = int(length), int(block), int(overlap)
    if length < 1:
        raise DataError("an empty stream has no inference block")
    if block <= 2 * overlap:
        raise DataError(f"inference block {block} must exceed 2 * overlap = {2 * overlap}")
    if length <= block:
        return BlockPlan(length, length, overlap, np.zeros(1, np.int64), np.array([[0, length]], np.int64))
    step = block - 2 * overlap
    starts, delivered = [], []
    lo = 0
    start = 0
    while True:
        if start + block >= length:  # the last block ends at the stream end
            start = length - block
            starts.append(start)
            delivered.append((lo, length))
            break
        hi = start + overlap + step
        starts.append(start)
        delivered.append((lo, hi))
        lo = hi
        start += step
    return BlockPlan(length, block, overlap, np.array(starts, np.int64), np.array(delivered, np.int64))


def cut(stream: np.ndarray, plan: BlockPlan) -> np.ndarray:
    """``(n_blocks, block, features)``: the blocks of ``stream`` (``(S, features)``) under ``plan``."""
    return np.stack([stream[s:s + plan.block] for s in plan.starts])


def stitch(outputs: np.ndarray, plan: BlockPlan) -> np.ndarray:
    """``(S, n_outputs)``: the delivered outputs of each block (``outputs``: ``(n_blocks, block, n_outputs)``)."""
    out = np.empty((plan.length,) + outputs.shape[2:], dtype=outputs.dtype)
    for o, s, (lo, hi) in zip(outputs, plan.starts, plan.delivered):
        out[lo:hi] = o[lo - s:hi - s]
    return out
