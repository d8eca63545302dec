"""Tests of eqnn.complexity: formulas checked against a counting NumPy inference, hand counts, DSP formulas."""

import json
import math

import numpy as np
import pytest
import tf_keras as keras

import eqnn  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)
from channel.config import reference_config
from eqnn import complexity as cx

T, F = 5, 4  # window 2N+1 = 5 symbols, 4 features


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(3)


def _window(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def _check_against_reference(model, activation_multiplications=0, predict=False, **kwargs):
    """Reference output == keras output, reference counts == formula; returns (formula, reference).

    ``predict=True`` compares with ``model.predict``; otherwise with ``model(x, training=False)``, the same
    computation without predict's tracing (2-3 s per recurrent model).
    """
    window = _window(model.input_shape[1:])
    ref = cx.count_multiplications_reference(model, window, activation_multiplications)
    if predict:
        pred = model.predict(window[None], verbose=0)[0]
    else:
        pred = np.asarray(model(window[None], training=False))[0]
    np.testing.assert_allclose(ref.output, pred, rtol=1e-5, atol=1e-5)
    mc = cx.model_complexity(model, activation_multiplications=activation_multiplications, **kwargs)
    assert ref.multiplications == mc.multiplications_per_window
    assert ref.additions == mc.additions_per_window
    assert ref.activations == mc.activations_per_window
    assert mc.rmps == pytest.approx(mc.multiplications_per_window / mc.symbols_per_window)
    return mc, ref


def _mlp(units=(16, 8), n_out=2, activations=("tanh", "relu")):
    layers = [keras.Input((T, F)), keras.layers.Flatten()]
    layers += [keras.layers.Dense(u, activation=a) for u, a in zip(units, activations)]
    layers += [keras.layers.Dense(n_out)]
    return keras.Sequential(layers)


# --------------------------------------------------------------------------------------------- CSD, quantization


def _naf(n):
    digits = []
    while n:
        d = (2 - n % 4) if n % 2 else 0
        digits.append(d)
        n = (n - d) // 2
    return digits


def test_csd_digit_count_matches_non_adjacent_form():
    assert list(cx.csd_digit_count([0, 1, 3, 7, 11, 15, 23, -7])) == [0, 1, 2, 2, 3, 2, 3, 2]
    values = np.arange(0, 4096)
    counts = cx.csd_digit_count(values)
    for n, k in zip(values, counts):
        digits = _naf(int(n))
        assert sum(d * 2**i for i, d in enumerate(digits)) == n
        assert all(not (a and b) for a, b in zip(digits, digits[1:]))  # non-adjacent
        assert k == sum(d != 0 for d in digits) <= bin(n).count("1")


def test_quantize_to_integers_twos_complement_grid():
    # scale = max(0.5 / 7, 0.75 / 8) = 0.09375: -0.75 -> -8, 0.5 -> round(5.33) = 5
    assert list(cx.quantize_to_integers(np.array([0.5, -0.75, 0.0]), 4)) == [5, -8, 0]
    assert list(cx.quantize_to_integers(np.zeros(3), 8)) == [0, 0, 0]


def _on_grid(q, scale):
    """Weights as eqnn.compress.quantize_array stores them: float32(q) * float32(scale)."""
    return (q.astype(np.float32) * np.asarray(scale, np.float32)).astype(np.float32)


@pytest.mark.parametrize("bits", [3, 6, 8, 12, 16])
def test_quantized_weights_give_their_integers_back(bits):
    rng = np.random.default_rng(bits)
    hi = 2 ** (bits - 1) - 1
    q = rng.integers(-hi, hi + 1, size=(6, 5))
    q[0, 0] = hi  # the grid's extreme value is used, as after quantization
    w = _on_grid(q, 0.0123)
    np.testing.assert_array_equal(cx.quantize_to_integers(w, bits), q)
    # per-channel grids (one scale per index of the last axis) are recognized
    q[0, :] = hi
    scales = np.array([0.01, 0.2, 0.003, 1.5, 0.07])
    np.testing.assert_array_equal(cx.quantize_to_integers(_on_grid(q, scales), bits), q)


# --------------------------------------------------------------------------------------------- counting reference


def test_dense_mlp_counts_match_reference_and_paper():
    model = _mlp()
    zero_bias = cx.model_complexity(model)  # keras initializes biases to zero: n_i - 1 additions per output
    assert zero_bias.additions_per_window == 16 * (T * F - 1) + 8 * (16 - 1) + 2 * (8 - 1)
    weights = model.get_weights()
    for i in range(1, len(weights), 2):
        weights[i] = np.full_like(weights[i], 0.1)
    model.set_weights(weights)
    mc, ref = _check_against_reference(model, activation_multiplications=0, predict=True)
    assert mc.multiplications_per_window == T * F * 16 + 16 * 8 + 8 * 2  # n_i n_n per layer (Freire et al.)
    assert mc.additions_per_window == 16 * T * F + 8 * 16 + 2 * 8  # (n_i - 1) + 1 for the bias per output
    assert mc.activations_per_window == 16  # tanh only; ReLU is free
    assert mc.symbols_per_window == 1
    assert [layer.type for layer in mc.layers] == ["Flatten", "Dense", "Dense", "Dense"]
    assert mc.layers[0].rmps == 0
    # a cost per activation evaluation is charged on the tanh evaluations
    mc3, _ = _check_against_reference(model, activation_multiplications=3)
    assert mc3.multiplications_per_window == mc.multiplications_per_window + 3 * 16


def test_dense_on_sequences_and_free_layers():
    model = keras.Sequential([keras.Input((T, F)), keras.layers.Dense(3), keras.layers.Activation("sigmoid"),
                              keras.layers.Dropout(0.5), keras.layers.Reshape((T * 3,)), keras.layers.Dense(2)])
    mc, _ = _check_against_reference(model)
    assert mc.multiplications_per_window == T * F * 3 + T * 3 * 2  # Dense applied at each of the T positions
    assert mc.activations_per_window == T * 3
    assert [layer.rmps for layer in mc.layers[1:4]] == [0, 0, 0]


def test_leaky_relu_costs_one_constant_product_per_element():
    inp = keras.Input((T, F))
    x = keras.layers.Flatten()(inp)
    x = keras.layers.Dense(6)(x)
    x = keras.layers.LeakyReLU(alpha=0.25)(x)
    x = keras.layers.Dense(5, activation="leaky_relu")(x)
    x = keras.layers.ReLU()(x)
    out = keras.layers.Dense(2)(x)
    model = keras.Model(inp, out)
    mc, _ = _check_against_reference(model)
    assert [layer.multiplications_per_window for layer in mc.layers] == [0, 0, T * F * 6, 6, 6 * 5 + 5, 0, 5 * 2]
    assert mc.activations_per_window == 0
    nabs = cx.model_complexity(model, weight_bits=8).layers[3].nabs_per_window
    assert nabs == 6 * 1  # 0.25 is a single shift


def test_pruned_mlp_zero_weights_cost_nothing():
    model = _mlp()
    rng = np.random.default_rng(1)
    weights = model.get_weights()
    for i in range(0, len(weights), 2):
        weights[i] = np.where(rng.random(weights[i].shape) < 0.6, 0.0, weights[i]).astype(np.float32)
    weights[1][:5] = 0.5  # biases stay non-zero (default init would be zeros)
    weights[3][:] = 0.1
    weights[5][:] = [0.0, 0.2]  # one zero bias: no addition for it
    model.set_weights(weights)
    mc, _ = _check_against_reference(model, predict=True)
    kernels = weights[0::2]
    assert mc.multiplications_per_window == sum(int(np.count_nonzero(k)) for k in kernels)
    assert mc.n_nonzero == mc.multiplications_per_window
    assert mc.n_weights == sum(k.size for k in kernels)
    assert mc.multiplications_per_window < T * F * 16 + 16 * 8 + 8 * 2


def test_clustered_mlp_one_product_per_distinct_value_per_input():
    model = _mlp()
    rng = np.random.default_rng(2)
    centroids = np.array([-0.4, -0.1, 0.0, 0.15, 0.3], dtype=np.float32)  # 4 non-zero shared values and 0
    weights = model.get_weights()
    for i in range(0, len(weights), 2):
        weights[i] = rng.choice(centroids, size=weights[i].shape)
        weights[i + 1] = rng.normal(size=weights[i + 1].shape).astype(np.float32)
    model.set_weights(weights)
    mc, _ = _check_against_reference(model, predict=True)
    expected = sum(sum(len(set(row[row != 0])) for row in w) for w in weights[0::2])
    assert mc.multiplications_per_window == expected
    first = mc.layers[1]
    assert first.multiplications_per_window <= T * F * 4  # at most n_in * (number of non-zero clusters)
    assert first.n_distinct == 4
    assert mc.multiplications_per_window < sum(int(np.count_nonzero(w)) for w in weights[0::2])


def test_lstm_counts_match_reference_and_paper():
    n_h = 4
    model = keras.Sequential([keras.Input((T, F)), keras.layers.LSTM(n_h), keras.layers.Dense(2)])
    mc, ref = _check_against_reference(model, predict=True)
    assert mc.layers[0].multiplications_per_window == T * (4 * n_h * F + 4 * n_h**2 + 3 * n_h)
    assert mc.multiplications_per_window == T * n_h * (4 * F + 4 * n_h + 3) + 2 * n_h
    assert mc.activations_per_window == T * 5 * n_h  # 3 sigmoid gates + tanh(g) + tanh(c) per unit and step
    mc2, _ = _check_against_reference(model, activation_multiplications=2)
    assert mc2.multiplications_per_window == mc.multiplications_per_window + 2 * T * 5 * n_h


def test_pruned_and_clustered_lstm_return_sequences():
    n_h = 3
    model = keras.Sequential([keras.Input((T, F)), keras.layers.LSTM(n_h, return_sequences=True),
                              keras.layers.Flatten(), keras.layers.Dense(2)])
    rng = np.random.default_rng(4)
    kernel, recurrent, bias, dk, db = model.get_weights()
    kernel = rng.choice(np.array([-0.5, 0.0, 0.25, 0.5], np.float32), size=kernel.shape)
    recurrent = np.where(rng.random(recurrent.shape) < 0.5, 0, recurrent).astype(np.float32)
    model.set_weights([kernel, recurrent, bias, dk, db])
    mc, _ = _check_against_reference(model)
    per_step = sum(len(set(r[r != 0])) for r in kernel) + int(np.count_nonzero(recurrent)) + 3 * n_h
    assert mc.layers[0].multiplications_per_window == T * per_step


@pytest.mark.parametrize("merge_mode", ["concat", "sum"])
def test_bilstm_counts_match_reference(merge_mode):
    n_h = 3
    bilstm = keras.layers.Bidirectional(keras.layers.LSTM(n_h, return_sequences=True), merge_mode=merge_mode)
    model = keras.Sequential([keras.Input((T, F)), bilstm, keras.layers.Flatten(), keras.layers.Dense(4)])
    lstm = T * n_h * (4 * F + 4 * n_h + 3)
    # sum, mul and ave give the same shapes: one model (a recurrent model takes ~2 s to build) serves all three,
    # the eager call and both counts reading the layer's merge_mode
    modes = ["concat"] if merge_mode == "concat" else ["sum", "mul", "ave"]
    for mode in modes:
        bilstm.merge_mode = mode
        mc, _ = _check_against_reference(model)
        merge = {"concat": 0, "sum": 0, "mul": T * n_h, "ave": T * n_h}[mode]
        assert mc.layers[0].multiplications_per_window == 2 * lstm + merge
        assert mc.symbols_per_window == 2  # 4 real outputs: one symbol of each polarization
        assert mc.rmps == pytest.approx(mc.multiplications_per_window / 2)


def test_bilstm_many_to_one():
    model = keras.Sequential([keras.Input((T, F)), keras.layers.Bidirectional(keras.layers.LSTM(3)),
                              keras.layers.Dense(2)])
    mc, _ = _check_against_reference(model)
    assert mc.multiplications_per_window == 2 * T * 3 * (4 * F + 4 * 3 + 3) + 6 * 2


@pytest.mark.parametrize("padding,strides,dilation", [("valid", 1, 1), ("same", 1, 1), ("same", 2, 1),
                                                      ("causal", 1, 2), ("valid", 2, 1)])
def test_conv1d_counts_match_reference(padding, strides, dilation):
    k, filters = 3, 3
    conv = keras.layers.Conv1D(filters, k, padding=padding, strides=strides, dilation_rate=dilation,
                               activation="tanh")
    model = keras.Sequential([keras.Input((7, F)), conv, keras.layers.Flatten(), keras.layers.Dense(2)])
    mc, _ = _check_against_reference(model)
    out_len = model.layers[0].output_shape[1]
    assert mc.layers[0].multiplications_per_window == out_len * k * F * filters  # Freire et al. 2021
    assert mc.layers[0].activations_per_window == out_len * filters


def test_pruned_and_clustered_conv1d_functional_model():
    inp = keras.Input((7, F))
    x = keras.layers.Conv1D(3, 3, padding="same")(inp)
    x = keras.layers.Flatten()(x)
    out = keras.layers.Dense(2)(x)
    model = keras.Model(inp, out)
    rng = np.random.default_rng(5)
    kernel, bias, dk, db = model.get_weights()
    kernel = rng.choice(np.array([-0.3, 0.0, 0.2], np.float32), size=kernel.shape)
    model.set_weights([kernel, bias, dk, db])
    mc, _ = _check_against_reference(model)
    assert mc.layers[1].multiplications_per_window < 7 * 3 * F * 3
    assert [layer.type for layer in mc.layers] == ["InputLayer", "Conv1D", "Flatten", "Dense"]


# --------------------------------------------------------------------------------------------- BoP, NABS, sizes


def test_bop_and_nabs_by_hand():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, use_bias=False)])
    model.set_weights([np.array([[0.5], [-0.75]], np.float32)])
    mc = cx.model_complexity(model, weight_bits=4, activation_bits=8, symbols_per_window=1)
    # 4-bit grid (scale 0.09375): -0.75 -> -8 (1 CSD digit: a shift), 0.5 -> 5 = 4 + 1 (2 digits)
    assert mc.multiplications_per_window == 2 and mc.additions_per_window == 1
    assert mc.bop_per_window == 2 * 4 * 8 + 1 * (4 + 8 + 1)
    assert mc.nabs_per_window == (2 * 1 - 1) + (2 * 2 - 1) + 1
    assert mc.quantized and mc.weight_bits == 4
    unq = cx.model_complexity(model, symbols_per_window=1)
    assert not unq.quantized and unq.weight_bits == unq.activation_bits == 32
    assert unq.bop_per_window == 2 * 32 * 32 + (64 + 1)


