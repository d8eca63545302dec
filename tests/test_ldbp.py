"""Learned DBP (eqnn.models.ldbp): DBP initialization, dispersion compensation, cost against the counting reference
before and after pruning, training (lower test MSE, reproducible), eqnn train end to end, config errors.

Tiny links throughout (2 x 40 km, a few thousand symbols).
"""

import dataclasses
import json

import numpy as np
import pytest
from tiny_configs import TINY_TRAINING, tiny_link

import channel
from channel import ConfigError
from channel.dbp import DigitalBackPropagation
from channel.metrics import effective_snr_db
from channel.receiver import normalize
from eqnn.complexity import count_multiplications_reference, model_complexity
from eqnn.data import DataConfig
from eqnn.data_field import field_features, field_windows, make_field_blocks, predict_field
from eqnn.models import LDBPConfig, build_model, model_config_from_dict, model_config_to_dict
from eqnn.models.ldbp import prepare
from eqnn.training import TrainingConfig, load_equalizer, run_training, train_model
from eqnn.training.config import load_train_config

ALL_SYMBOLS = DataConfig(taps=0, guard_symbols=0, both_polarizations=True)


def _link(n_symbols=2048, power=2.0, steps=(1,), **receiver):
    return tiny_link().replace(transmitter={"n_symbols": n_symbols, "launch_power_dbm": power},
                               receiver={"dbp_steps_per_span": list(steps), **receiver})


@pytest.fixture(scope="module")
def tiny():
    return channel.simulate(_link(), progress=False)


def _rms_relative(a, b):
    return float(np.sqrt(np.mean(np.abs(a - b) ** 2) / np.mean(np.abs(b) ** 2)))


@pytest.mark.parametrize("k, position", [(1, 0.5), (2, 0.3)])
def test_untrained_ldbp_is_dbp(tiny, k, position):
    """With long filters the DBP-initialized model reproduces DBP's symbols (same k, xi, position) to 0.3 % rms."""
    cfg = prepare(LDBPConfig(steps_per_span=k, taps=41, output_taps=81, xi=1.0, nonlinear_position=position), tiny)
    assert cfg.link.xi == 1.0 and cfg.link.nonlinear_position == position and cfg.n_steps() == 2 * k
    model = build_model(cfg, (64, 4), 4)
    y, centres = predict_field(model, cfg, tiny, ALL_SYMBOLS)
    assert np.array_equal(centres, np.arange(2048))
    dbp = DigitalBackPropagation.from_link(tiny.config)
    ref = dbp.symbols(tiny.rx_field, k, 1.0, tiny.tx_symbols, nonlinear_position=position)
    assert _rms_relative(normalize(y, tiny.tx_symbols), ref) < 3e-3
    # the output filter carries the receiver's gain: the symbols come out on the constellation's scale
    assert _rms_relative(y, tiny.tx_symbols) == pytest.approx(_rms_relative(ref, tiny.tx_symbols), rel=0.05)


def test_ldbp_without_nonlinearity_compensates_the_dispersion():
    """xi = 0 on a noiseless linear-regime link of 4 x 50 km at 30 GBd: default filters (15 taps per span) give an
    SNR above 25 dB (CDC: exact)."""
    link = channel.reference_config().replace(
        transmitter={"modulation": "16QAM", "n_symbols": 2048, "launch_power_dbm": -20.0},
        link={"n_spans": 4, "span_length_km": 50.0, "noiseless": True},
        propagation={"step_mode": "fixed", "steps_per_span": 2}, receiver={"dbp_steps_per_span": [1]})
    tr = channel.simulate(link, progress=False, dbp=False)
    cfg = prepare(LDBPConfig(xi=0.0), tr)
    y, centres = predict_field(build_model(cfg, (64, 4), 4), cfg, tr, ALL_SYMBOLS)
    snr = effective_snr_db(normalize(y, tr.tx_symbols), tr.tx_symbols)
    assert snr > 25.0
    assert effective_snr_db(tr.rx_cdc, tr.tx_symbols) > 60  # the link itself is linear and noiseless


