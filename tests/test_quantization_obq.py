"""Optimal Brain Quantization (``quantize(..., mode="obq")``, eqnn.compression.obs): the weights end on the grid
of "ptq" (zeros kept, same scale), the layer-output error on the calibration windows is below plain rounding's,
the cost agrees with the counting reference; bad settings."""

import numpy as np
import pytest
import tf_keras as keras

import eqnn  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)
from channel import ConfigError
from eqnn import complexity as cx
from eqnn import compress as C
from eqnn.compression.quantization import obq_rows
from eqnn.studies.compression_config import CompressionSearchConfig

T, F = 7, 4


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(5)


def _correlated(n=300, d=12, rank=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, rank)) @ rng.normal(size=(rank, d)) + 0.05 * rng.normal(size=(n, d))


@pytest.mark.parametrize("per_channel", [False, True])
def test_obq_rows_stay_on_the_ptq_grid_and_beat_rounding(per_channel):
    x = _correlated()
    w = np.random.default_rng(1).normal(size=(6, 12)).astype(np.float32)
    w[0, :3] = 0.0  # pruned weights stay pruned
    bits = 3
    rounded = C.quantize_array(w.T, bits, per_channel=per_channel)[0].T
    new = obq_rows(w, x, bits, per_channel)
    assert new.dtype == w.dtype and np.all(new[0, :3] == 0.0)
    np.testing.assert_array_equal(C.quantize_array(new.T, bits, per_channel=per_channel)[0].T, new)  # on its grid
    # the same scale as plain rounding: every value is an integer multiple of the rounding grid's step
    step = C.quantize_array(w.T, bits, per_channel=per_channel)[1]
    assert np.allclose(np.rint(new / step[:, None] if per_channel else new / step), new / (
        step[:, None] if per_channel else step), atol=1e-4)
    error = np.sum((x @ (w - new).T) ** 2)
    assert error < 0.7 * np.sum((x @ (w - rounded).T) ** 2)


def test_quantize_obq_model_is_on_the_grid_costs_what_the_reference_counts_and_beats_ptq():
    model = keras.Sequential([keras.Input((T, F)), keras.layers.Conv1D(4, 3, padding="same", name="conv"),
                              keras.layers.Flatten(), keras.layers.Dense(6, activation="tanh", name="h"),
                              keras.layers.Dense(2, name="out")])
    x = _correlated(d=T * F).astype(np.float32).reshape(-1, T, F)
    q = C.quantize(model, 4, mode="obq", calibration=x)
    step = C.compression_info(q)["steps"][-1]
    assert step["mode"] == "obq" and step["obq_layers"] == ["conv", "h", "out"] and step["ptq_fallback"] == []
    for key, w in C.kernel_weights(q).items():
        np.testing.assert_array_equal(C.quantize_array(w, 4)[0], w)
        np.testing.assert_allclose(C.quantize_array(w, 4)[1], step["scales"][key])
    ref_out = model(x).numpy()
    ptq = C.quantize(model, 4)
    assert np.sum((q(x).numpy() - ref_out) ** 2) < np.sum((ptq(x).numpy() - ref_out) ** 2)
    window = x[0]
    ref = cx.count_multiplications_reference(q, window)
    mc = cx.model_complexity(q, weight_bits=4)
    assert ref.multiplications == mc.multiplications_per_window
    # through the pipeline, after obc pruning: the zeros survive the quantization
    result = C.compress(model, C.CompressionConfig(prune_method="obc", sparsity=0.5, weight_bits=4,
                                                   quantize_mode="obq"), calibration=x)
    pruned, final = result.steps[0].model, result.model
    for key, w in C.kernel_weights(final).items():
        assert np.all(w[C.kernel_weights(pruned)[key] == 0.0] == 0.0), key


def test_obq_bad_settings_and_the_table():
    model = keras.Sequential([keras.Input((T, F)), keras.layers.Flatten(), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="needs calibration data"):
        C.quantize(model, 4, mode="obq")
    with pytest.raises(ValueError, match="quantize_mode='obq' needs calibration data"):
        C.compress(model, C.CompressionConfig(weight_bits=4, quantize_mode="obq"))
    with pytest.raises(ValueError, match="quantization mode"):
        C.quantize(model, 4, mode="gptq", calibration=np.zeros((2, T, F)))
    config = CompressionSearchConfig(quantize_mode=("ptq", "obq"), sparsity=0.0, clusters=None, weight_bits=(3, 8),
                                     calibration_samples=5)

    class Windows:
        x, y = np.zeros((9, T, F), np.float32), np.zeros((9, 2), np.float32)

        def __len__(self):
            return 9

    assert len(config.calibration(Windows())) == 5
    assert "quantize_mode" in [d.name for d in config.search_space()]
    with pytest.raises(ConfigError, match="compression.quantize_mode"):
        CompressionSearchConfig.from_dict({"quantize_mode": ["obs"]})
