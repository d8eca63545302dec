"""The published recurrent architectures: readout (flatten | final) of lstm, bilstm, gru, bigru, cnn_bilstm; GRU
and Bidirectional(GRU) layer types; counts against the literature and the counting reference; structured pruning
through Flatten; magnitude pruning, clustering and quantization of GRU models; a tiny `eqnn train` + `eqnn
compress` of a biGRU. Tiny sizes (3-4 units, 5-11 steps, 128 windows, 1 epoch) except the two published counts."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from tiny_configs import TINY_TRAINING

import eqnn  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)
from channel import ConfigError
from eqnn import compress as C
from eqnn import models
from eqnn.cli import main
from eqnn.complexity import count_multiplications_reference, model_complexity
from eqnn.models import (
    BiGRUConfig,
    BiLSTMConfig,
    CNNBiLSTMConfig,
    GRUConfig,
    LSTMConfig,
    build_model,
    model_config_from_dict,
)
from eqnn.train import load_equalizer

keras = pytest.importorskip("tf_keras")
L = keras.layers
T, F = 5, 4


def _perturbed(model, seed=0):
    """Random non-zero biases too (GRU biases start at zero): every bias term of the counts is exercised."""
    rng = np.random.default_rng(seed)
    model.set_weights([w + 0.2 * rng.normal(size=w.shape).astype(w.dtype) for w in model.get_weights()])
    return model


def _agree(model, seed=1):
    """Reference output == keras output and reference counts == formula counts; returns the complexity."""
    window = np.random.default_rng(seed).normal(size=model.input_shape[1:]).astype(np.float32)
    ref = count_multiplications_reference(model, window)
    np.testing.assert_allclose(ref.output, np.asarray(model(window[None], training=False))[0], rtol=1e-5,
                               atol=1e-5)
    mc = model_complexity(model)
    assert (ref.multiplications, ref.additions, ref.activations) == (
        mc.multiplications_per_window, mc.additions_per_window, mc.activations_per_window)
    return mc


FAMILIES = [LSTMConfig(units=3), BiLSTMConfig(units=3), GRUConfig(units=3), BiGRUConfig(units=3),
            CNNBiLSTMConfig(units=3, filters=3, kernel_size=2)]
ALL = [dataclasses.replace(c, readout=r) for c in FAMILIES for r in ("flatten", "final")]


def _id(config):
    return f"{config.type}-{config.readout}"


# --------------------------------------------------------------------------------------------- the published counts

@pytest.mark.parametrize("config, rmps", [
    (BiLSTMConfig(units=32), 2 * 41 * 32 * (4 * 4 + 4 * 32 + 3) + 41 * 64 * 2),
    (BiGRUConfig(units=32), 2 * 41 * 32 * (3 * 4 + 3 * 32 + 3) + 41 * 64 * 2),
], ids=["biLSTM-32", "biGRU-32"])
def test_published_counts_of_the_flatten_readout(config, rmps):
    """Liu et al. (2022), 41-symbol windows, 4 features, 2 outputs: biLSTM-32 390,976 and biGRU-32 296,512 RMpS."""
    keras.utils.set_random_seed(0)
    model = build_model(config, (41, 4), 2)
    assert rmps == {"bilstm": 390_976, "bigru": 296_512}[config.type]
    mc = _agree(model)
    assert mc.rmps == mc.multiplications_per_window == rmps
    assert mc.layers[-1].multiplications_per_window == 41 * 64 * 2  # the Dense reads every time step


# --------------------------------------------------------------------------------------------- every family x readout

@pytest.mark.parametrize("config", ALL, ids=_id)
def test_every_family_and_readout_counts_as_the_reference(config):
    keras.utils.set_random_seed(2)
    model = _perturbed(build_model(config, (T, F), 2))
    mc = _agree(model)
    u, directions = config.units, 2 if config.bidirectional else 1
    steps, n_in = (T - 1, 3) if config.type == "cnn_bilstm" else (T, F)
    gates = 4 if config.cell == "lstm" else 3
    rnn = directions * steps * u * (gates * n_in + gates * u + 3)
    dense = directions * u * (steps if config.readout == "flatten" else 1) * 2
    conv = steps * 2 * F * 3 if config.type == "cnn_bilstm" else 0
    assert mc.multiplications_per_window == conv + rnn + dense
    assert model_config_from_dict(models.model_config_to_dict(config)) == config


def test_readout_is_checked_before_any_model_is_built():
    for kind in ("lstm", "bilstm", "gru", "bigru", "cnn_bilstm"):
        with pytest.raises(ConfigError, match=rf"models\.{kind}\.readout = 'last': allowed values are 'flatten', "
                                              "'final'"):
            model_config_from_dict({"type": kind, "readout": "last"})
    assert {c.readout for c in (LSTMConfig(), BiLSTMConfig(), GRUConfig(), BiGRUConfig(), CNNBiLSTMConfig())} == {
        "flatten"}


def test_gru_layers_keep_the_cudnn_form():
    keras.utils.set_random_seed(0)
    model = build_model(BiGRUConfig(units=4), (T, F), 2)
    for rnn in (model.get_layer("bigru").forward_layer, model.get_layer("bigru").backward_layer):
        assert rnn.reset_after and rnn.use_bias and not rnn.unroll and rnn.recurrent_dropout == 0
        assert rnn.activation.__name__ == "tanh" and rnn.recurrent_activation.__name__ == "sigmoid"
        assert rnn._could_use_gpu_kernel  # noqa: SLF001 - what selects cuDNN on a GPU
        assert rnn.cell.bias.shape == (2, 12)  # separate input and recurrent biases


def test_gru_pruned_clustered_counts_shared_values_once():
    """Zeros cost nothing; a value repeated in a kernel row is one product per input, over all three gates."""
    keras.utils.set_random_seed(4)
    model = keras.Sequential([keras.Input((T, F)), L.GRU(3, return_sequences=True), L.Flatten(), L.Dense(2)])
    rng = np.random.default_rng(4)
    kernel, recurrent, bias, dk, db = _perturbed(model).get_weights()
    kernel = rng.choice(np.float32([-0.5, 0.0, 0.25, 0.5]), size=kernel.shape)
    recurrent = np.where(rng.random(recurrent.shape) < 0.5, 0, recurrent).astype(np.float32)
    model.set_weights([kernel, recurrent, bias, dk, db])
    mc = _agree(model)
    per_step = sum(len(set(r[r != 0])) for r in kernel) + int(np.count_nonzero(recurrent)) + 3 * 3
    assert mc.layers[0].multiplications_per_window == T * per_step


# --------------------------------------------------------------------------------------------- structured pruning

@pytest.mark.parametrize("config", [c for c in ALL if c.readout == "flatten"], ids=_id)
def test_structured_pruning_of_flatten_models_rebuilds_from_the_resized_config(config):
    keras.utils.set_random_seed(5)
    config = dataclasses.replace(config, units=4, **({"filters": 4} if config.type == "cnn_bilstm" else {}))
    model = _perturbed(build_model(config, (T, F), 2))
    pruned = C.prune(model, 0.5, method="structured")
    resized = models.resized_config(config, pruned)
    assert resized.units == 2 and resized.readout == "flatten"
    if config.type == "cnn_bilstm":
        assert resized.filters == 2
    rebuilt = build_model(resized, (T, F), 2)
    assert [w.shape for w in rebuilt.get_weights()] == [w.shape for w in pruned.get_weights()]
    rebuilt.set_weights(pruned.get_weights())
    x = np.random.default_rng(6).normal(size=(8, T, F)).astype(np.float32)
    np.testing.assert_allclose(rebuilt(x).numpy(), pruned(x).numpy(), rtol=1e-6, atol=1e-6)
    assert _agree(rebuilt).multiplications_per_window < model_complexity(model).multiplications_per_window
    incoming = C.prune(model, 0.5, method="structured", options={"criterion": "incoming"})  # own weights, biases
    assert [w.shape for w in incoming.get_weights()] == [w.shape for w in pruned.get_weights()]


@pytest.mark.parametrize("config", [GRUConfig(units=4), BiGRUConfig(units=4), BiLSTMConfig(units=4)], ids=_id)
def test_removing_a_unit_removes_its_dense_inputs_at_every_time_step(config):
    """Units 1 and 3 feed nothing (their Dense rows at every step and their recurrent rows are zero): structured
    pruning removes exactly them, and the output is unchanged."""
    keras.utils.set_random_seed(7)
    model = _perturbed(build_model(config, (T, F), 2))
    u, dead = config.units, np.array([1, 3])
    layer = model.get_layer(config.layer_name)
    width = 2 * u if config.bidirectional else u
    rows = [t * width + d for t in range(T) for d in dead]
    if config.bidirectional:
        rows += [t * width + u + d for t in range(T) for d in dead]
    dense = model.get_layer("output").get_weights()
    dense[0][rows] = 0.0
    model.get_layer("output").set_weights(dense)
    own = layer.get_weights()
    for i in range(1, len(own), 3):  # the recurrent kernel of each direction: [kernel, recurrent, bias] each
        own[i][dead] = 0.0
    layer.set_weights(own)
    pruned = C.prune(model, 0.0, method="structured", per_layer={config.layer_name: 0.5})
    assert C.units_of(pruned.get_layer(config.layer_name)) == u - len(dead)
    x = np.random.default_rng(8).normal(size=(16, T, F)).astype(np.float32)
    np.testing.assert_allclose(pruned(x).numpy(), model(x).numpy(), rtol=1e-5, atol=1e-5)
    kept = np.setdiff1d(np.arange(u), dead)
    expected_rows = [t * width + k for t in range(T) for k in kept]
    if config.bidirectional:
        expected_rows = sorted(expected_rows + [t * width + u + k for t in range(T) for k in kept])
    np.testing.assert_array_equal(pruned.get_layer("output").get_weights()[0], dense[0][sorted(expected_rows)])


# --------------------------------------------------------------------------------------------- TFMOT on GRU

WINDOW, N = 7, 128


@pytest.fixture(scope="module")
def gru_model_and_data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, WINDOW, F)).astype("float32")
    y = np.stack([x[:, WINDOW // 2, 0], x[:, WINDOW // 2, 1]], axis=1).astype("float32")
    keras.utils.set_random_seed(9)
    inp = keras.Input((WINDOW, F))
    h = L.GRU(4, return_sequences=True, name="gru")(inp)
    h = L.Bidirectional(L.GRU(3, return_sequences=True), name="bi")(h)
    h = L.Flatten(name="flatten")(h)
    model = keras.Model(inp, L.Dense(2, name="out")(h))
    return model, C.FineTune(x, y, epochs=1, batch_size=64, learning_rate=1e-3, seed=1)


def test_gru_prune_cluster_qat_pipeline(gru_model_and_data):
    model, ft = gru_model_and_data
    before = [w.copy() for w in model.get_weights()]
    config = C.CompressionConfig(sparsity=0.5, n_clusters=5, weight_bits=4, activation_bits=8, quantize_mode="qat")
    result = C.compress(model, config, ft)
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    pruned, clustered, quantized = (step.model for step in result.steps)
    keys = {"gru/kernel", "gru/recurrent_kernel", "bi/forward/kernel", "bi/forward/recurrent_kernel",
            "bi/backward/kernel", "bi/backward/recurrent_kernel", "out/kernel"}
    assert set(C.kernel_weights(pruned)) == keys
    for key, w in C.kernel_weights(pruned).items():
        assert abs(np.mean(w == 0) - 0.5) <= 1.0 / w.size, key
    assert C.compression_info(pruned)["steps"][-1]["method"] == "magnitude"
    step = C.compression_info(quantized)["steps"][-1]
    assert step["mode"] == "qat" and step["ptq_fallback"] == [] and set(step["qat_layers"]) == {"gru", "bi", "out"}
    ck = C.kernel_weights(clustered)
    for key, w in C.kernel_weights(quantized).items():
        assert np.all(w[ck[key] == 0] == 0), key            # sparsity kept through clustering and QAT
        assert np.unique(w[w != 0]).size <= 4, key          # 5 clusters, one of them the zeros
        ratio = w.astype(np.float64) / step["scales"][key][0]
        np.testing.assert_allclose(ratio, np.round(ratio), atol=1e-3)
        assert np.all(np.abs(np.round(ratio)) <= 8)
    for layer in quantized.layers:
        assert type(layer).__module__.startswith("tf_keras."), type(layer)
    mc = _agree(quantized)
    assert mc.multiplications_per_window < model_complexity(model).multiplications_per_window


def test_gru_ptq_and_one_shot_magnitude(gru_model_and_data):
    model, _ = gru_model_and_data
    q = C.quantize(model, 3)
    scales = C.compression_info(q)["steps"][-1]["scales"]
    for key, w in C.kernel_weights(q).items():
        assert np.unique(w).size <= 8, key
        ratio = w.astype(np.float64) / scales[key][0]
        np.testing.assert_allclose(ratio, np.round(ratio), atol=1e-3)
    assert _agree(q, seed=3).n_distinct <= 7 * 8
    p = C.prune(model, 0.75)
    for key, w in C.kernel_weights(p).items():
        assert abs(np.mean(w == 0) - 0.75) <= 1.0 / w.size, key


# --------------------------------------------------------------------------------------------- end to end

TRAIN = 'name = "tiny"\npowers_dbm = [1.0]\ncache_dir = ""\ndbp = false\n' + TINY_TRAINING.replace(
    'type = "mlp"\nname = "MLP"\nunits = [8]', 'type = "bigru"\nname = "biGRU"\nunits = 4')
COMPRESSION = """
[compression]
n_calls = 2
n_initial_points = 2
sparsity = [0.3, 0.8]
pruning_methods = "structured"
clusters = false
weight_bits = [4, 8]
fine_tune_epochs = 0
"""


def test_eqnn_train_and_compress_a_bigru(tmp_path):
    path, study = tmp_path / "train.toml", tmp_path / "study.toml"
    path.write_text(TRAIN)
    study.write_text(TRAIN + COMPRESSION)
    out = tmp_path / "out"
    assert main(["train", str(path), "--out", str(out), "--quiet"]) == 0
    folder = out / "models" / "biGRU@+1p00dBm"
    eq = load_equalizer(folder)
    assert eq.model_config == BiGRUConfig(units=4)
    assert json.loads((folder / "equalizer.json").read_text())["model"]["readout"] == "flatten"
    again = load_equalizer(folder)
    for a, b in zip(eq.model.get_weights(), again.model.get_weights()):
        np.testing.assert_array_equal(a, b)
    window = 2 * 2 + 1  # taps = 2
    rmps = 2 * window * 4 * (3 * 4 + 3 * 4 + 3) + window * 8 * 2
    saved = json.loads((out / "results.json").read_text())
    assert next(r["rmps"] for r in saved["rows"] if r["method"] == "biGRU") == rmps
    assert _agree(eq.model).rmps == rmps
    # `eqnn compress` with structured pruning on the saved flatten-readout biGRU
    out2 = tmp_path / "compressed"
    assert main(["compress", str(folder), "--config", str(study), "--out", str(out2), "--cache", str(out / "cache"),
                 "--quiet"]) == 0
    best = load_equalizer(out2 / "best")
    assert best.model_config.readout == "flatten" and best.model_config.units <= 4
    assert build_model(best.model_config, (window, 4), 2).count_params() == best.model.count_params()
