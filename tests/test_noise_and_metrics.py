"""ASE noise level and statistics, and the metrics (BER, Q, confidence interval, SNR, EVM, GMI).

References used here, all independent of channel/: the ASE formula n_sp h nu (G - 1) B; the exact BER of
Gray-coded PAM obtained by integrating the Gaussian over every decision interval; the textbook QPSK and
16-QAM BER; the nearest-neighbour asymptote; scipy.stats.norm / binom for Q and Clopper-Pearson;
a brute-force 2-D GMI over all M points.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special, stats

import channel
from channel.amplifier import Amplifier
from channel.metrics import (
    MIN_BIT_ERRORS,
    ber_confidence_interval,
    count_bit_errors,
    effective_snr_db,
    evaluate_symbols,
    evm_percent,
    gmi_bits,
    hard_decision,
    q_factor_db,
    q_factor_from_snr_db,
    qam_ber_awgn,
)

H = 6.626_070_15e-34
C = 299_792_458.0
MODULATIONS = ("QPSK", "16QAM", "64QAM", "256QAM")
M_OF = {"QPSK": 4, "16QAM": 16, "64QAM": 64, "256QAM": 256}


def small_config(**sections):
    base = {"transmitter": {"n_symbols": 4096, "samples_per_symbol": 2},
            "link": {"n_spans": 2},
            "propagation": {"step_mode": "fixed", "steps_per_span": 1},
            "receiver": {"dbp_steps_per_span": [], "dbp_xi": 1.0}}
    for key, values in sections.items():
        base.setdefault(key, {}).update(values)
    return channel.reference_config().replace(**base)


def awgn(rng, shape, snr_db):
    """Circular complex Gaussian noise of total variance 1/SNR (unit-energy symbols: SNR = Es/N0)."""
    var = 10 ** (-snr_db / 10)
    return np.sqrt(var / 2) * (rng.standard_normal(shape) + 1j * rng.standard_normal(shape))


# --- 5. ASE noise ---------------------------------------------------------------------------------------------------

def test_ase_noise_power_closed_form():
    nu, b = C / 1550e-9, 30e9
    for nf_db, gain in [(4.5, 10.0), (5.0, 100.0), (3.0, 1e4)]:
        nf = 10 ** (nf_db / 10)
        n_sp = (nf * gain - 1) / (2 * (gain - 1))  # population inversion factor of the NF definition
        expected = n_sp * H * nu * (gain - 1) * b
        assert channel.ase_noise_power(nf_db, gain, nu, b) == pytest.approx(expected, rel=1e-12)
    # high-gain quantum limit: NF = 2 (3.01 dB) <-> n_sp -> 1
    nf_db = 10 * math.log10(2)
    assert channel.ase_noise_power(nf_db, 1e6, nu, b) / (H * nu * (1e6 - 1) * b) == pytest.approx(1.0, rel=1e-5)
    # a transparent amplifier (G = 1, NF = 0 dB) adds no noise
    assert channel.ase_noise_power(0.0, 1.0, nu, b) == 0.0
    # the "NF G" form would be 0.16 dB higher at G = 10 dB, NF = 4.5 dB: the code uses "NF G - 1"
    p = channel.ase_noise_power(4.5, 10.0, nu, b)
    assert 10 * math.log10((10**0.45 * 10) * H * nu * b / 2 / p) == pytest.approx(0.157, abs=0.002)


def test_ase_only_snr_closed_form():
    cfg = small_config(transmitter={"launch_power_dbm": -3.0}, link={"n_spans": 7, "span_length_km": 60.0,
                                                                         "noise_figure_db": 5.5})
    gain = 10 ** (0.2 * 60 / 10)
    nf = 10 ** 0.55
    p_ase_both_pol = 7 * (nf * gain - 1) * H * (C / 1550e-9) * 30e9
    expected = 10 * math.log10(1e-3 * 10**-0.3 / p_ase_both_pol)
    assert channel.ase_only_snr_db(cfg) == pytest.approx(expected, abs=1e-9)


def amplifier_noise(cfg, span):
    n = cfg.transmitter.n_symbols * cfg.transmitter.samples_per_symbol
    spectrum = Amplifier(cfg)(np.zeros((2, n), dtype=complex), span)
    return np.fft.ifft(spectrum, axis=-1)


def test_amplifier_noise_variance_in_time_domain():
    cfg = small_config(transmitter={"n_symbols": 16384, "samples_per_symbol": 2})  # 32768 samples per pol
    noise = amplifier_noise(cfg, 0)
    n = noise.shape[-1]
    gain = channel.span_gain(cfg)
    expected = (10**0.45 * gain - 1) * H * (C / 1550e-9) * cfg.transmitter.sample_rate / 2  # per polarization
    for pol in range(2):
        var = np.mean(np.abs(noise[pol]) ** 2)
        assert var == pytest.approx(expected, rel=5 / math.sqrt(n))  # 5 sigma of the estimate
        # circular: equal power in I and Q, no pseudo-covariance
        assert np.mean(noise[pol].real ** 2) == pytest.approx(expected / 2, rel=7 / math.sqrt(n))
        assert abs(np.mean(noise[pol] ** 2)) < 5 * expected / math.sqrt(n)
        assert abs(np.mean(noise[pol])) < 5 * math.sqrt(expected / n)
        # white: the same power in the inner and the outer half of the band
        spec = np.abs(np.fft.fft(noise[pol])) ** 2
        f = np.abs(np.fft.fftfreq(n))
        assert np.mean(spec[f < 0.25]) == pytest.approx(np.mean(spec[f >= 0.25]), rel=8 / math.sqrt(n))
    # x and y are independent
    rho = np.vdot(noise[0], noise[1]) / n / expected
    assert abs(rho) < 5 / math.sqrt(n)


def test_amplifier_draws_fresh_noise_per_span_and_seed():
    cfg = small_config(transmitter={"n_symbols": 8192})
    n0, n1, n0_again = amplifier_noise(cfg, 0), amplifier_noise(cfg, 1), amplifier_noise(cfg, 0)
    other_seed = amplifier_noise(cfg.with_seed(cfg.transmitter.seed + 1), 0)
    n = n0.shape[-1]
    power = np.mean(np.abs(n0) ** 2)
    for other in (n1, other_seed):
        for pol in range(2):
            rho = np.vdot(n0[pol], other[pol]) / n / power
            assert abs(rho) < 5 / math.sqrt(n)
    assert np.array_equal(n0, n0_again)  # reproducible for the same (seed, span)


def test_amplifier_gain_and_noiseless():
    cfg = small_config(link={"noiseless": True, "span_length_km": 40.0})
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 256)) + 1j * rng.standard_normal((2, 256))
    out = Amplifier(cfg)(x.copy(), 0)
    assert np.allclose(out, x * 10 ** (0.2 * 40 / 20), rtol=1e-14, atol=0)  # 8 dB power gain


@pytest.mark.parametrize("dispersion,n_spans", [(17.0, 2), (0.0, 4)])
def test_linear_link_snr_matches_ase_closed_form(dispersion, n_spans):
    """gamma = 0: the SNR after CDC is the ASE-only SNR. Without dispersion, a span-to-span repeated noise
    realization would add coherently (6 dB instead of 3 dB more noise for 2x the spans) and fail this."""
    cfg = small_config(transmitter={"n_symbols": 32768, "samples_per_symbol": 2, "launch_power_dbm": -12.0},
                       fiber={"gamma_per_w_km": 0.0, "dispersion_ps_nm_km": dispersion},
                       link={"n_spans": n_spans})
    tr = channel.simulate(cfg, dbp=False)
    nf, gain = 10**0.45, 10.0
    closed = 10 * math.log10(10**-1.2 * 1e-3 / (n_spans * (nf * gain - 1) * H * (C / 1550e-9) * 30e9))
    assert channel.ase_only_snr_db(cfg) == pytest.approx(closed, abs=1e-9)
    assert tr.info["ase_only_snr_db"] == pytest.approx(closed, abs=1e-9)
    # estimator standard deviation: 4.34 / sqrt(2 * 32768) = 0.017 dB
    assert tr.metrics["CDC"].snr_db == pytest.approx(closed, abs=0.1)


# --- 6. constellation, BER, Q, confidence interval, GMI ---------------------------------------------------------------

@pytest.mark.parametrize("modulation", MODULATIONS)
def test_constellation_gray_unit_energy(modulation):
    points, bits = channel.qam_constellation(modulation)
    m = M_OF[modulation]
    k = int(math.log2(m))
    assert points.shape == (m,) and bits.shape == (m, k)
    assert np.mean(np.abs(points) ** 2) == pytest.approx(1.0, rel=1e-14)
    assert abs(np.mean(points)) < 1e-14
    # a square grid: sqrt(M) distinct levels per dimension, equally spaced
    levels = np.unique(np.round(points.real, 12))
    assert len(levels) == math.isqrt(m) and np.allclose(np.diff(levels), levels[1] - levels[0])
    assert np.array_equal(np.unique(np.round(points.imag, 12)), levels)
    # every label used exactly once
    labels = bits @ (1 << np.arange(k - 1, -1, -1))
    assert sorted(labels) == list(range(m))
    # Gray: nearest neighbours differ in exactly one bit
    dist = np.abs(points[:, None] - points[None, :])
    d_min = levels[1] - levels[0]
    hamming = np.sum(bits[:, None, :] != bits[None, :, :], axis=-1)
    neighbours = np.isclose(dist, d_min)
    assert neighbours.sum() == 2 * 2 * math.isqrt(m) * (math.isqrt(m) - 1)  # horizontal + vertical pairs
    assert np.all(hamming[neighbours] == 1)


@pytest.mark.parametrize("modulation", MODULATIONS)
def test_hard_decision_is_nearest_point(modulation):
    points, _ = channel.qam_constellation(modulation)
    rng = np.random.default_rng(5)
    y = 1.6 * (rng.uniform(-1, 1, 3000) + 1j * rng.uniform(-1, 1, 3000))  # also outside the constellation
    brute = np.argmin(np.abs(y[:, None] - points[None, :]), axis=1)
    assert np.array_equal(hard_decision(y, modulation), brute)


def exact_gray_pam_ber(snr_db, m):
    """BER of Gray square M-QAM (= of each Gray sqrt(M)-PAM dimension) at Es/N0, by integrating the Gaussian
    over each decision interval and weighting by the Hamming distance of the labels."""
    n_levels = math.isqrt(m)
    bits = int(math.log2(n_levels))
    levels = (2 * np.arange(n_levels) - (n_levels - 1)) / math.sqrt(2 * (n_levels**2 - 1) / 3)
    sigma = math.sqrt(10 ** (-snr_db / 10) / 2)
    edges = np.concatenate([[-np.inf], (levels[1:] + levels[:-1]) / 2, [np.inf]])
    gray = np.arange(n_levels) ^ (np.arange(n_levels) >> 1)
    i, j = np.meshgrid(np.arange(n_levels), np.arange(n_levels), indexing="ij")  # sent level i, decided j
    a = (edges[j] - levels[i]) / sigma
    b = (edges[j + 1] - levels[i]) / sigma
    # P(a < noise/sigma < b), from the tail on the side away from the sent level (no cancellation)
    p = np.where(j > i, stats.norm.sf(a) - stats.norm.sf(b), stats.norm.cdf(b) - stats.norm.cdf(a))
    hamming = np.vectorize(lambda v: bin(int(v)).count("1"))(gray[i] ^ gray[j])
    total = np.sum(np.where(i != j, p * hamming, 0.0))
    return total / (n_levels * bits)


@pytest.mark.parametrize("modulation", MODULATIONS)
def test_qam_ber_closed_form_against_exact_integration(modulation):
    m = M_OF[modulation]
    for snr_db in np.arange(-2.0, 36.0, 2.0):
        exact = exact_gray_pam_ber(snr_db, m)
        if exact < 1e-250:
            continue
        assert qam_ber_awgn(snr_db, modulation) == pytest.approx(exact, rel=1e-8), snr_db
    # vectorized call gives the same numbers
    snrs = np.array([5.0, 10.0, 15.0])
    assert np.allclose(qam_ber_awgn(snrs, modulation), [qam_ber_awgn(s, modulation) for s in snrs], rtol=1e-15)


def test_qam_ber_textbook_formulas_and_asymptote():
    snr_db = np.linspace(0, 20, 21)
    snr = 10 ** (snr_db / 10)
    assert np.allclose(qam_ber_awgn(snr_db, "QPSK"), 0.5 * special.erfc(np.sqrt(snr / 2)), rtol=1e-12)
    a = np.sqrt(snr / 10)
    ber16 = 3 / 8 * special.erfc(a) + 1 / 4 * special.erfc(3 * a) - 1 / 8 * special.erfc(5 * a)
    assert np.allclose(qam_ber_awgn(snr_db, "16QAM"), ber16, rtol=1e-12)
    # nearest-neighbour approximation (2/log2 M)(1 - 1/sqrt M) erfc(sqrt(3 SNR / (2 (M - 1)))) at high SNR
    for modulation, snr_hi in (("16QAM", 22.0), ("64QAM", 28.0), ("256QAM", 34.0)):
        m = M_OF[modulation]
        s = 10 ** (snr_hi / 10)
        nn = 2 / math.log2(m) * (1 - 1 / math.sqrt(m)) * special.erfc(math.sqrt(3 * s / (2 * (m - 1))))
        assert qam_ber_awgn(snr_hi, modulation) == pytest.approx(nn, rel=1e-4)
        assert nn < 1e-6
        # but not at low SNR, where the approximation is off (the check can fail)
        s_lo = 10 ** ((snr_hi - 15) / 10)
        nn_lo = 2 / math.log2(m) * (1 - 1 / math.sqrt(m)) * special.erfc(math.sqrt(3 * s_lo / (2 * (m - 1))))
        assert abs(qam_ber_awgn(snr_hi - 15, modulation) / nn_lo - 1) > 1e-3


@pytest.mark.parametrize("modulation,snr_db,n_sym", [("QPSK", 7.0, 100_000), ("16QAM", 13.0, 100_000),
                                                     ("64QAM", 19.0, 100_000)])
def test_monte_carlo_ber_in_awgn(modulation, snr_db, n_sym):
    rng = np.random.default_rng(11)
    points, _ = channel.qam_constellation(modulation)
    tx = rng.integers(0, len(points), n_sym)
    y = points[tx] + awgn(rng, n_sym, snr_db)
    errors, n_bits = count_bit_errors(hard_decision(y, modulation), tx, modulation)
    assert n_bits == n_sym * int(math.log2(len(points)))
    expected = qam_ber_awgn(snr_db, modulation) * n_bits
    assert expected > 500  # enough errors to be a sharp check
    # bit errors come mostly one per symbol error (Gray): variance ~ expected; allow 5 sigma with margin
    assert abs(errors - expected) < 5 * math.sqrt(2 * expected)
    # the effective SNR estimator sees the same SNR: 4.34 / sqrt(n) dB standard deviation
    assert effective_snr_db(y, points[tx]) == pytest.approx(snr_db, abs=5 * 4.343 / math.sqrt(n_sym))


def test_q_factor_definition():
    ber = np.logspace(-300, math.log10(0.49), 60)
    q_ref = 20 * np.log10(stats.norm.isf(ber))  # BER = Q-function(q): q = norm.isf(BER)
    assert np.allclose(q_factor_db(ber), q_ref, rtol=1e-10, atol=1e-10)
    assert isinstance(q_factor_db(1e-3), float)
    assert q_factor_db(1e-3) == pytest.approx(20 * math.log10(3.090232306167813), rel=1e-12)
    for bad in (0.0, 0.5, 0.7, -1e-3):
        assert math.isnan(q_factor_db(bad))


@pytest.mark.parametrize("errors,n_bits", [(0, 1000), (1, 1000), (5, 100_000), (20, 10_000), (500, 1000),
                                           (1000, 1000)])
def test_clopper_pearson_interval(errors, n_bits):
    lo, hi = ber_confidence_interval(errors, n_bits)
    binom = stats.binom
    # exact binomial tails of 2.5 % at each end (Clopper & Pearson 1934)
    if errors == 0:
        assert lo == 0.0
    else:
        assert binom.sf(errors - 1, n_bits, lo) == pytest.approx(0.025, rel=1e-6)
    if errors == n_bits:
        assert hi == 1.0
    else:
        assert binom.cdf(errors, n_bits, hi) == pytest.approx(0.025, rel=1e-6)
    assert lo <= errors / n_bits <= hi


def test_clopper_pearson_coverage():
    """At least 95 % of intervals contain the true BER (exact coverage over all outcomes)."""
    n_bits, p = 200, 0.03
    k = np.arange(n_bits + 1)
    covered = [ber_confidence_interval(int(e), n_bits)[0] <= p <= ber_confidence_interval(int(e), n_bits)[1]
               for e in k]
    assert np.sum(stats.binom.pmf(k, n_bits, p) * np.array(covered)) >= 0.95


def symbols_with_errors(modulation, n_sym, snr_db, n_errors, seed=2):
    """Received symbols at a high SNR (no natural errors) with ``n_errors`` moved onto a Gray neighbour."""
    rng = np.random.default_rng(seed)
    points, _ = channel.qam_constellation(modulation)
    n_levels = math.isqrt(len(points))
    tx = rng.integers(0, len(points), (2, n_sym))
    wrong = tx.copy()
    flat = wrong.reshape(-1)
    idx = rng.choice(flat.size, n_errors, replace=False)
    i_q = flat[idx] % n_levels
    flat[idx] = np.where(i_q > 0, flat[idx] - 1, flat[idx] + 1)  # vertical neighbour: exactly one bit flips
    y = points[wrong] + awgn(rng, wrong.shape, snr_db)
    return y, tx


def test_too_few_errors_reports_no_q_from_ber():
    modulation = "16QAM"
    y, tx = symbols_with_errors(modulation, 4096, 30.0, 0)
    m = evaluate_symbols(y, tx, modulation)
    assert m.bit_errors == 0 and m.ber == 0.0 and m.n_bits == 2 * 4096 * 4
    assert m.q_db is None
    assert "not measurable" in m.note and "simulate more symbols" in m.note
    assert m.q_db_ci[1] is None  # no upper bound on Q at zero errors
    # lower bound of Q from the Clopper-Pearson upper bound of the BER: 1 - (1 - hi)^n = 0.975
    hi = 1 - 0.025 ** (1 / m.n_bits)
    assert m.q_db_ci[0] == pytest.approx(20 * math.log10(stats.norm.isf(hi)), abs=1e-6)
    # the Q implied by the SNR: Q of the exact AWGN BER at the measured SNR
    expected = 20 * math.log10(stats.norm.isf(exact_gray_pam_ber(m.snr_db, 16)))
    assert m.q_db_from_snr == pytest.approx(expected, abs=1e-6)
    assert m.q_db_best == m.q_db_from_snr
    assert "n/a" in m.format_q()

    y, tx = symbols_with_errors(modulation, 4096, 30.0, 5)
    m5 = evaluate_symbols(y, tx, modulation)
    assert m5.bit_errors == 5 and m5.q_db is None and f"only 5 bit errors in {m5.n_bits}" in m5.note
    lo, hi = ber_confidence_interval(5, m5.n_bits)
    assert m5.q_db_ci == (pytest.approx(q_factor_db(hi)), pytest.approx(q_factor_db(lo)))

    n_err = MIN_BIT_ERRORS + 10
    y, tx = symbols_with_errors(modulation, 4096, 30.0, n_err)
    m30 = evaluate_symbols(y, tx, modulation)
    assert m30.bit_errors == n_err and m30.note == ""
    assert m30.q_db == pytest.approx(20 * math.log10(stats.norm.isf(n_err / m30.n_bits)), abs=1e-9)
    assert m30.q_db_ci[0] < m30.q_db < m30.q_db_ci[1]
    assert m30.q_db_best == m30.q_db


def test_q_from_snr_beyond_ber_underflow():
    # at 60 dB the 64-QAM BER underflows to 0; the asymptote is used and continues the exact curve
    assert qam_ber_awgn(60.0, "64QAM") == 0.0
    q60 = q_factor_from_snr_db(60.0, "64QAM")
    assert math.isfinite(q60) and q60 > q_factor_from_snr_db(40.0, "64QAM")
    assert q_factor_from_snr_db(math.inf, "64QAM") == math.inf
    s = 10**6
    assert q60 == pytest.approx(20 * math.log10(math.sqrt(2) * math.sqrt(3 * s / 126)), abs=1e-9)


def test_snr_and_evm_definitions():
    rng = np.random.default_rng(4)
    points, _ = channel.qam_constellation("64QAM")
    tx = rng.integers(0, 64, (2, 5000))
    noise = awgn(rng, tx.shape, 18.0)
    y = points[tx] + noise
    m = evaluate_symbols(y, tx, "64QAM")
    ref_snr = 10 * math.log10(np.sum(np.abs(points[tx]) ** 2) / np.sum(np.abs(noise) ** 2))
    assert m.snr_db == pytest.approx(ref_snr, abs=1e-9)
    rms_ratio = math.sqrt(np.mean(np.abs(noise) ** 2) / np.mean(np.abs(points[tx]) ** 2))
    assert m.evm_percent == pytest.approx(100 * rms_ratio)
    assert evm_percent(y, points[tx]) == pytest.approx(100 * 10 ** (-ref_snr / 20), rel=1e-9)
    with pytest.raises(ValueError):
        evaluate_symbols(y[:, :10], tx, "64QAM")


def brute_force_gmi(y, tx, modulation):
    """GMI = m + mean_k sum_i log2(sum_{x: b_i(x) = b_i(tx_k)} q(y_k|x) / sum_x q(y_k|x)), q = exp(-|y-x|^2/s2),
    computed over all M points of the 2-D constellation."""
    points, bits = channel.qam_constellation(modulation)
    y, tx = y.ravel(), tx.ravel()
    s2 = np.mean(np.abs(y - points[tx]) ** 2)
    metric = -np.abs(y[:, None] - points[None, :]) ** 2 / s2  # (n, M)
    log_all = special.logsumexp(metric, axis=1)
    total = 0.0
    for i in range(bits.shape[1]):
        same = bits[None, :, i] == bits[tx][:, i, None]  # (n, M)
        total += np.sum(special.logsumexp(np.where(same, metric, -np.inf), axis=1) - log_all)
    return bits.shape[1] + total / (y.size * math.log(2))


@pytest.mark.parametrize("modulation", MODULATIONS)
def test_gmi_factored_equals_brute_force_and_bounds(modulation):
    rng = np.random.default_rng(9)
    points, _ = channel.qam_constellation(modulation)
    m = int(math.log2(len(points)))
    tx = rng.integers(0, len(points), (2, 1000))
    previous = -1.0
    for snr_db in 10 * math.log10(len(points)) + np.array([-10.0, -4.0, 2.0, 8.0]):
        y = points[tx] + awgn(rng, tx.shape, snr_db)
        gmi = gmi_bits(y, tx, modulation)
        assert gmi == pytest.approx(brute_force_gmi(y, tx, modulation), abs=1e-9)
        assert 0.0 <= gmi <= m
        assert gmi > previous  # increases with SNR
        previous = gmi
    # high SNR: all bits
    y = points[tx] + awgn(rng, tx.shape, 10 * math.log10(len(points)) + 25.0)
    assert gmi_bits(y, tx, modulation) == pytest.approx(m, abs=1e-3)
    assert gmi_bits(points[tx], tx, modulation) == m  # noiseless


def test_gmi_qpsk_matches_bpsk_capacity_integral():
    """Gray QPSK = two BPSK channels at Es/N0 / 2 each: GMI = 2 (1 - E[log2(1 + exp(-2 r / s^2))]) per dimension,
    with r ~ N(1, s^2) (amplitude-normalized), computed by quadrature."""
    snr_db = 3.0
    rng = np.random.default_rng(1)
    points, _ = channel.qam_constellation("QPSK")
    tx = rng.integers(0, 4, (2, 100_000))
    y = points[tx] + awgn(rng, tx.shape, snr_db)
    # per dimension: amplitude 1/sqrt(2), noise variance 1/(2 SNR); normalize amplitude to 1
    s2 = 10 ** (-snr_db / 10)  # = (1/(2 SNR)) / (1/2)
    r = np.linspace(1 - 12 * math.sqrt(s2), 1 + 12 * math.sqrt(s2), 20001)
    pdf = stats.norm.pdf(r, 1, math.sqrt(s2))
    cap = 1 - np.trapezoid(pdf * np.logaddexp(0, -2 * r / s2) / math.log(2), r)
    assert gmi_bits(y, tx, "QPSK") == pytest.approx(2 * cap, abs=0.01)


def test_same_seed_gives_same_in_band_noise_at_any_oversampling():
    """ASE is drawn bin by bin in |f| order: a linear noisy link gives identical symbols at 2, 4 and 8 sps."""
    base = channel.reference_config().replace(
        transmitter={"n_symbols": 1024}, link={"n_spans": 3}, fiber={"gamma_per_w_km": 0.0},
        receiver={"dbp_steps_per_span": []})
    runs = [channel.simulate(base.replace(transmitter={"samples_per_symbol": s})) for s in (2, 4, 8)]
    for other in runs[1:]:
        assert np.max(np.abs(other.rx_cdc - runs[0].rx_cdc)) < 1e-10
    # and the noise is really there (a noiseless run differs by the noise)
    quiet = channel.simulate(base.replace(link={"noiseless": True}))
    assert np.max(np.abs(quiet.rx_cdc - runs[0].rx_cdc)) > 1e-3
    # the order puts bin 0 first, then +1, -1, +2, -2, ...
    from channel.amplifier import frequency_order
    assert list(np.fft.fftfreq(8, 1 / 8)[frequency_order(8)]) == [0, 1, -1, 2, -2, 3, -3, -4]


def test_frequency_bins_blocks_equal_the_sorted_order():
    from channel.amplifier import frequency_bins

    for n in (8, 9, 1000, 1001):
        k = np.fft.fftfreq(n, d=1.0 / n).astype(np.int64)
        order = np.lexsort((k < 0, np.abs(k)))  # by |f|, positive first
        assert np.array_equal(frequency_bins(n), order)
        assert np.array_equal(np.concatenate([frequency_bins(n, s, s + 7) for s in range(0, n, 7)]), order)


def test_gmi_in_blocks_equals_one_block(monkeypatch):
    import channel.metrics as metrics

    rng = np.random.default_rng(4)
    idx = rng.integers(0, 16, size=(2, 5000))
    rx = channel.qam_constellation("16QAM")[0][idx] + 0.2 * (rng.standard_normal(idx.shape)
                                                             + 1j * rng.standard_normal(idx.shape))
    whole = metrics.gmi_bits(rx, idx, "16QAM")
    monkeypatch.setattr(metrics, "GMI_BLOCK", 333)
    assert metrics.gmi_bits(rx, idx, "16QAM") == pytest.approx(whole, rel=1e-12)
    assert 3.0 < whole < 4.0
