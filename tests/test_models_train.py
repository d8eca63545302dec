"""eqnn.models and eqnn.train: builders, training, reproducibility, exact save/load, evaluation against
CDC/DBP on the same symbols, the training study and its TOML, clear errors. Tiny links and models."""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tf_keras as keras
from tiny_configs import TINY_TRAINING

import channel
from channel import ConfigError
from eqnn import models, train
from eqnn.complexity import cdc_complexity, dbp_complexity, model_complexity
from eqnn.data import DataConfig, fit_normalization, make_datasets, make_windows
from eqnn.models import (
    BiGRUConfig,
    BiLSTMConfig,
    CNNBiLSTMConfig,
    GRUConfig,
    LSTMConfig,
    MLPConfig,
    build_model,
    check_keras_model,
    model_config_from_dict,
    model_config_to_dict,
)
from eqnn.train import (
    Equalizer,
    TrainingConfig,
    TrainRunConfig,
    evaluate,
    load_equalizer,
    load_train_config,
    run_training,
    save_equalizer,
    train_model,
)
from eqnn.training import fitting

EXPERIMENTS = Path(__file__).resolve().parent.parent / "experiments"
TAPS = 3
DATA = DataConfig(taps=TAPS, guard_symbols=4)
PLAIN = DataConfig(taps=TAPS, guard_symbols=4, residual=False)  # targets: the symbols (learn the identity)
QUICK = TrainingConfig(epochs=1, batch_size=256, validation_split=0.1, seed=3)


def small_link(n_symbols=2048, noiseless_linear=False):
    link = channel.reference_config().replace(
        transmitter={"modulation": "16QAM", "n_symbols": n_symbols, "seed": 1, "launch_power_dbm": 2.0},
        link={"n_spans": 2, "span_length_km": 40.0}, propagation={"step_mode": "fixed", "steps_per_span": 4},
        receiver={"dbp_steps_per_span": [1], "dbp_xi": 1.0}, name="small")
    if noiseless_linear:
        link = link.replace(link={"noiseless": True}, fiber={"gamma_per_w_km": 0.0},
                            receiver={"dbp_steps_per_span": []})
    return link


@pytest.fixture(scope="module")
def noisy():
    link = small_link()
    tr, te = channel.simulate(link.with_seed(21), dbp=False), channel.simulate(link.with_seed(22), dbp=True)
    train_set, test_set = make_datasets(tr, te, DATA)
    return tr, te, train_set, test_set


@pytest.fixture(scope="module")
def linear():
    link = small_link(n_symbols=4096, noiseless_linear=True)
    tr, te = channel.simulate(link.with_seed(31)), channel.simulate(link.with_seed(32))
    return tr, te, *make_datasets(tr, te, PLAIN)


ALL_CONFIGS = [MLPConfig(units=(16, 8)), LSTMConfig(units=8), BiLSTMConfig(units=8, readout="final"),
               GRUConfig(units=8, readout="final"), BiGRUConfig(units=8),
               CNNBiLSTMConfig(filters=8, kernel_size=3, units=8)]
# every recurrent family with the other readout too
BUILD_CONFIGS = ALL_CONFIGS + [dataclasses.replace(c, readout={"flatten": "final", "final": "flatten"}[c.readout])
                               for c in ALL_CONFIGS[1:]]


def expected_parameters(config) -> int:
    """Dense: (in + 1) out; per direction LSTM 4 (units (in + units) + units), GRU 3 (units (in + units) + 2 units)
    (reset_after: an input and a recurrent bias); the output Dense reads T x features (flatten) or the features."""
    if config.type == "mlp":
        return (28 * 16 + 16) + (16 * 8 + 8) + (8 * 2 + 2)
    conv, n_in, steps = ((3 * 4 * 8 + 8), 8, 5) if config.type == "cnn_bilstm" else (0, 4, 7)
    gates, bias_rows = (4, 1) if config.cell == "lstm" else (3, 2)
    directions = 2 if config.bidirectional else 1
    u = config.units
    rnn = directions * gates * (u * (n_in + u) + bias_rows * u)
    features = directions * u * (steps if config.readout == "flatten" else 1)
    return conv + rnn + features * 2 + 2


