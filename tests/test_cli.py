"""`eqnn simulate`: outputs exist and agree, the cache is reused, bad input is rejected early."""

import csv
import json

import pytest
from tiny_configs import TINY_LINK_TAIL

import channel
import channel.link
from eqnn.cli import UsageError, main, parse_powers

SMALL_LINK = """
name = "small"
[transmitter]
modulation = "16QAM"
n_symbols = 512
samples_per_symbol = 4
seed = 3
""" + TINY_LINK_TAIL


@pytest.fixture()
def small_config(tmp_path):
    path = tmp_path / "small.toml"
    path.write_text(SMALL_LINK)
    return path


def test_parse_powers():
    assert parse_powers("-2:6:2") == [-2.0, 0.0, 2.0, 4.0, 6.0]
    assert parse_powers("0:1:0.5") == [0.0, 0.5, 1.0]
    assert parse_powers("1,3") == [1.0, 3.0]
    for bad in ("1:0:1", "0:2", "a:b:c", "0:2:-1"):
        with pytest.raises(UsageError, match="--power"):
            parse_powers(bad)


def test_simulate_writes_consistent_outputs_and_reuses_cache(small_config, tmp_path, monkeypatch, capsys):
    out, cache = tmp_path / "out", tmp_path / "cache"
    args = ["simulate", str(small_config), "--power", "-2:2:2", "--out", str(out), "--cache", str(cache), "--quiet"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "CDC" in printed and "DBP-1" in printed and "optimum" in printed

    data = json.loads((out / "results.json").read_text())
    assert data["powers_dbm"] == [-2.0, 0.0, 2.0]
    assert len(data["rows"]) == 3 * 2
    with open(out / "results.csv") as f:
        csv_rows = list(csv.DictReader(f))
    assert len(csv_rows) == len(data["rows"])
    for j, c in zip(data["rows"], csv_rows):
        assert c["method"] == j["method"]
        assert float(c["snr_db"]) == pytest.approx(j["snr_db"], rel=1e-12)
        assert float(c["launch_power_dbm"]) == j["launch_power_dbm"]
    # the optimum reported is the best of the rows of that method
    for method, best in data["optimum"].items():
        qs = [r["q_db"] if r["q_db"] is not None else r["q_db_from_snr"] for r in data["rows"] if r["method"] == method]
        assert best["q_db"] == pytest.approx(max(qs))
    assert (out / "q_vs_power.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the DSP cost next to each method, from eqnn.complexity on the same link
    from channel import load_config
    from eqnn.complexity import cdc_complexity, dbp_complexity

    link = load_config(small_config)
    expected_rmps = {"CDC": cdc_complexity(link, samples_per_symbol=2).rmps, "DBP-1": dbp_complexity(link, 1).rmps}
    for row in data["rows"]:
        assert row["rmps"] == pytest.approx(expected_rmps[row["method"]])
    assert 0 < data["optimum"]["CDC"]["rmps"] < data["optimum"]["DBP-1"]["rmps"]
    # DBP's settings beside its row: xi and the position of its nonlinear step, as the transmission used them
    for row in data["rows"]:
        if row["method"] == "CDC":
            assert row["dbp_xi"] is None and row["dbp_nonlinear_position"] is None
            continue
        tr = channel.simulate(load_config(small_config).replace(
            transmitter={"launch_power_dbm": row["launch_power_dbm"]}), cache_dir=cache, progress=False)
        assert row["dbp_xi"] == tr.dbp_xi[1] and row["dbp_nonlinear_position"] == tr.dbp_nonlinear_position[1]
        assert 0.0 <= row["dbp_nonlinear_position"] <= 1.0 and row["dbp_power_filter_bandwidth"] is None

    # second run: every power comes from the cache, no propagation at all
    def no_propagation(*a, **k):
        raise AssertionError("propagated although the result was cached")

    monkeypatch.setattr(channel.link, "propagate_link", no_propagation)
    assert main(args) == 0
    assert json.loads((out / "results.json").read_text())["rows"] == data["rows"]


def test_simulate_rejects_bad_input_before_work(small_config, tmp_path, monkeypatch, capsys):
    def no_propagation(*a, **k):
        raise AssertionError("started simulating despite bad input")

    monkeypatch.setattr(channel.link, "propagate_link", no_propagation)
    # a power out of range anywhere in the sweep is rejected before the first simulation
    assert main(["simulate", str(small_config), "--power", "0:40:20", "--no-cache", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "transmitter.launch_power_dbm" in err and "[-30, 30]" in err

    bad = tmp_path / "bad.toml"
    bad.write_text(SMALL_LINK.replace("n_spans = 2", "n_spans = 2\nspan_km = 3"))
    assert main(["simulate", str(bad), "--no-cache", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "span_km" in err and "span_length_km" in err

    assert main(["simulate", str(tmp_path / "missing.toml")]) == 2
    assert "does not exist" in capsys.readouterr().err
