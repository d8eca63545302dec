"""Split-step Fourier propagation against analytic solutions and conservation laws.

Convention (channel.fiber): dA/dz = -(alpha/2) A - j (beta2/2) A_tt + (beta3/6) A_ttt + j (8/9) gamma |A|^2 A,
the same time-domain equation as Agrawal's NLSE, so its classical closed-form solutions apply.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import channel
from channel import FiberParameters, PropagationError, SplitStepFourier, fft

BETA2 = -21.7e-27  # s^2/m (-21.7 ps^2/km)
GAMMA = 1.3e-3  # 1/W/m
ALPHA = 0.2 / (10 * math.log10(math.e)) / 1e3  # 0.2 dB/km in 1/m
MANAKOV = 8 / 9


def grid(n, fs):
    return (np.arange(n) - n // 2) / fs


def rms_moments(t, power):
    w = power / power.sum()
    mean = np.sum(t * w)
    return mean, math.sqrt(np.sum((t - mean) ** 2 * w))


# --- 1. dispersion of a Gaussian pulse -----------------------------------------------------------------------

@pytest.mark.parametrize("beta2", [BETA2, -BETA2])
def test_gaussian_pulse_dispersion_matches_analytic_field(beta2):
    """A(0,t) = sqrt(P0) exp(-t^2/(2 T0^2)) -> A(z,t) = sqrt(P0) T0 / sqrt(q) exp(-t^2 / (2 q)), q = T0^2 - j beta2 z.

    (q^-1/2 exp(-t^2/2q) solves u_q = u_tt / 2, and dq/dz = -j beta2 gives dA/dz = -j (beta2/2) A_tt.)
    """
    t0, p0, n, fs = 10e-12, 2e-3, 4096, 1e12
    ld = t0**2 / abs(beta2)
    z = 3.0 * ld
    t = grid(n, fs)
    a0 = np.sqrt(p0) * np.exp(-t**2 / (2 * t0**2))
    # the y polarization carries a delayed, weaker copy: the polarizations must propagate independently
    a0y = 0.5 * np.sqrt(p0) * np.exp(-(t - 200e-12) ** 2 / (2 * t0**2))
    solver = SplitStepFourier(n, fs, FiberParameters(0.0, beta2, 0.0, 0.0), [z / 3] * 3)
    out = solver.propagate(np.stack([a0, a0y]))

    q = t0**2 - 1j * beta2 * z
    expected_x = np.sqrt(p0) * t0 / np.sqrt(q) * np.exp(-t**2 / (2 * q))
    expected_y = 0.5 * np.sqrt(p0) * t0 / np.sqrt(q) * np.exp(-(t - 200e-12) ** 2 / (2 * q))
    assert np.max(np.abs(out[0] - expected_x)) < 1e-9 * np.sqrt(p0)
    assert np.max(np.abs(out[1] - expected_y)) < 1e-9 * np.sqrt(p0)

    # the classical broadening T1 = T0 sqrt(1 + (z/LD)^2): RMS width T1/sqrt(2), peak power P0 T0/T1
    t1 = t0 * math.sqrt(1 + (z / ld) ** 2)
    _, sigma = rms_moments(t, np.abs(out[0]) ** 2)
    assert sigma == pytest.approx(t1 / math.sqrt(2), rel=1e-9)
    assert np.max(np.abs(out[0]) ** 2) == pytest.approx(p0 * t0 / t1, rel=1e-5)


def test_gaussian_pulse_beta3_matches_fourier_integral_and_moments():
    """beta2 and beta3: compare with a direct quadrature of the exact spectral solution, and with the
    closed-form centroid <t> = beta3 z / (4 T0^2) and RMS width
    sigma^2 = T0^2/2 + (beta2 z)^2 / (2 T0^2) + (beta3 z)^2 / (8 T0^4) (Agrawal, Nonlinear Fiber Optics, sec. 3.3).
    """
    t0, p0, n, fs = 2e-12, 1e-3, 4096, 4e12
    beta2, beta3, z = BETA2, 1e-39, 2e3
    t = grid(n, fs)
    a0 = np.sqrt(p0) * np.exp(-t**2 / (2 * t0**2))
    solver = SplitStepFourier(n, fs, FiberParameters(0.0, beta2, beta3, 0.0), [z])
    out = solver.propagate(np.stack([a0, np.zeros(n)]))[0]

    # A(z,t) = 1/(2 pi) int S(w) exp(j (beta2/2 w^2 - beta3/6 w^3) z) exp(j w t) dw,
    # S(w) = sqrt(2 pi P0) T0 exp(-w^2 T0^2/2)
    w = np.linspace(-12 / t0, 12 / t0, 16001)  # 2 pi / dw = 3.3 ns: no aliasing of the 1 ns window
    spec = np.sqrt(2 * np.pi * p0) * t0 * np.exp(-(w * t0) ** 2 / 2)
    spec = spec * np.exp(1j * (beta2 / 2 * w**2 - beta3 / 6 * w**3) * z)
    t_check = t[::32]
    kernel = np.exp(1j * np.outer(t_check, w))
    expected = np.trapezoid(spec[None, :] * kernel, w, axis=1) / (2 * np.pi)
    assert np.max(np.abs(out[::32] - expected)) < 1e-8 * np.sqrt(p0)

    mean, sigma = rms_moments(t, np.abs(out) ** 2)
    assert mean == pytest.approx(beta3 * z / (4 * t0**2), rel=1e-6)
    sigma_expected = math.sqrt(t0**2 / 2 + (beta2 * z) ** 2 / (2 * t0**2) + (beta3 * z) ** 2 / (8 * t0**4))
    sigma_no_beta3 = math.sqrt(t0**2 / 2 + (beta2 * z) ** 2 / (2 * t0**2))
    assert abs(sigma - sigma_expected) < 0.01 * abs(sigma_expected - sigma_no_beta3)


def test_beta3_only_centroid_and_width():
    t0, p0, n, fs = 2e-12, 1e-3, 4096, 4e12
    beta3, z = 1e-40, 160e3
    t = grid(n, fs)
    a0 = np.sqrt(p0) * np.exp(-t**2 / (2 * t0**2))
    out = SplitStepFourier(n, fs, FiberParameters(0.0, 0.0, beta3, 0.0), [z / 4] * 4).propagate(a0)
    assert out.shape == (n,)  # single-polarization input is accepted
    mean, sigma = rms_moments(t, np.abs(out) ** 2)
    assert mean == pytest.approx(beta3 * z / (4 * t0**2), rel=1e-8)
    assert sigma == pytest.approx(math.sqrt(t0**2 / 2 + (beta3 * z) ** 2 / (8 * t0**4)), rel=1e-8)
    # the energy spectrum is unchanged by a pure phase
    assert np.allclose(np.abs(np.fft.fft(out)), np.abs(np.fft.fft(a0)), atol=1e-12 * np.abs(np.fft.fft(a0)).max())


# --- 2. self-phase modulation ----------------------------------------------------------------------------------

def test_spm_phase_with_loss_is_manakov_weighted_total_power():
    """beta2 = beta3 = 0: A(L) = A(0) exp(-alpha L/2) exp(j (8/9) gamma (|Ax|^2 + |Ay|^2) L_eff), pointwise."""
    rng = np.random.default_rng(7)
    n, length = 1024, 80e3
    ax = np.sqrt(0.08) * (rng.standard_normal(n) + 1j * rng.standard_normal(n)) / np.sqrt(2)
    ay = np.sqrt(0.02) * (rng.standard_normal(n) + 1j * rng.standard_normal(n)) / np.sqrt(2)
    field = np.stack([ax, ay])
    steps = [3e3, 11e3, 20e3, 17e3, 29e3]  # deliberately unequal
    assert sum(steps) == length
    solver = SplitStepFourier(n, 50e9, FiberParameters(ALPHA, 0.0, 0.0, GAMMA), steps)
    out = solver.propagate(field)
    l_eff = (1 - math.exp(-ALPHA * length)) / ALPHA
    phase = MANAKOV * GAMMA * (np.abs(ax) ** 2 + np.abs(ay) ** 2) * l_eff
    assert phase.max() > 3.0  # a large rotation, so a wrong factor cannot hide
    expected = field * math.exp(-ALPHA * length / 2) * np.exp(1j * phase)[None, :]
    assert np.max(np.abs(out - expected)) < 1e-10 * np.abs(field).max()

    # two spans, each followed by a gain restoring the loss: the phase doubles, power is restored
    gain = math.sqrt(math.exp(ALPHA * length))

    def amplify(spectrum, span):
        return spectrum * gain

    out2 = solver.propagate(field, n_spans=2, after_span=amplify)
    assert np.max(np.abs(out2 - field * np.exp(2j * phase)[None, :])) < 1e-10 * np.abs(field).max()


def test_spm_cw_phase_single_step():
    """CW of power P0 split over x and y: phase (8/9) gamma P0 L_eff on both, even with a single step."""
    n, length, p0 = 64, 50e3, 0.1
    field = np.stack([np.full(n, np.sqrt(0.7 * p0)), np.full(n, np.sqrt(0.3 * p0)) * np.exp(0.4j)])
    out = SplitStepFourier(n, 10e9, FiberParameters(ALPHA, 0.0, 0.0, GAMMA), [length]).propagate(field)
    l_eff = (1 - math.exp(-ALPHA * length)) / ALPHA
    rotation = out / (field * math.exp(-ALPHA * length / 2))
    assert np.allclose(rotation, np.exp(1j * MANAKOV * GAMMA * p0 * l_eff), rtol=0, atol=1e-12)


# --- 3. fundamental soliton ------------------------------------------------------------------------------------

def soliton(n_steps_per_ld, polarization, z_ld=5.0):
    t0 = 5e-12
    p0 = abs(BETA2) / (MANAKOV * GAMMA * t0**2)  # N = 1 for gamma_eff = (8/9) gamma
    ld = t0**2 / abs(BETA2)
    n, fs = 512, 10 / t0
    t = grid(n, fs)
    a = np.sqrt(p0) / np.cosh(t / t0)
    field = np.stack([polarization[0] * a, polarization[1] * a])
    z = z_ld * ld
    n_steps = int(n_steps_per_ld * z_ld)
    out = SplitStepFourier(n, fs, FiberParameters(0.0, BETA2, 0.0, GAMMA), [z / n_steps] * n_steps).propagate(field)
    # exact solution: A(z, t) = A(0, t) exp(j z / (2 LD))
    return out, field * np.exp(1j * z / (2 * ld)), p0


@pytest.mark.parametrize("polarization", [(1.0, 0.0), (math.sqrt(0.5), math.sqrt(0.5) * np.exp(1j))],
                         ids=["x", "elliptical"])
def test_fundamental_soliton_keeps_its_shape(polarization):
    out, expected, p0 = soliton(100, polarization)
    power_out = np.abs(out[0]) ** 2 + np.abs(out[1]) ** 2
    power_in = np.abs(expected[0]) ** 2 + np.abs(expected[1]) ** 2
    assert np.max(np.abs(power_out - power_in)) < 1e-4 * p0
    assert np.max(np.abs(out - expected)) < 1e-3 * np.sqrt(p0)  # also the phase z / (2 LD)


def test_soliton_error_converges_second_order():
    """The symmetric split-step is second order: halving the step divides the error by ~4."""
    errors = []
    for steps_per_ld in (10, 20, 40):
        out, expected, p0 = soliton(steps_per_ld, (1.0, 0.0), z_ld=3.0)
        errors.append(np.max(np.abs(out - expected)) / np.sqrt(p0))
    for coarse, fine in zip(errors, errors[1:]):
        assert 3.5 < coarse / fine < 4.5, errors


def test_scalar_soliton_power_without_manakov_factor_is_not_a_soliton():
    """Control: with the scalar-NLSE power (no 8/9), the pulse breathes - the shape test above can fail."""
    t0 = 5e-12
    p0 = abs(BETA2) / (GAMMA * t0**2)
    ld = t0**2 / abs(BETA2)
    n, fs = 512, 10 / t0
    a = np.sqrt(p0) / np.cosh(grid(n, fs) / t0)
    out = SplitStepFourier(n, fs, FiberParameters(0.0, BETA2, 0.0, GAMMA), [ld / 100] * 300).propagate(a)
    assert np.max(np.abs(np.abs(out) ** 2 - a**2)) > 1e-2 * p0


# --- 4. energy conservation and attenuation ------------------------------------------------------------------

def random_band_limited_field(n, power, seed=3):
    rng = np.random.default_rng(seed)
    spec = (rng.standard_normal((2, n)) + 1j * rng.standard_normal((2, n)))
    spec[:, n // 4: 3 * n // 4] = 0
    field = np.fft.ifft(spec, axis=-1)
    return field * np.sqrt(power / np.mean(np.sum(np.abs(field) ** 2, axis=0)))


@pytest.mark.parametrize("n_steps", [1, 7, 40])
def test_energy_conserved_without_loss(n_steps):
    n, fs, length = 2048, 120e9, 30e3
    field = random_band_limited_field(n, 0.05)
    params = FiberParameters(0.0, BETA2, 1e-40, GAMMA)
    solver = SplitStepFourier(n, fs, params, [length / n_steps] * n_steps)
    energies = []

    def record(spectrum, span):
        energies.append(np.sum(np.abs(spectrum) ** 2) / n)
        return spectrum

    out = solver.propagate(field, n_spans=3, after_span=record)
    e0 = np.sum(np.abs(field) ** 2)
    assert np.sum(np.abs(out) ** 2) == pytest.approx(e0, rel=1e-12)
    assert np.allclose(energies, e0, rtol=1e-12, atol=0)
    # and the nonlinearity did act (the field is not simply dispersed)
    linear = SplitStepFourier(n, fs, FiberParameters(0.0, BETA2, 1e-40, 0.0), [length]).propagate(field, 3)
    assert np.linalg.norm(out - linear) > 0.05 * np.linalg.norm(out)


@pytest.mark.parametrize("n_steps", [1, 9])
def test_attenuation_is_exactly_exponential(n_steps):
    n, fs, length = 2048, 120e9, 50e3
    field = random_band_limited_field(n, 0.05)
    solver = SplitStepFourier(n, fs, FiberParameters(ALPHA, BETA2, 1e-40, GAMMA), [length / n_steps] * n_steps)
    for n_spans in (1, 2):
        out = solver.propagate(field, n_spans=n_spans)
        ratio = np.sum(np.abs(out) ** 2) / np.sum(np.abs(field) ** 2)
        assert ratio == pytest.approx(math.exp(-ALPHA * length * n_spans), rel=1e-12)
    # 0.2 dB/km x 50 km = 10 dB
    assert math.exp(-ALPHA * length) == pytest.approx(0.1, rel=1e-12)


def test_complex64_precision_close_to_complex128():
    n, fs = 1024, 120e9
    field = random_band_limited_field(n, 0.02)
    params = FiberParameters(ALPHA, BETA2, 0.0, GAMMA)
    ref = SplitStepFourier(n, fs, params, [2e3] * 10).propagate(field)
    single = SplitStepFourier(n, fs, params, [2e3] * 10, precision="complex64").propagate(field)
    assert single.dtype == np.complex64
    assert np.linalg.norm(single - ref) < 1e-5 * np.linalg.norm(ref)


# --- 11. NaN / Inf during propagation ---------------------------------------------------------------------------

def test_nan_input_raises_propagation_error():
    field = random_band_limited_field(256, 1e-3)
    field[0, 17] = np.nan
    solver = SplitStepFourier(256, 60e9, FiberParameters(ALPHA, BETA2, 0.0, GAMMA), [1e3] * 4)
    with pytest.raises(PropagationError, match=r"span 1 of 2, step 1 of 4"):
        solver.propagate(field, n_spans=2)


def test_nan_injected_in_second_span_names_that_span():
    field = random_band_limited_field(256, 1e-3)
    solver = SplitStepFourier(256, 60e9, FiberParameters(ALPHA, BETA2, 0.0, GAMMA), [1e3] * 4)

    def corrupt(spectrum, span):
        if span == 0:
            spectrum[..., 5] = np.inf
        return spectrum

    with pytest.raises(PropagationError, match=r"span 2 of 3, step 1 of 4"):
        solver.propagate(field, n_spans=3, after_span=corrupt)


def test_absurd_gamma_raises_propagation_error():
    # the nonlinear phase overflows to inf in step 1, which the step itself reports
    field = random_band_limited_field(256, 1.0)
    with np.errstate(all="ignore"), pytest.raises(PropagationError, match=r"span 1 of 1, step 1 of 3"):
        SplitStepFourier(256, 60e9, FiberParameters(0.0, BETA2, 0.0, 1e306), [1e3] * 3).propagate(field)
    assert issubclass(PropagationError, FloatingPointError)


def test_bad_solver_arguments():
    with pytest.raises(ValueError):
        SplitStepFourier(16, 1e9, FiberParameters(0, 0, 0, 0), [])
    with pytest.raises(ValueError):
        SplitStepFourier(16, 1e9, FiberParameters(0, 0, 0, 0), [1.0, -1.0])
    with pytest.raises(ValueError, match="samples"):
        SplitStepFourier(16, 1e9, FiberParameters(0, 0, 0, 0), [1.0]).propagate(np.zeros((2, 8), complex))


# --- 12. adaptive step plan ---------------------------------------------------------------------------------------

ADAPTIVE_CASES = [
    dict(launch=6.0, phase=5e-3, max_step=10.0, alpha=0.2, n_ch=1),
    dict(launch=0.0, phase=1e-3, max_step=2.0, alpha=0.2, n_ch=1),
    dict(launch=10.0, phase=2e-2, max_step=50.0, alpha=0.0, n_ch=1),
    dict(launch=3.0, phase=5e-3, max_step=10.0, alpha=0.25, n_ch=3),
]


@pytest.mark.parametrize("case", ADAPTIVE_CASES, ids=lambda c: "-".join(f"{k}{v}" for k, v in c.items()))
def test_adaptive_step_plan_bounds_nonlinear_phase(case):
    cfg = channel.reference_config().replace(
        transmitter={"launch_power_dbm": case["launch"], "n_channels": case["n_ch"], "samples_per_symbol": 8},
        fiber={"attenuation_db_km": case["alpha"]}, link={"span_length_km": 80.0},
        propagation={"step_mode": "adaptive", "max_nonlinear_phase_rad": case["phase"],
                     "max_step_km": case["max_step"]})
    steps = channel.step_lengths(cfg)
    span = 80e3
    assert np.all(steps > 0)
    assert steps.sum() == pytest.approx(span, rel=1e-12)
    assert np.all(steps <= case["max_step"] * 1e3 * (1 + 1e-12))
    alpha = case["alpha"] / (10 * math.log10(math.e)) / 1e3
    p0 = 1e-3 * 10 ** (case["launch"] / 10) * case["n_ch"]  # all channels
    z = np.concatenate([[0.0], np.cumsum(steps)[:-1]])
    l_eff = (1 - np.exp(-alpha * steps)) / alpha if alpha > 0 else steps
    phase = MANAKOV * 1.3e-3 * p0 * np.exp(-alpha * z) * l_eff
    assert np.all(phase <= case["phase"] * (1 + 1e-9))
    # each step is the largest allowed: unless capped by max_step_km or the end of the span, it uses the full budget
    interior = (steps[:-1] < case["max_step"] * 1e3 * (1 - 1e-9))
    assert np.allclose(phase[:-1][interior], case["phase"], rtol=1e-9)
    # the steps grow along the span as the power decays
    if alpha > 0:
        assert np.all(np.diff(steps[:-1]) >= -1e-6)


def test_fixed_step_plan():
    cfg = channel.reference_config().replace(link={"span_length_km": 75.0},
                                             propagation={"step_mode": "fixed", "steps_per_span": 7})
    steps = channel.step_lengths(cfg)
    assert len(steps) == 7 and np.allclose(steps, 75e3 / 7, rtol=1e-15) and steps.sum() == pytest.approx(75e3)


def test_adaptive_and_fine_fixed_propagation_agree():
    from channel.link import propagate_link
    from channel.transmitter import transmit
    base = channel.reference_config().replace(
        transmitter={"n_symbols": 1024, "samples_per_symbol": 2, "launch_power_dbm": 6.0},
        link={"n_spans": 1, "noiseless": True}, receiver={"dbp_steps_per_span": [], "dbp_xi": 1.0})
    adaptive = base.replace(propagation={"step_mode": "adaptive", "max_nonlinear_phase_rad": 5e-3})
    field = transmit(base.transmitter).field
    reference = propagate_link(base.replace(propagation={"step_mode": "fixed", "steps_per_span": 1000}), field)
    out = propagate_link(adaptive, field)
    linear = propagate_link(base.replace(fiber={"gamma_per_w_km": 0.0}), field)
    nonlinear_effect = np.linalg.norm(linear - reference)
    assert nonlinear_effect > 0.05 * np.linalg.norm(reference)
    assert len(channel.step_lengths(adaptive)) < 50
    assert np.linalg.norm(out - reference) < 0.01 * nonlinear_effect


# --- 13. logarithmic step plan -----------------------------------------------------------------------------------

@pytest.mark.parametrize("n_steps", [1, 3, 8, 25])
def test_logarithmic_steps_have_equal_nonlinear_phase(n_steps):
    cfg = channel.reference_config().replace(link={"span_length_km": 80.0},
                                             propagation={"step_mode": "logarithmic", "steps_per_span": n_steps})
    steps = channel.step_lengths(cfg)
    alpha = cfg.fiber.alpha
    assert len(steps) == n_steps and steps.sum() == pytest.approx(80e3, rel=1e-13)
    z = np.concatenate([[0.0], np.cumsum(steps)[:-1]])
    weight = np.exp(-alpha * z) * -np.expm1(-alpha * steps) / alpha  # exp(-alpha z) L_eff(h)
    assert np.allclose(weight, weight[0], rtol=1e-9)
    assert weight.sum() == pytest.approx(-math.expm1(-alpha * 80e3) / alpha, rel=1e-12)
    assert np.all(np.diff(steps) > 0)  # short steps where the power is high
    lossless = cfg.replace(fiber={"attenuation_db_km": 0.0})
    assert np.allclose(channel.step_lengths(lossless), 80e3 / n_steps, rtol=1e-15)


def test_logarithmic_plan_is_exact_without_dispersion_and_converges():
    """Without dispersion every plan is exact (the nonlinear step is the exact solution); with it, the
    logarithmic plan converges to the fine solution at second order like equal steps.

    (It is not more accurate than equal steps at equal count on a dispersive link: the local error of a
    step grows as h^3 P(z), which favours h ~ exp(alpha z / 2), not the logarithmic h ~ exp(alpha z);
    benchmarks/README.md, time to accuracy.)
    """
    from channel.link import propagate_link

    base = channel.reference_config().replace(
        transmitter={"n_symbols": 512, "samples_per_symbol": 4, "launch_power_dbm": 10.0},
        fiber={"dispersion_ps_nm_km": 0.0}, link={"n_spans": 1, "noiseless": True})
    field = channel.transmit(base.transmitter).field
    exact = propagate_link(base.replace(propagation={"step_mode": "fixed", "steps_per_span": 1}), field)
    out = propagate_link(base.replace(propagation={"step_mode": "logarithmic", "steps_per_span": 7}), field)
    assert np.linalg.norm(out - exact) / np.linalg.norm(exact) < 1e-12
    dispersive = base.replace(fiber={"dispersion_ps_nm_km": 17.0})
    fine = propagate_link(dispersive.replace(propagation={"step_mode": "fixed", "steps_per_span": 2000}), field)
    errors = [np.linalg.norm(propagate_link(dispersive.replace(
        propagation={"step_mode": "logarithmic", "steps_per_span": k}), field) - fine) for k in (8, 16, 32)]
    assert 3.5 < errors[0] / errors[1] < 8 and 3.5 < errors[1] / errors[2] < 8


# --- 14. stepper implementation: exact rotation, thread and cache variants, batch, memory ---------------------

@pytest.mark.parametrize("scale", [1e-7, 1e-3, 3e-2, 0.2, 0.6, 3.0, 300.0])
def test_unit_rotation_is_exp_j_phase(scale):
    from channel.fiber import rotation_terms, unit_rotation

    phase = np.random.default_rng(0).uniform(-scale, scale, 10_001)
    out = unit_rotation(phase, np.empty(phase.shape, complex))
    assert np.max(np.abs(out - np.exp(1j * phase))) <= 4e-16
    out32 = unit_rotation(phase.astype(np.float32), np.empty(phase.shape, np.complex64))
    assert np.max(np.abs(out32 - np.exp(1j * phase.astype(np.float32)))) <= 3e-7
    n = rotation_terms(scale)
    assert (n == 0) == (scale > 1)  # the series covers SSFM step phases up to about 0.7 rad


def test_solver_variants_give_the_same_field():
    """1 or 2 FFT threads, cached or recomputed operators, in place or not: the same arithmetic."""
    from channel.link import propagate_link

    cfg = channel.reference_config().replace(transmitter={"n_symbols": 1024, "launch_power_dbm": 4.0},
                                             link={"n_spans": 3}, propagation={"step_mode": "adaptive"})
    field = channel.transmit(cfg.transmitter).field
    params = FiberParameters.from_config(cfg.fiber)
    steps = channel.step_lengths(cfg)
    assert len(set(np.round(steps, 3))) > 2  # several distinct operators, so a budget of 0 recomputes them

    def run(**kw):
        overwrite = kw.pop("overwrite_input", False)
        solver = SplitStepFourier(field.shape[-1], cfg.transmitter.sample_rate, params, steps, **kw)
        return solver.propagate(field.copy() if overwrite else field, 3, overwrite_input=overwrite)

    kept = field.copy()
    reference = run(workers=1)
    for kw in ({"workers": 2}, {"workers": 1, "operator_cache_bytes": 0}, {"workers": 1, "overwrite_input": True}):
        out = run(**kw)
        assert np.max(np.abs(out - reference)) <= 1e-15 * np.max(np.abs(reference)), kw
    assert np.array_equal(field, kept)  # the caller's field is untouched unless overwrite_input
    assert np.linalg.norm(propagate_link(cfg, field) - reference) > 0  # the link adds ASE: not a no-op


def test_batch_of_launch_powers_equals_one_at_a_time():
    from channel.link import propagate_link, propagate_link_batch

    base = channel.reference_config().replace(transmitter={"n_symbols": 1024}, link={"n_spans": 2},
                                              propagation={"step_mode": "logarithmic", "steps_per_span": 5})
    configs = [base.with_launch_power(p) for p in (-3.0, 1.0, 5.0)]
    fields = np.stack([channel.transmit(c.transmitter).field for c in configs])
    batch = propagate_link_batch(configs, fields)
    for c, f, b in zip(configs, fields, batch):
        single = propagate_link(c, f)
        assert np.max(np.abs(b - single)) <= 1e-13 * np.max(np.abs(single))
    # adaptive plans: the batch uses the strongest power's (finer) plan, close to the single runs
    adaptive = [c.replace(propagation={"step_mode": "adaptive"}) for c in configs]
    batch = propagate_link_batch(adaptive, fields)
    assert np.linalg.norm(batch[0] - propagate_link(adaptive[0], fields[0])) < 5e-3 * np.linalg.norm(batch[0])
    with pytest.raises(ValueError, match="more than the launch power"):
        propagate_link_batch([configs[0], configs[1].replace(link={"n_spans": 3})], fields[:2])
    with pytest.raises(ValueError, match="shape"):
        propagate_link_batch(configs, fields[0])


def test_stepper_allocates_no_field_sized_arrays_per_step():
    """Peak traced memory of a propagation in place: the operators and cache-sized blocks only (per thread: with
    2 workers the rotation runs on 2 threads, each with its own block temporaries)."""
    import tracemalloc

    n = 2**17
    stacked = random_band_limited_field(n, 1e-2).astype(complex)  # (2, n)
    for workers in (1, 2):
        solver = SplitStepFourier(n, 60e9, FiberParameters(ALPHA, BETA2, 0.0, GAMMA), [2e3] * 20, workers=workers)
        solver.propagate(stacked.copy(), 1)  # operators cached
        work = fft.work_copy(stacked, complex)  # aligned: FFTW works in it too
        tracemalloc.start()
        tracemalloc.reset_peak()
        solver.propagate(work, 2, overwrite_input=True)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < 0.25 * workers * stacked.nbytes  # the previous stepper peaked at 2.75 fields over the same call
