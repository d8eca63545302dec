"""DBP variants: the position of the nonlinear step within each DBP step, filtered DBP (a short low-pass FIR on the
power before the rotation), their joint search with xi, their configuration and their cost.

Independent references: a forward stepper whose nonlinear step sits at the fraction q of each step is inverted to
rounding error by DBP with its nonlinear step at the same place (p = q from the high-power end) and not by another
p, so a search over p must return q (0.5 for a link simulated with DBP's own symmetric steps, 0.25 for one simulated
with steps placed at a quarter); the power filter equals an explicit circular convolution; the counted operations of
a nonlinear step done one multiplication at a time equal the formula of :func:`eqnn.complexity.dbp_complexity`.
Today's DBP (the default 0.5, no filter) is pinned bit for bit by tests/test_simulator_digest.py.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import channel
from channel import ConfigError
from channel.amplifier import Amplifier
from channel.dbp import (
    FILTER_BANDWIDTH_BOUNDS,
    POSITION_TOLERANCE,
    XI_TOLERANCE,
    DigitalBackPropagation,
    power_filter,
)
from channel.fiber import FiberParameters, SplitStepFourier, effective_length, step_lengths
from channel.transmitter import transmit
from eqnn import complexity as cx


def small_config(**sections) -> channel.LinkConfig:
    """Noiseless 3 x 50 km link at 2 samples per symbol (the DBP grid), 5 dBm: strongly nonlinear."""
    base = {"transmitter": {"n_symbols": 1024, "samples_per_symbol": 2, "modulation": "16QAM",
                            "launch_power_dbm": 5.0, "seed": 4},
            "link": {"n_spans": 3, "noiseless": True},
            "propagation": {"step_mode": "fixed", "steps_per_span": 2},
            "receiver": {"dbp_steps_per_span": [], "dbp_xi": 1.0, "dbp_samples_per_symbol": 2}}
    for key, values in sections.items():
        base.setdefault(key, {}).update(values)
    return channel.reference_config().replace(**base)


def forward(cfg: channel.LinkConfig, nonlinear_position: float):
    """(transmitted field, received field) of ``cfg`` propagated by a stepper whose nonlinear step sits at
    ``nonlinear_position`` of each forward step (from its start, the high-power end)."""
    tx = transmit(cfg.transmitter)
    solver = SplitStepFourier(tx.field.shape[-1], cfg.transmitter.sample_rate, FiberParameters.from_config(cfg.fiber),
                              step_lengths(cfg), nonlinear_position=nonlinear_position)
    return tx, solver.propagate(tx.field, cfg.link.n_spans, after_span=Amplifier.from_link(cfg))


# --- the stepper -------------------------------------------------------------------------------------------------

def test_effective_length_is_the_integral_of_the_power_over_the_step():
    alpha, h = 4.6e-5, 25e3
    for q in (0.0, 0.2, 0.5, 0.9, 1.0):
        s = np.linspace(0, h, 200_001)
        integral = np.trapezoid(np.exp(-alpha * (s - q * h)), s)
        assert effective_length(alpha, h, q) == pytest.approx(integral, rel=1e-9)
    assert effective_length(alpha, h, 0.0) == pytest.approx(-math.expm1(-alpha * h) / alpha, rel=1e-14)
    assert effective_length(0.0, h, 0.3) == h


@pytest.mark.parametrize("position", [0.0, 0.25, 0.8])
def test_dbp_with_the_forward_position_inverts_exactly_and_the_midpoint_does_not(position):
    cfg = small_config()
    tx, rx = forward(cfg, position)
    dbp = DigitalBackPropagation.from_link(cfg)
    scale = np.max(np.abs(tx.field))
    assert np.max(np.abs(dbp.backpropagate(rx, 2, 1.0, nonlinear_position=position) - tx.field)) < 1e-10 * scale
    other = 0.5 if position != 0.5 else 0.0
    assert np.max(np.abs(dbp.backpropagate(rx, 2, 1.0, nonlinear_position=other) - tx.field)) > 1e-4 * scale


def test_power_filter_is_a_unit_sum_gaussian_and_the_stepper_applies_it_circularly():
    taps = power_filter(5, 0.6, 2)
    sigma = 2 * math.sqrt(math.log(2)) / (2 * math.pi * 0.6)
    expected = np.exp(-np.arange(-2, 3) ** 2 / (2 * sigma**2))
    np.testing.assert_allclose(taps, expected / expected.sum(), rtol=1e-15)
    assert taps.sum() == pytest.approx(1.0, abs=1e-15) and np.array_equal(taps, taps[::-1])
    np.testing.assert_array_equal(power_filter(1, 0.3, 2), [1.0])
    # the transfer function of the (untruncated) Gaussian is 1/sqrt(2) at B
    wide = power_filter(61, 0.1, 4)
    f = 0.1 / 4  # B in cycles per sample
    response = np.sum(wide * np.exp(-2j * np.pi * f * (np.arange(61) - 30)))
    assert abs(response) == pytest.approx(1 / math.sqrt(2), rel=1e-6)

    rng = np.random.default_rng(0)
    n = 64
    field = (rng.normal(size=(2, n)) + 1j * rng.normal(size=(2, n))) * 0.05
    g = np.array([0.1, 0.2, 0.4, 0.2, 0.1])
    solver = SplitStepFourier(n, 1e10, FiberParameters(0.0, 0.0, 0.0, 1e-3), [1.0], power_filter=g)
    out = field.copy()
    solver._nonlinear_step(out, 0.7)
    power = np.sum(np.abs(field) ** 2, axis=0)
    filtered = sum(g[m] * np.roll(power, 2 - m) for m in range(5))  # sum_m g[m] P[n + m - 2]
    np.testing.assert_allclose(out, field * np.exp(1j * 0.7 * filtered), rtol=1e-13, atol=0)
    # a one-tap filter [1] is the plain nonlinear step
    plain, one = field.copy(), field.copy()
    SplitStepFourier(n, 1e10, FiberParameters(0.0, 0.0, 0.0, 1e-3), [1.0])._nonlinear_step(plain, 0.7)
    SplitStepFourier(n, 1e10, FiberParameters(0.0, 0.0, 0.0, 1e-3), [1.0], power_filter=[1.0])._nonlinear_step(one, 0.7)
    np.testing.assert_allclose(one, plain, rtol=1e-14, atol=0)


# --- the joint search ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("position", [0.5, 0.25])
def test_position_search_returns_the_position_of_the_forward_model(position):
    """Noiseless link simulated with DBP's own steps (2 per span, fixed): DBP inverts it exactly only at xi = 1 and
    the forward model's position, so the joint search must land there (within its tolerance)."""
    cfg = small_config()
    tx, rx_full = forward(cfg, position)
    rx = channel.receiver.select_channel(rx_full, cfg)
    dbp = DigitalBackPropagation.from_link(cfg)
    found = dbp.optimize(rx, 2, tx.symbols, xi="optimize", nonlinear_position="optimize")
    assert found.nonlinear_position == pytest.approx(position, abs=POSITION_TOLERANCE)
    assert found.xi == pytest.approx(1.0, abs=XI_TOLERANCE)
    assert found.half_block_snr_db > 60.0  # near exact inversion (CDC alone: below 30 dB)


