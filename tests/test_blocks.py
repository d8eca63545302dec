"""Physical blocks built from their own parameters (issue 18): each block's explicit constructor, its
``from_link(config)`` and the old ``f(..., config)`` forms give the same numbers; shared helpers live in small
modules (fft, streams, wdm, runtime) and the import graph keeps blocks apart.
"""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import numpy as np
import pytest

import channel
from channel import fft, streams, wdm
from channel.amplifier import Amplifier, loss_compensating_gain, span_gain
from channel.dbp import DigitalBackPropagation, backpropagate, dbp_symbols
from channel.fiber import FiberParameters, SplitStepFourier, step_lengths, step_plan
from channel.receiver import (
    CoherentReceiver,
    cd_compensate,
    channel_dispersion,
    channel_filter_bandwidth,
    matched_filter_and_sample,
    select_channel,
)
from channel.transmitter import transmit

CHANNEL_DIR = Path(channel.__file__).parent


def wdm_config(**receiver):
    return channel.reference_config().replace(
        transmitter={"n_symbols": 256, "n_channels": 3, "channel_spacing_ghz": 50.0, "samples_per_symbol": "auto"},
        fiber={"dispersion_slope_ps_nm2_km": 0.06}, link={"n_spans": 2},
        propagation={"step_mode": "fixed", "steps_per_span": 3}, receiver={"dbp_xi": 1.0, **receiver})


