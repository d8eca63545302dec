"""Structured sparsity of LSTM gates: constant gates in the complexity count and its reference inference, and the
"gates" pruning method (weights, gate pre-activations, neurons; group lasso fine-tuning)."""

import numpy as np
import pytest
import tf_keras as keras

import eqnn  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)
from eqnn import complexity as cx
from eqnn import compress
from eqnn.complexity.counting import ceil_log2
from eqnn.compression.pruning.gates import _penalty, group_norms, zero_groups
from eqnn.layers.recurrent import constant_gate_values

T, F, H = 4, 2, 3  # window, input features, LSTM units


def _lstm_model(seed=0, bidirectional=False, unroll=False):
    keras.utils.set_random_seed(seed)
    rnn = keras.layers.LSTM(H, return_sequences=True, unroll=unroll)
    layers = [keras.Input((T, F)), keras.layers.Bidirectional(rnn) if bidirectional else rnn,
              keras.layers.Flatten(), keras.layers.Dense(2)]
    return keras.Sequential(layers)


def _window(seed=1):
    return np.random.default_rng(seed).normal(size=(T, F)).astype(np.float32)


def _set_gate(model, gate, unit, bias=None):
    """Zero the pre-activation weights of gate ``gate`` (0..3: i, f, c, o) of ``unit``; optionally set its bias."""
    cell = model.layers[0].cell
    col = gate * H + unit
    for var in (cell.kernel, cell.recurrent_kernel):
        w = var.numpy()
        w[:, col] = 0.0
        var.assign(w)
    if bias is not None:
        b = cell.bias.numpy()
        b[col] = bias
        cell.bias.assign(b)


def _reference_equals_formula(model, weight_bits=None, activation_bits=None):
    window = _window()
    ref = cx.count_multiplications_reference(model, window)
    np.testing.assert_allclose(ref.output, np.asarray(model(window[None]))[0], rtol=1e-5, atol=1e-5)
    mc = cx.model_complexity(model, weight_bits, activation_bits, symbols_per_window=1)
    assert (ref.multiplications, ref.additions, ref.activations) == (
        mc.multiplications_per_window, mc.additions_per_window, mc.activations_per_window)
    return mc


def test_a_gate_with_zero_weights_is_constant_and_the_count_drops_by_its_cost():
    model = _lstm_model()
    before = _reference_equals_formula(model, 6, 8)
    _set_gate(model, gate=1, unit=1)  # forget gate of unit 1
    values = constant_gate_values(model.layers[0])
    assert np.isfinite(values[1, 1]) and np.isnan(values).sum() == 4 * H - 1
    assert values[1, 1] == pytest.approx(1 / (1 + np.exp(-model.layers[0].cell.bias.numpy()[H + 1])))
    # the gate is the constant whatever the input: the pre-activation column is the bias for any x and h
    cell = model.layers[0].cell
    rng = np.random.default_rng(0)
    z = rng.normal(size=(7, F)) @ cell.kernel.numpy() + rng.normal(size=(7, H)) @ cell.recurrent_kernel.numpy()
    assert np.all(z[:, H + 1] == 0.0)
    after = _reference_equals_formula(model, 6, 8)  # reference (constant substituted) == keras output
    inputs = F + H
    assert before.multiplications_per_window - after.multiplications_per_window == T * inputs
    assert before.additions_per_window - after.additions_per_window == T * inputs  # n_i + n_h + bias terms -> 1
    assert before.activations_per_window - after.activations_per_window == T
    bw, ba = 6, 8
    saved_bop = T * (inputs * bw * ba + inputs * (bw + ba + ceil_log2(inputs + 1)) + ba * ba - bw * ba)
    assert before.bop_per_window - after.bop_per_window == saved_bop


def test_constant_gates_exactly_zero_or_one_fold_their_products():
    model = _lstm_model(1)
    before = _reference_equals_formula(model)
    _set_gate(model, gate=3, unit=0, bias=40.0)    # o = 1 exactly: h = tanh(c), no product
    _set_gate(model, gate=1, unit=2, bias=-800.0)  # f = 0 exactly: c = i g, no product, no addition
    values = constant_gate_values(model.layers[0])
    assert values[3, 0] == 1.0 and values[1, 2] == 0.0
    after = _reference_equals_formula(model)
    inputs = F + H
    assert before.multiplications_per_window - after.multiplications_per_window == T * (2 * inputs + 2)
    # o's column had n_i + n_h terms (zero bias), f's n_i + n_h + 1 (forget bias 1), the cell update 2
    assert before.additions_per_window - after.additions_per_window == T * ((inputs - 1) + inputs + 1)
    assert before.activations_per_window - after.activations_per_window == 2 * T


def test_a_unit_whose_input_and_candidate_gates_are_constant_has_a_constant_product():
    model = _lstm_model(2)
    before = _reference_equals_formula(model)
    _set_gate(model, gate=0, unit=1)
    _set_gate(model, gate=2, unit=1)
    after = _reference_equals_formula(model)
    assert before.multiplications_per_window - after.multiplications_per_window == T * (2 * (F + H) + 1)
    assert before.activations_per_window - after.activations_per_window == 2 * T


