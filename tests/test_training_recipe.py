"""Training recipe options of eqnn.training (TrainingConfig: lr_schedule, warmup_epochs, weight_decay, jit_compile,
steps_per_execution) and the tf.data pipeline of fit: validation errors, reproducibility, each schedule, weight
decay, sets that are not WindowSets. Tiny synthetic problems."""

import types

import numpy as np
import pytest
import tf_keras as keras

from channel import ConfigError
from eqnn.data import DataConfig
from eqnn.models import MLPConfig, build_model
from eqnn.training import TrainingConfig, fit, train_model
from eqnn.training.fitting import lr_at_epoch, make_dataset


@pytest.fixture(scope="module")
def toy():
    """A linear map of 5 x 4 windows to 2 outputs plus noise, as a one-block WindowSet-like set."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((600, 5, 4)).astype(np.float32)
    w = rng.standard_normal((20, 2)).astype(np.float32) / 4
    y = (x.reshape(600, -1) @ w + 0.05 * rng.standard_normal((600, 2))).astype(np.float32)
    return types.SimpleNamespace(x=x, y=y, block=np.zeros(600, dtype=np.int64), input_shape=(5, 4), n_outputs=2)


@pytest.mark.parametrize("kwargs, match", [
    ({"lr_schedule": "step"}, r"training.lr_schedule = 'step': allowed values are 'plateau', 'cosine', 'constant'"),
    ({"lr_schedule": "cosine", "lr_patience": 4}, r"training.lr_patience = 4 with training.lr_schedule = 'cosine'"),
    ({"epochs": 5, "warmup_epochs": 5}, r"training.warmup_epochs = 5 is out of range: allowed integers in \[0, 4\]"),
    ({"warmup_epochs": -1}, r"training.warmup_epochs = -1 is out of range"),
    ({"weight_decay": 1.0}, r"training.weight_decay = 1.0 is out of range: allowed \[0, 1\)"),
    ({"weight_decay": -1e-4}, r"training.weight_decay = -0.0001 is out of range"),
    ({"jit_compile": "yes"}, r"training.jit_compile = 'yes'"),
    ({"steps_per_execution": 0}, r"training.steps_per_execution = 0 is out of range"),
])
def test_recipe_options_are_validated(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        TrainingConfig(**kwargs)


def test_defaults_keep_the_previous_recipe():
    cfg = TrainingConfig()
    assert (cfg.lr_schedule, cfg.warmup_epochs, cfg.weight_decay, cfg.steps_per_execution) == ("plateau", 0, 0.0, 1)
    assert cfg.jit_compile is False


def test_lr_at_epoch():
    cos = TrainingConfig(epochs=12, learning_rate=1e-2, min_learning_rate=1e-4, lr_schedule="cosine",
                         warmup_epochs=1)
    assert lr_at_epoch(cos, 0) == pytest.approx(5e-3)  # warm-up: (0 + 1) / (1 + 1)
    assert lr_at_epoch(cos, 1) == pytest.approx(1e-2)  # the schedule starts at the full rate
    assert lr_at_epoch(cos, 6) == pytest.approx(1e-4 + (1e-2 - 1e-4) / 2)
    assert lr_at_epoch(cos, 11) == pytest.approx(1e-4)
    plateau = TrainingConfig(warmup_epochs=2, learning_rate=3e-3)
    assert [lr_at_epoch(plateau, e, current=1e-3) for e in range(4)] == pytest.approx([1e-3, 2e-3, 3e-3, 1e-3])
    assert lr_at_epoch(TrainingConfig(lr_schedule="constant"), 7, current=1e-3) == pytest.approx(1e-3)


def _train(toy, **kwargs):
    config = TrainingConfig(**{"epochs": 3, "batch_size": 64, "validation_split": 0.1, "seed": 5, **kwargs})
    keras.utils.set_random_seed(config.seed)
    model = build_model(MLPConfig(units=(8,)), toy.input_shape, toy.n_outputs)
    summary = fit(model, toy, config, progress=False)
    return model, summary


@pytest.mark.parametrize("kwargs", [
    {"lr_schedule": "plateau", "lr_patience": 1}, {"lr_schedule": "cosine", "warmup_epochs": 1},
    {"lr_schedule": "constant"}, {"steps_per_execution": 4}, {"jit_compile": True},
], ids=lambda k: "-".join(f"{a}={b}" for a, b in k.items()))
def test_each_recipe_trains_and_is_reproducible(toy, kwargs):
    a, sa = _train(toy, **kwargs)
    b, sb = _train(toy, **kwargs)
    assert sa["epochs_run"] == 3 and np.isfinite(sa["best_loss"])
    assert sa["history"]["val_loss"][-1] < sa["history"]["val_loss"][0]
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    if kwargs.get("lr_schedule") == "cosine":
        assert float(a.optimizer.learning_rate) == pytest.approx(lr_at_epoch(TrainingConfig(
            epochs=3, lr_schedule="cosine", warmup_epochs=1), 2), rel=1e-6)


def test_weight_decay_shrinks_kernels(toy):
    plain, _ = _train(toy, learning_rate=1e-2)
    decayed, _ = _train(toy, learning_rate=1e-2, weight_decay=0.5)
    assert decayed.optimizer.__class__.__name__ == "AdamW"
    norm = [sum(float(np.sum(w.kernel.numpy() ** 2)) for w in m.layers if hasattr(w, "kernel"))
            for m in (plain, decayed)]
    assert norm[1] < 0.9 * norm[0]
    # the biases are not decayed: excluded by name
    assert any("bias" in n for n in decayed.optimizer._exclude_from_weight_decay_names)


def test_dataset_shuffles_every_epoch_with_the_seed():
    x = np.arange(10, dtype=np.float32).reshape(10, 1)
    orders = []
    for _ in range(2):
        ds = make_dataset(x, x, batch_size=10, shuffle=True, seed=7)
        orders.append([next(iter(ds))[0].numpy().ravel().tolist() for _ in range(2)])
    assert orders[0] == orders[1]                     # same seed, same sequence of orders
    assert orders[0][0] != orders[0][1]               # a new order each epoch
    assert sorted(orders[0][0]) == list(range(10))
    plain = make_dataset(x, x, batch_size=4)
    assert [b[0].numpy().ravel().tolist() for b in plain] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_fit_takes_sequence_blocks_without_block_index():
    """A many-to-many set (.x (n_blocks, L, 4), .y (n_blocks, L, 2), no .block) trains with a validation split."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((40, 16, 4)).astype(np.float32)
    blocks = types.SimpleNamespace(x=x, y=(x[..., :2] * 0.5).astype(np.float32))
    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 4))
    model = keras.Model(inputs, keras.layers.Conv1D(2, 3, padding="same")(inputs))
    summary = fit(model, blocks, TrainingConfig(epochs=2, batch_size=8, validation_split=0.1), progress=False)
    assert summary["n_validation_windows"] == 4 and summary["n_train_windows"] == 36


