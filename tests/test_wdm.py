"""WDM end to end: channel under test, channel filter, inter-channel nonlinearity, auto oversampling.

Independent references: on a linear noiseless link (gamma = 0) the received channel after CDC must be the
channel's own RRC-shaped symbols at the receiver's oversampling, built here directly from its symbol stream
(no neighbour leaks in, no walk-off is left); the centre channel carries the same data as the single-channel
link of the same seed, so the two receptions must agree to rounding. With nonlinearity, cross-phase
modulation and four-wave mixing from the neighbours lower the centre channel's SNR at a fixed power per
channel, more with more neighbours, and single-channel DBP cannot undo them.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import scipy.fft as sfft
from tiny_configs import TINY_LINK_TAIL

import channel
from channel import ConfigError
from channel.config import auto_samples_per_symbol
from channel.receiver import cd_compensate, resample_spectrum, select_channel
from channel.transmitter import (
    channel_frequency,
    channel_offset_bins,
    channel_symbol_indices,
    qam_constellation,
    rrc_spectrum,
    shape_symbols,
    transmit,
)


def wdm_config(n_channels=5, spacing=50.0, **sections):
    """A small linear noiseless WDM link: 16QAM, 1024 symbols, 3 x 50 km, gamma = 0, auto oversampling."""
    base = {"transmitter": {"n_symbols": 1024, "samples_per_symbol": "auto", "modulation": "16QAM",
                            "n_channels": n_channels, "channel_spacing_ghz": spacing, "launch_power_dbm": 1.0},
            "fiber": {"gamma_per_w_km": 0.0},
            "link": {"n_spans": 3, "noiseless": True},
            "propagation": {"step_mode": "fixed", "steps_per_span": 1},
            "receiver": {"dbp_steps_per_span": [], "dbp_xi": 1.0, "dbp_samples_per_symbol": 2}}
    for key, values in sections.items():
        base.setdefault(key, {}).update(values)
    return channel.reference_config().replace(**base)


def channel_alone(config, c, samples_per_symbol=2):
    """Channel ``c`` alone at baseband, RRC-shaped at ``samples_per_symbol``, launch scale: (2, n) sqrt(W)."""
    tx = config.transmitter
    points = qam_constellation(tx.modulation)[0]
    n = tx.n_symbols * samples_per_symbol
    spectrum = rrc_spectrum(n, samples_per_symbol * tx.symbol_rate, tx.symbol_rate, tx.rolloff)
    shaped = shape_symbols(points[channel_symbol_indices(tx, c)], samples_per_symbol, spectrum)
    return sfft.ifft(shaped, axis=-1) * np.sqrt(tx.launch_power_w / 2)


# --- linear link: every channel is recovered exactly ----------------------------------------------------------

@pytest.mark.parametrize("slope", [0.0, 0.06])
def test_linear_wdm_every_channel_recovered_exactly(slope):
    """gamma = 0, 5 x 50 GHz: each channel_index gives that channel's symbols back exactly (with a dispersion
    slope too: CDC then uses the channel's local beta2), and the channels carry independent data."""
    indices = []
    for c in range(5):
        cfg = wdm_config(receiver={"channel_index": c}, fiber={"dispersion_slope_ps_nm2_km": slope})
        assert cfg.received_channel == c and cfg.transmitter.samples_per_symbol == 10
        tr = channel.simulate(cfg)
        m = tr.metrics["CDC"]
        assert m.snr_db > 60.0 and m.bit_errors == 0
        # the symbols of the Transmission are those of the received channel, and recovered exactly
        assert np.array_equal(tr.tx_indices, channel_symbol_indices(cfg.transmitter, c))
        assert np.max(np.abs(tr.rx_cdc - tr.tx_symbols)) < 1e-6
        # the received field after CDC is the channel alone, in its own frame (no walk-off, no phase)
        reference = channel_alone(cfg, c)
        assert np.max(np.abs(cd_compensate(tr.rx_field, cfg, 2) - reference)) < 1e-9 * np.max(np.abs(reference))
        indices.append(tr.tx_indices)
    # independent data: any two channels agree on about 1/16 of the 16QAM symbols (2 x 1024 per channel)
    for a in range(5):
        for b in range(a + 1, 5):
            assert np.mean(indices[a] == indices[b]) < 0.1
    # the launched comb: channel c sits channel_offset_bins(c) bins off centre, ~ (c - 2) x 50 GHz
    tx = cfg.transmitter
    for c in range(5):
        assert channel_frequency(tx, c) == pytest.approx((c - 2) * 50e9, abs=tx.symbol_rate / tx.n_symbols)
    assert [channel_offset_bins(tx, c) for c in range(5)] == [-3413, -1707, 0, 1707, 3413]


