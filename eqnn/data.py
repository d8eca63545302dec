"""Training and test data for NN equalizers: sliding windows of received symbols after CDC.

A window is the ``2N + 1`` received symbols (after CDC, matched filter, sampling and gain
normalization: :attr:`channel.Transmission.rx_cdc`) centred on symbol ``k``; its target is the
transmitted symbol ``k``. Shapes and conventions:

- features ``x``: float32 ``(n_windows, 2N + 1, 4)``; the last axis is ``[Re x, Im x, Re y, Im y]``
  (both polarizations of each received symbol); window row ``N`` is the centre symbol ``k``.
- targets ``y``: float32 ``(n_windows, 2)`` = ``[Re a_x, Im a_x]`` (x polarization), or
  ``(n_windows, 4)`` = ``[Re a_x, Im a_x, Re a_y, Im a_y]`` with ``both_polarizations``.
- ``centres``: int64 ``(n_windows,)``: the block index ``k`` of each window's centre symbol.

Residual targets (``residual = true``, the default). The model predicts the correction to the received
centre symbol, ``a_k - r_k`` (transmitted minus received after CDC, target polarizations), and the
equalized symbol is ``r_k + model(window)``. A freshly initialized model therefore starts near CDC
instead of having to learn the identity on the centre tap to the precision that 64QAM needs (an
error of -22 dB); the correction (mostly the nonlinear distortion plus noise) is standardized like any
target. The addition costs ``n_outputs`` real additions per window and no multiplication.

Edges. The simulator filters the whole block circularly (FFT), so symbols near one end of the block
interacted, during propagation, with symbols at the other end. Windows therefore never wrap around
and ``guard_symbols`` symbols are discarded at each block edge on top of that: window centres are
``k`` in ``[guard + N, n_symbols - guard - N)``.

Normalization. Each feature channel (and each target component, unless ``normalize_targets`` is
false) is standardized with a mean and standard deviation fitted on the training data only; the same
:class:`Normalization` is applied to test data and inverted on the model's outputs.

Augmentation (``augment``). The QAM link's statistics are invariant under two exact symmetries, each of which
turns a training example into another equally likely one: a phase rotation of the whole field by a multiple of
90 degrees (the square constellation maps onto itself; the Manakov equation, the ASE noise and CDC are
phase-invariant), and the exchange of the two polarizations (both carry independent symbols through the same
link; no PMD, no polarization-dependent loss). ``augment = ["phase_rotation", "polarization_swap"]`` applies a
random one of the 4 (or 8) transformations to each training example at each epoch (:func:`eqnn.training.fit`),
so a model sees up to 8x as many distinct examples from the same simulation. The normalization is then
*isotropic* (zero mean, one standard deviation shared by the four feature channels and one by the target
components), so that the transformations commute with it. A link that breaks a symmetry (PMD, IQ imbalance,
polarization-dependent loss, measured data from such a link) must not use the corresponding augmentation.

Default memory (``taps = "auto"``). Half the dispersive spread of the signal band over the whole
link, in symbols::

    N_cd = ceil( |beta2| * 2 pi Rs (1 + rolloff) * L_total * Rs / 2 )

(``|beta2| Delta_omega L`` is the group-delay spread across the signal bandwidth ``Rs (1 + rolloff)``;
times ``Rs`` it is in symbols; half of it on each side), clipped to
``[auto_taps_min, auto_taps_max]`` (default 10..50): NN equalizers after CDC only need the memory of
the residual nonlinear interaction, and the literature finds gains saturating at N of a few tens.
The reference link (30 GBd, roll-off 0.1, 1000 km, D = 17 ps/nm/km) has N_cd = 68, hence N = 50 by
default; studies usually set ``taps`` explicitly. ``guard_symbols = "auto"`` is N_cd (not clipped).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from dataclasses import dataclass, field
from typing import ClassVar, Sequence, Union

import numpy as np

from channel import ConfigError, LinkConfig, Transmission
from channel.config import check_int, unknown_keys_error
from channel.validation import check_bool, check_choices

FEATURES_PER_SYMBOL = 4
MAX_TAPS = 1000
AUGMENTATIONS = ("phase_rotation", "polarization_swap")


class DataError(ConfigError):
    """Data that cannot be used as asked (too short a block for the window, dependent train/test data, ...).

    A :class:`channel.ConfigError`, so that front ends report it like any other configuration error."""



@dataclass(frozen=True)
class DataConfig:
    """How windows and targets are made.

    Attributes:
        taps: N, the number of neighbouring symbols on each side of the centre (window length
            2N + 1): an integer in [0, 1000], or "auto" (see the module docstring).
        both_polarizations: if true, targets are both polarizations (4 outputs), else x only (2).
        guard_symbols: symbols discarded at each block edge besides the N of the window half-width:
            an integer in [0, 10**6], or "auto" (the link's dispersion memory N_cd).
        normalize_targets: standardize targets with training statistics (outputs are de-normalized).
        residual: the model predicts the correction to the received centre symbol (module docstring).
        auto_taps_min, auto_taps_max: clipping range of ``taps = "auto"``, integers in [0, 1000].
        augment: symmetries applied at random to the training examples (module docstring): a list of
            "phase_rotation" (multiples of 90 degrees) and "polarization_swap"; empty (default) for none.
    """

    taps: Union[int, str] = "auto"
    both_polarizations: bool = False
    guard_symbols: Union[int, str] = "auto"
    normalize_targets: bool = True
    residual: bool = True
    auto_taps_min: int = 10
    auto_taps_max: int = 50
    augment: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        augment = self.augment
        if isinstance(augment, (list, tuple)) and len(augment) == 0:
            augment = ()
        else:
            augment = check_choices("data.augment", augment, AUGMENTATIONS)
        object.__setattr__(self, "augment", augment)
        if isinstance(self.taps, str):
            if self.taps != "auto":
                raise ConfigError(f"data.taps = {self.taps!r}: allowed an integer in [0, {MAX_TAPS}] or 'auto'")
        else:
            check_int("data.taps", self.taps, 0, MAX_TAPS)
        if isinstance(self.guard_symbols, str):
            if self.guard_symbols != "auto":
                raise ConfigError(f"data.guard_symbols = {self.guard_symbols!r}: allowed an integer in "
                                  "[0, 1000000] or 'auto'")
        else:
            check_int("data.guard_symbols", self.guard_symbols, 0, 10**6)
        check_bool("data.both_polarizations", self.both_polarizations)
        check_bool("data.normalize_targets", self.normalize_targets)
        check_bool("data.residual", self.residual)
        check_int("data.auto_taps_min", self.auto_taps_min, 0, MAX_TAPS)
        check_int("data.auto_taps_max", self.auto_taps_max, 0, MAX_TAPS)
        if self.auto_taps_min > self.auto_taps_max:
            raise ConfigError(f"data.auto_taps_min = {self.auto_taps_min} exceeds data.auto_taps_max = "
                              f"{self.auto_taps_max}: allowed auto_taps_min <= auto_taps_max")

    @property
    def n_outputs(self) -> int:
        return 4 if self.both_polarizations else 2

    @property
    def polarizations(self) -> tuple[int, ...]:
        """Indices of the target polarizations: (0,) for x only, (0, 1) for both."""
        return (0, 1) if self.both_polarizations else (0,)

    def resolved(self, link: LinkConfig) -> "DataConfig":
        """A copy with "auto" taps and guard replaced by the numbers for ``link``."""
        return dataclasses.replace(self, taps=resolve_taps(self, link), guard_symbols=resolve_guard(self, link))

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        if self.augment:
            out["augment"] = list(self.augment)
        else:  # omitted when off: the fingerprints of models trained before the option existed stay valid
            del out["augment"]
        return out

    @classmethod
    def from_dict(cls, data: dict, section: str = "data") -> "DataConfig":
        unknown_keys_error(data, cls, section)
        return cls(**data)


def dispersion_memory_symbols(link: LinkConfig) -> int:
    """N_cd = ceil(|beta2| 2 pi Rs (1 + rolloff) L_total Rs / 2): half the dispersive spread, in symbols."""
    tx = link.transmitter
    spread_s = abs(link.fiber.beta2) * 2 * math.pi * tx.symbol_rate * (1 + tx.rolloff) * link.total_length
    return int(math.ceil(spread_s * tx.symbol_rate / 2 - 1e-9))


def resolve_taps(config: DataConfig, link: LinkConfig) -> int:
    """N for ``link``: ``config.taps`` or, for "auto", N_cd clipped to [auto_taps_min, auto_taps_max]."""
    if config.taps != "auto":
        return int(config.taps)
    return int(min(max(dispersion_memory_symbols(link), config.auto_taps_min), config.auto_taps_max))


def resolve_guard(config: DataConfig, link: LinkConfig) -> int:
    """Guard symbols for ``link``: ``config.guard_symbols`` or, for "auto", N_cd."""
    if config.guard_symbols != "auto":
        return int(config.guard_symbols)
    return dispersion_memory_symbols(link)


def window_centres(n_symbols: int, taps: int, guard: int) -> np.ndarray:
    """Centres ``k`` in ``[guard + taps, n_symbols - guard - taps)`` (int64); raises if none is left."""
    first, stop = guard + taps, n_symbols - guard - taps
    if stop <= first:
        raise DataError(f"a block of {n_symbols} symbols leaves no window with data.taps = {taps} and "
                        f"data.guard_symbols = {guard}: need n_symbols > 2 * (taps + guard_symbols) = "
                        f"{2 * (taps + guard)}; simulate more symbols or reduce taps/guard_symbols")
    return np.arange(first, stop, dtype=np.int64)


def symbol_features(rx: np.ndarray) -> np.ndarray:
    """complex (2, n) -> float64 (n, 4) = [Re x, Im x, Re y, Im y] per symbol."""
    rx = np.asarray(rx)
    if rx.ndim != 2 or rx.shape[0] != 2:
        raise DataError(f"received symbols must have shape (2, n_symbols), got {rx.shape}")
    return np.stack([rx[0].real, rx[0].imag, rx[1].real, rx[1].imag], axis=-1)


def symbol_targets(symbols: np.ndarray, polarizations: Sequence[int]) -> np.ndarray:
    """complex (2, n) -> float64 (n, 2 len(polarizations)) = [Re, Im] of each chosen polarization."""
    return np.concatenate([np.stack([symbols[p].real, symbols[p].imag], axis=-1) for p in polarizations], axis=-1)


def targets_to_complex(y: np.ndarray) -> np.ndarray:
    """float (n, 2P) [Re, Im, Re, Im ...] -> complex (P, n)."""
    y = np.asarray(y, dtype=np.float64)
    return (y[:, 0::2] + 1j * y[:, 1::2]).T


@dataclass(frozen=True)
class Normalization:
    """Per-channel standardization fitted on training data: ``(v - mean) / std``.

    ``x_mean``/``x_std`` have one entry per feature channel (4), ``y_mean``/``y_std`` one per output.
    """

    x_mean: tuple[float, ...]
    x_std: tuple[float, ...]
    y_mean: tuple[float, ...]
    y_std: tuple[float, ...]

    def __post_init__(self) -> None:
        for name in ("x_mean", "x_std", "y_mean", "y_std"):
            value = tuple(float(v) for v in getattr(self, name))
            if not all(math.isfinite(v) for v in value):
                raise DataError(f"normalization {name} = {value}: must be finite")
            object.__setattr__(self, name, value)
        if len(self.x_mean) != len(self.x_std) or len(self.y_mean) != len(self.y_std):
            raise DataError("normalization: mean and std lengths differ")
        if any(s <= 0 for s in self.x_std + self.y_std):
            raise DataError(f"normalization std must be > 0, got x_std={self.x_std}, y_std={self.y_std}")

    @classmethod
    def fit(cls, features: np.ndarray, targets: np.ndarray, normalize_targets: bool = True,
            isotropic: bool = False) -> "Normalization":
        """Fit on per-symbol ``features`` (n, 4) and ``targets`` (n, n_out).

        ``isotropic``: zero means and one root-mean-square shared by all feature channels (and one by all target
        components), so that phase rotations and the polarization swap commute with the normalization."""
        if isotropic:
            def shared(v):
                return np.zeros(v.shape[1]), np.full(v.shape[1], np.sqrt(np.mean(np.square(v))))
            x_mean, x_std = shared(features)
        else:
            x_mean, x_std = features.mean(axis=0), features.std(axis=0)
        if normalize_targets and isotropic:
            y_mean, y_std = shared(targets)
        elif normalize_targets:
            y_mean, y_std = targets.mean(axis=0), targets.std(axis=0)
        else:
            y_mean, y_std = np.zeros(targets.shape[1]), np.ones(targets.shape[1])
        return cls(tuple(x_mean), tuple(np.where(x_std > 0, x_std, 1.0)),
                   tuple(y_mean), tuple(np.where(y_std > 0, y_std, 1.0)))

    def apply_x(self, features: np.ndarray) -> np.ndarray:
        return (features - np.asarray(self.x_mean)) / np.asarray(self.x_std)

    def apply_y(self, targets: np.ndarray) -> np.ndarray:
        return (targets - np.asarray(self.y_mean)) / np.asarray(self.y_std)

    def invert_y(self, outputs: np.ndarray) -> np.ndarray:
        return np.asarray(outputs, dtype=np.float64) * np.asarray(self.y_std) + np.asarray(self.y_mean)

    def to_dict(self) -> dict:
        return {k: list(v) for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> "Normalization":
        return cls(**{k: tuple(data[k]) for k in ("x_mean", "x_std", "y_mean", "y_std")})


class ItemSet:
    """What the training sets (:class:`WindowSet`, :class:`eqnn.data_blocks.BlockSet`,
    :class:`eqnn.data_field.FieldSet`) share: ``x`` (n_items, time, features) and ``y`` (n_items, ..., n_outputs)
    arrays, their sizes, and :meth:`take`, which slices every per-item array named in ``ITEM_AXES`` (field name ->
    the axis that runs over the items; a None field stays None) and keeps the metadata."""

    ITEM_AXES: ClassVar[dict[str, int]] = {"x": 0, "y": 0, "block": 0, "y_swap": 0}

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def n_outputs(self) -> int:
        return int(self.y.shape[-1])

    @property
    def input_shape(self) -> tuple[int, int]:
        return (int(self.x.shape[1]), int(self.x.shape[2]))

    def take(self, index: Union[slice, np.ndarray]):
        """The items selected by ``index`` (a slice or an index/boolean array), same metadata."""
        picked = {}
        for name, axis in self.ITEM_AXES.items():
            value = getattr(self, name)
            picked[name] = None if value is None else value[(slice(None),) * axis + (index,)]
        return dataclasses.replace(self, **picked)


@dataclass
class WindowSet(ItemSet):
    """Windows of one or several transmissions, normalized, ready for a model.

    Attributes:
        x: float32 (n_windows, 2N + 1, 4) normalized features.
        y: float32 (n_windows, n_outputs) normalized targets (residual mode: of ``a_k - r_k``).
        centres: int64 (n_windows,) block index of each window's centre symbol.
        block: int64 (n_windows,) which transmission (of the list given) each window comes from.
        tx_indices: int64 (n_pol, n_windows) transmitted symbol indices at the centres
            (target polarizations only).
        taps: N.  guard: guard symbols per edge.  normalization: what was applied.
        launch_powers_dbm: launch power of each transmission (index: ``block``).
        seeds: transmitter seed of each transmission.
        modulation: the modulation format.
        offset: complex128 (n_pol, n_windows), added to the de-normalized model output to give the
            equalized symbol: the received centre symbols in residual mode, zeros otherwise.
        augment: the data config's symmetries to apply in training (module docstring).
        y_swap: float32 like ``y``: the normalized targets of the polarization-swapped windows (with
            "polarization_swap"), else None.
    """

    x: np.ndarray
    y: np.ndarray
    centres: np.ndarray
    block: np.ndarray
    tx_indices: np.ndarray
    taps: int
    guard: int
    normalization: Normalization
    launch_powers_dbm: list[float] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    modulation: str = ""
    offset: np.ndarray | None = None
    augment: tuple[str, ...] = ()
    y_swap: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.offset is None:
            self.offset = np.zeros((self.n_outputs // 2, len(self)), dtype=np.complex128)
        if self.offset.shape != (self.n_outputs // 2, len(self)):
            raise DataError(f"WindowSet.offset has shape {self.offset.shape}, expected "
                            f"{(self.n_outputs // 2, len(self))}")

    ITEM_AXES = {**ItemSet.ITEM_AXES, "centres": 0, "tx_indices": 1, "offset": 1}

    def symbol_indices(self) -> np.ndarray:
        """int64 (n_pol, n_windows): the transmitted indices in the order of :meth:`outputs_to_symbols`."""
        return self.tx_indices

    def target_symbols(self) -> np.ndarray:
        """complex (n_pol, n_windows): the de-normalized targets (transmitted symbols)."""
        return self.outputs_to_symbols(self.y)

    def outputs_to_symbols(self, outputs: np.ndarray) -> np.ndarray:
        """Model outputs (n_windows, n_outputs), normalized -> equalized symbols, complex (n_pol, n_windows)."""
        return targets_to_complex(self.normalization.invert_y(outputs)) + self.offset


def _as_list(transmissions: Union[Transmission, Sequence[Transmission]]) -> list[Transmission]:
    items = [transmissions] if isinstance(transmissions, Transmission) else list(transmissions)
    if not items:
        raise DataError("no transmission given")
    for t in items:
        if not isinstance(t, Transmission):
            raise TypeError(f"expected a channel.Transmission, got {type(t).__name__}")
    return items


def _check_same_geometry(items: list[Transmission], config: DataConfig) -> tuple[int, int]:
    """All transmissions give the same (taps, guard); return them."""
    resolved = {(resolve_taps(config, t.config), resolve_guard(config, t.config)) for t in items}
    if len(resolved) != 1:
        raise DataError(f"transmissions of different links give different taps/guard {sorted(resolved)}: "
                        "set data.taps and data.guard_symbols explicitly")
    mods = {t.modulation for t in items}
    if len(mods) != 1:
        raise DataError(f"transmissions mix modulation formats {sorted(mods)}")
    return resolved.pop()


def fit_normalization(transmissions: Union[Transmission, Sequence[Transmission]],
                      config: DataConfig) -> Normalization:
    """Fit a :class:`Normalization` on the symbols that the windows of ``transmissions`` use."""
    items = _as_list(transmissions)
    taps, guard = _check_same_geometry(items, config)
    feats, targs = [], []
    for t in items:
        n = t.rx_cdc.shape[-1]
        centres = window_centres(n, taps, guard)  # raises if the block is too short
        feats.append(symbol_features(t.rx_cdc)[guard:n - guard])  # every symbol some window uses
        targs.append(_raw_targets(t, centres, config))
    return Normalization.fit(np.concatenate(feats), np.concatenate(targs), config.normalize_targets,
                             isotropic=bool(config.augment))


def _raw_targets(t: Transmission, centres: np.ndarray, config: DataConfig, swapped: bool = False) -> np.ndarray:
    """(n, n_outputs) targets before normalization: the transmitted symbols, minus the received ones in
    residual mode. ``swapped``: the targets of the polarization-swapped example (polarization p -> 1 - p)."""
    pols = [1 - p for p in config.polarizations] if swapped else list(config.polarizations)
    target = t.tx_symbols[pols][:, centres]
    if config.residual:
        target = target - t.rx_cdc[pols][:, centres]
    return symbol_targets(target, range(len(pols)))


def make_windows(transmissions: Union[Transmission, Sequence[Transmission]], config: DataConfig,
                 normalization: Normalization) -> WindowSet:
    """Windows and targets of ``transmissions`` (concatenated in order), normalized with ``normalization``."""
    items = _as_list(transmissions)
    taps, guard = _check_same_geometry(items, config)
    if len(normalization.x_mean) != FEATURES_PER_SYMBOL or len(normalization.y_mean) != config.n_outputs:
        raise DataError(f"normalization has {len(normalization.x_mean)} features / {len(normalization.y_mean)} "
                        f"outputs; the data config needs {FEATURES_PER_SYMBOL} / {config.n_outputs}")
    xs, ys, cs, bs, tis, offsets, swaps = [], [], [], [], [], [], []
    for b, t in enumerate(items):
        n = t.rx_cdc.shape[-1]
        centres = window_centres(n, taps, guard)
        feats = normalization.apply_x(symbol_features(t.rx_cdc)).astype(np.float32)
        # windows[i] = feats[centres[i] - taps : centres[i] + taps + 1]; a strided view, copied once
        view = np.lib.stride_tricks.sliding_window_view(feats, 2 * taps + 1, axis=0)  # (n-2N, 4, 2N+1)
        xs.append(np.ascontiguousarray(view[centres - taps].transpose(0, 2, 1)))
        ys.append(normalization.apply_y(_raw_targets(t, centres, config)).astype(np.float32))
        if "polarization_swap" in config.augment:
            swaps.append(normalization.apply_y(_raw_targets(t, centres, config, swapped=True)).astype(np.float32))
        offsets.append(t.rx_cdc[list(config.polarizations)][:, centres] if config.residual else
                       np.zeros((len(config.polarizations), centres.size), dtype=np.complex128))
        cs.append(centres)
        bs.append(np.full(centres.size, b, dtype=np.int64))
        tis.append(t.tx_indices[list(config.polarizations)][:, centres])
    return WindowSet(x=np.concatenate(xs), y=np.concatenate(ys), centres=np.concatenate(cs),
                     block=np.concatenate(bs), tx_indices=np.concatenate(tis, axis=1), taps=taps, guard=guard,
                     normalization=normalization,
                     launch_powers_dbm=[t.config.transmitter.launch_power_dbm for t in items],
                     seeds=[t.config.transmitter.seed for t in items], modulation=items[0].modulation,
                     offset=np.concatenate(offsets, axis=1).astype(np.complex128), augment=config.augment,
                     y_swap=np.concatenate(swaps) if swaps else None)


def check_independent(train: Union[Transmission, Sequence[Transmission]],
                      test: Union[Transmission, Sequence[Transmission]]) -> None:
    """Raise :class:`DataError` unless every test transmission has a seed no training transmission has.

    The transmitter draws symbols and noise from independent streams of its seed, so different seeds
    give independent symbol sequences and noise.
    """
    train_seeds = {t.config.transmitter.seed for t in _as_list(train)}
    for t in _as_list(test):
        if t.config.transmitter.seed in train_seeds:
            raise DataError(f"test transmission has seed {t.config.transmitter.seed}, also used for training: "
                            "train and test data must come from different seeds (independent symbols and noise)")


def _link_only(link: LinkConfig) -> LinkConfig:
    """The link without what may differ between training and test data: seed, power, block length."""
    return link.with_seed(0).with_launch_power(0.0).replace(transmitter={"n_symbols": 1024})


def make_datasets(train: Union[Transmission, Sequence[Transmission]],
                  test: Union[Transmission, Sequence[Transmission]],
                  config: DataConfig) -> tuple[WindowSet, WindowSet]:
    """Training and test windows; normalization fitted on ``train`` only and applied to both.

    ``train``/``test``: one transmission each (one launch power), or lists (several launch powers,
    concatenated into one set). Train and test must come from different seeds and the same links
    (launch powers and block lengths may differ).
    """
    train_items, test_items = _as_list(train), _as_list(test)
    check_independent(train_items, test_items)
    train_links = {_link_only(t.config) for t in train_items}
    for t in test_items:
        if _link_only(t.config) not in train_links:
            raise DataError("test transmission comes from a different link (other than seed, launch power and "
                            "number of symbols) than the training data")
    norm = fit_normalization(train_items, config)
    return make_windows(train_items, config, norm), make_windows(test_items, config, norm)


def window_fingerprints(transmission: Transmission, centres: np.ndarray, taps: int) -> set[bytes]:
    """Digests of the transmitted symbols (both polarizations) of each window: to compare window sets."""
    idx = np.asarray(transmission.tx_indices, dtype=np.int64)
    view = np.lib.stride_tricks.sliding_window_view(idx, 2 * taps + 1, axis=1)  # (2, n-2N, 2N+1)
    chosen = np.ascontiguousarray(view[:, centres - taps].transpose(1, 0, 2))
    return {hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in chosen}
