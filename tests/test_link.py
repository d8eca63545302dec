"""End-to-end link: noiseless recovery by CDC and DBP, seeding, storage and cache, WDM.

Independent references: a linear noiseless link followed by the exact inverse dispersion must give back
the symbols; the exact inverse of a noiseless split-step link (same grid, same steps) must give them back
to rounding error; Parseval plus the Nyquist property of the raised cosine give the launched power exactly.
"""

from __future__ import annotations

import math
import os
import warnings

import numpy as np
import pytest
from scipy import stats

import channel
import channel.link
from channel import CorruptFileError
from channel.dbp import backpropagate, optimize_xi
from channel.receiver import matched_filter_and_sample, normalize
from channel.storage import load_arrays, save_arrays
from channel.transmitter import transmit


def small_config(**sections):
    base = {"transmitter": {"n_symbols": 1024, "samples_per_symbol": 2, "modulation": "16QAM"},
            "link": {"n_spans": 3, "noiseless": True},
            "propagation": {"step_mode": "fixed", "steps_per_span": 10},
            "receiver": {"dbp_steps_per_span": [], "dbp_xi": 1.0, "dbp_samples_per_symbol": 2}}
    for key, values in sections.items():
        base.setdefault(key, {}).update(values)
    return channel.reference_config().replace(**base)


# --- 7. noiseless linear link + CDC ---------------------------------------------------------------------------

@pytest.mark.parametrize("slope,sps", [(0.0, 2), (0.06, 4)])
def test_noiseless_linear_link_cdc_recovers_symbols(slope, sps):
    cfg = small_config(transmitter={"samples_per_symbol": sps, "launch_power_dbm": 1.0},
                       fiber={"gamma_per_w_km": 0.0, "dispersion_slope_ps_nm2_km": slope},
                       propagation={"step_mode": "fixed", "steps_per_span": 1})
    tr = channel.simulate(cfg)
    m = tr.metrics["CDC"]
    assert m.snr_db > 60.0 and m.bit_errors == 0 and m.gmi_bits == pytest.approx(4.0, abs=1e-9)
    assert np.max(np.abs(tr.rx_cdc - tr.tx_symbols)) < 1e-3
    # the link is unit-gain (EDFA gain = span loss): the received power is the launched power, which for a
    # Nyquist (raised-cosine) pulse is exactly (P/2) sum_pol mean |a|^2 (Parseval)
    p = cfg.transmitter.launch_power_w
    expected = p / 2 * np.sum(np.mean(np.abs(tr.tx_symbols) ** 2, axis=-1))
    assert np.mean(np.sum(np.abs(tr.rx_field) ** 2, axis=0)) == pytest.approx(expected, rel=1e-9)
    # control: without CDC the accumulated dispersion (3 x 50 km) destroys the symbols
    raw = normalize(matched_filter_and_sample(tr.rx_field, cfg, 2), tr.tx_symbols)
    assert channel.metrics.effective_snr_db(raw, tr.tx_symbols) < 5.0
    # the closed-form ASE SNR is not reported for a noiseless link
    assert tr.info["ase_only_snr_db"] is None and tr.info["forward_steps_per_span"] == 1


# --- 8. noiseless nonlinear link + DBP --------------------------------------------------------------------------

def test_noiseless_nonlinear_link_dbp_inverts_exactly():
    cfg = small_config(transmitter={"launch_power_dbm": 5.0}, receiver={"dbp_steps_per_span": [10, 1]})
    tr = channel.simulate(cfg)
    assert tr.dbp_xi == {10: 1.0, 1: 1.0}
    # CDC alone leaves the nonlinear distortion; DBP with the forward steps undoes it to rounding error
    assert tr.metrics["CDC"].snr_db < 30.0
    assert tr.metrics["DBP-10"].snr_db > 100.0
    # a coarser DBP is better than CDC but not exact
    assert tr.metrics["CDC"].snr_db < tr.metrics["DBP-1"].snr_db < 60.0


def test_dbp_with_explicit_adaptive_step_plan():
    cfg = small_config(transmitter={"launch_power_dbm": 6.0}, link={"n_spans": 2},
                       propagation={"step_mode": "adaptive", "max_nonlinear_phase_rad": 0.01})
    tx = transmit(cfg.transmitter)
    rx = channel.propagate_link(cfg, tx.field)
    out = backpropagate(rx, cfg, 0, 1.0, samples_per_symbol=2, steps=channel.step_lengths(cfg))
    assert np.max(np.abs(out - tx.field)) < 1e-10 * np.max(np.abs(tx.field))