def test_simulate_reports_the_searched_position_with_xi_and_stores_it():
    cfg = small_config(receiver={"dbp_steps_per_span": [2, 1], "dbp_xi": "optimize",
                                 "dbp_nonlinear_position": "optimize"})
    tr = channel.simulate(cfg)
    assert tr.dbp_nonlinear_position[2] == pytest.approx(0.5, abs=POSITION_TOLERANCE)
    assert tr.dbp_xi[2] == pytest.approx(1.0, abs=XI_TOLERANCE) and tr.metrics["DBP-2"].snr_db > 60.0
    # one step per span does not invert two forward steps: its best position is not the midpoint (the nonlinearity
    # of a span acts mostly near its start), and it beats the midpoint at the same cost
    assert tr.dbp_nonlinear_position[1] < 0.45
    midpoint = channel.simulate(cfg.replace(receiver={"dbp_nonlinear_position": 0.5}))
    assert midpoint.dbp_nonlinear_position == {2: 0.5, 1: 0.5}
    assert tr.metrics["DBP-1"].snr_db > midpoint.metrics["DBP-1"].snr_db + 0.3
    assert tr.dbp_power_filter_bandwidth == {}


def test_filtered_dbp_search_and_round_trip(tmp_path):
    cfg = small_config(receiver={"dbp_steps_per_span": [1], "dbp_xi": "optimize", "dbp_power_filter_taps": 5})
    tr = channel.simulate(cfg, cache_dir=tmp_path)
    b = tr.dbp_power_filter_bandwidth[1]
    assert FILTER_BANDWIDTH_BOUNDS[0] <= b <= FILTER_BANDWIDTH_BOUNDS[1] and tr.dbp_nonlinear_position == {1: 0.5}
    # the reported parameters reproduce the reported symbols
    dbp = DigitalBackPropagation.from_link(cfg)
    np.testing.assert_array_equal(dbp.symbols(tr.rx_field, 1, tr.dbp_xi[1], tr.tx_symbols, 0.5, b), tr.rx_dbp[1])
    # the search keeps the best point it evaluated: not worse than the unfiltered DBP with the same xi search
    plain = channel.simulate(cfg.replace(receiver={"dbp_power_filter_taps": 1}))
    half = cfg.transmitter.n_symbols // 2
    snr = {name: channel.metrics.effective_snr_db(channel.receiver.normalize(t.rx_dbp[1][:, :half],
                                                                              t.tx_symbols[:, :half]),
                                                  t.tx_symbols[:, :half]) for name, t in (("f", tr), ("p", plain))}
    assert snr["f"] >= snr["p"] - 0.01
    assert tr.metrics["DBP-1"].snr_db > plain.metrics["DBP-1"].snr_db + 0.3  # strongly nonlinear: the filter helps
    again = channel.simulate(cfg, cache_dir=tmp_path)  # from the cache file
    assert again.dbp_power_filter_bandwidth == tr.dbp_power_filter_bandwidth and again.dbp_xi == tr.dbp_xi
    assert again.dbp_nonlinear_position == tr.dbp_nonlinear_position
    # a fixed bandwidth is used as given
    fixed = channel.simulate(cfg.replace(receiver={"dbp_power_filter_bandwidth": 0.3, "dbp_xi": 1.0}))
    assert fixed.dbp_power_filter_bandwidth == {1: 0.3}
    np.testing.assert_array_equal(dbp.symbols(tr.rx_field, 1, 1.0, tr.tx_symbols, 0.5, 0.3), fixed.rx_dbp[1])