def test_expected_parameters_by_hand():
    assert expected_parameters(LSTMConfig(units=8, readout="final")) == 4 * (8 * (4 + 8) + 8) + (8 * 2 + 2)
    assert expected_parameters(BiLSTMConfig(units=8)) == 2 * 4 * (8 * (4 + 8) + 8) + (7 * 16 * 2 + 2)
    assert expected_parameters(BiGRUConfig(units=8)) == 2 * 3 * (8 * (4 + 8) + 16) + (7 * 16 * 2 + 2)


@pytest.mark.parametrize("config", BUILD_CONFIGS, ids=lambda c: c.type + ("" if c.type == "mlp" else "-" + c.readout))
def test_builders_build_tf_keras_models(config):
    model = build_model(config, (2 * TAPS + 1, 4), 2)
    assert isinstance(model, keras.Model)
    assert model.input_shape == (None, 7, 4) and model.output_shape == (None, 2)
    assert model.get_layer("output").get_config()["activation"] == "linear"
    assert model.count_params() == models.count_parameters(model) == expected_parameters(config)
    assert model_config_from_dict(model_config_to_dict(config)) == config
    if config.type == "mlp":
        assert [layer.units for layer in model.layers if isinstance(layer, keras.layers.Dense)] == [16, 8, 2]
        assert build_model(model_config_to_dict(config), (7, 4), 4).output_shape == (None, 4)
    if config.type != "mlp":
        layer = model.get_layer(config.layer_name)
        rnn = layer.forward_layer if config.bidirectional else layer
        assert isinstance(layer, keras.layers.Bidirectional) == config.bidirectional
        assert type(rnn) is {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU}[config.cell]
        assert rnn.return_sequences == (config.readout == "flatten")
        assert [n for n in ("flatten",) if n in {lay.name for lay in model.layers}] == (
            ["flatten"] if config.readout == "flatten" else [])
        if config.cell == "gru":  # the cuDNN-compatible form
            assert rnn.reset_after and rnn.recurrent_dropout == 0 and not rnn.unroll and rnn.use_bias
    if config.type == "cnn_bilstm":
        assert model.get_layer("conv1d").output_shape == (None, 5, 8)


@pytest.mark.parametrize("data, match", [
    ({"type": "mlp", "units": []}, r"models.mlp.units = \(\): must be a list of 1 to 16"),
    ({"type": "mlp", "units": [16, 0]}, r"models.mlp.units\[\] = 0 is out of range"),
    ({"type": "mlp", "activation": "relux"}, r"models.mlp.activation = 'relux': allowed values are 'tanh'"),
    ({"type": "lstm", "units": 0}, r"models.lstm.units = 0 is out of range: allowed integers in \[1, 4096\]"),
    ({"type": "bilstm", "units": 8.5}, r"models.bilstm.units = 8.5: must be an integer"),
    ({"type": "cnn_bilstm", "kernel_size": 0}, r"models.cnn_bilstm.kernel_size = 0 is out of range"),
    ({"type": "transformer"},
     r"models.type = 'transformer': allowed values are 'mlp', 'lstm', 'bilstm', 'gru', 'bigru', 'cnn_bilstm'"),
    ({"type": "bigru", "readout": "last"}, r"models.bigru.readout = 'last': allowed values are 'flatten', 'final'"),
    ({"type": "cnn_bilstm", "readout": 1}, r"models.cnn_bilstm.readout = 1"),
    ({"type": "lstm", "unit": 8}, r"unknown key\(s\) \['unit'\] in \[models\] of type 'lstm'"),
    ({"type": "lstm", "name": "a/b"}, r"models.lstm.name = 'a/b'"),
])
def test_bad_model_configs(data, match):
    with pytest.raises(ConfigError, match=match):
        model_config_from_dict(data)


