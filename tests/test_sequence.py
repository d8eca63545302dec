"""Sequence (many-to-many) equalizers: blocks, overlapping-block inference, learning, cost, config errors, training.

Tiny sizes throughout; the learning test trains a small biLSTM on a numpy toy channel with memory.
"""

import json

import numpy as np
import pytest
import tf_keras as keras
from tiny_configs import TINY_TRAINING

import channel
from channel import ConfigError
from eqnn import models
from eqnn.complexity import count_multiplications_reference, model_complexity
from eqnn.data import DataConfig, Normalization, fit_normalization, make_windows
from eqnn.data_blocks import BlockSet, block_plan, cut, make_blocks, stitch
from eqnn.models import SequenceConfig, block_geometry, build_model
from eqnn.models.sequence import gru_supported
from eqnn.training import TrainingConfig, fit, load_equalizer, run_training
from eqnn.training.equalizer import complexity_arguments, predict_blocks

# ----------------------------------------------------------------------------------------------- blocks


@pytest.mark.parametrize("length, block, overlap", [(1000, 128, 40), (129, 128, 40), (128, 128, 40), (50, 128, 40),
                                                    (500, 64, 0), (333, 100, 49)])
def test_block_plan_delivers_every_symbol_once(length, block, overlap):
    plan = block_plan(length, block, overlap)
    assert plan.block == min(block, length)
    d = plan.delivered
    assert d[0, 0] == 0 and d[-1, 1] == length and np.all(d[1:, 0] == d[:-1, 1]) and np.all(d[:, 1] > d[:, 0])
    assert np.all(plan.starts >= 0) and np.all(plan.starts + plan.block <= length)
    for (lo, hi), s in zip(d[1:-1], plan.starts[1:-1]):  # interior blocks: the central B - 2 O outputs
        assert (lo, hi) == (s + overlap, s + block - overlap)
    if len(d) > 1:  # the edge blocks deliver up to the stream ends, never their inner overlap
        assert d[0, 1] == block - overlap and d[-1, 0] >= plan.starts[-1] + overlap
    stream = np.arange(length, dtype=np.float32)[:, None]
    assert np.array_equal(stitch(cut(stream, plan), plan), stream)  # identity model: the stream back


def test_block_plan_rejects_short_blocks():
    with pytest.raises(ConfigError, match="must exceed 2 \\* overlap = 80"):
        block_plan(1000, 80, 40)


def _toy_transmission(seed=3):
    link = channel.reference_config().replace(transmitter={"n_symbols": 1024, "modulation": "16QAM"})
    return channel.simulate(link.replace(link={"n_spans": 1, "span_length_km": 40.0},
                                         propagation={"step_mode": "fixed", "steps_per_span": 2}).with_seed(seed),
                            progress=False)


@pytest.fixture(scope="module")
def transmissions():
    return _toy_transmission(seed=3), _toy_transmission(seed=4)