def test_optimize_xi_finds_one_on_noiseless_link():
    cfg = small_config(transmitter={"launch_power_dbm": 5.0}, link={"n_spans": 2})
    tr = channel.simulate(cfg, dbp=False)
    xi = optimize_xi(tr.rx_field, cfg, 10, tr.tx_symbols)
    assert xi == pytest.approx(1.0, abs=0.02)


# --- 9. seeds ------------------------------------------------------------------------------------------------

def test_same_seed_same_data_different_seed_different_symbols_and_noise():
    cfg = small_config(transmitter={"n_symbols": 4096, "launch_power_dbm": -5.0},
                       fiber={"gamma_per_w_km": 0.0}, link={"noiseless": False, "n_spans": 2},
                       propagation={"step_mode": "fixed", "steps_per_span": 1})
    a = channel.simulate(cfg)
    b = channel.simulate(cfg)
    assert np.array_equal(a.tx_indices, b.tx_indices)
    assert np.array_equal(a.rx_field, b.rx_field) and np.array_equal(a.rx_cdc, b.rx_cdc)
    c = channel.simulate(cfg.with_seed(cfg.transmitter.seed + 1))
    assert np.mean(a.tx_indices == c.tx_indices) < 2 / 16  # ~1/16 by chance
    noise_a = a.rx_cdc - a.tx_symbols
    noise_c = c.rx_cdc - c.tx_symbols
    n = noise_a.size
    rho = np.vdot(noise_a.ravel(), noise_c.ravel()) / np.sqrt(np.vdot(noise_a, noise_a) * np.vdot(noise_c, noise_c))
    assert abs(rho) < 5 / math.sqrt(n)
    # both noisy runs are at the closed-form SNR
    assert a.metrics["CDC"].snr_db == pytest.approx(channel.ase_only_snr_db(cfg), abs=0.3)
    assert c.metrics["CDC"].snr_db == pytest.approx(channel.ase_only_snr_db(cfg), abs=0.3)


def test_symbols_are_iid_uniform():
    cfg = channel.TransmitterConfig(modulation="16QAM", n_symbols=16384, samples_per_symbol=2, seed=3)
    tx = transmit(cfg)
    idx = tx.symbol_indices
    n = idx.shape[-1]
    # uniform over the 16 points (chi-square goodness of fit)
    counts = np.bincount(idx.ravel(), minlength=16)
    assert stats.chisquare(counts).pvalue > 1e-4
    # no periodicity / correlation at any lag, circularly: |r(k)| ~ 1/sqrt(n) for k != 0
    for pol in range(2):
        s = tx.symbols[pol] - tx.symbols[pol].mean()
        spec = np.fft.fft(s)
        r = np.fft.ifft(np.abs(spec) ** 2) / np.sum(np.abs(s) ** 2)
        assert r[0].real == pytest.approx(1.0)
        assert np.max(np.abs(r[1:])) < 6 / math.sqrt(n)
    # x and y independent
    rho = np.vdot(tx.symbols[0], tx.symbols[1]) / n
    assert abs(rho) < 5 / math.sqrt(n)
    # the same seed repeats, another does not
    assert np.array_equal(transmit(cfg).field, tx.field)
    other = transmit(channel.TransmitterConfig(modulation="16QAM", n_symbols=16384, samples_per_symbol=2, seed=4))
    assert np.mean(other.symbol_indices == idx) < 0.1


# --- 10. storage and cache --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def transmission():
    cfg = small_config(transmitter={"launch_power_dbm": 4.0}, link={"noiseless": False, "n_spans": 2},
                       receiver={"dbp_steps_per_span": [1, 2]})
    return channel.simulate(cfg)