@pytest.mark.parametrize("level", ["weights", "gates", "neurons"])
def test_group_norms_and_zeroing_agree(level):
    rng = np.random.default_rng(0)
    W, U = rng.normal(size=(F, 4 * H)), rng.normal(size=(H, 4 * H))
    norms = group_norms(W, U, level)
    assert norms.size == {"weights": (F + H) * 4 * H, "gates": 4 * H, "neurons": H}[level]
    for g in range(norms.size):
        W0, U0 = zero_groups(W, U, level, [g])
        removed = np.sum(W ** 2) + np.sum(U ** 2) - np.sum(W0 ** 2) - np.sum(U0 ** 2)
        assert removed == pytest.approx(norms[g] ** 2)
    if level == "neurons":
        W0, U0 = zero_groups(W, U, level, [1])
        assert not np.any(W0[:, [1, H + 1, 2 * H + 1, 3 * H + 1]]) and not np.any(U0[1])


@pytest.mark.parametrize("bidirectional", [False, True])
def test_one_shot_gate_pruning_makes_constant_gates_counted_by_complexity(bidirectional):
    model = _lstm_model(3, bidirectional)
    original = [w.copy() for w in model.get_weights()]
    pruned = compress.prune(model, 0.5, method="gates")
    for a, b in zip(original, model.get_weights()):
        np.testing.assert_array_equal(a, b)  # the source model is unchanged
    name = model.layers[0].name
    info = compress.compression_info(pruned)["steps"][-1]
    directions = 2 if bidirectional else 1
    assert info["constant_gates"][name] == directions * round(0.5 * 4 * H)
    rnns = [pruned.layers[0].forward_layer, pruned.layers[0].backward_layer] if bidirectional else [pruned.layers[0]]
    for rnn in rnns:
        assert np.sum(np.isfinite(constant_gate_values(rnn))) == round(0.5 * 4 * H)
    _reference_equals_formula(pruned, 6, 8)
    dense = cx.model_complexity(model, symbols_per_window=1)
    sparse = cx.model_complexity(pruned, symbols_per_window=1)
    assert sparse.activations_per_window == dense.activations_per_window - directions * 6 * T


def test_neuron_level_zeroes_whole_units():
    model = _lstm_model(4)
    pruned = compress.prune(model, 0.34, method="gates", options={"level": "neurons"})
    values = constant_gate_values(pruned.layers[0])
    dead = np.all(np.isfinite(values), axis=0)
    assert dead.sum() == 1
    assert not np.any(pruned.layers[0].cell.recurrent_kernel.numpy()[dead])
    _reference_equals_formula(pruned)


@pytest.mark.parametrize("level", ["weights", "gates", "neurons"])
def test_the_training_penalty_is_the_sum_of_the_group_norms(level):
    cell = _lstm_model(6).layers[0].cell
    expected = group_norms(cell.kernel.numpy(), cell.recurrent_kernel.numpy(), level).sum()
    assert float(_penalty(cell, level)) == pytest.approx(expected, rel=1e-5)


def test_group_lasso_fine_tuning_then_pruned_groups_stay_zero():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, T, F)).astype(np.float32)
    y = rng.normal(size=(64, 2)).astype(np.float32) * 0.1
    model = _lstm_model(5, unroll=True)  # unrolled over the 4 steps: a training graph traced in a fraction of the time
    ft = compress.FineTune(x, y, epochs=2, batch_size=64, learning_rate=1e-2, seed=0)
    pruned = compress.prune(model, 0.5, method="gates", fine_tune=ft, options={"penalty": 0.05})
    info = compress.compression_info(pruned)["steps"][-1]
    assert info["lasso_epochs"] == 1 and len(info["history"]) == 2 and info["penalty"] == 0.05
    # the first epoch's loss holds the penalty: above the plain MSE of the second, masked epoch by far
    assert info["history"][0]["loss"][0] > 0.05 * 0.5 * group_norms(
        model.layers[0].cell.kernel.numpy(), model.layers[0].cell.recurrent_kernel.numpy(), "gates").sum()
    assert not hasattr(pruned, "losses") or not pruned.losses  # the returned model carries no penalty
    assert np.sum(np.isfinite(constant_gate_values(pruned.layers[0]))) == 2 * H  # still zero after the 2nd epoch


def test_bad_gate_settings_are_rejected_with_one_line_errors():
    model = _lstm_model()
    for options, message in (({"level": "cells"}, "gates.level = 'cells'"), ({"penalty": -1.0}, "penalty = -1.0"),
                             ({"criterion": "incoming"}, r"gates: unknown option\(s\) \['criterion'\]: allowed level, "
                                                         "penalty")):
        with pytest.raises(ValueError, match=message) as err:
            compress.prune(model, 0.5, method="gates", options=options)
        assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="global"):
        compress.prune(model, 0.5, method="gates", scope="global")
    mlp = keras.Sequential([keras.Input((T, F)), keras.layers.Flatten(), keras.layers.Dense(2)])
    assert "gates" in compress.PRUNING_METHODS
    with pytest.raises(ValueError, match="no layer that method 'gates' can prune"):
        compress.prune(mlp, 0.5, method="gates")


def test_gates_options_come_from_the_compression_table():
    from channel import ConfigError
    from eqnn.studies.compression_config import CompressionSearchConfig

    config = CompressionSearchConfig(pruning_methods=["gates"], prune_options={"gates": {"level": "neurons"}})
    assert config.prune_options["gates"]["level"] == "neurons"
    with pytest.raises(ConfigError, match=r"^compression.prune_options.gates.level = 'rows': allowed values are "
                                         r"'weights', 'gates', 'neurons'$"):
        CompressionSearchConfig(pruning_methods=["gates"], prune_options={"gates": {"level": "rows"}})
