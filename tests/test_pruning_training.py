"""Pruning while training: lottery_ticket (IMP with weight / learning-rate rewinding), one_cycle, gradual_structured.

Tiny models (the MLP and the Conv1D-LSTM-Bidirectional(LSTM) model of test_compress.py), 128 windows, batches of 64:
the tests check the mechanics (what is rewound, what stays zero, the schedule, the unit counts, equal outputs),
not accuracy.
"""

import numpy as np
import pytest
import tf_keras as keras

from channel import ConfigError
from eqnn import compress as C
from eqnn.compression.pruning import gradual_structured, lottery_ticket, masks, one_cycle
from eqnn.compression.pruning.structured import remove_units, unit_masks
from eqnn.studies.compression_config import CompressionSearchConfig

L = keras.layers
WINDOW, FEATURES, N = 11, 4, 128
NEW = ("lottery_ticket", "one_cycle", "gradual_structured")


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, WINDOW, FEATURES)).astype("float32")
    y = np.stack([x[:, WINDOW // 2, 0] + 0.1 * x[:, WINDOW // 2 - 1, 1], x[:, WINDOW // 2, 1]], axis=1)
    return x, y.astype("float32")


def ft(data, epochs=2, seed=1):
    return C.FineTune(data[0], data[1], epochs=epochs, batch_size=64, learning_rate=1e-2, seed=seed)


def build(kind: str) -> keras.Model:
    keras.utils.set_random_seed(7)
    if kind == "mlp":
        return keras.Sequential([keras.Input((WINDOW, FEATURES)), L.Flatten(name="flat"),
                                 L.Dense(12, activation="relu", name="h1"), L.Dense(8, activation="tanh", name="h2"),
                                 L.Dense(2, name="out")], name=kind)
    inp = keras.Input((WINDOW, FEATURES))
    h = L.Conv1D(6, 3, activation="relu", name="conv")(inp)
    h = L.LSTM(4, return_sequences=True, name="lstm")(h)
    h = L.Bidirectional(L.LSTM(4), name="bi")(h)
    return keras.Model(inp, L.Dense(2, name="out")(h), name=kind)


@pytest.fixture(scope="module")
def mlp():
    return build("mlp")


def kernel_keys(model):
    return {key for layer in model.layers for key, _ in C.kernel_entries(layer)}


# ------------------------------------------------------------------------------------------------ lottery ticket

def test_weight_rewinding_restores_the_saved_early_weights_and_keeps_the_mask(mlp, data):
    """rewind_at = 0 saves the fresh initialization itself (drawn again here from the same seed): every rewind
    sets the survivors (and all biases) to exactly those values and the pruned weights to zero; the masks are
    nested, reach (1 - s)^(r/R) per round, and the pruned weights are still exactly zero after retraining."""
    tune = ft(data, epochs=3)
    keras.utils.set_random_seed(tune.seed)
    init = masks.fresh_copy(mlp).get_weights()
    options = lottery_ticket.check_options({"rewind": "weights", "rounds": 2, "rewind_at": 0.0}, tune.epochs)
    seen = []

    def probe(model, saved, round_masks):
        seen.append(round_masks)
        for a, b in zip(saved, init):
            np.testing.assert_array_equal(a, b)
        kernels = {var.ref(): key for layer in model.layers for key, var in C.kernel_entries(layer)}
        for var, saved_w in zip(model.weights, saved):  # model.weights is the order of get_weights()
            key = kernels.get(var.ref())
            expected = saved_w if key not in round_masks else np.where(round_masks[key], saved_w, 0.0)
            np.testing.assert_array_equal(var.numpy(), expected)

    keras.utils.set_random_seed(tune.seed)
    targets = {"h1": 0.75, "h2": 0.5, "out": 0.0}
    pruned, info = lottery_ticket.lottery_ticket(mlp, targets, tune, options, on_rewind=probe)
    assert len(seen) == 2 and info["rewind_step"] == 0 and info["epochs_trained"] == 3
    for r, round_masks in enumerate(seen, start=1):
        for key, mask in round_masks.items():
            layer = key.split("/")[0]
            expected = max(int(round(mask.size * (1 - lottery_ticket.round_sparsity(targets[layer], r, 2)))), 1)
            assert np.count_nonzero(mask) == expected, (r, key)
    first, last = seen
    for key in last:
        assert not np.any(last[key] & ~first[key]), key  # nested: nothing revived
    weights = {key: var.numpy() for layer in pruned.layers for key, var in C.kernel_entries(layer)}
    for key, mask in last.items():
        assert np.all(weights[key][~mask] == 0.0), key
        assert np.count_nonzero(weights[key]) == np.count_nonzero(mask), key  # survivors trained, not zero
    assert np.mean(weights["h1/kernel"] == 0) == 0.75 and np.mean(weights["h2/kernel"] == 0) == 0.5


def test_learning_rate_rewinding_prunes_the_trained_model_within_the_budget(mlp, data):
    tune = ft(data, epochs=2)
    pruned = C.prune(mlp, 0.8, method="lottery_ticket", fine_tune=tune, options={"rewind": "learning_rate"})
    info = C.compression_info(pruned)["steps"][-1]
    assert info["rewind"] == "learning_rate" and info["phase_epochs"] == [1, 1] and info["epochs_trained"] == 2
    for key, w in C.kernel_weights(pruned).items():
        assert np.count_nonzero(w) == max(int(round(w.size * 0.2)), 1), key
    assert all(np.isfinite(v).all() for v in C.kernel_weights(pruned).values())
    # each round restarts at the fine-tuning rate and decays linearly to zero over its 2 steps
    assert info["learning_rate"] == [pytest.approx([1e-2, 5e-3, 0.0])] * 2


# ------------------------------------------------------------------------------------------------ one cycle

def test_one_cycle_schedule_is_monotone_and_ends_exactly_at_the_target():
    u = np.linspace(0.0, 1.0, 1001)
    for alpha, beta in ((14.0, 5.0), (5.0, 2.0), (30.0, 10.0)):
        s = one_cycle.one_cycle_sparsity(u, 0.9, alpha, beta)
        assert s[0] == 0.0 and s[-1] == 0.9 and np.all(s <= 0.9) and np.all(np.diff(s) >= 0.0)
        assert 0.1 < s[500] < 0.9  # an S-curve, not a step
    # the kept count of a tensor never rises and reaches TFMOT's count at the last step
    rng = np.random.default_rng(3)
    w = rng.normal(size=(40, 10))
    alive, counts = np.ones(w.shape, bool), []
    for pos in np.linspace(0, 1, 23):
        new = masks.nested_topk(w + rng.normal(scale=0.1, size=w.shape), alive, one_cycle.one_cycle_sparsity(pos, 0.9))
        assert not np.any(new & ~alive)
        alive = new
        counts.append(int(alive.sum()))
    assert counts[0] == 400 and counts[-1] == 40 and np.all(np.diff(counts) <= 0)


def test_one_cycle_trains_from_scratch_to_the_target(mlp, data):
    tune = ft(data, epochs=2)
    pruned = C.prune(mlp, 0.9, method="one_cycle", fine_tune=tune, per_layer={"out": 0.5})
    info = C.compression_info(pruned)["steps"][-1]
    assert info["from_scratch"] and info["steps"] == 4 and info["epochs_trained"] == 2
    assert info["schedule_fraction_at"]["first"] == 0.0 and info["schedule_fraction_at"]["last"] == 1.0
    for key, w in C.kernel_weights(pruned).items():  # TFMOT's count for the target
        target = 0.5 if key == "out/kernel" else 0.9
        assert np.count_nonzero(w) == max(int(round(w.size * (1 - target))), 1), key
    # not a pruned copy of the trained weights: a fresh initialization was trained
    assert not np.allclose(pruned.get_layer("out").get_weights()[1], mlp.get_layer("out").get_weights()[1])


# ------------------------------------------------------------------------------------------------ gradual units

def test_masked_units_removed_give_the_same_outputs():
    """Conv1D filters, LSTM units and Bidirectional(LSTM) units (per direction): zeroing what unit_masks marks
    (the units' own weights, their recurrent rows and columns, the next layer's weights that read them) gives the
    outputs of the smaller model (no training: the RNN graphs are slow to trace)."""
    from eqnn.compression.pruning.structured import _chain_layers, _choose_keeps

    model = build("rnn")
    names = C.PRUNING_METHODS["gradual_structured"].prunable(model)
    assert names == ["conv", "lstm", "bi"]
    layers = _chain_layers(model)
    keeps = _choose_keeps(layers, {layer.name: layer.get_weights() for layer in layers},
                          {"conv": 3, "lstm": 2, "bi": 2}, "outgoing")
    masked = C.copy_model(model)
    all_masks = unit_masks(model, keeps)
    assert sorted(all_masks) == ["bi", "conv", "lstm", "out"]  # "out" reads the removed "bi" units
    for name, layer_masks in all_masks.items():
        layer = masked.get_layer(name)
        assert all(m.shape == w.shape for w, m in zip(layer.get_weights(), layer_masks)), name
        assert not layer_masks[0].all(), name  # every kernel loses entries (out's bias keeps all of its own)
        layer.set_weights([np.where(m, w, 0.0) for w, m in zip(layer.get_weights(), layer_masks)])
    smaller = remove_units(masked, keeps)
    assert [C.units_of(smaller.get_layer(n)) for n in names] == [3, 2, 2]
    x = np.random.default_rng(1).normal(size=(4, WINDOW, FEATURES)).astype("float32")
    np.testing.assert_allclose(smaller(x).numpy(), masked(x).numpy(), rtol=1e-5, atol=1e-6)


def test_gradual_structured_trains_the_masked_model_then_removes_units(mlp, data):
    tune = ft(data, epochs=1)
    targets = {"h1": 0.5, "h2": 0.5}
    options = gradual_structured.check_options({}, tune.epochs)
    keras.utils.set_random_seed(tune.seed)
    masked, keeps, info = gradual_structured.train_unit_masks(mlp, targets, tune, "polynomial", options)
    assert [u["fraction"] for u in info["updates_done"]] == [0.755859375, 1.0]  # 2 steps: 8 updates collapse to 2
    smaller = remove_units(masked, keeps)
    assert C.units_of(smaller.get_layer("h1")) == 6 and C.units_of(smaller.get_layer("h2")) == 4
    for layer in masked.layers:
        for w, m in zip(layer.get_weights(), unit_masks(masked, keeps).get(layer.name, [])):
            assert np.all(w[~m] == 0.0), layer.name
    np.testing.assert_allclose(smaller(data[0]).numpy(), masked(data[0]).numpy(), rtol=1e-5, atol=1e-6)
    assert not np.allclose(masked.get_layer("out").get_weights()[1], mlp.get_layer("out").get_weights()[1])


def test_gradual_structured_through_prune(mlp, data):
    pruned = C.prune(mlp, 0.5, method="gradual_structured", fine_tune=ft(data, epochs=1), schedule="constant")
    step = C.compression_info(pruned)["steps"][-1]
    assert isinstance(pruned, keras.Sequential) and [u["step"] for u in step["updates_done"]] == [0]
    assert step["units"] == {"h1": [12, 6], "h2": [8, 4]} and step["max_abs_difference_to_masked"] < 1e-5
    assert pruned.get_layer("h1").get_weights()[0].shape == (WINDOW * FEATURES, 6)


# ------------------------------------------------------------------------------------------------ bad settings

@pytest.mark.parametrize("method, sparsity, options, epochs, match", [
    ("lottery_ticket", 1.0, {}, 2, r"sparsity = 1\.0"),
    ("one_cycle", -0.1, {}, 2, r"sparsity = -0\.1"),
    ("lottery_ticket", 0.5, {"rewind": "init"}, 2, r"lottery_ticket\.rewind = 'init'.*'weights', 'learning_rate'"),
    ("lottery_ticket", 0.5, {"rounds": 0}, 2, r"lottery_ticket\.rounds = 0 is out of range"),
    ("lottery_ticket", 0.5, {"rewind_at": 1.0}, 2, r"lottery_ticket\.rewind_at = 1\.0"),
    ("lottery_ticket", 0.5, {"rewind": "weights", "rounds": 2}, 2, r"epochs = 2 is fewer than its 3 training"),
    ("lottery_ticket", 0.5, {"round": 2}, 2, r"unknown option\(s\) \['round'\]"),
    ("one_cycle", 0.5, {"alpha": 0}, 2, r"one_cycle\.alpha = 0"),
    ("one_cycle", 0.5, {"learning_rate": "cosine"}, 2, r"one_cycle\.learning_rate = 'cosine'"),
    ("gradual_structured", 0.5, {"updates": 0}, 2, r"gradual_structured\.updates = 0"),
    ("gradual_structured", 0.5, {"criterion": "random"}, 2, r"gradual_structured\.criterion = 'random'"),
    ("one_cycle", 0.5, {}, None, r"needs fine_tune"),
])
def test_bad_settings_fail_in_one_line_before_any_training(monkeypatch, mlp, data, method, sparsity, options, epochs,
                                                           match):
    for module in (lottery_ticket, one_cycle, gradual_structured):
        monkeypatch.setattr(module, "_fit", lambda *a, **k: pytest.fail("trained despite bad settings"))
    tune = None if epochs is None else ft(data, epochs=epochs)
    with pytest.raises(ValueError, match=match) as err:
        C.prune(mlp, sparsity, method=method, fine_tune=tune, options=options)
    assert "\n" not in str(err.value)
    if sparsity == 0.5:  # the pipeline refuses it too, before measuring the uncompressed model
        with pytest.raises(ValueError, match=match):
            config = C.CompressionConfig(prune_method=method, sparsity=sparsity, prune_options=options)
            C.compress(mlp, config, tune, evaluate=lambda m: pytest.fail("evaluated despite bad settings"))


@pytest.mark.parametrize("table, match", [
    ({"pruning_methods": ["lottery_ticket"], "prune_options": {"lottery_ticket": {"rewind": "init"}}},
     r"^compression\.prune_options\.lottery_ticket\.rewind = 'init': allowed values are 'weights', 'learning_rate'$"),
    ({"pruning_methods": ["lottery_ticket"], "prune_options": {"lottery_ticket": {"rounds": 0}}},
     r"^compression\.prune_options\.lottery_ticket\.rounds = 0 is out of range"),
    ({"pruning_methods": ["lottery_ticket"], "fine_tune_epochs": 2,
      "prune_options": {"lottery_ticket": {"rewind": "weights", "rounds": 2}}},
     r"^compression\.prune_options\.lottery_ticket: .*epochs = 2 is fewer than its 3"),
    ({"pruning_methods": ["magnitude"], "prune_options": {"one_cycle": {}}},
     r"^compression\.prune_options\.one_cycle: not one of compression\.pruning_methods"),
    ({"pruning_methods": ["one_cycle", "magnitude"], "fine_tune_epochs": 0},
     r"^compression\.pruning_methods \['one_cycle'\] prune while training: they need compression\.fine_tune_epochs"),
])
def test_compression_table_rejects_bad_options(table, match):
    with pytest.raises(ConfigError, match=match):
        CompressionSearchConfig.from_dict(table)


def test_search_dimension_and_options_reach_the_pipeline(mlp):
    config = CompressionSearchConfig.from_dict({
        "pruning_methods": ["magnitude", *NEW], "clusters": False, "weight_bits": False,
        "prune_options": {"lottery_ticket": {"rewind": "weights", "rounds": 1}}})
    choices = [d for d in config.search_space(mlp) if d.name == "pruning_method"][0]
    assert set(NEW) <= set(choices.choices)
    cc = config.compression_config({"sparsity": 0.5, "pruning_method": "lottery_ticket"}, mlp)
    assert dict(cc.prune_options) == {"rewind": "weights", "rounds": 1, "rewind_at": 0.1}
    assert config.compression_config({"sparsity": 0.5, "pruning_method": "one_cycle"}, mlp).prune_options is None
    assert config.to_dict()["prune_options"]["lottery_ticket"]["rewind"] == "weights"
    assert "prune_options" not in CompressionSearchConfig().to_dict()  # earlier study folders still match


def test_options_from_a_toml_table(tmp_path):
    from eqnn.studies.compression_config import load_compression_config

    path = tmp_path / "c.toml"
    path.write_text('[compression]\npruning_methods = ["lottery_ticket", "one_cycle"]\nfine_tune_epochs = 3\n'
                    '[compression.prune_options.lottery_ticket]\nrewind = "weights"\nrounds = 2\n'
                    '[compression.prune_options.one_cycle]\nlearning_rate = "constant"\n')
    config = load_compression_config(path)
    assert config.prune_options == {"lottery_ticket": {"rewind": "weights", "rounds": 2, "rewind_at": 0.1},
                                    "one_cycle": {"alpha": 14.0, "beta": 5.0, "learning_rate": "constant"}}
    path.write_text(path.read_text().replace("fine_tune_epochs = 3", "fine_tune_epochs = 2"))
    with pytest.raises(ConfigError, match=r"prune_options\.lottery_ticket: .*epochs = 2 is fewer than its 3"):
        load_compression_config(path)