def test_kernel_longer_than_window_is_rejected():
    with pytest.raises(ConfigError, match=r"kernel_size = 9 exceeds the window length 7"):
        build_model(CNNBiLSTMConfig(filters=4, kernel_size=9, units=4), (7, 4), 2)


def test_non_tf_keras_model_gives_clear_error(noisy):
    class Sequential:  # what a Keras 3 model looks like to the check
        pass

    Sequential.__module__, Sequential.__qualname__ = "keras.src.models.sequential", "Sequential"
    with pytest.raises(TypeError, match=r"must be a tf_keras.Model, got keras.src.models.sequential.Sequential. "
                                        r"It looks like a Keras 3"):
        check_keras_model(Sequential())
    _, te, train_set, _ = noisy
    with pytest.raises(TypeError, match="must be a tf_keras.Model, got builtins.object"):
        evaluate(object(), te, DATA, train_set.normalization)
    with pytest.raises(TypeError, match="tf_keras.Model"):
        Equalizer(model="not a model", model_config=MLPConfig(), data_config=DATA,
                  normalization=train_set.normalization)
    with pytest.raises(TypeError, match="tf_keras.Model"):
        train.fit(object(), train_set, QUICK)


@pytest.fixture(scope="module")
def trained_rnns(noisy, tmp_path_factory):
    """Each recurrent builder trained once (1 epoch), saved and loaded back."""
    _, _, train_set, _ = noisy
    subset = train_set.take(slice(0, 1000))
    out = {}
    folder = tmp_path_factory.mktemp("saved")
    for config in ALL_CONFIGS[1:]:
        eq = train_model(config, subset, QUICK, DATA, progress=False)
        out[config.type] = (eq, load_equalizer(save_equalizer(eq, folder / config.type)))
    return out


@pytest.mark.parametrize("kind", ["lstm", "bilstm", "gru", "bigru", "cnn_bilstm"])
def test_recurrent_models_train_and_save_load_exactly(trained_rnns, noisy, kind):
    _, te, _, test_set = noisy
    eq, loaded = trained_rnns[kind]
    assert eq.info["epochs_run"] == 1 and np.isfinite(eq.info["history"]["loss"][0])
    assert eq.info["n_validation_windows"] > 0 and "val_loss" in eq.info["history"]
    for a, b in zip(eq.model.get_weights(), loaded.model.get_weights()):
        np.testing.assert_array_equal(a, b)
    pred = eq.predict(test_set)
    assert pred.shape == (1, len(test_set)) and np.all(np.isfinite(pred))
    np.testing.assert_array_equal(pred, loaded.predict(test_set))
    assert loaded.model_config == eq.model_config and loaded.data_config == eq.data_config == DATA
    assert loaded.normalization == eq.normalization


def test_save_load_rejects_tampering(trained_rnns, tmp_path):
    eq, _ = trained_rnns["lstm"]
    folder = save_equalizer(eq, tmp_path / "eq")
    save_equalizer(eq, folder)  # overwriting an existing folder works
    assert sorted(p.name for p in tmp_path.iterdir()) == ["eq"]  # no temporary leftovers
    meta = json.loads((folder / "equalizer.json").read_text())
    assert meta["model"] == {"type": "lstm", "name": "LSTM", "units": 8, "readout": "flatten"}
    data_file = next(folder.glob("weights.data-*"))
    raw = bytearray(data_file.read_bytes())
    raw[-1] ^= 0xFF
    data_file.write_bytes(bytes(raw))
    with pytest.raises(channel.CorruptFileError, match="checksum mismatch"):
        load_equalizer(folder)


