"""The receiver's DSP chain with every impairment at once (channel/receiver_dsp.py): polarization rotation and PMD,
laser phase noise, a carrier frequency offset, the adaptive MIMO and carrier recovery together.

Checked against: the 4th-power law (a 45-degree rotation with the right phases cancels the spectral line of both
inputs, so the estimate on the field is lost while the one on the MIMO's demultiplexed outputs finds the offset put
in); and, on a link, the full chain against the same link with no PMD, ideal lasers and no MIMO.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import channel
from channel.carrier_recovery import CarrierRecovery, estimate_frequency_offset
from channel.config import ConfigError
from channel.laser import LaserConfig, mix_local_oscillator
from channel.mimo import AdaptiveEqualizer
from channel.receiver import CoherentReceiver
from channel.receiver_dsp import acquire_frequency_offset

OFFSET_HZ = 5e8
#: SNR margin (dB) of the full chain against the impairment-free link. Measured: -0.51 dB for CDC (25.28 against
#: 25.80 dB, 16QAM; most of it the phase-noise penalty of blind phase search at this SNR, window 33); the 64QAM
#: reference link at -1 dBm with PMD 0.1 ps/sqrt(km): 19.17 dB against 19.24 dB without PMD and MIMO
MARGIN_DB = 0.8


def test_fourth_power_line_cancelled_by_a_rotation_is_found_after_the_mimo():
    """Back to back, 16QAM at 2 sps, rotation ``[[a, -b*], [b, a*]]`` with ``a = exp(j pi/4) / sqrt(2)``,
    ``b = 1 / sqrt(2)``: ``a^4 + b^4 = 0`` and ``b^4 + conj(a)^4 = 0``, so neither input has the line at 4 df."""
    cfg = channel.reference_config().replace(transmitter={"modulation": "16QAM", "n_symbols": 8192,
                                                          "samples_per_symbol": 2, "seed": 4},
                                             receiver={"mimo": "cma"},
                                             carrier_recovery={"frequency_offset_estimation": True})
    tx = channel.transmit(cfg.transmitter)
    a, b = np.exp(0.25j * np.pi) / np.sqrt(2), 1 / np.sqrt(2)
    rotation = np.array([[a, -np.conj(b)], [b, np.conj(a)]])
    fs = 2 * cfg.transmitter.symbol_rate
    field = mix_local_oscillator(rotation @ tx.field, LaserConfig(lo_linewidth_hz=1e5, frequency_offset_hz=OFFSET_HZ),
                                 fs, 4)
    rng = np.random.default_rng(4)
    field = field + 0.05 * np.sqrt(np.mean(np.abs(field) ** 2)) * (rng.standard_normal(field.shape)
                                                                   + 1j * rng.standard_normal(field.shape))
    receiver = dataclasses.replace(CoherentReceiver.from_link(cfg), length=0.0)
    assert abs(estimate_frequency_offset(field, fs) - OFFSET_HZ) > 1e8  # the line is gone before the MIMO
    corrected, offset = acquire_frequency_offset(field, 2, receiver, AdaptiveEqualizer.from_link(cfg),
                                                 CarrierRecovery.from_link(cfg))
    assert abs(offset - OFFSET_HZ) < 1e6
    np.testing.assert_allclose(corrected, field * np.exp(-2j * np.pi * offset / fs * np.arange(field.shape[-1])))


def _link(**sections) -> channel.LinkConfig:
    """16QAM, 4 x 50 km, linear (gamma = 0, ASE on), 25.8 dB; DBP-1 with xi = 1 through the same chain."""
    base = channel.reference_config().replace(
        transmitter={"modulation": "16QAM", "n_symbols": 8192, "seed": 2, "launch_power_dbm": -8.0},
        fiber={"gamma_per_w_km": 0.0},
        link={"n_spans": 4, "span_length_km": 50.0},
        propagation={"step_mode": "fixed", "steps_per_span": 1},
        receiver={"dbp_steps_per_span": [1], "dbp_xi": 1.0})
    return base.replace(**sections) if sections else base


def test_full_chain_recovers_the_impairment_free_link():
    """PMD (mean DGD 14 ps = 0.42 symbol, with its random rotations), lasers of 100 kHz each, a 500 MHz offset: with
    the MIMO (preamble training with the carrier phase removed, frozen), the offset estimated on its outputs, blind
    phase search and pilots 1/64, CDC and DBP-1 are within MARGIN_DB of the link without any of these, no cycle slip
    is left, and the offset is found within 1 MHz. Without the MIMO the same link is lost."""
    ideal = channel.simulate(_link())
    impairments = dict(fiber={"gamma_per_w_km": 0.0, "pmd_ps_sqrt_km": 1.0, "pmd_seed": 2},
                       laser={"tx_linewidth_hz": 1e5, "lo_linewidth_hz": 1e5, "frequency_offset_hz": OFFSET_HZ},
                       carrier_recovery={"method": "blind_phase_search", "pilot_rate": 1 / 64,
                                         "frequency_offset_estimation": True})
    receiver = {"dbp_steps_per_span": [1], "dbp_xi": 1.0, "mimo": "data_aided", "mimo_tracking": "frozen"}
    tr = channel.simulate(_link(receiver=receiver, **impairments))
    for name in ("CDC", "DBP-1"):
        assert tr.metrics[name].snr_db > ideal.metrics[name].snr_db - MARGIN_DB, (name, tr.metrics[name].snr_db,
                                                                                  ideal.metrics[name].snr_db)
    info = tr.info["carrier_recovery"]
    assert info["cycle_slips"] == {"CDC": 0, "DBP-1": 0}
    assert abs(info["frequency_offset_estimate_hz"] - OFFSET_HZ) < 1e6
    lost = channel.simulate(_link(**impairments), dbp=False)
    assert lost.metrics["CDC"].snr_db < ideal.metrics["CDC"].snr_db - 10


def test_offset_range_with_the_estimator_on_the_mimo_outputs():
    """At one sample per symbol the 4th-power estimate is unambiguous for |df| < R_s / 8 (3.75 GHz at 30 GBd)."""
    recovery = {"frequency_offset_estimation": True}
    base = _link(carrier_recovery=recovery, laser={"frequency_offset_hz": 5e9})  # 2 sps: up to 7.5 GHz
    message = (r"laser.frequency_offset_hz = 5000000000.0 is out of range: allowed \[-3.75e\+09, 3.75e\+09\] "
               r"\(min of symbol rate / 8 \(estimated on the MIMO")
    with pytest.raises(ConfigError, match=message):
        base.replace(receiver={"mimo": "cma"})