def test_centre_channel_data_does_not_depend_on_channel_count():
    """The centre channel draws from the single-channel stream; neighbours from their own streams."""
    single = wdm_config(n_channels=1).transmitter
    for n in (3, 5, 7):
        tx = wdm_config(n_channels=n).transmitter
        sent = transmit(tx)
        assert sent.channel == (n - 1) // 2
        assert np.array_equal(sent.symbol_indices, channel_symbol_indices(single, 0))
        # the channel just above the centre has the same data whatever n (stream keyed by the offset)
        assert np.array_equal(channel_symbol_indices(tx, (n - 1) // 2 + 1),
                              channel_symbol_indices(wdm_config(n_channels=3).transmitter, 2))
    with pytest.raises(ValueError, match="channel = 5"):
        transmit(wdm_config(n_channels=5).transmitter, channel=5)


# --- the channel filter ----------------------------------------------------------------------------------------

def test_channel_filter_rejects_neighbours_at_narrow_spacing():
    """34 GHz spacing for a 33 GHz wide signal: the neighbours' bands start 0.5 GHz outside the channel slot.
    The DBP/CDC input of the centre channel has no power beyond the signal band, and equals the reception of
    the single-channel link with the same data to rounding, for the centre and an outer channel alike."""
    cfg = wdm_config(spacing=34.0)
    tr = channel.simulate(cfg)
    assert tr.metrics["CDC"].snr_db > 60.0 and tr.metrics["CDC"].bit_errors == 0
    # no power outside the channel's band (1 + rolloff) Rs / 2 = 16.5 GHz (the signal is band-limited)
    n = tr.rx_field.shape[-1]
    f = np.fft.fftfreq(n, 1 / (2 * cfg.transmitter.symbol_rate))
    spectrum = np.abs(sfft.fft(tr.rx_field, axis=-1)) ** 2
    outside = np.abs(f) > 16.5e9 + 1e6
    assert np.sum(spectrum[:, outside]) < 1e-20 * np.sum(spectrum)
    # the same data on a single-channel link: the same received field (at the same sample grid)
    single = channel.simulate(wdm_config(n_channels=1))
    assert np.array_equal(single.tx_indices, tr.tx_indices)
    assert np.max(np.abs(tr.rx_field - single.rx_field)) < 1e-9 * np.max(np.abs(single.rx_field))
    # an outer channel (index 0, at -68 GHz) equally clean
    outer = wdm_config(spacing=34.0, receiver={"channel_index": 0})
    tr0 = channel.simulate(outer)
    reference = channel_alone(outer, 0)
    assert np.max(np.abs(cd_compensate(tr0.rx_field, outer, 2) - reference)) < 1e-9 * np.max(np.abs(reference))
    # control: a plain low-pass to 2 samples per symbol (+-30 GHz) lets the neighbours in (18.5 GHz and up)
    rx_full = channel.propagate_link(cfg, transmit(cfg.transmitter).field)
    plain = sfft.ifft(resample_spectrum(sfft.fft(rx_full, axis=-1), n), axis=-1)
    assert np.sum(np.abs(sfft.fft(plain, axis=-1)[:, outside]) ** 2) > 0.05 * np.sum(spectrum)
    assert np.allclose(select_channel(rx_full, cfg), tr.rx_field, rtol=0, atol=1e-12)


# --- nonlinear link: inter-channel NLI ---------------------------------------------------------------------------

def nli_snr(n_channels):
    """Centre channel of n x 50 GHz, 4 dBm per channel, 5 x 80 km, noiseless: SNR (dB) after CDC and DBP-4."""
    cfg = wdm_config(n_channels=n_channels,
                     transmitter={"n_symbols": 2048, "launch_power_dbm": 4.0},
                     fiber={"gamma_per_w_km": 1.3},
                     link={"n_spans": 5, "span_length_km": 80.0},
                     propagation={"step_mode": "adaptive", "max_nonlinear_phase_rad": 2e-3, "max_step_km": 10.0},
                     receiver={"dbp_steps_per_span": [4], "dbp_xi": "optimize"})
    tr = channel.simulate(cfg)
    return tr.metrics["CDC"].snr_db, tr.metrics["DBP-4"].snr_db


def test_inter_channel_nli_lowers_centre_snr_and_is_not_undone_by_single_channel_dbp():
    """At a fixed power per channel, each pair of neighbours lowers the centre channel's SNR after CDC, and the
    drop grows with the channel count; single-channel DBP removes SPM (tens of dB on one channel) but not the
    neighbours' XPM/FWM, so its gain collapses with WDM and its SNR also falls with the channel count.
    The centre channel carries the same data in every run, so the differences are the neighbours alone."""
    snr = {n: nli_snr(n) for n in (1, 3, 5, 7)}
    cdc = {n: s[0] for n, s in snr.items()}
    dbp = {n: s[1] for n, s in snr.items()}
    print("SNR after CDC / DBP-4 by channel count:",
          {n: (round(cdc[n], 2), round(dbp[n], 2)) for n in snr})
    assert cdc[1] > cdc[3] > cdc[5] > cdc[7]
    drops = [cdc[1] - cdc[n] for n in (3, 5, 7)]
    assert 0.5 < drops[0] < drops[1] < drops[2]
    assert dbp[1] > dbp[3] > dbp[5] > dbp[7]
    gain = {n: dbp[n] - cdc[n] for n in snr}
    assert gain[1] > 15.0  # SPM only: DBP undoes nearly all of it
    for n in (3, 5, 7):
        assert 0.0 < gain[n] < gain[1] / 3


# --- configuration ------------------------------------------------------------------------------------------------

def test_auto_samples_per_symbol_resolves_as_documented():
    # single channel: the default 4
    assert wdm_config(n_channels=1).transmitter.samples_per_symbol == 4
    # 30 GBd, roll-off 0.1, 50 GHz: smallest even sps with sps x 30 GHz >= 1.25 x ((n-1) 50 + 33) GHz
    for n, expected in ((3, 6), (5, 10), (7, 14), (9, 20)):
        tx = wdm_config(n_channels=n).transmitter
        assert tx.samples_per_symbol == expected
        assert auto_samples_per_symbol(n, 50.0, 30.0, 0.1) == expected
        assert tx.sample_rate >= 1.25 * ((n - 1) * 50e9 + 33e9) and tx.sample_rate >= n * 50e9
        assert (expected - 2) * 30e9 < 1.25 * ((n - 1) * 50e9 + 33e9)  # the smallest even one
    # a wide spacing for the signal: the WDM grid n x spacing dominates (3 x 100 GHz at 10 GBd -> 30)
    assert auto_samples_per_symbol(3, 100.0, 10.0, 0.1) == 30
    # resolved on construction: equal to, and the same digest as, the explicit integer
    auto, explicit = wdm_config(n_channels=5), wdm_config(n_channels=5, transmitter={"samples_per_symbol": 10})
    assert auto == explicit and auto.digest() == explicit.digest()
    # from TOML (through a study-style [scenario] with a base link file)
    cfg = channel.load_config(channel_root() / "experiments" / "wdm.toml")
    assert cfg.transmitter.samples_per_symbol == 10 and cfg.transmitter.n_channels == 5
    # a copy keeps the integer: changing n_channels alone is checked against it, "auto" again re-derives it
    with pytest.raises(ConfigError, match=r"transmitter.samples_per_symbol = 10.*allowed >= 12, or \"auto\""):
        cfg.replace(transmitter={"n_channels": 7})
    assert cfg.replace(transmitter={"n_channels": 7, "samples_per_symbol": "auto"}).transmitter.samples_per_symbol == 14


@pytest.mark.parametrize("value,expected", [
    ("automatic", ["transmitter.samples_per_symbol", "'automatic'", "[2, 64]", '"auto"']),
    (0, ["transmitter.samples_per_symbol", "[2, 64]", '"auto"']),
    (65, ["transmitter.samples_per_symbol", "[2, 64]"]),
    (2.5, ["transmitter.samples_per_symbol", "integer"]),
])
def test_bad_samples_per_symbol_names_the_key(value, expected):
    for make in (lambda: wdm_config(transmitter={"samples_per_symbol": value}),
                 lambda: channel.LinkConfig.from_dict({"transmitter": {"samples_per_symbol": value}})):
        with pytest.raises(ConfigError) as exc:
            make()
        for text in expected:
            assert text in str(exc.value), (text, str(exc.value))


def test_auto_samples_per_symbol_beyond_the_maximum():
    # 31 channels x 50 GHz at 30 GBd: 1.25 x 1533 GHz -> 64; 33 channels: 1.25 x 1633 GHz -> 70 > 64
    assert wdm_config(n_channels=31).transmitter.samples_per_symbol == 64
    with pytest.raises(ConfigError, match=r"transmitter.samples_per_symbol = 'auto' resolves to 70.*\[2, 64\]"):
        wdm_config(n_channels=33)


def test_channel_index_range_names_the_key():
    for bad in (5, 7):
        with pytest.raises(ConfigError, match=r"receiver.channel_index = \d is out of range for "
                                              r"transmitter.n_channels = 5: allowed integers in \[0, 4\]"):
            wdm_config(receiver={"channel_index": bad})
    for bad in (-1, 1.0, True, "centre"):
        with pytest.raises(ConfigError, match=r"receiver.channel_index = .*\[0, transmitter.n_channels - 1\]"):
            channel.LinkConfig.from_dict({"receiver": {"channel_index": bad}})
    with pytest.raises(ConfigError, match=r"receiver.channel_index = 1 .*\[0, 0\]"):
        channel.reference_config().replace(receiver={"channel_index": 1})
    # default: the centre channel; unset it stays out of the config dict (digests of older configs unchanged)
    cfg = wdm_config()
    assert cfg.received_channel == 2 and "channel_index" not in cfg.to_dict()["receiver"]
    picked = wdm_config(receiver={"channel_index": 2})
    assert picked.received_channel == 2 and picked.to_dict()["receiver"]["channel_index"] == 2
    assert channel.LinkConfig.from_dict(picked.to_dict()) == picked
    assert channel.LinkConfig.from_dict(cfg.to_dict()) == cfg


def test_transmission_of_another_channel_round_trips_through_the_cache(tmp_path):
    cfg = wdm_config(n_channels=3, receiver={"channel_index": 0})
    first = channel.simulate(cfg, cache_dir=tmp_path)
    again = channel.simulate(cfg, cache_dir=tmp_path)
    assert again.config == cfg and np.array_equal(again.tx_indices, first.tx_indices)
    # a different channel is a different cache entry
    other = channel.simulate(dataclasses.replace(cfg, receiver=dataclasses.replace(cfg.receiver, channel_index=1)),
                             cache_dir=tmp_path)
    assert not np.array_equal(other.tx_indices, first.tx_indices)
    assert len(list(tmp_path.glob("transmission-*.npz"))) == 2


# --- eqnn simulate on a study file ---------------------------------------------------------------------------------

def channel_root():
    from pathlib import Path
    return Path(__file__).resolve().parent.parent


STUDY = """
name = "tiny-wdm"
powers_dbm = [0.0]
[seeds]
train = 1
test = 2
[scenario]
base = "link.toml"
name = "tiny-wdm3"
[scenario.transmitter]
n_channels = 3
samples_per_symbol = "auto"
[data]
taps = 2
guard_symbols = 4
[[models]]
type = "mlp"
name = "MLP"
units = [4]
[compression]
n_calls = 2
n_initial_points = 2
[study]
dsp_powers_dbm = [0.0]
"""

LINK = """
name = "tiny"
[transmitter]
modulation = "16QAM"
n_symbols = 512
""" + TINY_LINK_TAIL


def test_eqnn_simulate_accepts_a_study_file(tmp_path, capsys):
    from eqnn.cli import main

    (tmp_path / "link.toml").write_text(LINK)
    study = tmp_path / "study.toml"
    study.write_text(STUDY)
    link = channel.load_config(study)
    assert link.name == "tiny-wdm3" and link.transmitter.n_channels == 3
    assert link.transmitter.samples_per_symbol == 6 and link.link.n_spans == 2
    out = tmp_path / "out"
    assert main(["simulate", str(study), "--power", "-2,0", "--symbols", "256", "--no-cache", "--quiet",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "tiny-wdm3" in printed and "DBP-1" in printed
    assert (out / "results.json").is_file()
    # a scenario that includes itself is an error naming scenario.base, not a recursion
    loop = tmp_path / "loop.toml"
    loop.write_text('[scenario]\nbase = "loop.toml"\n')
    with pytest.raises(ConfigError, match="scenario.base"):
        channel.load_config(loop)
    assert main(["simulate", str(loop)]) == 2
