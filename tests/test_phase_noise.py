"""Laser phase noise, frequency offset and carrier recovery (channel/laser.py, channel/carrier_recovery.py).

Checked against independent laws: the Wiener increments' variance ``2 pi dnu / fs`` (chi-square bound); blind phase
search against the same symbols and noise without phase noise; a forced pi/2 phase jump against the pilot correction;
the 4th-power frequency estimate against the offset put in; on a link, the carrier-recovered outputs against the same
link with ideal lasers.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

import channel
from channel.carrier_recovery import (
    CarrierRecovery,
    CarrierRecoveryConfig,
    blind_phase_search,
    count_cycle_slips,
    estimate_frequency_offset,
)
from channel.laser import (
    LaserConfig,
    apply_transmitter_laser,
    mix_local_oscillator,
    phase_increment_variance,
    wiener_phase,
)
from channel.metrics import evaluate_symbols
from channel.receiver import normalize
from channel.storage import cache_path
from channel.transmitter import TransmitterConfig, qam_constellation, transmit

FS = 120e9  # Hz: 4 samples per symbol at 30 GBd
#: two-sided probability outside the chi-square bounds of the variance tests (the seeds are fixed)
ALPHA = 1e-4


def _variance_within_chi_square(increments: np.ndarray, variance: float) -> tuple[float, float, float]:
    """(statistic, low, high): ``sum (d - mean)^2 / variance`` is chi-square with n - 1 degrees of freedom."""
    n = increments.size
    statistic = float(np.sum((increments - increments.mean()) ** 2) / variance)
    return statistic, stats.chi2.ppf(ALPHA / 2, n - 1), stats.chi2.ppf(1 - ALPHA / 2, n - 1)


@pytest.mark.parametrize("linewidth_hz", [1e4, 1e5, 1e6])
def test_wiener_increments_have_the_linewidth_variance(linewidth_hz):
    """phi[n] - phi[n-1] ~ N(0, 2 pi dnu / fs): the sample variance of 2^16 increments lies within the two-sided
    chi-square bounds at probability 1e-4, and the increments are uncorrelated (lag-1 correlation within 4/sqrt(n))."""
    n = 2**16
    phase = wiener_phase(linewidth_hz, FS, n + 1, np.random.default_rng(7))
    increments = np.diff(phase)
    statistic, low, high = _variance_within_chi_square(increments, phase_increment_variance(linewidth_hz, FS))
    assert low < statistic < high, (statistic, low, high)
    assert abs(np.corrcoef(increments[1:], increments[:-1])[0, 1]) < 4 / math.sqrt(n)
    assert 0 <= phase[0] < 2 * math.pi


def test_lasers_rotate_both_polarizations_with_their_own_streams():
    """The transmitter laser multiplies both polarizations by one unit phasor with the linewidth's increments; the
    LO adds the frequency offset as a mean increment 2 pi df / fs (within 4 standard errors) and its own,
    independent phase noise; zero linewidth and offset leave the field untouched (the same object)."""
    n, seed = 2**15, 5
    ones = np.ones((2, n), dtype=complex)
    laser = LaserConfig(tx_linewidth_hz=2e5, lo_linewidth_hz=5e5, frequency_offset_hz=1.5e9)
    tx = apply_transmitter_laser(ones, laser, FS, seed)
    assert np.allclose(np.abs(tx), 1) and np.allclose(tx[0], tx[1])
    tx_steps = np.angle(tx[0, 1:] * np.conj(tx[0, :-1]))
    statistic, low, high = _variance_within_chi_square(tx_steps, phase_increment_variance(2e5, FS))
    assert low < statistic < high
    lo = mix_local_oscillator(ones, laser, FS, seed)
    lo_steps = np.angle(lo[0, 1:] * np.conj(lo[0, :-1]))
    sigma = math.sqrt(phase_increment_variance(5e5, FS))
    assert abs(lo_steps.mean() - 2 * math.pi * 1.5e9 / FS) < 4 * sigma / math.sqrt(n - 1)
    statistic, low, high = _variance_within_chi_square(lo_steps, sigma**2)
    assert low < statistic < high
    assert abs(np.corrcoef(tx_steps, lo_steps)[0, 1]) < 4 / math.sqrt(n)  # independent streams
    assert apply_transmitter_laser(ones, LaserConfig(), FS, seed) is ones
    assert mix_local_oscillator(ones, LaserConfig(), FS, seed) is ones


def _qam_with_phase_noise(modulation: str, snr_db: float, linewidth_times_symbol_time: float, n: int = 2**13,
                          seed: int = 6, jump_at: int | None = None):
    """Symbols a (2, n), their indices, the received y = a exp(j theta) + w (theta a Wiener process at one sample per
    symbol, + pi/2 from ``jump_at`` on) and the reference a + w without phase noise."""
    rng = np.random.default_rng(seed)
    points = qam_constellation(modulation)[0]
    indices = rng.integers(0, len(points), (2, n))
    a = points[indices]
    noise = (rng.standard_normal((2, n)) + 1j * rng.standard_normal((2, n))) * math.sqrt(10 ** (-snr_db / 10) / 2)
    theta = wiener_phase(linewidth_times_symbol_time, 1.0, n, rng)
    if jump_at is not None:
        theta[jump_at:] += math.pi / 2
    return a, indices, a * np.exp(1j * theta) + noise, a + noise, theta


@pytest.mark.parametrize("modulation, snr_db, test_phases", [("16QAM", 16.0, 32), ("64QAM", 22.0, 64)])
def test_blind_phase_search_recovers_qam_under_wiener_phase_noise(modulation, snr_db, test_phases):
    """Linewidth x symbol time 1e-5 (e.g. 2 x 150 kHz at 30 GBd), SNR for a BER near 2e-3: after blind phase search
    (window 65, per polarization) the effective SNR is within 0.5 dB and the BER within a factor 2 of the same
    symbols and noise without phase noise, with no cycle slip, although the phase wanders across the pi/4 edges of
    the search range (so the unwrapping is exercised). Without carrier recovery (the data-aided gain alone) the SNR
    is over 3 dB worse."""
    a, indices, y, reference, theta = _qam_with_phase_noise(modulation, snr_db, 1e-5)
    ideal = evaluate_symbols(normalize(reference, a), indices, modulation)
    phase = blind_phase_search(y, modulation, test_phases, 65)
    assert np.abs(phase).max() > math.pi / 4 + 0.1
    recovered = normalize(y * np.exp(1j * phase), a)
    m = evaluate_symbols(recovered, indices, modulation)
    assert ideal.snr_db - m.snr_db < 0.5, (ideal.snr_db, m.snr_db)
    assert m.ber < 2 * ideal.ber, (ideal.ber, m.ber)
    assert count_cycle_slips(recovered, a) == 0
    assert evaluate_symbols(normalize(y, a), indices, modulation).snr_db < ideal.snr_db - 3


def test_forced_cycle_slip_is_counted_and_corrected_by_pilots():
    """A pi/2 jump of the carrier phase inside the block is invisible to blind phase search (pi/2 symmetry): without
    pilots it is counted as one cycle slip (joint polarizations: one phase) and the rest of the block is lost; with
    pilots (1 in 32, groups of 8: 256 symbols per quadrant decision) it is found and counted as corrected, no slip is
    left, and outside the pilot group that holds the jump (where the symbols after the jump stay rotated) the BER is
    within a factor 2 of the same block without phase noise."""
    n, jump = 2**13, 5096
    a, indices, y, reference, _ = _qam_with_phase_noise("16QAM", 16.0, 1e-5, n=n, jump_at=jump)
    blind = CarrierRecovery(CarrierRecoveryConfig(method="blind_phase_search", window_symbols=65,
                                                  joint_polarizations=True), "16QAM")(y, a)
    blind_out = normalize(blind.symbols, a)
    assert blind.cycle_slips_corrected == 0 and count_cycle_slips(blind_out, a, joint_polarizations=True) == 1
    assert evaluate_symbols(blind_out, indices, "16QAM").ber > 0.1
    piloted = CarrierRecovery(CarrierRecoveryConfig(method="blind_phase_search", window_symbols=65,
                                                    joint_polarizations=True, pilot_rate=1 / 32), "16QAM")(y, a)
    out = normalize(piloted.symbols, a)
    assert piloted.cycle_slips_corrected == 1 and count_cycle_slips(out, a, joint_polarizations=True) == 0
    keep = np.arange(n) // 256 != jump // 256
    ideal = evaluate_symbols(normalize(reference, a)[:, keep], indices[:, keep], "16QAM")
    assert evaluate_symbols(out[:, keep], indices[:, keep], "16QAM").ber < 2 * ideal.ber


@pytest.mark.parametrize("offset_hz", [0.0, 1.0e9, -3.3e9, 7.0e9])
def test_fourth_power_estimator_finds_the_frequency_offset(offset_hz):
    """A 16QAM RRC field at 2 samples per symbol (30 GBd, 4096 symbols) shifted by df, with 2 x 100 kHz of laser
    phase noise: the 4th-power peak gives df within 1 MHz (about half an FFT bin of y^4 divided by 4,
    fs / n / 4 = 1.8 MHz)."""
    tx = transmit(TransmitterConfig(modulation="16QAM", n_symbols=4096, samples_per_symbol=2, seed=4))
    fs = 60e9
    field = mix_local_oscillator(tx.field, LaserConfig(lo_linewidth_hz=2e5, frequency_offset_hz=offset_hz), fs, 9)
    assert abs(estimate_frequency_offset(field, fs) - offset_hz) < 1e6


def _small_link(**sections) -> channel.LinkConfig:
    return channel.reference_config().replace(
        transmitter={"modulation": "16QAM", "n_symbols": 4096, "seed": 3, "launch_power_dbm": -16.0},
        link={"n_spans": 2, "span_length_km": 40.0, "noise_figure_db": 6.0},
        propagation={"step_mode": "fixed", "steps_per_span": 4},
        receiver={"dbp_steps_per_span": [1], "dbp_xi": 1.0}, **sections)


def test_link_with_lasers_and_carrier_recovery_matches_ideal_lasers(tmp_path):
    """Two spans, 16QAM at -16 dBm (SNR about 21 dB), lasers of 100 kHz each and a 1 GHz offset: with frequency-offset
    removal and blind phase search (joint, 32 phases, window 65, pilots 1/32) the CDC and DBP-1 outputs are within
    0.5 dB of the link with ideal lasers, no cycle slip is left, and the info reports the estimated offset within 1 MHz
    (and survives a save/load round trip). Without carrier recovery the same link is lost (BER > 0.1)."""
    ideal = channel.simulate(_small_link())
    lasers = {"tx_linewidth_hz": 1e5, "lo_linewidth_hz": 1e5, "frequency_offset_hz": 1e9}
    recovery = {"method": "blind_phase_search", "window_symbols": 65, "joint_polarizations": True,
                "pilot_rate": 1 / 32, "frequency_offset_estimation": True}
    tr = channel.simulate(_small_link(laser=lasers, carrier_recovery=recovery))
    for name in ("CDC", "DBP-1"):
        assert abs(tr.metrics[name].snr_db - ideal.metrics[name].snr_db) < 0.5, (name, tr.metrics, ideal.metrics)
    info = tr.info["carrier_recovery"]
    assert info["cycle_slips"] == {"CDC": 0, "DBP-1": 0} and info["cycle_slips_corrected"] == {"CDC": 0}
    assert abs(info["frequency_offset_estimate_hz"] - 1e9) < 1e6
    assert channel.Transmission.load(tr.save(tmp_path / "t.npz")).info["carrier_recovery"] == info
    lost = channel.simulate(_small_link(laser=lasers), dbp=False)
    assert lost.metrics["CDC"].ber > 0.1


def test_default_sections_leave_digests_and_cache_keys_unchanged():
    """The new sections at their defaults stay out of the config dict: the digest and the cache file name of the
    reference link are those of main before the sections existed (pinned here), explicit defaults give the same,
    and any non-default value changes them."""
    ref = channel.reference_config()
    assert ref.digest() == "599f18501605ff0e"
    assert cache_path("c", ref).name == "transmission-138f256d575a9ebb5802.npz"
    assert not {"laser", "transceiver", "carrier_recovery"} & set(ref.to_dict())
    explicit = ref.replace(laser={"tx_linewidth_hz": 0.0}, transceiver={"adc_clipping_ratio": 3.5},
                           carrier_recovery={"method": "none"})
    assert explicit == ref and explicit.digest() == ref.digest()
    for section, values in [("laser", {"lo_linewidth_hz": 1e3}), ("transceiver", {"rx_snr_db": 30.0}),
                            ("carrier_recovery", {"frequency_offset_estimation": True})]:
        changed = ref.replace(**{section: values})
        assert changed.digest() != ref.digest() and section in changed.to_dict()
        assert channel.LinkConfig.from_json(changed.to_json()) == changed