def test_train_model_records_the_recipe(toy):
    windows = types.SimpleNamespace(**vars(toy), taps=2, guard=0, normalization=None, launch_powers_dbm=[0.0],
                                    seeds=[1])
    eq = train_model(MLPConfig(units=(4,)), windows, TrainingConfig(epochs=1, weight_decay=1e-3,
                                                                    lr_schedule="cosine"), DataConfig(taps=2),
                     progress=False)
    assert eq.info["training"]["weight_decay"] == 1e-3 and eq.info["training"]["lr_schedule"] == "cosine"


def _study_table(training_override):
    return {"powers_dbm": [0.0], "training": {"batch_size": 1000, "epochs": 7},
            "models": [{"type": "mlp", "name": "a", "units": [4], **training_override},
                       {"type": "mlp", "name": "b", "units": [4]}]}


def test_per_model_training_overrides():
    from eqnn.training.config import TrainRunConfig
    config = TrainRunConfig.from_dict(_study_table({"training": {"batch_size": 64}}))
    assert config.training_for("a").batch_size == 64 and config.training_for("a").epochs == 7
    assert config.training_for("b") == config.training
    again = TrainRunConfig.from_dict(config.to_dict())          # the override survives a round trip
    assert again.training_for("a").batch_size == 64 and "training" not in again.to_dict()["models"][1]
    with pytest.raises(ConfigError, match=r"models\[0\]\.training: training\.batch_size = 0 is out of range"):
        TrainRunConfig.from_dict(_study_table({"training": {"batch_size": 0}}))
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['batchsize'\] in \[models\[0\]\.training\]"):
        TrainRunConfig.from_dict(_study_table({"training": {"batchsize": 3}}))