def test_bop_decreases_with_bits():
    model = _mlp()
    b32 = cx.model_complexity(model)
    b8 = cx.model_complexity(model, weight_bits=8, activation_bits=8)
    b4 = cx.model_complexity(model, weight_bits=4, activation_bits=8)
    assert b32.rmps == b8.rmps == b4.rmps
    assert b32.bop > b8.bop > b4.bop
    assert b32.nabs > b8.nabs > b4.nabs


def test_reference_sizes_mlp_and_bilstm():
    n_taps = 10
    window = 2 * n_taps + 1
    mlp = keras.Sequential([keras.Input((window, 4)), keras.layers.Flatten()]
                           + [keras.layers.Dense(100, activation="tanh") for _ in range(3)]
                           + [keras.layers.Dense(2)])
    mc = cx.model_complexity(mlp)
    assert mc.rmps == 84 * 100 + 100 * 100 + 100 * 100 + 100 * 2
    bilstm = keras.Sequential([keras.Input((window, 4)),
                               keras.layers.Bidirectional(keras.layers.LSTM(100, return_sequences=True)),
                               keras.layers.Flatten(), keras.layers.Dense(2)])
    mc = cx.model_complexity(bilstm)
    assert mc.layers[0].rmps == 2 * window * 100 * (4 * 4 + 4 * 100 + 3)
    assert mc.layers[-1].rmps == window * 200 * 2