def assert_same_transmission(a, b):
    assert a.config == b.config
    for name in ("tx_indices", "rx_cdc", "rx_field"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and np.array_equal(x, y)
    assert a.rx_dbp.keys() == b.rx_dbp.keys()
    for k in a.rx_dbp:
        assert np.array_equal(a.rx_dbp[k], b.rx_dbp[k])
    assert a.dbp_xi == b.dbp_xi and a.metrics == b.metrics
    assert a.info == b.info


def test_save_load_round_trip_is_exact(transmission, tmp_path):
    path = transmission.save(tmp_path / "sub" / "run.npz")
    loaded = channel.Transmission.load(path)
    assert_same_transmission(transmission, loaded)
    assert loaded.metrics["CDC"].q_db_ci == transmission.metrics["CDC"].q_db_ci
    assert not list(path.parent.glob("*.tmp"))  # no temporary file left behind


def test_truncated_file_raises(transmission, tmp_path):
    path = transmission.save(tmp_path / "run.npz")
    data = path.read_bytes()
    for keep in (len(data) - 1, len(data) // 2, 100, 0):
        path.write_bytes(data[:keep])
        with pytest.raises(CorruptFileError):
            channel.Transmission.load(path)


def test_flipped_byte_raises(transmission, tmp_path):
    path = transmission.save(tmp_path / "run.npz")
    data = path.read_bytes()
    # np.savez stores arrays uncompressed: locate bytes of the arrays' payloads and flip one in each
    for array in (transmission.rx_field, transmission.rx_cdc, transmission.tx_indices):
        raw = np.ascontiguousarray(array).tobytes()
        pos = data.find(raw[:64])
        assert pos > 0
        for offset in (0, len(raw) // 2, len(raw) - 1):
            corrupted = bytearray(data)
            corrupted[pos + offset] ^= 0x01
            path.write_bytes(bytes(corrupted))
            with pytest.raises(CorruptFileError):
                channel.Transmission.load(path)


def test_checksum_detects_altered_array_in_valid_zip(tmp_path):
    """A file that is a valid .npz (zip CRCs correct) but whose arrays no longer match the stored checksum."""
    path = save_arrays(tmp_path / "a.npz", {"x": np.arange(10.0), "y": np.ones(3)})
    assert np.array_equal(load_arrays(path)["x"], np.arange(10.0))
    with np.load(path, allow_pickle=False) as d:
        arrays = {k: d[k] for k in d.files}
    arrays["x"] = arrays["x"].copy()
    arrays["x"][3] += 1e-9
    np.savez(path, **arrays)
    with pytest.raises(CorruptFileError, match="checksum"):
        load_arrays(path)
    # a file without checksum is not a file of this package
    np.savez(path, x=np.arange(3))
    with pytest.raises(CorruptFileError):
        load_arrays(path)
    path.write_text("not a zip file")
    with pytest.raises(CorruptFileError):
        load_arrays(path)


class _Payload:
    def __reduce__(self):
        return (exec, ("import os; os.environ['CHANNEL_TEST_PICKLE_RAN'] = '1'",))


def test_loading_never_unpickles(tmp_path, monkeypatch):
    os.environ.pop("CHANNEL_TEST_PICKLE_RAN", None)
    evil = np.empty(1, dtype=object)
    evil[0] = _Payload()  # unpickling it would run code that sets an environment variable
    path = tmp_path / "evil.npz"
    np.savez(path, x=evil, __checksum__=np.array("0" * 64))
    try:
        with pytest.raises(CorruptFileError):
            load_arrays(path)
        with pytest.raises(CorruptFileError):
            channel.Transmission.load(path)
        assert "CHANNEL_TEST_PICKLE_RAN" not in os.environ
    finally:
        os.environ.pop("CHANNEL_TEST_PICKLE_RAN", None)
    # and np.load is always called with allow_pickle=False
    calls = []
    real_load = np.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get("allow_pickle"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(np, "load", spy)
    save_arrays(tmp_path / "ok.npz", {"x": np.arange(3)})
    load_arrays(tmp_path / "ok.npz")
    assert calls == [False]


def test_cache_is_reused_without_recomputing(tmp_path, monkeypatch):
    cfg = small_config(link={"noiseless": False, "n_spans": 2}, receiver={"dbp_steps_per_span": [1]})
    first = channel.simulate(cfg, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.npz"))) == 1

    def boom(*args, **kwargs):
        raise AssertionError("propagate_link called although the result is cached")

    monkeypatch.setattr(channel.link, "propagate_link", boom)
    second = channel.simulate(cfg, cache_dir=tmp_path)
    assert_same_transmission(first, second)
    # another configuration is not served from the cache
    with pytest.raises(AssertionError, match="cached"):
        channel.simulate(cfg.with_launch_power(1.0), cache_dir=tmp_path)
    # a corrupted cache file is recomputed (with a warning), not returned
    path = next(tmp_path.glob("*.npz"))
    path.write_bytes(path.read_bytes()[:200])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(AssertionError, match="cached"):
            channel.simulate(cfg, cache_dir=tmp_path)


def test_cached_transmission_without_dbp_gets_dbp_without_a_new_forward_run(transmission, tmp_path, monkeypatch):
    cfg = transmission.config
    channel.simulate(cfg, cache_dir=tmp_path, dbp=False)

    def boom(*args, **kwargs):
        raise AssertionError("propagate_link called although the forward result is cached")

    monkeypatch.setattr(channel.link, "propagate_link", boom)
    with_dbp = channel.simulate(cfg, cache_dir=tmp_path, dbp=True)
    with_dbp.info = transmission.info  # wall time differs
    assert_same_transmission(transmission, with_dbp)  # as if DBP had been computed in the first run
    again = channel.simulate(cfg, cache_dir=tmp_path, dbp=True)  # now cached with DBP
    assert sorted(again.rx_dbp) == [1, 2]


# --- 13. WDM ------------------------------------------------------------------------------------------------

def test_single_channel_launch_power_is_exact():
    cfg = channel.TransmitterConfig(modulation="64QAM", n_symbols=2048, samples_per_symbol=4, launch_power_dbm=2.0)
    tx = transmit(cfg)
    power = np.mean(np.sum(np.abs(tx.field) ** 2, axis=0))
    assert power == pytest.approx(cfg.launch_power_w / 2 * np.sum(np.mean(np.abs(tx.symbols) ** 2, axis=-1)),
                                  rel=1e-12)
    # matched filter at the symbol instants gives sqrt(P/2) a_k (Nyquist: no inter-symbol interference)
    lk = small_config(transmitter={"samples_per_symbol": 4, "n_symbols": 2048, "modulation": "64QAM"})
    sampled = matched_filter_and_sample(tx.field, lk, 4)
    assert np.max(np.abs(sampled - math.sqrt(cfg.launch_power_w / 2) * tx.symbols)) < 1e-12


def test_wdm_launch_power_and_centre_channel_recovery():
    cfg = small_config(transmitter={"n_channels": 3, "channel_spacing_ghz": 50.0, "samples_per_symbol": 6,
                                    "n_symbols": 2048, "launch_power_dbm": 0.0},
                       fiber={"gamma_per_w_km": 0.0}, propagation={"step_mode": "fixed", "steps_per_span": 1})
    tx = transmit(cfg.transmitter)
    p = cfg.transmitter.launch_power_w
    total = np.mean(np.sum(np.abs(tx.field) ** 2, axis=0))
    assert total == pytest.approx(3 * p, rel=0.03)  # 16-QAM, 6 x 2048 symbols: ~0.5 % standard deviation
    # each channel sits in its own band around (c - 1) x 50 GHz, carrying its launch power
    spectrum = np.abs(np.fft.fft(tx.field, axis=-1)) ** 2
    f = np.fft.fftfreq(tx.field.shape[-1], 1 / cfg.transmitter.sample_rate)
    half_band = 30e9 * 1.1 / 2
    n = tx.field.shape[-1]
    for centre in (-50e9, 0.0, 50e9):
        band = np.abs(f - centre) <= half_band + 1e6
        assert np.sum(spectrum[:, band]) / n**2 == pytest.approx(p, rel=0.03)
    assert np.sum(spectrum) / n**2 == pytest.approx(total, rel=1e-12)
    # shifting an outer channel down to baseband and matched filtering gives clean 16-QAM symbols on the grid
    # (so it sits exactly where it should), carrying data independent of the centre channel
    points, _ = channel.qam_constellation("16QAM")
    for sign in (-1, 1):
        bins = int(round(sign * 50e9 * n / cfg.transmitter.sample_rate))
        baseband = np.fft.ifft(np.roll(np.fft.fft(tx.field, axis=-1), -bins, axis=-1), axis=-1)
        sampled = matched_filter_and_sample(baseband, cfg, 6) / math.sqrt(p / 2)
        decided = channel.metrics.hard_decision(sampled, "16QAM")
        assert np.max(np.abs(sampled - points[decided])) < 1e-6
        assert np.mean(decided == tx.symbol_indices) < 2 / 16
    tr = channel.simulate(cfg)
    assert tr.metrics["CDC"].snr_db > 60.0 and tr.metrics["CDC"].bit_errors == 0


def test_sweep_as_one_batch_equals_one_at_a_time(tmp_path):
    cfg = small_config(transmitter={"n_symbols": 1024, "launch_power_dbm": 0.0}, link={"noiseless": False},
                       propagation={"step_mode": "fixed", "steps_per_span": 3},
                       receiver={"dbp_steps_per_span": [1], "dbp_xi": 1.0})
    powers = [-2.0, 2.0, 6.0]
    single = channel.sweep_launch_power(cfg, powers)
    batched = channel.sweep_launch_power(cfg, powers, cache_dir=tmp_path, batch=True)
    for a, b in zip(single, batched):
        assert b.config == a.config
        assert np.array_equal(a.tx_indices, b.tx_indices)
        assert np.max(np.abs(a.rx_cdc - b.rx_cdc)) < 1e-9
        assert b.metrics["DBP-1"].snr_db == pytest.approx(a.metrics["DBP-1"].snr_db, abs=1e-6)
    assert batched[0].metrics["CDC"].snr_db > batched[2].metrics["CDC"].snr_db + 1  # 6 dBm: nonlinear
    again = channel.sweep_launch_power(cfg, powers, cache_dir=tmp_path, batch=True)  # all cached now
    assert [t.metrics["CDC"].snr_db for t in again] == [t.metrics["CDC"].snr_db for t in batched]
