"""Power-of-two (additive powers-of-two) weights: the grid, the quantizer, their BoP / NABS, and the
shift-and-add reference inference."""

import numpy as np
import pytest
import tf_keras as keras

import eqnn  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)
from eqnn import complexity as cx
from eqnn import compress
from eqnn.complexity.counting import csd_digit_count, pow2_integers, pow2_levels, signed_digits

T, F = 5, 4


def _mlp(seed=1, activations=("relu", "linear")):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((T, F)), keras.layers.Flatten(),
                             keras.layers.Dense(6, activation=activations[0]),
                             keras.layers.Dense(2, activation=activations[1])])


@pytest.mark.parametrize("bits,terms", [(2, 1), (4, 1), (5, 2), (6, 3), (8, 2)])
def test_grid_levels_are_sums_of_at_most_k_powers_of_two(bits, terms):
    levels = pow2_levels(bits, terms)
    assert levels[0] == 0 and np.all(np.diff(levels) > 0)
    assert np.all(csd_digit_count(levels) <= terms)
    assert levels[-1] <= 2 ** (bits - 1) - 1
    # every integer of the range with at most `terms` digits is a level (none is missing)
    everything = np.arange(levels[-1] + 1)
    assert set(everything[csd_digit_count(everything) <= terms]) == set(levels)
    for q in levels:
        assert sum(s * 2 ** e for s, e in signed_digits(int(q))) == q
        assert sum(s * 2 ** e for s, e in signed_digits(-int(q))) == -q


@pytest.mark.parametrize("terms", [1, 2, 3])
@pytest.mark.parametrize("per_channel", [False, True])
def test_quantize_array_pow2_weights_are_scaled_sums_of_k_powers(terms, per_channel):
    w = np.random.default_rng(0).normal(size=(7, 5)).astype(np.float32)
    w[0, 0] = 0.0
    values, scales = compress.quantize_array(w, 6, per_channel=per_channel, grid="pow2", pow2_terms=terms)
    assert values.dtype == w.dtype and values[0, 0] == 0.0
    q = values / (scales[None, :] if per_channel else scales[0])
    np.testing.assert_allclose(q, np.rint(q), atol=1e-4)
    q = np.rint(q).astype(np.int64)
    assert np.all(csd_digit_count(q) <= terms)
    assert np.all(np.abs(q) <= pow2_levels(6, terms)[-1])
    # the complexity module finds the same integers back from the values alone
    np.testing.assert_array_equal(pow2_integers(values, 6, terms), q)
    # nearest level: no other level is closer (per tensor scale)
    if not per_channel:
        levels = pow2_levels(6, terms)
        ratio = np.abs(w.astype(np.float64)) / scales[0]
        best = np.min(np.abs(ratio[..., None] - levels), axis=-1)
        np.testing.assert_allclose(np.abs(ratio - np.abs(q)), best, atol=1e-5)


def test_pow2_model_nabs_and_bop_equal_the_shift_add_reference():
    model = _mlp()
    bits, terms = 6, 2
    quantized = compress.quantize(model, bits, grid="pow2", pow2_terms=terms)
    info = compress.compression_info(quantized)
    assert info["pow2_terms"] == terms and info["steps"][-1]["grid"] == "pow2"
    window = np.random.default_rng(3).normal(size=(T, F)).astype(np.float32)
    ref = cx.count_multiplications_reference(quantized, window, shift_add_bits=bits, pow2_terms=terms)
    np.testing.assert_allclose(ref.output, np.asarray(quantized(window[None]))[0], rtol=1e-5, atol=1e-5)
    mc = cx.model_complexity(quantized, bits, None, pow2_terms=terms, symbols_per_window=1)
    assert ref.multiplications == mc.multiplications_per_window
    assert ref.additions == mc.additions_per_window
    assert ref.shifts + ref.shift_additions + ref.additions == mc.nabs_per_window
    assert ref.shifts > 0 and ref.shift_additions > 0  # two-term weights exist
    # BoP: products are shift-and-add networks of (k - 1) additions at b_w + b_a bits; the sums as before
    uniform_bop = cx.model_complexity(quantized, bits, None, symbols_per_window=1).bop_per_window
    adds_bop = uniform_bop - mc.multiplications_per_window * bits * 32
    assert mc.bop_per_window == adds_bop + ref.shift_additions * (bits + 32)
    assert mc.bop_per_window < uniform_bop
    assert mc.rmps == cx.model_complexity(quantized, bits, None).rmps  # RMpS does not depend on the grid


