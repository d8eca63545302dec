"""Adaptive 2x2 MIMO equalizer (channel/mimo.py): it recovers a random polarization rotation (no fibre) and undoes
PMD on a linear link, each to the SNR of the undisturbed signal within a stated margin; off, the chain is unchanged."""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pytest

import channel
from channel.config import ConfigError
from channel.metrics import effective_snr_db, evaluate_symbols
from channel.mimo import AdaptiveEqualizer, Slicer, assign_polarizations
from channel.pmd import haar_su2
from channel.receiver import CoherentReceiver, normalize
from channel.transmitter import qam_constellation

#: SNR margin (dB) of the equalized signal against the undisturbed one. Measured: within 0.03 dB for a rotation at
#: 23 dB (16QAM CMA, 64QAM RDE, QPSK data-aided), and 0.0 to +0.09 dB for the 8192-symbol PMD link below (mean DGD
#: 14 ps = 0.42 symbol, 25.8 dB; the equalizer also fits a little of the noise)
MARGIN_DB = 0.3


def _awgn_pair(modulation: str, seed: int, n_symbols: int = 8192, snr_db: float = 20.0):
    """Transmitted field at 2 sps (unit power per sample), a noise realization, the symbols and a receiver without
    fibre (CDC of length 0)."""
    cfg = channel.reference_config().replace(transmitter={"modulation": modulation, "n_symbols": n_symbols,
                                                          "samples_per_symbol": 2, "seed": seed})
    tx = channel.transmit(cfg.transmitter)
    field = tx.field / np.sqrt(np.mean(np.abs(tx.field) ** 2))
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(field.shape) + 1j * rng.standard_normal(field.shape)
    noise *= np.sqrt(0.5 * 10 ** (-snr_db / 10))
    return field, noise, tx.symbols, dataclasses.replace(CoherentReceiver.from_link(cfg), length=0.0)


@pytest.mark.parametrize("modulation, mode, seed",
                         [("16QAM", "cma", 1), ("64QAM", "rde", 2), ("QPSK", "data_aided", 3)])
def test_random_rotation_is_recovered(modulation, mode, seed):
    field, noise, symbols, receiver = _awgn_pair(modulation, seed)
    reference = normalize(receiver.matched_filter_and_sample(field + noise, 2), symbols)
    rotation = haar_su2(np.random.default_rng(seed), 1)[0] * np.exp(0.7j)
    rotated = rotation @ field + noise
    plain = normalize(receiver.matched_filter_and_sample(rotated, 2), symbols)
    equalizer = AdaptiveEqualizer(mode=mode, modulation=modulation, training_symbols=4096)
    equalized = normalize(equalizer.receive(receiver, rotated, 2, symbols), symbols)
    snr_ref, snr_eq = effective_snr_db(reference, symbols), effective_snr_db(equalized, symbols)
    assert effective_snr_db(plain, symbols) < snr_ref - 5  # the rotation hurts without the equalizer
    assert snr_eq > snr_ref - MARGIN_DB
    indices = np.abs(symbols[..., None] - qam_constellation(modulation)[0]).argmin(-1)
    ber_ref = evaluate_symbols(reference, indices, modulation).ber
    assert evaluate_symbols(equalized, indices, modulation).ber <= 1.5 * ber_ref + 2e-4


def _pmd_link(**changes):
    base = channel.reference_config().replace(
        transmitter={"modulation": "16QAM", "n_symbols": 8192, "seed": 2, "launch_power_dbm": -8.0},
        fiber={"gamma_per_w_km": 0.0},
        link={"n_spans": 4, "span_length_km": 50.0},
        propagation={"step_mode": "fixed", "steps_per_span": 1},
        receiver={"dbp_steps_per_span": []})
    return base.replace(**changes) if changes else base


@functools.lru_cache(maxsize=1)
def _pmd_free_snr_db() -> float:
    return channel.simulate(_pmd_link(), dbp=False).metrics["CDC"].snr_db


@pytest.mark.parametrize("mode, pmd_seed", [("cma", 2), ("data_aided", 1)])
def test_mimo_restores_the_snr_of_the_pmd_free_link(mode, pmd_seed):
    """Linear link (gamma = 0, ASE on), mean DGD 1 ps/sqrt(km) * sqrt(200 km) = 14 ps (0.42 symbol at 30 GBd)."""
    reference = _pmd_free_snr_db()
    pmd = _pmd_link(fiber={"pmd_ps_sqrt_km": 1.0, "pmd_seed": pmd_seed})
    assert channel.simulate(pmd, dbp=False).metrics["CDC"].snr_db < reference - 10
    equalized = channel.simulate(pmd.replace(receiver={"mimo": mode}), dbp=False)
    assert equalized.metrics["CDC"].snr_db > reference - MARGIN_DB
    assert equalized.rx_cdc.shape == (2, 8192)