def test_records_saved_before_readout_load_with_the_final_state(trained_rnns, tmp_path):
    # equalizer.json written before `readout` existed has no such key: those recurrent models read the final state
    eq, _ = trained_rnns["bilstm"]
    assert eq.model_config.readout == "final"
    folder = save_equalizer(eq, tmp_path / "old")
    meta = json.loads((folder / "equalizer.json").read_text())
    del meta["model"]["readout"]
    (folder / "equalizer.json").write_text(json.dumps(meta))
    assert load_equalizer(folder).model_config == eq.model_config
    assert model_config_from_dict(meta["model"]).readout == "flatten"  # a TOML without the key: the new default


def test_training_is_reproducible(noisy):
    _, _, train_set, _ = noisy
    config = MLPConfig(units=(8,))
    a = train_model(config, train_set, QUICK, DATA, progress=False)
    b = train_model(config, train_set, QUICK, DATA, progress=False)
    for wa, wb in zip(a.model.get_weights(), b.model.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    assert a.info["history"] == b.info["history"]
    # another seed starts from other weights
    keras.utils.set_random_seed(4)
    other = build_model(config, train_set.input_shape, 2)
    assert not np.array_equal(a.model.get_weights()[0], other.get_weights()[0])


def test_a_diverged_training_is_an_error_not_a_saved_model(noisy):
    """A NaN in the weights (as a diverging model reaches) stops training with an error naming the model."""
    _, _, train_set, _ = noisy
    model = build_model(MLPConfig(units=(8,)), train_set.input_shape, 2)
    weights = model.get_weights()
    weights[0][0, 0] = np.nan
    model.set_weights(weights)
    with pytest.raises(RuntimeError, match="training of 'nan-mlp' diverged"):
        fitting.fit(model, train_set, QUICK, progress=False, label="nan-mlp")
    # a model that outputs NaN is not evaluated as symbols
    eq = train.Equalizer(model=model, model_config=MLPConfig(units=(8,), name="nan-mlp"), data_config=DATA,
                         normalization=train_set.normalization)
    with pytest.raises(ValueError, match="equalizer 'nan-mlp' gave .* non-finite outputs"):
        train.evaluate(eq, noisy[1])


def test_nn_learns_linear_link_and_evaluate_is_consistent(linear, capsys):
    tr, te, train_set, test_set = linear
    training = TrainingConfig(epochs=12, batch_size=128, learning_rate=1e-2, patience=3, seed=1, lr_patience=1)
    eq = train_model(MLPConfig(units=(16,), activation="linear"), train_set, training, PLAIN, progress=True)
    assert "MLP epoch 1/12" in capsys.readouterr().out
    assert eq.info["best_epoch"] >= 1 and eq.info["epochs_run"] <= 12
    ev = evaluate(eq, te)
    assert list(ev.metrics) == ["MLP", "CDC"]
    assert ev.n_symbols == len(test_set) and ev.polarizations == "x"
    assert ev.metrics["MLP"].ber == 0 and ev.metrics["MLP"].snr_db > 25  # learned the identity
    # CDC is evaluated on exactly the window centres, x polarization
    ref = channel.evaluate_symbols(te.rx_cdc[0, test_set.centres], te.tx_indices[0, test_set.centres], "16QAM")
    assert ev.metrics["CDC"] == ref
    # the NN metrics are those of the de-normalized, gain-normalized outputs on the same symbols
    y = eq.predict(test_set)[0]
    y = y / (np.vdot(te.tx_symbols[0, test_set.centres], y) / np.vdot(te.tx_symbols[0, test_set.centres],
                                                                          te.tx_symbols[0, test_set.centres]))
    assert ev.metrics["MLP"].snr_db == pytest.approx(
        channel.evaluate_symbols(y, te.tx_indices[0, test_set.centres], "16QAM").snr_db, abs=1e-9)
    # a bare tf_keras model with its data config and normalization gives the same numbers
    bare = evaluate(eq.model, te, PLAIN, eq.normalization, name="MLP")
    assert bare.metrics["MLP"] == ev.metrics["MLP"]
    with pytest.raises(ValueError, match="needs data_config and normalization"):
        evaluate(eq.model, te)


def test_evaluate_reports_dbp_on_the_same_symbols(trained_rnns, noisy):
    _, te, _, test_set = noisy
    eq, _ = trained_rnns["bilstm"]
    ev = evaluate(eq, te)
    assert list(ev.metrics) == ["biLSTM", "CDC", "DBP-1"]
    idx = te.tx_indices[0, test_set.centres]
    assert ev.metrics["DBP-1"] == channel.evaluate_symbols(te.rx_dbp[1][0, test_set.centres], idx, "16QAM")
    assert ev.metrics["CDC"].n_bits == ev.metrics["biLSTM"].n_bits == 4 * len(test_set)
    rows = ev.rows()
    assert [r["method"] for r in rows] == ["biLSTM", "CDC", "DBP-1"]
    assert all(r["launch_power_dbm"] == 2.0 for r in rows)
    with pytest.raises(ValueError, match="model expects windows of shape"):
        eq.predict(make_windows(te, DataConfig(taps=5, guard_symbols=4),
                                fit_normalization(te, DataConfig(taps=5, guard_symbols=4))))


STUDY = """
name = "tiny"
powers_dbm = [0.0, 3.0]
dbp = true
""" + TINY_TRAINING


def test_run_training_writes_results_and_resumes(tmp_path, monkeypatch, capsys):
    path = tmp_path / "study.toml"
    path.write_text(STUDY)
    out, cache = tmp_path / "out", tmp_path / "cache"
    result = run_training(path, out, cache_dir=cache, progress=False)
    printed = capsys.readouterr().out
    assert "P (dBm)" in printed and "MLP Q (dB)" in printed and "optimum" in printed
    saved = json.loads((out / "results.json").read_text())
    assert saved["powers_dbm"] == [0.0, 3.0] and saved["mode"] == "per_power"
    assert [(r["launch_power_dbm"], r["method"]) for r in saved["rows"]] == [
        (0.0, "MLP"), (0.0, "CDC"), (0.0, "DBP-1"), (3.0, "MLP"), (3.0, "CDC"), (3.0, "DBP-1")]
    assert saved["rows"] == json.loads(json.dumps(result["rows"]))
    assert (out / "q_vs_power.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "results.csv").read_text().count("\n") == 7
    assert sorted(p.name for p in (out / "models").iterdir()) == ["MLP@+0p00dBm", "MLP@+3p00dBm"]
    assert len(saved["models"]) == 2 and saved["models"][0]["epochs_run"] <= 2
    # RMpS: CDC/DBP from the link, the NN from its weights (Flatten 8x... -> Dense(8) -> Dense(2): 1 symbol/window)
    link = load_train_config(path).scenario
    rmps = {r["method"]: r["rmps"] for r in saved["rows"]}
    assert rmps["CDC"] == pytest.approx(cdc_complexity(link, samples_per_symbol=2).rmps)
    assert rmps["DBP-1"] == pytest.approx(dbp_complexity(link, 1).rmps)
    mlp = load_equalizer(out / "models" / "MLP@+3p00dBm")
    assert rmps["MLP"] == model_complexity(mlp.model).rmps == pytest.approx(
        np.count_nonzero(mlp.model.get_layer("dense_1").kernel.numpy()) + 8 * 2)
    assert {m: b["rmps"] for m, b in saved["optimum"].items()} == rmps | {
        "MLP": next(r["rmps"] for r in saved["rows"] if r["method"] == "MLP"
                    and r["launch_power_dbm"] == saved["optimum"]["MLP"]["launch_power_dbm"])}
    # CDC rows equal channel metrics of the test transmission on the same symbols
    test_tr = channel.simulate(load_train_config(path).scenario.with_launch_power(3.0).with_seed(6), cache_dir=cache)
    ev = saved["evaluations"][1]
    lo, hi = ev["centre_range"]
    ref = channel.evaluate_symbols(test_tr.rx_cdc[0, lo:hi + 1], test_tr.tx_indices[0, lo:hi + 1], "16QAM")
    assert ev["metrics"]["CDC"]["snr_db"] == pytest.approx(ref.snr_db, abs=1e-12)

    # second run: simulations cached, models reused, identical results
    def no_training(*a, **k):
        raise AssertionError("retrained although a matching model was saved")

    monkeypatch.setattr(fitting, "train_model", no_training)
    monkeypatch.setattr(channel.link, "propagate_link", no_training)
    again = run_training(path, out, cache_dir=cache, progress=False)
    assert again["rows"] == result["rows"]
    assert "reusing the trained model" in capsys.readouterr().out


def test_run_training_combined_mode(tmp_path):
    path = tmp_path / "study.toml"
    path.write_text(STUDY.replace('name = "tiny"', 'name = "tiny"\nmode = "combined"\ntrain_symbols = 1536'))
    result = run_training(path, tmp_path / "out", cache_dir=tmp_path / "cache", progress=False)
    assert result["models"][0]["n_train_windows"] + result["models"][0]["n_validation_windows"] == 2 * (1536 - 12)
    assert result["evaluations"][0]["n_symbols"] == 1024 - 12
    assert [p.name for p in (tmp_path / "out" / "models").iterdir()] == ["MLP@combined"]
    assert result["models"][0]["trained_on_powers_dbm"] == [0.0, 3.0]
    # validation holds out the end of every power's block, not only of the last one
    assert result["models"][0]["n_validation_windows"] == 2 * int((1536 - 12) * 0.1)
    assert len(result["rows"]) == 6


@pytest.mark.parametrize("change, match", [
    (("powers_dbm = [0.0, 3.0]", ""), r"powers_dbm is required"),
    (("powers_dbm = [0.0, 3.0]", "powers_dbm = [0.0, 40.0]"), r"powers_dbm\[\] = 40.0 is out of range"),
    (("powers_dbm = [0.0, 3.0]", "powers_dbm = []"), r"powers_dbm = \[\]: must be a non-empty list"),
    (("test = 6", "test = 5"), r"seeds.train = seeds.test = 5"),
    (('name = "tiny"', 'name = "tiny"\nmode = "each"'), r"mode = 'each': allowed values are 'per_power', 'combined'"),
    (('name = "tiny"', 'name = "tiny"\nepochs = 3'), r"unknown top-level key\(s\) \['epochs'\]"),
    (("epochs = 2", "epochs = 0"), r"training.epochs = 0 is out of range"),
    (("epochs = 2", "learning_rate = -1"), r"training.learning_rate = -1 is out of range"),
    (("epochs = 2", "lr_factor = 1.0"), r"training.lr_factor = 1.0 is out of range: allowed \(0, 1\)"),
    (("epochs = 2", "epoch = 2"), r"unknown key\(s\) \['epoch'\] in \[training\]"),
    (("taps = 2", "taps = -2"), r"data.taps = -2 is out of range"),
    (("n_spans = 2", "n_spans = 0"), r"link.n_spans = 0 is out of range"),
    (("taps = 2", "taps = 600"), r"block of 1024 symbols leaves no window with data.taps = 600"),
    (('name = "tiny"', 'name = "tiny"\ntrain_symbols = 10'),
     r"train_symbols / seeds.train: transmitter.n_symbols = 10 is out of range"),
    ((('name = "tiny"', 'name = "tiny"\ntest_symbols = 64'), ("taps = 2", "taps = 40")),
     r"test data: a block of 64 symbols leaves no window"),
    (('type = "mlp"', 'type = "transformer"'), r"models\[0\].type = 'transformer'"),
    (("units = [8]", "units = [8]\n[[models]]\ntype = \"mlp\"\nname = \"MLP\""), r"models\[\].name .*must be distinct"),
    (("units = [8]", "units = [8]\n[[models]]\ntype = \"cnn_bilstm\"\nkernel_size = 9"),
     r"models.cnn_bilstm.kernel_size = 9 .*exceeds the window length 2 \* taps \+ 1 = 5"),
])
def test_bad_training_configs(tmp_path, change, match):
    path = tmp_path / "bad.toml"
    text = STUDY
    for old, new in (change if isinstance(change[0], tuple) else [change]):
        text = text.replace(old, new)
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_train_config(path)


def test_models_table_form_and_scenario_base(tmp_path):
    (tmp_path / "link.toml").write_text("[transmitter]\nmodulation = 'QPSK'\nn_symbols = 1024\n[link]\nn_spans = 3\n")
    (tmp_path / "study.toml").write_text(
        "powers_dbm = [1]\n[scenario]\nbase = 'link.toml'\n[scenario.link]\nspan_length_km = 60.0\n"
        "[models.bilstm]\nunits = 12\n[models.mlp]\nunits = [4, 4]\n")
    cfg = load_train_config(tmp_path / "study.toml")
    assert cfg.scenario.transmitter.modulation == "QPSK" and cfg.scenario.link.n_spans == 3
    assert cfg.scenario.link.span_length_km == 60.0 and cfg.powers_dbm == (1.0,)
    assert cfg.models == (BiLSTMConfig(units=12), MLPConfig(units=(4, 4)))
    assert TrainRunConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


@pytest.mark.parametrize("name", ["train_quick.toml", "train_reference.toml", "train_reference_bilstm.toml"])
def test_experiment_configs_load(name):
    cfg = load_train_config(EXPERIMENTS / name)
    assert cfg.models and cfg.powers_dbm


def _python(code: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)


def test_keras2_switch_warns_when_tensorflow_already_resolved_keras3():
    # TensorFlow imported and tf.keras touched first: tf.keras is Keras 3, TF_USE_LEGACY_KERAS comes too late.
    # eqnn still works (it builds with tf_keras) but says so clearly instead of failing later in TFMOT.
    late = _python("import warnings, tensorflow as tf\ntf.keras.Model\n"
                   "with warnings.catch_warnings(record=True) as w:\n    warnings.simplefilter('always')\n"
                   "    import eqnn\n"
                   "print('WARN', [str(x.category.__name__) + ': ' + str(x.message) for x in w])\n")
    assert late.returncode == 0, late.stderr
    line = next(x for x in late.stdout.splitlines() if x.startswith("WARN"))
    assert "KerasVersionWarning" in line and "Keras 3" in line and "tf_keras" in line
    # eqnn first: tf.keras is Keras 2 (tf_keras), and no warning.
    early = _python("import warnings\nwarnings.simplefilter('error')\nimport eqnn\nimport tensorflow as tf\n"
                    "print('MODULE', tf.keras.Model.__module__)\n")
    assert early.returncode == 0, early.stderr
    assert "MODULE tf_keras" in early.stdout


def test_families_answer_for_their_layers():
    # the input check (used by TrainRunConfig) and the resize after structured pruning belong to the family
    with pytest.raises(ConfigError, match=r"models.cnn_bilstm.kernel_size = 9 \(model 'CNN\+biLSTM'\) exceeds the "
                                          r"window length 2 \* taps \+ 1 = 5"):
        models.check_input(CNNBiLSTMConfig(kernel_size=9), 5)
    for config in ALL_CONFIGS:
        models.check_input(config, 7)
        model = build_model(config, (7, 4), 2)
        roles = models.layer_roles(config)
        assert set(roles) == {layer.name for layer in model.layers if layer.weights}
        assert roles["output"] == "output" and "output" not in models.prunable_layers(config)
        assert models.resized_config(config, model) == config
    assert list(models.MODEL_TYPES) == ["mlp", "lstm", "bilstm", "gru", "bigru", "cnn_bilstm", "sequence", "ldbp"]