def test_single_power_of_two_weights_cost_no_addition_in_bop():
    quantized = compress.quantize(_mlp(2), 5, grid="pow2", pow2_terms=1)
    window = np.random.default_rng(4).normal(size=(T, F)).astype(np.float32)
    ref = cx.count_multiplications_reference(quantized, window, shift_add_bits=5, pow2_terms=1)
    assert ref.shift_additions == 0 and ref.shifts == ref.multiplications
    mc = cx.model_complexity(quantized, 5, 8, pow2_terms=1, symbols_per_window=1)
    assert mc.nabs_per_window == ref.shifts + ref.additions


def test_uniform_grid_nabs_equals_the_shift_add_reference_too():
    quantized = compress.quantize(_mlp(5), 5)
    window = np.random.default_rng(5).normal(size=(T, F)).astype(np.float32)
    ref = cx.count_multiplications_reference(quantized, window, shift_add_bits=5)
    mc = cx.model_complexity(quantized, 5, None, symbols_per_window=1)
    assert ref.shifts + ref.shift_additions + ref.additions == mc.nabs_per_window


def test_lstm_pow2_nabs_products_by_weights_match_reference():
    keras.utils.set_random_seed(7)
    model = keras.Sequential([keras.Input((3, 2)), keras.layers.LSTM(3), keras.layers.Dense(2)])
    quantized = compress.quantize(model, 6, grid="pow2", pow2_terms=2)
    window = np.random.default_rng(6).normal(size=(3, 2)).astype(np.float32)
    ref = cx.count_multiplications_reference(quantized, window, shift_add_bits=6, pow2_terms=2)
    np.testing.assert_allclose(ref.output, np.asarray(quantized(window[None]))[0], rtol=1e-5, atol=1e-5)
    mc = cx.model_complexity(quantized, 6, 8, pow2_terms=2, symbols_per_window=1)
    assert ref.multiplications == mc.multiplications_per_window
    # NABS = shift-add products by weights + all additions + the 3 n_h variable products per step (2 b_a - 1)
    variable_products = 3 * 3 * 3
    assert mc.nabs_per_window == (ref.shifts + ref.shift_additions + ref.additions
                                  + variable_products * (2 * 8 - 1))


@pytest.mark.parametrize("kwargs,message", [
    ({"grid": "pow3"}, "grid"),
    ({"grid": "pow2", "pow2_terms": 0}, "pow2_terms"),
    ({"grid": "pow2", "pow2_terms": 9}, "pow2_terms"),
    ({"pow2_terms": 2}, "pow2_terms"),
    ({"grid": "pow2", "mode": "qat"}, "ptq"),
])
def test_bad_pow2_settings_are_rejected(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        compress.quantize(_mlp(), 4, **kwargs)
    if "mode" not in kwargs:
        with pytest.raises((ValueError, TypeError), match=message):
            compress.CompressionConfig(weight_bits=4, quantize_grid=kwargs.get("grid", "uniform"),
                                       pow2_terms=kwargs.get("pow2_terms"))


def test_complexity_rejects_pow2_terms_without_bits():
    with pytest.raises(cx.ComplexityError, match="pow2_terms"):
        cx.model_complexity(_mlp(), None, None, pow2_terms=2)
    with pytest.raises(cx.ComplexityError, match="pow2_terms"):
        cx.model_complexity(_mlp(), 4, None, pow2_terms=0)