def _imports(module: str) -> set[str]:
    tree = ast.parse((CHANNEL_DIR / f"{module}.py").read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            names.add("." * node.level + (node.module or ""))
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


def test_import_graph():
    assert ".fiber" not in _imports("transmitter")
    assert ".transmitter" not in _imports("amplifier")
    for module in ("fft", "fft_backends", "streams", "wdm", "runtime", "validation"):
        assert not {n for n in _imports(module) if n.startswith(".")} - {".", ".config", ".validation"}, module
    for path in CHANNEL_DIR.glob("*.py"):
        assert not any(n.split(".")[0] == "eqnn" for n in _imports(path.stem)), f"{path.name} imports eqnn"
    # the old homes still export the moved names
    from channel.fiber import angular_frequencies, fft_in_place, fft_workers
    from channel.transmitter import STREAM_ASE, STREAM_SYMBOLS, channel_frequency, channel_offset_bins, rng_stream
    assert (fft_in_place, fft_workers, angular_frequencies) == (fft.fft_in_place, fft.fft_workers,
                                                                fft.angular_frequencies)
    assert (STREAM_ASE, STREAM_SYMBOLS, rng_stream) == (streams.STREAM_ASE, streams.STREAM_SYMBOLS, streams.rng_stream)
    assert (channel_frequency, channel_offset_bins) == (wdm.channel_frequency, wdm.channel_offset_bins)


def test_channel_grid_is_the_transmitters_rounding():
    cfg = wdm_config()
    tx = cfg.transmitter
    grid = wdm.ChannelGrid.from_transmitter(tx)
    assert grid.centre == wdm.centre_channel(tx) == 1 and grid.n_samples == tx.n_symbols * tx.samples_per_symbol
    for c in range(3):
        bins = round((c - 1) * 50e9 / (tx.symbol_rate / tx.n_symbols))
        assert grid.offset_bins(c) == wdm.channel_offset_bins(tx, c) == bins
        assert grid.frequency(c) == wdm.channel_frequency(tx, c) == pytest.approx(bins * tx.symbol_rate / tx.n_symbols)
    with pytest.raises(ValueError, match=r"channel = 3: allowed \[0, 2\]"):
        grid.check(3)


def test_step_plan_from_explicit_parameters():
    for mode in ("fixed", "logarithmic", "adaptive"):
        cfg = channel.reference_config().replace(propagation={"step_mode": mode, "steps_per_span": 7},
                                                 transmitter={"launch_power_dbm": 4.0, "n_channels": 3,
                                                              "samples_per_symbol": "auto"})
        explicit = step_plan(cfg.propagation, cfg.link.span_length, cfg.fiber.alpha, cfg.fiber.gamma,
                             cfg.transmitter.launch_power_w * 3)
        np.testing.assert_array_equal(explicit, step_lengths(cfg))
        assert explicit.sum() == pytest.approx(cfg.link.span_length, rel=1e-12)


def test_stepper_from_link():
    cfg = wdm_config()
    solver = SplitStepFourier.from_link(cfg, workers=1)
    tx = cfg.transmitter
    assert solver.n_samples == tx.n_symbols * tx.samples_per_symbol and solver.dtype == np.complex128
    assert solver.params == FiberParameters.from_config(cfg.fiber)
    np.testing.assert_array_equal(solver.steps, step_lengths(cfg))
    assert SplitStepFourier.from_link(cfg, 64).n_samples == 64


def test_amplifier_from_its_own_parameters():
    cfg = channel.reference_config().replace(transmitter={"n_symbols": 128, "seed": 7})
    explicit = Amplifier(loss_compensating_gain(cfg.fiber.alpha, cfg.link.span_length), cfg.link.noise_figure_db,
                         cfg.fiber.carrier_frequency, cfg.transmitter.sample_rate, seed=7)
    n = 128 * cfg.transmitter.samples_per_symbol
    x = np.ones((2, n), complex)
    outs = [amp(x.copy(), 3) for amp in (explicit, Amplifier.from_link(cfg), Amplifier(cfg))]
    for out in outs[1:]:
        np.testing.assert_array_equal(out, outs[0])
    assert explicit.gain == span_gain(cfg)
    quiet = Amplifier(explicit.gain, cfg.link.noise_figure_db, cfg.fiber.carrier_frequency, 1e9, noiseless=True)
    np.testing.assert_allclose(quiet(x.copy(), 0), np.sqrt(explicit.gain) * x, rtol=1e-15)


@pytest.mark.parametrize("channel_index", [None, 0])
def test_receiver_and_dbp_from_link_equal_the_config_forms(channel_index):
    cfg = wdm_config(channel_index=channel_index)
    tx = transmit(cfg.transmitter, channel=cfg.received_channel)
    rng = np.random.default_rng(1)
    field = tx.field + 1e-3 * (rng.standard_normal(tx.field.shape) + 1j * rng.standard_normal(tx.field.shape))
    rx = CoherentReceiver.from_link(cfg)
    assert rx.channel == cfg.received_channel and rx.length == cfg.total_length
    assert rx.channel_dispersion() == channel_dispersion(cfg)
    assert rx.channel_filter_bandwidth() == channel_filter_bandwidth(cfg)
    selected = rx.select_channel(field)
    np.testing.assert_array_equal(selected, select_channel(field, cfg))
    np.testing.assert_array_equal(rx.cd_compensate(selected, 2), cd_compensate(selected, cfg, 2))
    np.testing.assert_array_equal(rx.matched_filter_and_sample(selected, 2, cdc=True),
                                  matched_filter_and_sample(selected, cfg, 2, cdc=True))
    dbp = DigitalBackPropagation.from_link(cfg)
    assert (dbp.params.beta2, dbp.params.beta3) == rx.channel_dispersion() and dbp.gain == span_gain(cfg)
    np.testing.assert_array_equal(dbp.backpropagate(selected, 2, 0.5), backpropagate(selected, cfg, 2, 0.5))
    np.testing.assert_array_equal(dbp.symbols(selected, 1, 1.0, tx.symbols), dbp_symbols(selected, cfg, 1, 1.0,
                                                                                           tx.symbols))
    # explicit construction: the same receiver from its own parameters
    explicit = CoherentReceiver(cfg.receiver, wdm.ChannelGrid.from_transmitter(cfg.transmitter), cfg.received_channel,
                                cfg.transmitter.n_symbols, cfg.transmitter.symbol_rate, cfg.transmitter.rolloff,
                                cfg.fiber.beta2, cfg.fiber.beta3, cfg.total_length)
    assert explicit == rx
    assert dataclasses.replace(dbp, receiver=explicit) == dbp


def test_ase_limited_snr_from_explicit_parameters():
    cfg = channel.reference_config().with_launch_power(1.0)
    from channel.amplifier import ase_limited_snr_db

    explicit = ase_limited_snr_db(cfg.transmitter.launch_power_w, cfg.link.n_spans, span_gain(cfg),
                                  cfg.link.noise_figure_db, cfg.fiber.carrier_frequency, cfg.transmitter.symbol_rate)
    assert explicit == channel.ase_only_snr_db(cfg)
