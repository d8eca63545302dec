"""``simulate(config) -> Transmission``: the one place that chains transmitter, fiber, amplifiers,
receiver, DBP and metrics, and the one place that builds those blocks from a :class:`LinkConfig`
(each block's ``from_link``: :meth:`SplitStepFourier.from_link`, :meth:`Amplifier.from_link`,
:meth:`CoherentReceiver.from_link`, :meth:`DigitalBackPropagation.from_link`; the transmitter takes its own
:class:`TransmitterConfig`).

    transmit -> [DAC, driver noise] -> [Tx laser] -> [fiber span -> EDFA] x n_spans -> [LO mixing]
             -> select the channel under test (shift to baseband, channel filter, low-pass to dbp_samples_per_symbol)
             -> [receiver noise, ADC] -> [frequency-offset removal]
             -> CDC -> matched filter -> sample -> [carrier recovery] -> normalize               ("CDC")
             -> DBP(k steps/span, xi) -> matched filter -> sample -> [carrier recovery] -> normalize ("DBP-k")

The receiver's DSP after channel selection is :mod:`channel.receiver_dsp` (one chain for CDC and DBP; with the MIMO
on, the frequency offset is estimated on the MIMO's polarization-demultiplexed outputs).

The bracketed blocks are off by default (:mod:`channel.transceiver`, :mod:`channel.laser`,
:mod:`channel.carrier_recovery`; the ``[transceiver]``, ``[laser]``, ``[carrier_recovery]`` sections).

With ``receiver.mimo`` on, "matched filter -> sample" is "matched filter at 2 sps -> adaptive 2x2 MIMO equalizer
(1 sps out)" (:mod:`channel.mimo`), after CDC and after DBP; PMD (``fiber.pmd_ps_sqrt_km``) acts in the forward
stepper (:mod:`channel.pmd`).

With WDM (``transmitter.n_channels > 1``) the forward propagation carries every channel; the receiver
keeps the channel ``config.received_channel`` (``receiver.channel_index``, default the centre one), and
every symbol array of the :class:`Transmission` is that channel's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from . import storage
from .amplifier import Amplifier, ase_only_snr_db
from .carrier_recovery import CarrierRecovery, count_cycle_slips
from .config import LinkConfig
from .dbp import DigitalBackPropagation
from .fiber import SplitStepFourier, step_lengths
from .laser import apply_transmitter_laser, mix_local_oscillator
from .metrics import Metrics, evaluate_symbols
from .mimo import AdaptiveEqualizer
from .receiver import CoherentReceiver
from .receiver_dsp import acquire_frequency_offset, recover_symbols
from .transceiver import receiver_electronics, transmitter_electronics
from .transmitter import qam_constellation, transmit


@dataclass
class Transmission:
    """The result of one simulated transmission.

    Attributes:
        config: the :class:`LinkConfig` it came from.
        tx_indices: int64 (2, n_symbols): transmitted symbol indices (x, y polarization) of the received
            channel (``config.received_channel``).
        rx_cdc: complex128 (2, n_symbols): received symbols after CDC, matched filter, sampling and
            removal of one complex gain per polarization, on the unit-energy constellation scale.
        rx_field: complex128 (2, n_symbols * dbp_samples_per_symbol): the received field (sqrt(W)) of
            the received channel at baseband, channel-filtered and low-passed to the DBP oversampling,
            before CDC (:func:`channel.receiver.select_channel`; after the receiver electronics and the
            frequency-offset removal when configured): the input of DBP and of other receivers.
        rx_dbp: {steps_per_span: complex128 (2, n_symbols)}: normalized symbols after DBP.
        dbp_xi: {steps_per_span: xi used}.
        dbp_nonlinear_position: {steps_per_span: position p of the nonlinear step used} (fraction of each DBP step
            from its high-power end, 0.5: symmetric; :mod:`channel.dbp`).
        dbp_power_filter_bandwidth: {steps_per_span: bandwidth B of the power filter used, in units of the symbol
            rate}; empty without the filter (``receiver.dbp_power_filter_taps = 1``).
        metrics: {"CDC": Metrics, "DBP-1": Metrics, ...} over the whole block.
        info: extra numbers: closed-form ASE-only SNR, forward steps per span, wall time; with carrier recovery
            ``info["carrier_recovery"]``: ``cycle_slips`` {output: slips left, counted against the transmitted
            symbols, :func:`channel.carrier_recovery.count_cycle_slips`}, ``cycle_slips_corrected`` {"CDC": slips
            found on the pilots}, ``frequency_offset_estimate_hz`` (None without the estimator).
    """

    config: LinkConfig
    tx_indices: np.ndarray
    rx_cdc: np.ndarray
    rx_field: np.ndarray
    rx_dbp: dict[int, np.ndarray] = field(default_factory=dict)
    dbp_xi: dict[int, float] = field(default_factory=dict)
    dbp_nonlinear_position: dict[int, float] = field(default_factory=dict)
    dbp_power_filter_bandwidth: dict[int, float] = field(default_factory=dict)
    metrics: dict[str, Metrics] = field(default_factory=dict)
    info: dict = field(default_factory=dict)

    @property
    def tx_symbols(self) -> np.ndarray:
        """complex128 (2, n_symbols): transmitted unit-energy constellation points."""
        return qam_constellation(self.config.transmitter.modulation)[0][self.tx_indices]

    @property
    def modulation(self) -> str:
        return self.config.transmitter.modulation

    def dbp_settings(self, steps_per_span: int | None) -> dict:
        """``{"dbp_xi", "dbp_nonlinear_position", "dbp_power_filter_bandwidth"}`` that DBP with
        ``steps_per_span`` used (each None where not set; all None for ``steps_per_span`` None, e.g. CDC)."""
        k = steps_per_span
        return {"dbp_xi": self.dbp_xi.get(k) if k else None,
                "dbp_nonlinear_position": self.dbp_nonlinear_position.get(k) if k else None,
                "dbp_power_filter_bandwidth": self.dbp_power_filter_bandwidth.get(k) if k else None}

    def save(self, path: str | Path) -> Path:
        return storage.save_transmission(self, path)

    @classmethod
    def load(cls, path: str | Path) -> "Transmission":
        return storage.load_transmission(path, cls)


def _solver(config: LinkConfig, n_samples: int) -> SplitStepFourier:
    return SplitStepFourier.from_link(config, n_samples)


def _span_bar(config: LinkConfig, progress: bool, label: str):
    if not progress:
        return None
    from tqdm.auto import tqdm
    return tqdm(total=config.link.n_spans, desc=f"SSFM {label}", unit="span", leave=False)


def propagate_link(config: LinkConfig, field_in: np.ndarray, progress: bool = False,
                   overwrite_input: bool = False) -> np.ndarray:
    """Forward propagation over all spans with EDFAs. field_in/out: complex (2, n) in sqrt(W).

    ``overwrite_input=True`` lets the stepper work in ``field_in`` itself (one field of memory less; its
    content is then undefined).
    """
    solver = _solver(config, field_in.shape[-1])
    bar = _span_bar(config, progress, f"{config.transmitter.launch_power_dbm:+.1f} dBm")
    try:
        return solver.propagate(field_in, config.link.n_spans, after_span=Amplifier.from_link(config),
                                progress=(lambda s: bar.update(1)) if bar else None,
                                overwrite_input=overwrite_input)
    finally:
        if bar is not None:
            bar.close()


def propagate_link_batch(configs: Sequence[LinkConfig], fields: np.ndarray, progress: bool = False,
                         overwrite_input: bool = False) -> np.ndarray:
    """Forward propagation of several transmissions that differ only in launch power, as one batch.

    Args:
        configs: one :class:`LinkConfig` per batch item, equal but for ``transmitter.launch_power_dbm``.
        fields: complex (batch, 2, n), the launched fields in sqrt(W).
    Returns: complex (batch, 2, n), each item with its own amplifiers (ASE of its own config).

    All items share one step plan: that of the highest launch power (an adaptive plan is then finer than
    the lower powers need, so each item is at least as accurate as when propagated alone; with fixed or
    logarithmic steps the plans are identical and so are the results, up to rounding).
    """
    configs = list(configs)
    fields = np.asarray(fields)
    if not configs or fields.ndim != 3 or fields.shape[0] != len(configs):
        raise ValueError(f"fields must have shape (len(configs), 2, n) = ({len(configs)}, 2, n), got {fields.shape}")
    base = configs[0].with_launch_power(0.0)
    for i, c in enumerate(configs):
        if c.with_launch_power(0.0) != base:
            raise ValueError(f"configs[{i}] differs from configs[0] in more than the launch power")
    strongest = max(configs, key=lambda c: c.transmitter.launch_power_dbm)
    amplifiers = [Amplifier.from_link(c) for c in configs]

    def amplify(spectrum: np.ndarray, span: int) -> np.ndarray:
        for item, amplifier in zip(spectrum, amplifiers):
            amplifier(item, span)
        return spectrum

    bar = _span_bar(strongest, progress, f"batch of {len(configs)}")
    try:
        return _solver(strongest, fields.shape[-1]).propagate(
            fields, strongest.link.n_spans, after_span=amplify, progress=(lambda s: bar.update(1)) if bar else None,
            overwrite_input=overwrite_input)
    finally:
        if bar is not None:
            bar.close()


def simulate(config: LinkConfig, cache_dir: Optional[str | Path] = None, progress: bool = False,
             dbp: bool = True) -> Transmission:
    """Simulate one transmission over the link of ``config``.

    Args:
        config: the link scenario (validated on construction).
        cache_dir: if given, the result is stored as ``<cache_dir>/<digest>.npz`` and reused when the
            same config is simulated again (a corrupted cache file is recomputed).
        progress: show a progress bar over spans.
        dbp: compute the DBP variants of ``config.receiver``.

    Returns: a :class:`Transmission`.
    """
    if not isinstance(config, LinkConfig):
        raise TypeError(f"config must be a channel.LinkConfig, got {type(config).__name__}")
    if cache_dir is not None:
        cached = storage.load_cached(cache_dir, config, Transmission)
        if cached is not None:
            missing = [k for k in config.receiver.dbp_steps_per_span if k not in cached.rx_dbp] if dbp else []
            if not missing:
                return cached
            # cached without (some) DBP: back-propagate the stored received field, no new forward run
            _add_dbp(cached, missing)
            _count_cycle_slips(cached)
            storage.save_transmission(cached, storage.cache_path(cache_dir, config))
            return cached
    start = time.perf_counter()
    tx = transmit(config.transmitter, config.propagation.precision, channel=config.received_channel)
    indices, launched = tx.symbol_indices, [_launch(config, tx.field)]
    del tx  # the symbols are recomputed from the indices by the receiver: less memory held while propagating
    # memory: the launched field's array is the stepper's work array and then the receiver's, and nothing
    # else refers to it, so it is freed once the receiver has selected the channel
    return _receive(config, indices, propagate_link(config, launched.pop(), progress, overwrite_input=True),
                    start, dbp, cache_dir)


def _launch(config: LinkConfig, field: np.ndarray) -> np.ndarray:
    """Transmitter electronics (DAC, driver noise) and laser phase noise on the launched field (2, n); the
    field itself when both are off (the default)."""
    tx = config.transmitter
    field = transmitter_electronics(field, config.transceiver, tx.samples_per_symbol, tx.launch_power_w, tx.seed)
    return apply_transmitter_laser(field, config.laser, tx.sample_rate, tx.seed)


def _receive(config: LinkConfig, tx_indices: np.ndarray, rx_full: np.ndarray, start: float, dbp: bool,
             cache_dir: Optional[str | Path]) -> Transmission:
    """Receiver part of :func:`simulate`: LO, channel selection, electronics, CDC, DBP, carrier recovery, metrics,
    info and cache."""
    receiver = CoherentReceiver.from_link(config)
    tx = config.transmitter
    rx_full = mix_local_oscillator(rx_full, config.laser, tx.sample_rate, tx.seed)
    rx_field = receiver.select_channel(rx_full, overwrite_input=True)
    del rx_full
    sps = config.receiver.dbp_samples_per_symbol
    rx_field = receiver_electronics(rx_field, config.transceiver, sps, tx.seed)
    recovery = CarrierRecovery.from_link(config)
    equalizer = AdaptiveEqualizer.from_link(config)  # receiver.mimo: None when "off"
    rx_field, offset = acquire_frequency_offset(rx_field, sps, receiver, equalizer, recovery)
    tx_symbols = qam_constellation(config.transmitter.modulation)[0][tx_indices]
    rx_cdc, recovered = recover_symbols(rx_field, sps, tx_symbols, receiver, equalizer, recovery, cdc=True)
    result = Transmission(config=config, tx_indices=tx_indices, rx_cdc=rx_cdc, rx_field=rx_field)
    result.metrics["CDC"] = evaluate_symbols(rx_cdc, tx_indices, config.transmitter.modulation)
    if dbp:
        _add_dbp(result, config.receiver.dbp_steps_per_span)
    result.info = {"ase_only_snr_db": ase_only_snr_db(config) if not config.link.noiseless else None,
                   "forward_steps_per_span": int(len(step_lengths(config))),
                   "wall_time_s": time.perf_counter() - start}
    if recovered is not None:
        result.info["carrier_recovery"] = {"cycle_slips": {}, "frequency_offset_estimate_hz": offset,
                                           "cycle_slips_corrected": {"CDC": recovered.cycle_slips_corrected}}
        _count_cycle_slips(result)
    if cache_dir is not None:
        storage.save_transmission(result, storage.cache_path(cache_dir, config))
    return result


def _add_dbp(result: Transmission, steps: Sequence[int]) -> None:
    """Back-propagate ``result.rx_field`` with each of ``steps`` steps per span (xi, the position of the nonlinear
    step and the power filter's bandwidth searched where so configured: :meth:`DigitalBackPropagation.optimize`);
    store symbols, the parameters used and metrics in ``result``."""
    config = result.config
    rx = config.receiver
    tx_symbols = result.tx_symbols
    dbp = DigitalBackPropagation.from_link(config)
    filtered = rx.dbp_power_filter_taps > 1
    for k in steps:
        settings = dbp.optimize(result.rx_field, k, tx_symbols, rx.dbp_xi, rx.dbp_nonlinear_position,
                                rx.dbp_power_filter_bandwidth if filtered else None)
        result.dbp_xi[k] = float(settings.xi)
        result.dbp_nonlinear_position[k] = float(settings.nonlinear_position)
        if filtered:
            result.dbp_power_filter_bandwidth[k] = float(settings.power_filter_bandwidth)
        result.rx_dbp[k] = dbp.symbols(result.rx_field, k, settings.xi, tx_symbols, settings.nonlinear_position,
                                       settings.power_filter_bandwidth)
        result.metrics[f"DBP-{k}"] = evaluate_symbols(result.rx_dbp[k], result.tx_indices,
                                                      config.transmitter.modulation)


def _count_cycle_slips(result: Transmission) -> None:
    """``result.info["carrier_recovery"]["cycle_slips"]``: the slips left in each output (against the transmitted
    symbols); nothing without carrier recovery."""
    if "carrier_recovery" not in result.info:
        return
    joint = result.config.carrier_recovery.joint_polarizations
    outputs = {"CDC": result.rx_cdc, **{f"DBP-{k}": v for k, v in result.rx_dbp.items()}}
    result.info["carrier_recovery"]["cycle_slips"] = {
        name: count_cycle_slips(symbols, result.tx_symbols, joint_polarizations=joint)
        for name, symbols in outputs.items()}


def sweep_launch_power(config: LinkConfig, powers_dbm: Sequence[float], cache_dir: Optional[str | Path] = None,
                       progress: bool = False, dbp: bool = True, batch: bool = False) -> list[Transmission]:
    """:func:`simulate` at each launch power (dBm) of ``powers_dbm``; same seed (symbols and noise) for all.

    ``batch=True`` propagates the powers that are not cached as one batch through the stepper
    (:func:`propagate_link_batch`: one step plan, that of the highest power; memory: one field per power).
    Faster for small blocks, where the per-step overhead of many short FFTs dominates (benchmarks/README.md §2);
    with adaptive steps the lower powers then get the finer plan of the highest one, so their results
    differ from the one-at-a-time sweep within the step-plan accuracy.
    """
    powers = [float(p) for p in powers_dbm]
    if not powers:
        raise ValueError("powers_dbm is empty: give at least one launch power")
    configs = [config.with_launch_power(p) for p in powers]  # validates every power before any work
    done: dict[int, Transmission] = {}
    if batch:
        todo = [i for i, c in enumerate(configs)
                if cache_dir is None or storage.load_cached(cache_dir, c, Transmission) is None]
        if len(todo) > 1:
            start = time.perf_counter()
            group = [configs[i] for i in todo]
            txs = [transmit(c.transmitter, c.propagation.precision, channel=c.received_channel) for c in group]
            fields = np.stack([_launch(c, t.field) for c, t in zip(group, txs)])
            fields = propagate_link_batch(group, fields, progress, overwrite_input=True)
            for i, c, t, f in zip(todo, group, txs, fields):
                done[i] = _receive(c, t.symbol_indices, f, start, dbp, cache_dir)
    iterator = [i for i in range(len(configs)) if i not in done]
    if progress:
        from tqdm.auto import tqdm
        iterator = tqdm(iterator, desc="launch powers", unit="power")
    for i in iterator:
        done[i] = simulate(configs[i], cache_dir=cache_dir, progress=progress, dbp=dbp)
    return [done[i] for i in range(len(configs))]
