"""PMD (coarse-step sections, channel/pmd.py) against independent laws: unitarity (power conservation per
frequency), the Maxwellian DGD statistics of the configured mean, the stepper applying exactly the link's Jones
matrix, and bit-identity of the stepper and of config digests without PMD."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

import channel
from channel.config import ConfigError
from channel.fft import angular_frequencies
from channel.fiber import FiberParameters, SplitStepFourier
from channel.pmd import PolarizationModeDispersion, differential_group_delay, haar_su2, section_dgd


def _tiny_link(**fiber):
    return channel.reference_config().replace(
        transmitter={"modulation": "QPSK", "n_symbols": 256, "seed": 3},
        link={"n_spans": 3, "span_length_km": 40.0, "noiseless": True},
        propagation={"step_mode": "fixed", "steps_per_span": 4},
        fiber={"pmd_ps_sqrt_km": 0.5, "pmd_sections_per_span": 7, **fiber})


def test_sections_are_unitary_and_conserve_power_per_frequency():
    pmd = PolarizationModeDispersion.draw(5e-12, 2, 10, seed=4)
    r = pmd.rotations
    np.testing.assert_allclose(r @ np.conj(np.swapaxes(r, -1, -2)), np.broadcast_to(np.eye(2), r.shape), atol=1e-14)
    np.testing.assert_allclose(np.linalg.det(r), 1.0, atol=1e-14)
    omega = angular_frequencies(64, 240e9)
    rng = np.random.default_rng(0)
    spectrum = rng.standard_normal((2, 64)) + 1j * rng.standard_normal((2, 64))
    original = spectrum.copy()
    before = np.abs(spectrum) ** 2
    phasor = pmd.birefringence_phasor(omega)
    for k in range(pmd.n_sections):
        pmd.apply_section(spectrum, k, phasor)
    np.testing.assert_allclose(np.sum(np.abs(spectrum) ** 2, axis=0), before.sum(axis=0), rtol=1e-12)
    # the in-place sections are the link's Jones matrix, which is unitary at every frequency
    jones = pmd.jones_matrix(omega)
    np.testing.assert_allclose(spectrum, np.einsum("fij,jf->if", jones, original), atol=1e-12)
    np.testing.assert_allclose(jones @ np.conj(np.swapaxes(jones, -1, -2)), np.broadcast_to(np.eye(2), jones.shape),
                               atol=1e-13)


def test_haar_rotations_are_uniform_on_the_poincare_sphere():
    """The Stokes image of a fixed state under Haar SU(2) is uniform on the sphere: each Stokes component is
    uniform on [-1, 1] (Archimedes), mean 0, variance 1/3."""
    r = haar_su2(np.random.default_rng(1), 20000)
    out = r[:, :, 0]  # R (1, 0)^T
    s1 = np.abs(out[:, 0]) ** 2 - np.abs(out[:, 1]) ** 2
    s2 = 2 * np.real(out[:, 0] * np.conj(out[:, 1]))
    for s in (s1, s2):
        assert stats.kstest(s, stats.uniform(loc=-1, scale=2).cdf).pvalue > 1e-3


def test_link_dgd_is_maxwellian_with_the_configured_mean():
    """DGD of many fibres (seeds) from the Jones matrices at w -+ d: mean within 4 standard errors (plus the
    finite-walk bias of ~1/(21 N), N = 60 sections: 0.08 %) of D_PMD sqrt(L); KS test against the Maxwellian."""
    n_fibres, mean_dgd = 1500, 10e-12
    d = 2 * math.pi * 1e9  # DGD d = 0.06 rad: well inside the validity bound pi/2
    omega = np.array([5e10 - d, 5e10 + d])
    fibres = [PolarizationModeDispersion.draw(mean_dgd, 3, 20, seed) for seed in range(n_fibres)]
    rotations = np.stack([f.rotations for f in fibres])  # (fibre, section, 2, 2)
    phasor = fibres[0].birefringence_phasor(omega)
    birefringence = np.zeros((2, 2, 2), complex)
    birefringence[:, 0, 0], birefringence[:, 1, 1] = phasor, np.conj(phasor)
    jones = np.broadcast_to(np.eye(2, dtype=complex), (n_fibres, 2, 2, 2))  # (fibre, frequency, 2, 2)
    for k in range(rotations.shape[1]):
        jones = rotations[:, None, k] @ (birefringence @ jones)
    np.testing.assert_allclose(jones[7], fibres[7].jones_matrix(omega), atol=1e-12)
    dgd = differential_group_delay(jones, omega)
    # the Maxwellian's standard deviation is sqrt(3 pi / 8 - 1) = 0.42 of its mean
    standard_error = math.sqrt(3 * math.pi / 8 - 1) * mean_dgd / math.sqrt(n_fibres)
    assert abs(dgd.mean() - mean_dgd) < 4 * standard_error
    assert math.sqrt(np.mean(dgd**2)) == pytest.approx(mean_dgd * math.sqrt(3 * math.pi / 8), rel=0.06)
    maxwell = stats.maxwell(scale=mean_dgd * math.sqrt(math.pi / 8))
    assert stats.kstest(dgd, maxwell.cdf).pvalue > 1e-3
    # one section has the DGD tau_s exactly (the walk's first step)
    one = PolarizationModeDispersion.draw(mean_dgd, 1, 1, seed=0)
    assert differential_group_delay(one.jones_matrix(omega)[None], omega)[0] == \
        pytest.approx(section_dgd(mean_dgd, 1), rel=1e-4)


def test_stepper_applies_the_links_jones_matrix():
    """Linear link (gamma = 0): the SSFM output spectrum is the link's Jones matrix times the input spectrum times
    the scalar dispersion and loss; the same seed gives the same fibre."""
    cfg = _tiny_link(gamma_per_w_km=0.0)
    solver = SplitStepFourier.from_link(cfg)
    assert solver.pmd is not None and solver.pmd.n_sections == 21
    n = solver.n_samples
    rng = np.random.default_rng(2)
    field = rng.standard_normal((2, n)) + 1j * rng.standard_normal((2, n))
    out = solver.propagate(field, cfg.link.n_spans)
    omega = angular_frequencies(n, cfg.transmitter.sample_rate)
    scalar = solver.linear_operator(cfg.total_length)  # dispersion and loss of the whole link (alpha, beta2 only)
    expected = np.einsum("fij,jf->if", solver.pmd.jones_matrix(omega), np.fft.fft(field)) * scalar
    np.testing.assert_allclose(np.fft.fft(out), expected, atol=1e-9 * np.abs(expected).max())
    again = SplitStepFourier.from_link(cfg).propagate(field, cfg.link.n_spans)
    np.testing.assert_array_equal(out, again)
    other = SplitStepFourier.from_link(_tiny_link(gamma_per_w_km=0.0, pmd_seed=1)).propagate(field, 3)
    assert np.abs(other - out).max() > 1e-3 * np.abs(out).max()


def test_sections_are_spread_over_the_span():
    pmd = PolarizationModeDispersion.draw(1e-12, 1, 4, seed=0)
    # 8 steps of 1 m, symmetric: stage i ends at i + 0.5, the tail at 8; sections end at 2, 4, 6, 8
    stages = pmd.section_stages(np.ones(8), 0.5)
    assert [j for s in stages for j in s] == [0, 1, 2, 3]
    assert stages[2] == [0] and stages[4] == [1] and stages[6] == [2] and stages[8] == [3]
    # more sections than steps: several per stage, all applied once, in order
    many = PolarizationModeDispersion.draw(1e-12, 1, 5, seed=0).section_stages(np.ones(2), 0.5)
    assert [j for s in many for j in s] == list(range(5))


def test_nonlinear_link_with_pmd_conserves_power_without_loss():
    cfg = _tiny_link(attenuation_db_km=0.0)
    tx = channel.transmit(cfg.transmitter)
    out = SplitStepFourier.from_link(cfg).propagate(tx.field, cfg.link.n_spans)
    assert np.sum(np.abs(out) ** 2) == pytest.approx(np.sum(np.abs(tx.field) ** 2), rel=1e-10)


def test_without_pmd_the_stepper_and_digests_are_unchanged():
    ref = channel.reference_config()
    assert ref.digest() == "599f18501605ff0e"  # the reference link's digest before PMD and MIMO existed
    assert "pmd_ps_sqrt_km" not in ref.to_dict()["fiber"] and "mimo" not in ref.to_dict()["receiver"]
    assert ref.replace(fiber={"pmd_ps_sqrt_km": 0.1}).digest() != ref.digest()
    cfg = _tiny_link(pmd_ps_sqrt_km=0.0)
    solver = SplitStepFourier.from_link(cfg)
    assert solver.pmd is None
    plain = SplitStepFourier(solver.n_samples, cfg.transmitter.sample_rate, FiberParameters.from_config(cfg.fiber),
                             solver.steps)
    field = channel.transmit(cfg.transmitter).field
    np.testing.assert_array_equal(solver.propagate(field, 3), plain.propagate(field, 3))


def test_pmd_errors():
    with pytest.raises(ValueError, match="both polarizations"):
        SplitStepFourier.from_link(_tiny_link()).propagate(np.ones(256 * 4, complex), 1)
    with pytest.raises(ValueError, match="n_spans = 4"):
        SplitStepFourier.from_link(_tiny_link()).propagate(np.ones((2, 256 * 4), complex), 4)
    for key, value, message in [
            ("pmd_ps_sqrt_km", 11.0, r"fiber.pmd_ps_sqrt_km = 11.0 is out of range: allowed \[0, 10\]"),
            ("pmd_sections_per_span", 0, r"fiber.pmd_sections_per_span = 0 .*\[1, 1000\]"),
            ("pmd_seed", -1, r"fiber.pmd_seed = -1 .*\[0, inf\]"),
            ("pmd_sections_per_span", 2.5, r"fiber.pmd_sections_per_span = 2.5: must be an integer")]:
        with pytest.raises(ConfigError, match=message):
            channel.reference_config().replace(fiber={key: value})