def test_files_without_the_position_load_as_the_symmetric_step(tmp_path):
    cfg = small_config(receiver={"dbp_steps_per_span": [1]})
    tr = channel.simulate(cfg)
    path = tr.save(tmp_path / "t.npz")
    arrays = channel.storage.load_arrays(path)
    meta = json.loads(str(arrays["meta_json"]))
    del meta["dbp_nonlinear_position"], meta["dbp_power_filter_bandwidth"]  # as written before the keys existed
    arrays["meta_json"] = np.array(json.dumps(meta))
    channel.storage.save_arrays(path, arrays)
    old = channel.Transmission.load(path)
    assert old.dbp_nonlinear_position == {1: 0.5} and old.dbp_power_filter_bandwidth == {}


# --- configuration: bad values are refused, by name, before any work -----------------------------------------------

BAD_RECEIVER_VALUES = [
    ({"dbp_nonlinear_position": 1.5}, ["receiver.dbp_nonlinear_position", "1.5", "[0, 1]", "optimize"]),
    ({"dbp_nonlinear_position": -0.1}, ["receiver.dbp_nonlinear_position", "[0, 1]"]),
    ({"dbp_nonlinear_position": "middle"}, ["receiver.dbp_nonlinear_position", "'middle'", "optimize"]),
    ({"dbp_nonlinear_position": True}, ["receiver.dbp_nonlinear_position", "finite number"]),
    ({"dbp_nonlinear_position": float("nan")}, ["receiver.dbp_nonlinear_position", "finite number"]),
    ({"dbp_power_filter_taps": 0}, ["receiver.dbp_power_filter_taps", "odd integers in [1, 63]"]),
    ({"dbp_power_filter_taps": 4}, ["receiver.dbp_power_filter_taps", "odd"]),
    ({"dbp_power_filter_taps": 65}, ["receiver.dbp_power_filter_taps", "[1, 63]"]),
    ({"dbp_power_filter_taps": 5.0}, ["receiver.dbp_power_filter_taps", "odd integers"]),
    ({"dbp_power_filter_taps": 5, "dbp_power_filter_bandwidth": 0.0},
     ["receiver.dbp_power_filter_bandwidth", "[0.02, 2]", "optimize"]),
    ({"dbp_power_filter_taps": 5, "dbp_power_filter_bandwidth": 3.0}, ["receiver.dbp_power_filter_bandwidth", "3.0"]),
    ({"dbp_power_filter_taps": 5, "dbp_power_filter_bandwidth": "auto"},
     ["receiver.dbp_power_filter_bandwidth", "'auto'"]),
    ({"dbp_power_filter_bandwidth": 0.5},
     ["receiver.dbp_power_filter_bandwidth", "receiver.dbp_power_filter_taps = 1"]),
]


@pytest.mark.parametrize("receiver,expected", BAD_RECEIVER_VALUES)
def test_bad_dbp_values_give_one_line_naming_the_key(receiver, expected):
    with pytest.raises(ConfigError) as err:
        channel.reference_config().replace(receiver=receiver)
    message = str(err.value)
    assert "\n" not in message
    for text in expected:
        assert text in message