def test_to_dict_is_json():
    mc = cx.model_complexity(_mlp())
    d = json.loads(json.dumps(mc.to_dict()))
    assert d["layers"][1]["type"] == "Dense" and d["rmps"] == mc.rmps
    json.dumps(cx.cdc_complexity(reference_config()).to_dict())


# --------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("bad", [1, 33, 0, 8.0, True, "8"])
@pytest.mark.parametrize("name", ["weight_bits", "activation_bits"])
def test_bits_out_of_range(bad, name):
    with pytest.raises(cx.ComplexityError, match=rf"{name} = .*\[2, 32\]"):
        cx.model_complexity(_mlp(), **{name: bad})


def test_not_a_tf_keras_model():
    with pytest.raises(cx.ComplexityError, match="model must be a tf_keras.Model"):
        cx.model_complexity(object())
    with pytest.raises(cx.ComplexityError, match="tf_keras.Model"):
        cx.count_multiplications_reference("model", np.zeros((T, F)))


def test_unsupported_layers():
    bn = keras.Sequential([keras.Input((T, F)), keras.layers.BatchNormalization(), keras.layers.Flatten(),
                           keras.layers.Dense(2)])
    with pytest.raises(cx.ComplexityError, match="BatchNormalization is not supported.*Dense, LSTM"):
        cx.model_complexity(bn)
    transposed = keras.Sequential([keras.Input((T, F)), keras.layers.Conv1DTranspose(2, 3),
                                   keras.layers.Flatten(), keras.layers.Dense(2)])
    with pytest.raises(cx.ComplexityError, match="Conv1DTranspose is not supported"):
        cx.model_complexity(transposed)
    birnn = keras.Sequential([keras.Input((T, F)), keras.layers.Bidirectional(keras.layers.SimpleRNN(2)),
                              keras.layers.Dense(2)])
    with pytest.raises(cx.ComplexityError, match=r"Bidirectional is not supported.*Bidirectional\(GRU\)"):
        cx.model_complexity(birnn)
    gru_before = keras.Sequential([keras.Input((T, F)), keras.layers.GRU(2, reset_after=False),
                                   keras.layers.Dense(2)])
    with pytest.raises(cx.ComplexityError, match="reset_after=False is not supported"):
        cx.model_complexity(gru_before)
    unbuilt = keras.Sequential([keras.layers.Dense(2)])
    with pytest.raises(cx.ComplexityError, match="not built"):
        cx.model_complexity(unbuilt)
    odd = keras.Sequential([keras.Input((T, F)), keras.layers.Flatten(), keras.layers.Dense(3)])
    with pytest.raises(cx.ComplexityError, match="symbols_per_window"):
        cx.model_complexity(odd)
    assert cx.model_complexity(odd, symbols_per_window=1).rmps == T * F * 3