def _small_model(tiny, both=True):
    cfg = prepare(LDBPConfig(taps=5, output_taps=7, power_taps=3, xi=1.0, inference_block=6, filter_domain="time"),
                  tiny)
    return cfg, build_model(cfg, (cfg.input_samples(6), 4), 4 if both else 2)


def _window(tiny, cfg):
    return field_windows(field_features(tiny), np.array([100]), cfg.sps, cfg.reach, cfg.inference_block)[0]


def _check_against_reference(model, cfg, window):
    c = model_complexity(model, time_steps=window.shape[0], symbols_per_window=2 * cfg.inference_block)
    ref = count_multiplications_reference(model, window)
    assert c.multiplications_per_window == ref.multiplications
    assert c.additions_per_window == ref.additions
    out = np.asarray(model(window[None]))[0]  # float32 against float64
    np.testing.assert_allclose(ref.output, out, rtol=0, atol=3e-4 * np.max(np.abs(ref.output)))
    return c


def test_cost_equals_the_counting_reference_before_and_after_pruning(tiny):
    cfg, model = _small_model(tiny)
    window = _window(tiny, cfg)
    rng = np.random.default_rng(0)
    for layer in model.layers:  # generic taps (no two equal): the formula
        if layer.weights:
            layer.set_weights([rng.normal(size=w.shape).astype(np.float32) for w in layer.get_weights()])
    c = _check_against_reference(model, cfg, window)
    # per layer: FIR 8 N n_out (4 real products per tap, 2 polarizations); nonlinear step 4 T + Q n_out + 8 n_out;
    # output 8 N_out n_out (stride 2)
    lengths = {}
    t = window.shape[0]
    for layer in model.layers[1:]:
        if layer.name.startswith("fir"):
            lengths[layer.name] = (t, t - 4)
        elif layer.name.startswith("nonlinear"):
            lengths[layer.name] = (t, t - 2)
        elif layer.name == "output":
            lengths[layer.name] = (t, (t - 7) // 2 + 1)
        t = lengths[layer.name][1]
    expected = sum(8 * 5 * o if n.startswith("fir") else (4 * i + 3 * o + 8 * o if n.startswith("nonlinear")
                                                          else 8 * 7 * o) for n, (i, o) in lengths.items())
    assert c.multiplications_per_window == expected
    assert lengths["output"][1] == cfg.inference_block == 6
    # pruning: zero taps are free; zero phase constants make a step free
    rmps_before = c.rmps
    fir = model.get_layer("fir_1").get_weights()[0]
    fir[[0, 4], :] = 0.0
    fir[2, 1] = 0.0
    model.get_layer("fir_1").set_weights([fir])
    scale, g = model.get_layer("nonlinear_2").get_weights()
    model.get_layer("nonlinear_2").set_weights([np.float32(0.0), g])
    out = model.get_layer("output").get_weights()[0]
    out[:2] = 0.0
    model.get_layer("output").set_weights([out])
    pruned = _check_against_reference(model, cfg, window)
    assert pruned.rmps < rmps_before
    # shared (clustered) values are multiplied once per input sample
    fir = model.get_layer("fir_2").get_weights()[0]
    fir[:] = np.float32(0.5)
    fir[1, 1] = np.float32(-0.5)
    model.get_layer("fir_2").set_weights([fir])
    shared = _check_against_reference(model, cfg, window)
    layer = next(item for item in shared.layers if item.name == "fir_2")
    assert layer.multiplications_per_window == 4 * lengths["fir_2"][0]  # one magnitude, 2 pols x (Re, Im)


def test_frequency_domain_filters_give_the_same_output_at_the_counted_cost(tiny):
    """Overlap-save filters (filter_domain = "frequency") compute what the time-domain ones do (same weights); their
    cost (2 FFTs and F spectral products per block of F samples, per polarization) equals the counting reference's,
    and does not change when taps are zeroed."""
    cfg = prepare(LDBPConfig(taps=9, output_taps=7, power_taps=3, xi=1.0, inference_block=6), tiny)
    window = _window(tiny, cfg)
    models = {domain: build_model(dataclasses.replace(cfg, filter_domain=domain), (window.shape[0], 4), 4)
              for domain in ("time", "frequency", "auto")}
    assert [models["frequency"].get_layer(n).fft_size for n in ("fir_1", "output")] == [32, 32]
    assert [models["auto"].get_layer(n).fft_size for n in ("fir_1", "output")] == [32, 0]  # 9 taps; 7 taps, stride 2
    outputs = {d: np.asarray(m(window[None]))[0] for d, m in models.items()}
    scale = np.max(np.abs(outputs["time"]))
    for domain in ("frequency", "auto"):
        np.testing.assert_allclose(outputs[domain], outputs["time"], rtol=0, atol=1e-5 * scale)
    c = _check_against_reference(models["frequency"], cfg, window)
    layer = next(item for item in c.layers if item.name == "fir_1")
    blocks = -(-(window.shape[0] - 9 + 1) // (32 - 9 + 1))
    assert layer.multiplications_per_window == 2 * blocks * 4 * 32 * (5 + 1)
    auto = _check_against_reference(models["auto"], cfg, window)
    time = model_complexity(models["time"], time_steps=window.shape[0], symbols_per_window=2 * cfg.inference_block)
    per_layer = {d: {item.name: item.multiplications_per_window for item in r.layers}
                 for d, r in (("auto", auto), ("time", time), ("frequency", c))}
    assert per_layer["auto"]["fir_2"] == per_layer["frequency"]["fir_2"] != per_layer["time"]["fir_2"]
    assert per_layer["auto"]["output"] == per_layer["time"]["output"] != per_layer["frequency"]["output"]
    fir = models["frequency"].get_layer("fir_1").get_weights()[0]
    fir[[0, 8]] = 0.0
    models["frequency"].get_layer("fir_1").set_weights([fir])
    assert _check_against_reference(models["frequency"], cfg, window).rmps == c.rmps


def test_trimmed_filters_choose_their_domain_again(tiny):
    """Removing outermost taps (ldbp_edges) rebuilds each filter in the domain that is cheapest for its new length:
    9 taps in the frequency domain, 7 in the time domain."""
    from eqnn.compression.pruning.ldbp_taps import trim_edges

    cfg = prepare(LDBPConfig(taps=9, output_taps=7, power_taps=3, xi=1.0, inference_block=6), tiny)
    model = build_model(cfg, (cfg.input_samples(6), 4), 4)
    trimmed = trim_edges(model, {"fir_1": 1})
    assert (trimmed.get_layer("fir_1").taps, trimmed.get_layer("fir_1").fft_size) == (7, 0)
    assert (trimmed.get_layer("fir_2").taps, trimmed.get_layer("fir_2").fft_size) == (9, 32)
    np.testing.assert_array_equal(trimmed.get_layer("fir_1").get_weights()[0],
                                  model.get_layer("fir_1").get_weights()[0][1:8])


def test_dbp_initialized_taps_are_symmetric_and_share_products(tiny):
    cfg, model = _small_model(tiny)
    window = _window(tiny, cfg)
    taps = model.get_layer("fir_1").get_weights()[0]
    assert np.array_equal(taps, taps[::-1])
    c = _check_against_reference(model, cfg, window)
    layer = next(item for item in c.layers if item.name == "fir_2")
    n_in = window.shape[0] - 4 - 2
    assert layer.multiplications_per_window < 8 * 5 * (n_in - 4)


def _mse(model, cfg, tr, data):
    y, centres = predict_field(model, cfg, tr, data)
    return float(np.mean(np.abs(y - tr.tx_symbols[list(data.polarizations)][:, centres]) ** 2))


def test_training_lowers_the_test_mse_and_is_reproducible():
    train_tr = channel.simulate(_link(4096, power=6.0).with_seed(11), progress=False, dbp=False)
    test_tr = channel.simulate(_link(4096, power=6.0).with_seed(12), progress=False, dbp=False)
    data = DataConfig(taps=0, guard_symbols=8)
    cfg = prepare(LDBPConfig(taps=9, output_taps=21, xi=0.5, block_length=64), [train_tr])
    train = make_field_blocks([train_tr], data, cfg)
    assert train.x.shape == (63, cfg.input_samples(64), 4) and train.y.shape == (63, 64, 2)
    before = _mse(build_model(cfg, train.input_shape, 2), cfg, test_tr, data)
    training = TrainingConfig(epochs=6, batch_size=8, learning_rate=3e-3, seed=3, patience=6)
    eqs = [train_model(cfg, train, training, data, progress=False) for _ in range(2)]
    after = _mse(eqs[0].model, cfg, test_tr, data)
    assert after < 0.8 * before
    for a, b in zip(eqs[0].model.get_weights(), eqs[1].model.get_weights()):
        assert np.array_equal(a, b)


LDBP_MODEL = """
[[models]]
type = "ldbp"
name = "LDBP"
taps = 15
output_taps = 41
xi = 1.0
block_length = 64
inference_block = 256
"""


def test_eqnn_train_with_an_ldbp_model(tmp_path):
    path = tmp_path / "study.toml"
    path.write_text('name = "tiny"\npowers_dbm = [4.0]\ndbp = true\n' + TINY_TRAINING + LDBP_MODEL)
    out, cache = tmp_path / "out", tmp_path / "cache"
    result = run_training(path, out, cache_dir=cache, progress=False)
    rows = {r["method"]: r for r in result["rows"]}
    assert set(rows) == {"MLP", "LDBP", "CDC", "DBP-1"}
    assert rows["LDBP"]["n_symbols"] == rows["MLP"]["n_symbols"] == 1024 - 2 * (2 + 4)
    eq = load_equalizer(out / "models" / "LDBP@+4p00dBm")
    assert eq.model_config.link is not None and eq.model_config.link.xi == 1.0
    assert rows["LDBP"]["rmps"] == pytest.approx(eq.complexity().rmps)
    # one inference block of 256 symbols per 2 x 256 recovered symbols: at most 2 steps x (8 x 15 + 13) + 4 x 41
    # and the block edges; the DBP taps are symmetric (a product serves two taps): about half the filters' part
    assert 2 * (4 * 15 + 13) + 2 * 41 < eq.complexity().rmps < 2 * (8 * 15 + 13) + 4 * 41 + 60
    cfg = load_train_config(path)
    test_tr = channel.simulate(cfg.test_link(4.0), cache_dir=cache, progress=False)
    from eqnn.training import evaluate
    again = evaluate(eq, test_tr, references=False).metrics["LDBP"]
    assert again.snr_db == pytest.approx(rows["LDBP"]["snr_db"], abs=1e-9)
    assert rows["LDBP"]["snr_db"] > rows["CDC"]["snr_db"]
    saved = json.loads((out / "models" / "LDBP@+4p00dBm" / "equalizer.json").read_text())
    assert saved["model"]["type"] == "ldbp" and saved["model"]["link"]["n_spans"] == 2


def test_ldbp_config_round_trips_through_its_table(tiny):
    cfg = prepare(LDBPConfig(taps=7, output_taps=9, xi=0.8), tiny)
    again = model_config_from_dict(json.loads(json.dumps(model_config_to_dict(cfg))))
    assert again == cfg and isinstance(again.link, type(cfg.link))
    assert prepare(again, tiny) is again  # resolved once


@pytest.mark.parametrize("spec, match", [
    ({"taps": 14}, "models.ldbp.taps = 14: allowed odd integers"),
    ({"taps": 0}, "models.ldbp.taps = 0"),
    ({"output_taps": 2}, "models.ldbp.output_taps = 2"),
    ({"power_taps": 4}, "models.ldbp.power_taps = 4"),
    ({"steps_per_span": 0}, "models.ldbp.steps_per_span = 0"),
    ({"xi": 2.0}, "models.ldbp.xi = 2.0"),
    ({"xi": "best"}, "models.ldbp.xi = 'best'"),
    ({"nonlinear_position": 1.5}, "models.ldbp.nonlinear_position = 1.5"),
    ({"fit_bandwidth": 0.0}, "models.ldbp.fit_bandwidth = 0.0"),
    ({"block_length": 0}, "models.ldbp.block_length = 0"),
    ({"filter_domain": "fourier"}, "models.ldbp.filter_domain = 'fourier'"),
    ({"link": {"spans": 3}}, "models.ldbp.link: unknown key"),
])
def test_bad_ldbp_settings_name_the_key(spec, match):
    with pytest.raises(ConfigError, match=match):
        model_config_from_dict({"type": "ldbp", **spec})


def test_bad_ldbp_key_in_a_training_toml_fails_before_any_work(tmp_path):
    path = tmp_path / "study.toml"
    path.write_text('name = "tiny"\npowers_dbm = [4.0]\n' + TINY_TRAINING + LDBP_MODEL.replace("taps = 15", "taps = 8"))
    with pytest.raises(ConfigError, match="models.ldbp.taps = 8"):
        run_training(path, tmp_path / "out", cache_dir=tmp_path / "cache", progress=False)
    assert not (tmp_path / "cache").exists()


def _cascade_peak_gain(config):
    """Product over the steps of each initial step filter's peak gain |H(w)|."""
    from eqnn.models import ldbp

    weights = ldbp.initial_weights(config)
    gain = 1.0
    for i in range(1, config.n_steps() + 1):
        k = weights[f"fir_{i}"][0].astype(np.float64)
        gain *= float(np.max(np.abs(np.fft.fft(k[:, 0] + 1j * k[:, 1], 4096))))
    return gain


def test_short_filters_start_as_a_bounded_cascade(monkeypatch):
    """13 taps per 50-km span of the reference link (20 spans): the least-squares fit at the default stop-band
    weight peaks at about 5.5 out of band, 10^14 over the cascade (the float32 model overflowed to NaN in training);
    the stop-band weight is raised until the cascade stays within MAX_CASCADE_GAIN. Long filters keep the fit."""
    from eqnn.models import ldbp

    alpha = 0.2 / (10 * np.log10(np.e)) / 1e3
    beta2 = -17e-6 * 1550e-9**2 / (2 * np.pi * 299792458.0)
    link = ldbp.LDBPLink(n_spans=20, span_length_m=50e3, alpha=alpha, beta2=beta2, beta3=0.0, gamma=1.3e-3,
                         gain=10.0, symbol_rate=30e9, samples_per_symbol=2, rolloff=0.1, xi=0.93,
                         nonlinear_position=0.2)
    short = LDBPConfig(taps=13, output_taps=41, link=link)
    assert _cascade_peak_gain(short) <= ldbp.MAX_CASCADE_GAIN
    long = LDBPConfig(taps=41, output_taps=41, link=link)
    guarded_long = ldbp.initial_weights(long)
    monkeypatch.setattr(ldbp, "MAX_CASCADE_GAIN", np.inf)  # the plain fit at the configured weight
    assert _cascade_peak_gain(short) > 1e6
    plain_long = ldbp.initial_weights(long)
    np.testing.assert_array_equal(guarded_long["fir_3"][0], plain_long["fir_3"][0])