def test_mimo_after_dbp_on_a_nonlinear_link_with_pmd():
    """gamma on, 4 dBm, small PMD: with the equalizer after CDC and after DBP, DBP still beats CDC."""
    cfg = _pmd_link(transmitter={"launch_power_dbm": 4.0, "n_symbols": 4096},
                    fiber={"gamma_per_w_km": 1.3, "pmd_ps_sqrt_km": 0.1, "pmd_seed": 3},
                    propagation={"steps_per_span": 8},
                    receiver={"dbp_steps_per_span": [2], "dbp_xi": 1.0, "mimo": "cma", "mimo_training_symbols": 2048})
    tr = channel.simulate(cfg)
    assert tr.metrics["DBP-2"].snr_db > tr.metrics["CDC"].snr_db + 1.0
    assert tr.metrics["CDC"].snr_db > 10


def test_off_is_the_plain_chain_and_keys_are_validated():
    cfg = _pmd_link()
    assert AdaptiveEqualizer.from_link(cfg) is None
    assert channel.DigitalBackPropagation.from_link(cfg).equalizer is None
    for key, value, message in [
            ("mimo", "lms", r"receiver.mimo = 'lms': allowed values are 'off', 'cma', 'rde', 'data_aided'"),
            ("mimo_taps", 16, r"receiver.mimo_taps = 16: allowed odd integers in \[1, 255\]"),
            ("mimo_step_size", 0.0, r"receiver.mimo_step_size = 0.0 is out of range: allowed \(0, 0.1\]"),
            ("mimo_tracking_step_size", 0.5, r"mimo_tracking_step_size = 0.5 is out of range: allowed \(0, 0.1\]"),
            ("mimo_training_symbols", 10, r"receiver.mimo_training_symbols = 10 is out of range"),
            ("mimo_block_symbols", 0, r"receiver.mimo_block_symbols = 0 is out of range: allowed integers in \[1, "),
            ("mimo_tracking", "dd", r"receiver.mimo_tracking = 'dd': allowed values are")]:
        with pytest.raises(ConfigError, match=message):
            cfg.replace(receiver={key: value})
    with pytest.raises(ConfigError, match=r"mimo_training_symbols = 9000 exceeds transmitter.n_symbols = 8192"):
        cfg.replace(receiver={"mimo": "cma", "mimo_training_symbols": 9000})


def test_building_blocks():
    points = qam_constellation("64QAM")[0]
    rng = np.random.default_rng(0)
    y = rng.standard_normal(1000) + 1j * rng.standard_normal(1000)
    np.testing.assert_allclose(Slicer(points)(y), points[np.abs(y[:, None] - points).argmin(1)], atol=1e-11)
    a = points[rng.integers(0, 64, (2, 500))]
    np.testing.assert_array_equal(assign_polarizations(a[::-1] * 1j, a), a * 1j)
    np.testing.assert_array_equal(assign_polarizations(a * 1j, a), a * 1j)
    eq = AdaptiveEqualizer(mode="cma", modulation="16QAM", taps=5)
    x = np.arange(16.0).reshape(2, 8) + 0j  # 4 symbols at 2 sps
    w = eq.windows(x)
    assert w.shape == (2, 4, 5)
    np.testing.assert_array_equal(w[0, 1], [0, 1, 2, 3, 4])  # x[2k - 2 : 2k + 3] for k = 1
    np.testing.assert_array_equal(w[1, 0], [14, 15, 8, 9, 10])  # circular
    np.testing.assert_array_equal(eq.outputs(w, eq.initial_taps()), x[:, ::2].T)  # centre spike: the symbol samples
    taps = rng.standard_normal((2, 10)) + 1j * rng.standard_normal((2, 10))
    eq.tie(taps)
    # tied rows at zero lag: [[a, b], [-b*, a*]] is a multiple of a unitary matrix
    m = np.array([[taps[0, 2], taps[0, 7]], [taps[1, 2], taps[1, 7]]])
    np.testing.assert_allclose(m @ m.conj().T, np.eye(2) * np.sum(np.abs(m[0]) ** 2), atol=1e-12)