def test_tfmot_wrapper_is_rejected():
    # importing TFMOT takes ~10 s: a stand-in wrapper from TFMOT's module path exercises the same check
    class PruneLowMagnitude(keras.layers.Wrapper):
        def call(self, inputs):
            return self.layer(inputs)

    PruneLowMagnitude.__module__ = "tensorflow_model_optimization.python.core.sparsity.keras.pruning_wrapper"
    model = keras.Sequential([keras.Input((T, F)), keras.layers.Flatten(), PruneLowMagnitude(keras.layers.Dense(2))])
    with pytest.raises(cx.ComplexityError, match="TFMOT wrapper.*strip_pruning"):
        cx.model_complexity(model)


def test_reference_window_shape_checked():
    with pytest.raises(cx.ComplexityError, match="window: shape"):
        cx.count_multiplications_reference(_mlp(), np.zeros((T + 1, F)))


# --------------------------------------------------------------------------------------------- CDC, DBP


def test_dispersion_taps_reference_link():
    cfg = reference_config()
    spread = abs(cfg.fiber.beta2) * cfg.total_length * 2 * math.pi * 33e9  # B = 30 GBd * 1.1
    assert cx.dispersion_taps(cfg, cfg.total_length, 2) == math.ceil(spread * 60e9)
    assert cx.dispersion_taps(cfg, cfg.total_length, 2) == 270