def test_bad_value_in_a_toml_stops_eqnn_simulate_before_any_work(tmp_path, capsys, monkeypatch):
    from eqnn import cli

    def no_work(*args, **kwargs):
        raise AssertionError("a simulation started")

    monkeypatch.setattr(channel.link, "transmit", no_work)
    link = tmp_path / "bad.toml"
    link.write_text("[receiver]\ndbp_nonlinear_position = 1.2\n")
    out = tmp_path / "out"
    assert cli.main(["simulate", str(link), "--out", str(out), "--no-cache", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "receiver.dbp_nonlinear_position = 1.2" in err and "[0, 1]" in err
    assert not out.exists()


def test_inconsistent_dbp_arguments_fail_before_any_propagation(monkeypatch):
    cfg = small_config(receiver={"dbp_power_filter_taps": 3})
    dbp = DigitalBackPropagation.from_link(cfg)
    field = np.zeros((2, 2 * cfg.transmitter.n_symbols), complex)
    monkeypatch.setattr(SplitStepFourier, "propagate", lambda *a, **k: pytest.fail("propagated"))
    with pytest.raises(ValueError, match="power_filter_bandwidth is required"):
        dbp.optimize(field, 1, field[:, ::2], xi="optimize")
    with pytest.raises(ValueError, match=r"nonlinear_position = 1.5: allowed \[0, 1\]"):
        dbp.backpropagate(field, 1, 1.0, nonlinear_position=1.5, power_filter_bandwidth=0.5)
    with pytest.raises(ValueError, match="n_taps"):
        power_filter(4, 0.5, 2)


def test_default_values_leave_the_digest_unchanged():
    ref = channel.reference_config()
    explicit = ref.replace(receiver={"dbp_nonlinear_position": 0.5, "dbp_power_filter_taps": 1,
                                     "dbp_power_filter_bandwidth": "optimize"})
    assert explicit.digest() == ref.digest() and "dbp_nonlinear_position" not in ref.to_dict()["receiver"]
    assert ref.replace(receiver={"dbp_nonlinear_position": "optimize"}).digest() != ref.digest()
    assert ref.replace(receiver={"dbp_power_filter_taps": 3}).digest() != ref.digest()
    changed = ref.replace(receiver={"dbp_nonlinear_position": 0.2, "dbp_power_filter_taps": 3})
    assert channel.LinkConfig.from_dict(changed.to_dict()) == changed


# --- cost ------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("taps", [1, 3, 7])
def test_rmps_of_filtered_dbp_equals_its_counted_multiplications(taps):
    rng = np.random.default_rng(taps)
    n = 48
    field = (rng.normal(size=(2, n)) + 1j * rng.normal(size=(2, n))) * 0.03
    g = power_filter(taps, 0.5, 2) if taps > 1 else None
    coefficient = -0.9 * 8 / 9 * 1.3e-3 * 2.1e4
    out, counter = cx.count_dbp_nonlinear_step_reference(field, coefficient, g)
    # the counted step is the stepper's step
    expected = field.copy()
    SplitStepFourier(n, 6e10, FiberParameters(0.0, 0.0, 0.0, 1e-3), [1.0], power_filter=g)._nonlinear_step(
        expected, coefficient)
    np.testing.assert_allclose(out, expected, rtol=1e-13, atol=1e-16)
    cfg = channel.reference_config().replace(receiver={"dbp_power_filter_taps": taps})
    for k in (1, 2):
        plain, filtered = cx.dbp_complexity(cfg, k, power_filter_taps=1), cx.dbp_complexity(cfg, k)
        lin = filtered.details["linear_rmps_per_sample_per_pol"]
        counted = counter.multiplications / n
        assert filtered.details["nonlinear_rmps_per_dual_pol_sample"] == counted == 13 + (taps - 1) // 2
        assert filtered.rmps == pytest.approx(cfg.link.n_spans * k * 2 * (2 * lin + counted) / 2, rel=1e-12)
        assert filtered.rmps - plain.rmps == pytest.approx(cfg.link.n_spans * k * 2 * (taps - 1) / 2 / 2)
        assert filtered.details["power_filter_taps"] == taps
    # additions: power 3, filter 2M (pre-adds and sums), rotation 4 per sample
    assert counter.additions / n == 7 + (taps - 1)


def test_dbp_complexity_rejects_bad_filter_taps():
    for bad in (0, 2, 1003, 2.0):
        with pytest.raises(cx.ComplexityError, match="power_filter_taps"):
            cx.dbp_complexity(channel.reference_config(), 1, power_filter_taps=bad)