def test_make_blocks_shares_the_conventions_of_windows(transmissions):
    tr = transmissions[0]
    config = DataConfig(taps=3, guard_symbols=5)
    norm = fit_normalization(tr, config)
    blocks = make_blocks(tr, config, norm, block_length=100)
    windows = make_windows(tr, config, norm)
    n = tr.rx_cdc.shape[-1]
    assert blocks.x.shape == ((n - 10) // 100, 100, 4) and blocks.y.shape == ((n - 10) // 100, 100, 2)
    assert blocks.starts[0] == 5 and blocks.taps == 3 and blocks.guard == 5
    # the centre row of each window is the block feature at the same symbol; the targets agree
    k = windows.centres[:200]
    flat_x, flat_y = blocks.x.reshape(-1, 4), blocks.y.reshape(-1, 2)
    np.testing.assert_array_equal(windows.x[:200, 3], flat_x[k - 5])
    np.testing.assert_array_equal(windows.y[:200], flat_y[k - 5])
    with pytest.raises(ConfigError, match="shorter than one training block of block_length = 5000"):
        make_blocks(tr, config, norm, block_length=5000)


# ----------------------------------------------------------------------------------------------- overlap


def _one_pass(model, stream):
    return model(stream[None], training=False).numpy()[0]


def test_cnn_overlapping_blocks_equal_one_pass_exactly():
    config = SequenceConfig(cell="cnn", filters=[5, 4, 3], layers=3, kernel_size=4, dilation=[1, 2, 3],
                            inference_block=40)
    assert config.resolved_overlap == config.receptive_reach == 2 * (1 + 2 + 3)
    keras.utils.set_random_seed(1)
    model = build_model(config, (16, 4), 2)
    stream = np.random.default_rng(0).standard_normal((301, 4)).astype(np.float32)
    blocked = predict_blocks(model, stream, block_geometry(config), batch_size=64)
    np.testing.assert_allclose(blocked, _one_pass(model, stream), rtol=0, atol=1e-5)
    # with too little overlap the block edges differ
    short = predict_blocks(model, stream, models.BlockGeometry(16, 40, 2), batch_size=64)
    assert np.max(np.abs(short - _one_pass(model, stream))) > 1e-3


@pytest.mark.parametrize("cell", ["lstm", "bilstm"])
def test_recurrent_overlapping_blocks_match_one_pass_with_generous_overlap(cell):
    # recurrent memory fades but never ends: with random weights (outputs of std ~0.1) an overlap of 80 gives the
    # one-pass outputs within 1e-5 (measured ~2e-7); the error shrinks as the overlap grows
    config = SequenceConfig(cell=cell, units=[6, 4], inference_block=240, overlap=80)
    keras.utils.set_random_seed(2)
    model = build_model(config, (16, 4), 2)
    stream = np.random.default_rng(1).standard_normal((500, 4)).astype(np.float32)
    whole = _one_pass(model, stream)
    assert np.max(np.abs(predict_blocks(model, stream, block_geometry(config)) - whole)) < 1e-5
    errors = [np.max(np.abs(predict_blocks(model, stream, models.BlockGeometry(16, 240, o)) - whole))
              for o in (0, 20, 60)]
    assert errors[0] > 1e-2 and errors[0] > errors[1] > errors[2] > 0


# ----------------------------------------------------------------------------------------------- learning


def _qam16(rng, n):
    levels = np.array([-3, -1, 1, 3]) / np.sqrt(10)
    return rng.choice(levels, (2, n)) + 1j * rng.choice(levels, (2, n))


def _toy_channel(a, c, noise, rng):
    """r_k = a_k exp(j c (|a_{k-1}|^2 + |a_k|^2 + |a_{k+1}|^2)) + noise (per polarization)."""
    p = np.abs(a) ** 2
    r = a * np.exp(1j * c * (np.roll(p, 1, -1) + p + np.roll(p, -1, -1)))
    return r + noise * (rng.standard_normal(a.shape) + 1j * rng.standard_normal(a.shape)) / np.sqrt(2)


def _features(r):
    return np.stack([r[0].real, r[0].imag, r[1].real, r[1].imag], axis=-1)


def _snr_db(estimate, a):
    """SNR after the least-squares complex gain (so a constant rotation is not counted as distortion)."""
    g = np.vdot(estimate, a) / np.vdot(estimate, estimate)
    return 10 * np.log10(np.mean(np.abs(a) ** 2) / np.mean(np.abs(g * estimate - a) ** 2))


def test_sequence_model_learns_a_nonlinear_channel_with_memory():
    rng = np.random.default_rng(0)
    c, noise, L = 0.2, 0.05, 64
    a_train, a_test = _qam16(rng, 16384), _qam16(rng, 4096)
    r_train, r_test = _toy_channel(a_train, c, noise, rng), _toy_channel(a_test, c, noise, rng)
    residual = (a_train - r_train)[0]
    x, y = _features(r_train), np.stack([residual.real, residual.imag], axis=-1)
    norm = Normalization.fit(x, y)
    nb = len(x) // L
    train = BlockSet(x=norm.apply_x(x).reshape(nb, L, 4).astype(np.float32),
                     y=norm.apply_y(y).reshape(nb, L, 2).astype(np.float32), starts=L * np.arange(nb),
                     block=np.zeros(nb, np.int64), taps=0, guard=0, normalization=norm)
    config = SequenceConfig(cell="bilstm", units=16, block_length=L, inference_block=256, overlap=40)
    keras.utils.set_random_seed(0)
    model = build_model(config, train.input_shape, 2)
    fit(model, train, TrainingConfig(epochs=30, batch_size=16, learning_rate=0.01, patience=10), progress=False)
    out = norm.invert_y(predict_blocks(model, norm.apply_x(_features(r_test)), block_geometry(config)))
    equalized = r_test[0] + out[:, 0] + 1j * out[:, 1]
    before, after = _snr_db(r_test[0], a_test[0]), _snr_db(equalized, a_test[0])
    # measured: 14.4 dB -> 22.0 dB (the noise alone allows 26 dB)
    assert after > before + 3.0, (before, after)


# ----------------------------------------------------------------------------------------------- complexity


CELL_CONFIGS = {
    "lstm": dict(cell="lstm", units=[3, 2]),
    "bilstm": dict(cell="bilstm", units=3),
    "gru": dict(cell="gru", units=3),
    "bigru": dict(cell="bigru", units=[3, 2]),
    "cnn": dict(cell="cnn", filters=[3, 2], layers=2, kernel_size=3, dilation=[1, 2]),
    "cnn_leaky": dict(cell="cnn", filters=3, layers=1, kernel_size=4, activation="leaky_relu"),
}


@pytest.mark.parametrize("name", list(CELL_CONFIGS))
def test_complexity_equals_the_counting_reference_on_one_block(name):
    spec = CELL_CONFIGS[name]
    if spec["cell"] in ("gru", "bigru") and not gru_supported(spec["cell"] == "bigru"):
        pytest.skip("no GRU layer type registered in eqnn.layers")
    config = SequenceConfig(**spec, inference_block=14, overlap=3)
    keras.utils.set_random_seed(3)
    model = build_model(config, (8, 4), 2)
    block = np.random.default_rng(2).standard_normal((14, 4))
    ref = count_multiplications_reference(model, block)
    np.testing.assert_allclose(ref.output, _one_pass(model, block.astype(np.float32)), atol=1e-5)
    cost = model_complexity(model, time_steps=14, symbols_per_window=14 - 2 * 3)
    assert cost.multiplications_per_window == ref.multiplications
    assert cost.additions_per_window == ref.additions
    assert cost.rmps == pytest.approx(ref.multiplications / (14 - 6))
    assert cost == model_complexity(model, **complexity_arguments(config, 2))


def test_rmps_is_per_delivered_symbol_and_follows_the_formula():
    n_h, n_i, n_o = 32, 4, 2
    config = SequenceConfig(cell="bilstm", units=n_h, inference_block=2048, overlap=40)
    model = build_model(config, (128, 4), n_o)
    cost = model_complexity(model, **complexity_arguments(config, n_o))
    per_step = 2 * n_h * (4 * n_i + 4 * n_h + 3) + 2 * n_h * n_o
    assert cost.multiplications_per_window == 2048 * per_step
    assert cost.rmps == pytest.approx(2048 * per_step / 1968) == pytest.approx(9923.6, abs=0.05)
    # doubling the inference block with the same overlap: RMpS scales by (2B / (2B - 2O)) / (B / (B - 2O))
    for spec in (dict(cell="lstm", units=4), dict(cell="cnn", filters=4, layers=2, kernel_size=5)):
        small = SequenceConfig(**spec, inference_block=64, overlap=8)
        large = SequenceConfig(**spec, inference_block=128, overlap=8)
        m = build_model(small, (16, 4), 2)
        r_small = model_complexity(m, **complexity_arguments(small, 2)).rmps
        r_large = model_complexity(m, **complexity_arguments(large, 2)).rmps
        assert r_large / r_small == pytest.approx((128 / 112) / (64 / 48))
    # both polarizations: twice the delivered symbols per block
    assert complexity_arguments(config, 4) == {"time_steps": 2048, "symbols_per_window": 2 * 1968}


# ----------------------------------------------------------------------------------------------- config


@pytest.mark.parametrize("spec, match", [
    (dict(cell="rnn"), r"models.sequence.cell = 'rnn': allowed values are 'lstm', 'bilstm', 'gru', 'bigru', 'cnn'"),
    (dict(inference_block=80), r"models.sequence.inference_block = 80 .* must exceed 2 \* overlap = 80"),
    (dict(inference_block=100, overlap=50), r"inference_block = 100 .* must exceed 2 \* overlap = 100"),
    (dict(cell="cnn", kernel_size=9, layers=4, dilation=8, inference_block=128),
     r"must exceed 2 \* overlap = 256"),
    (dict(overlap="big"), r"models.sequence.overlap = 'big': allowed an integer in \[0, 524288\] or 'auto'"),
    (dict(overlap=-1), r"models.sequence.overlap"),
    (dict(units=0), r"models.sequence.units"),
    (dict(units=[4, 0]), r"models.sequence.units\[\]"),
    (dict(cell="cnn", layers=2, filters=[4, 4, 4]), r"models.sequence.filters = \[4, 4, 4\]: a list must have one "
                                                    r"entry per layer \(layers = 2\)"),
    (dict(cell="cnn", layers=0), r"models.sequence.layers"),
    (dict(block_length=0), r"models.sequence.block_length"),
    (dict(activation="cube"), r"models.sequence.activation"),
])
def test_bad_sequence_settings_name_the_key(spec, match):
    with pytest.raises(ConfigError, match=match):
        SequenceConfig(**spec)


def test_gru_cells_need_the_gru_layer_type():
    for cell in ("gru", "bigru"):
        if gru_supported(cell == "bigru"):
            SequenceConfig(cell=cell)
        else:
            with pytest.raises(ConfigError, match=f"cell = '{cell}' .* needs the GRU layer type"):
                SequenceConfig(cell=cell)


def test_sequence_config_round_trips_through_its_table():
    config = SequenceConfig(name="S", cell="cnn", filters=[4, 6], layers=2, dilation=[1, 2], overlap=12)
    table = models.model_config_to_dict(config)
    assert table["type"] == "sequence" and table["filters"] == [4, 6]
    assert models.model_config_from_dict(json.loads(json.dumps(table))) == config
    with pytest.raises(ConfigError, match="unknown key"):
        models.model_config_from_dict({"type": "sequence", "taps": 3})
    model = build_model(config, (32, 4), 2)
    assert models.resized_config(config, model) == config
    assert set(models.layer_roles(config)) == {layer.name for layer in model.layers if layer.weights}


# ----------------------------------------------------------------------------------------------- eqnn train


SEQUENCE_MODEL = """[[models]]
type = "sequence"
name = "SeqCNN"
cell = "cnn"
filters = 4
layers = 1
kernel_size = 3
block_length = 64
inference_block = 128
"""


def test_eqnn_train_with_a_sequence_model(tmp_path):
    path = tmp_path / "study.toml"
    path.write_text('name = "tiny"\npowers_dbm = [0.0]\ndbp = false\n' + TINY_TRAINING + SEQUENCE_MODEL)
    out, cache = tmp_path / "out", tmp_path / "cache"
    result = run_training(path, out, cache_dir=cache, progress=False)
    rows = {r["method"]: r for r in result["rows"]}
    assert set(rows) == {"MLP", "SeqCNN", "CDC"}
    assert rows["SeqCNN"]["n_symbols"] == rows["MLP"]["n_symbols"] == 1024 - 2 * (2 + 4)
    assert np.isfinite(rows["SeqCNN"]["snr_db"])
    eq = load_equalizer(out / "models" / "SeqCNN@+0p00dBm")
    assert eq.blocks == models.BlockGeometry(64, 128, 1) and eq.input_shape == (64, 4)
    # 1016 stream symbols -> 15 blocks of 64, 10 % (1 block) held out
    summary = next(m for m in result["models"] if m["model"] == "SeqCNN")
    assert summary["n_train_windows"] + summary["n_validation_windows"] == 15
    # RMpS: one inference block of 128 (Conv1D 3x4x4 + Dense 4x2 per symbol) per 126 delivered symbols
    assert rows["SeqCNN"]["rmps"] == pytest.approx(eq.complexity().rmps) == pytest.approx(128 * (48 + 8) / 126)
    # the reloaded model predicts exactly what the trained one did, on the same symbols as the MLP
    test_tr = channel.simulate(load_train_config_link(path).with_launch_power(0.0).with_seed(6), cache_dir=cache,
                               progress=False, dbp=False)
    y, centres = eq.predict_transmission(test_tr)
    mlp = load_equalizer(out / "models" / "MLP@+0p00dBm")
    assert np.array_equal(centres, mlp.predict_transmission(test_tr)[1])
    ev = json.loads((out / "results.json").read_text())["evaluations"][0]
    assert ev["metrics"]["SeqCNN"]["snr_db"] == rows["SeqCNN"]["snr_db"]
    from eqnn.training import evaluate
    again = evaluate(eq, test_tr, references=False).metrics["SeqCNN"]
    assert again.snr_db == pytest.approx(rows["SeqCNN"]["snr_db"], abs=1e-9)
    # the windowed model's results do not depend on a sequence model next to it
    alone = tmp_path / "alone.toml"
    alone.write_text('name = "tiny"\npowers_dbm = [0.0]\ndbp = false\n' + TINY_TRAINING)
    only = run_training(alone, tmp_path / "out2", cache_dir=cache, progress=False)
    assert [r for r in only["rows"] if r["method"] != "SeqCNN"] == [r for r in result["rows"]
                                                                    if r["method"] != "SeqCNN"]


def test_eqnn_compress_takes_a_sequence_model(tmp_path):
    from eqnn.studies.compress_cli import compress_saved_equalizer
    from eqnn.studies.compression_config import CompressionSearchConfig

    path = tmp_path / "study.toml"
    path.write_text('name = "tiny"\npowers_dbm = [0.0]\ndbp = false\n'
                    + TINY_TRAINING.split("[[models]]")[0] + SEQUENCE_MODEL)
    out, cache = tmp_path / "out", tmp_path / "cache"
    run_training(path, out, cache_dir=cache, progress=False)
    eq = load_equalizer(out / "models" / "SeqCNN@+0p00dBm")
    config = CompressionSearchConfig(n_calls=2, n_initial_points=2, sparsity=(0.2, 0.6), pruning_methods=("magnitude",),
                                     clusters=None, weight_bits=(4, 8), fine_tune_epochs=1, fine_tune_batch_size=4,
                                     fine_tune_windows=640)
    assert len(config.fine_tune(eq.training_set([channel.simulate(
        channel.LinkConfig.from_dict(eq.info["train_links"][0]), cache_dir=cache, progress=False, dbp=False)]))
        .x) == 10  # at most 640 targets: 10 blocks of 64
    study = compress_saved_equalizer(out / "models" / "SeqCNN@+0p00dBm", config, tmp_path / "c", cache_dir=cache,
                                     dbp=False, progress=False)
    assert study.uncompressed["rmps"] == pytest.approx(eq.complexity().rmps)
    assert study.best is not None and not any(e.metrics.get("failed") for e in study.search.evaluations)
    best = load_equalizer(study.best["model_folder"])
    assert best.blocks == eq.blocks
    assert study.best["rmps"] == pytest.approx(model_complexity(
        best.model, best.weight_bits, best.activation_bits, **complexity_arguments(best.model_config, 2)).rmps)
    assert study.best["rmps"] < study.uncompressed["rmps"]


def load_train_config_link(path):
    from eqnn.training import load_train_config
    return load_train_config(path).scenario