def test_cdc_formula_and_optimal_fft():
    cfg = reference_config()
    c = cx.cdc_complexity(cfg)
    taps, n = c.details["taps"], c.details["fft_size"]
    assert c.rmps == pytest.approx(2 * 4 * n * (math.log2(n) + 1) / (n - taps + 1))
    brute = min(2 * 4 * m * (math.log2(m) + 1) / (m - taps + 1) for m in (2**e for e in range(9, 20)))
    assert c.rmps == pytest.approx(brute)
    assert n == 2048 and c.rmps == pytest.approx(110.52, abs=0.01)
    fixed = cx.cdc_complexity(cfg, fft_size=4096)
    assert fixed.rmps > c.rmps
    assert cx.cdc_complexity(cfg, bits=8).bop < c.bop


def test_dbp_formula():
    cfg = reference_config()
    for k in (1, 2):
        d = cx.dbp_complexity(cfg, k)
        taps, n = d.details["taps_per_step"], d.details["fft_size"]
        lin = 4 * n * (math.log2(n) + 1) / (n - taps + 1)
        assert d.rmps == pytest.approx(cfg.link.n_spans * k * 2 * (2 * lin + 13) / 2)
    one, two = cx.dbp_complexity(cfg, 1), cx.dbp_complexity(cfg, 2)
    assert one.rmps == pytest.approx(1665.5, abs=0.1)
    assert two.rmps > one.rmps > cx.cdc_complexity(cfg).rmps
    taylor = cx.dbp_complexity(cfg, 1, exp_multiplications=2)
    assert taylor.rmps == pytest.approx(one.rmps + 20 * 2 * 2 / 2)


@pytest.mark.parametrize("kwargs,match", [
    ({"steps_per_span": 0}, "steps_per_span"),
    ({"steps_per_span": 1, "fft_size": 100}, "fft_size"),
    ({"steps_per_span": 1, "fft_size": 8}, "fft_size"),
    ({"steps_per_span": 1, "bits": 40}, r"bits = 40.*\[2, 32\]"),
    ({"steps_per_span": 1, "samples_per_symbol": 0}, "samples_per_symbol"),
])
def test_dbp_bad_arguments(kwargs, match):
    with pytest.raises(cx.ComplexityError, match=match):
        cx.dbp_complexity(reference_config(), **kwargs)


def test_dsp_rejects_non_config():
    with pytest.raises(cx.ComplexityError, match="LinkConfig"):
        cx.cdc_complexity({"fiber": {}})
