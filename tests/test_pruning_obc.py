"""Optimal Brain Compression ("obc", eqnn.compression.pruning.obc): the OBS row update against the least-squares
optimum on the same support, against magnitude pruning on correlated inputs; sparsity per row; im2col; the
pipeline and the search; bad settings."""

import numpy as np
import pytest
import tf_keras as keras

import eqnn  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)
from channel import ConfigError
from eqnn import complexity as cx
from eqnn import compress as C
from eqnn.compression import obs
from eqnn.compression.pruning import obc
from eqnn.studies.compression_config import CompressionSearchConfig

T, F = 7, 4


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(2)


def _correlated_inputs(n=400, d=12, rank=3, seed=0):
    """Inputs whose d features are noisy mixtures of ``rank`` sources (strongly correlated)."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, rank)) @ rng.normal(size=(rank, d)) + 0.05 * rng.normal(size=(n, d))


def _output_error(x, w, w_new):
    return float(np.sum((x @ (w - w_new).T) ** 2))


def _magnitude_rows(w, n_prune):
    out = w.copy()
    for row in out:
        row[np.argsort(np.abs(row), kind="stable")[:n_prune]] = 0.0
    return out


def test_obs_rows_are_the_least_squares_optimum_of_their_support_and_beat_magnitude():
    x = _correlated_inputs()
    w = np.random.default_rng(1).normal(size=(6, 12))
    damping = 0.01
    new = obc.prune_rows(w, x, 0.5, damping)
    assert np.all(np.sum(new == 0.0, axis=1) == 6)  # d - round(d (1 - s)) zeros per row
    h = obs.hessian(x, damping)
    assert np.allclose(h, 2 * x.T @ x + damping * np.mean(np.diag(2 * x.T @ x)) * np.eye(12))
    for row, row0 in zip(new, w):
        keep = row != 0.0
        # exact OBS: the kept weights minimize (w - w0)^T H (w - w0) with the removed ones at 0
        optimum = np.linalg.solve(h[np.ix_(keep, keep)], h[keep] @ row0)
        np.testing.assert_allclose(row[keep], optimum, rtol=1e-6, atol=1e-8)
    mask_only = np.where(new == 0.0, 0.0, w)  # OBC's support without the compensation
    error = _output_error(x, w, new)
    assert error < _output_error(x, w, mask_only)
    assert error < 0.5 * _output_error(x, w, _magnitude_rows(w, 6))


def test_sparsity_zero_is_the_identity():
    x = _correlated_inputs()
    w = np.random.default_rng(1).normal(size=(6, 12)).astype(np.float32)
    np.testing.assert_array_equal(obc.prune_rows(w, x, 0.0, 0.01), w)
    model = keras.Sequential([keras.Input((12,)), keras.layers.Dense(5, name="h"), keras.layers.Dense(2, name="out")])
    pruned = C.prune(model, 0.0, method="obc", per_layer={"out": 0.5}, calibration=x.astype(np.float32))
    for a, b in zip(model.get_layer("h").get_weights(), pruned.get_layer("h").get_weights()):
        np.testing.assert_array_equal(a, b)
    assert np.mean(pruned.get_layer("out").kernel.numpy() == 0.0) == 0.6  # 5 inputs: 2 kept per output


def test_obc_beats_magnitude_on_a_layer_with_correlated_inputs():
    x = _correlated_inputs().astype(np.float32)
    model = keras.Sequential([keras.Input((12,)), keras.layers.Dense(4, name="out")])
    ref = model(x).numpy()
    errors = {}
    for method, kwargs in (("obc", {"calibration": x}), ("magnitude", {})):
        pruned = C.prune(model, 0.5, method=method, **kwargs)
        assert np.mean(pruned.get_layer("out").kernel.numpy() == 0.0) == 0.5
        errors[method] = float(np.sum((pruned(x).numpy() - ref) ** 2))
    assert errors["obc"] < 0.5 * errors["magnitude"], errors


@pytest.mark.parametrize("padding,strides,dilation", [("same", 1, 1), ("causal", 1, 2), ("valid", 2, 1)])
def test_im2col_is_the_convolution(padding, strides, dilation):
    conv = keras.layers.Conv1D(3, 3, padding=padding, strides=strides, dilation_rate=dilation)
    x = np.random.default_rng(0).normal(size=(5, T, F)).astype(np.float32)
    y = conv(x).numpy()
    kernel, bias = conv.get_weights()
    patches = obs.im2col(conv, x.astype(np.float64))
    np.testing.assert_allclose(patches @ kernel.reshape(-1, 3) + bias, y, rtol=1e-5, atol=1e-5)


def _rows_zeros(w):
    """Zeros per output row of a kernel whose last axis is the output (Dense, Conv1D, RNN gate columns)."""
    flat = w.reshape(-1, w.shape[-1])
    return np.sum(flat == 0.0, axis=0), flat.shape[0]


def test_every_layer_type_gets_its_sparsity_per_row_and_costs_what_the_reference_counts():
    model = keras.Sequential([
        keras.Input((T, F)),
        keras.layers.Conv1D(6, 3, padding="same", activation="relu", name="conv"),
        keras.layers.Bidirectional(keras.layers.LSTM(5), name="bi"),
        keras.layers.Dense(2, name="out")])
    x = np.random.default_rng(0).normal(size=(64, T, F)).astype(np.float32)
    assert C.PRUNING_METHODS["obc"].prunable(model) == ["conv", "bi", "out"]
    s = 0.6
    pruned = C.prune(model, s, method="obc", calibration=x, options={"calibration_samples": 48})
    step = C.compression_info(pruned)["steps"][-1]
    assert step["method"] == "obc" and step["calibration_samples"] == 48 and not step["fine_tuned"]
    for key, w in C.kernel_weights(pruned).items():
        zeros, d = _rows_zeros(w)
        assert np.all(zeros == d - max(round(d * (1 - s)), 1)), key
    window = x[0]
    ref = cx.count_multiplications_reference(pruned, window)
    np.testing.assert_allclose(ref.output, pruned(window[None]).numpy()[0], rtol=1e-4, atol=1e-5)
    mc = cx.model_complexity(pruned)
    assert ref.multiplications == mc.multiplications_per_window
    assert mc.rmps < cx.model_complexity(model).rmps


def test_gru_kernels_are_pruned_per_gate_column_on_inputs_and_hidden_states():
    model = keras.Sequential([keras.Input((T, F)), keras.layers.GRU(4, name="gru"), keras.layers.Dense(2, name="out")])
    x = np.random.default_rng(1).normal(size=(32, T, F)).astype(np.float32)
    pruned = C.prune(model, 0.5, method="obc", per_layer={"out": 0.0}, calibration=x)
    kernels = C.kernel_weights(pruned)
    for key in ("gru/kernel", "gru/recurrent_kernel"):
        zeros, d = _rows_zeros(kernels[key])
        assert kernels[key].shape[1] == 12 and np.all(zeros == d // 2), key
    np.testing.assert_array_equal(kernels["out/kernel"], model.get_layer("out").kernel.numpy())
    ref = cx.count_multiplications_reference(pruned, x[0])
    assert ref.multiplications == cx.model_complexity(pruned).multiplications_per_window


def test_compress_pipeline_and_search_pass_calibration_and_options():
    x = _correlated_inputs(d=T * F).astype(np.float32).reshape(-1, T, F)
    y = np.random.default_rng(3).normal(size=(len(x), 2)).astype(np.float32)
    model = keras.Sequential([keras.Input((T, F)), keras.layers.Flatten(), keras.layers.Dense(6, name="h"),
                              keras.layers.Dense(2, name="out")])
    config = C.CompressionConfig(prune_method="obc", sparsity=0.5, prune_options={"damping": 0.1}, weight_bits=8)
    result = C.compress(model, config, calibration=(x, y))
    assert [s.step for s in result.steps] == ["prune", "quantize"]
    assert result.steps[0].info["damping"] == 0.1
    # the study's table: a categorical over methods, the method's options from the table, seeded calibration
    search = CompressionSearchConfig(pruning_methods=("magnitude", "obc"), sparsity=(0.1, 0.9), clusters=None,
                                     weight_bits=None, calibration_samples=50, obc_damping=0.2, fine_tune_epochs=0)
    assert [d.name for d in search.search_space()] == ["sparsity", "pruning_method"]
    cc = search.compression_config({"sparsity": 0.5, "pruning_method": "obc"})
    assert dict(cc.prune_options) == {"calibration_samples": 50, "damping": 0.2}
    assert search.compression_config({"sparsity": 0.5, "pruning_method": "magnitude"}).prune_options is None

    class Windows:
        def __init__(self):
            self.x, self.y = x, y

        def __len__(self):
            return len(self.x)

    calibration = search.calibration(Windows())
    assert len(calibration) == 50 and calibration.y.shape == (50, 2)
    again = search.calibration(Windows())
    np.testing.assert_array_equal(calibration.x, again.x)  # seeded
    assert CompressionSearchConfig(clusters=None, sparsity=(0.1, 0.9)).calibration(Windows()) is None


def test_bad_settings_fail_in_one_line_before_any_work(monkeypatch):
    model = keras.Sequential([keras.Input((12,)), keras.layers.Dense(4, name="out")])
    x = _correlated_inputs().astype(np.float32)
    monkeypatch.setattr(obc, "obs_model", lambda *a, **k: pytest.fail("pruned despite bad settings"))
    cases = [({"options": {"calibration_samples": 0}, "calibration": x}, "obc.calibration_samples"),
             ({"options": {"damping": -1.0}, "calibration": x}, "obc.damping"),
             ({"options": {"blocks": 2}, "calibration": x}, "blocks"),
             ({}, "needs calibration data"),
             ({"scope": "global", "calibration": x}, "scope='global'")]
    for kwargs, needle in cases:
        with pytest.raises(ValueError, match=needle) as info:
            C.prune(model, 0.5, method="obc", **kwargs)
        assert "\n" not in str(info.value)
    for bad in (1.0, -0.1):
        with pytest.raises(ValueError, match="sparsity"):
            C.prune(model, bad, method="obc", calibration=x)
    with pytest.raises(ValueError, match="obc.calibration_samples"):
        C.CompressionConfig(prune_method="obc", sparsity=0.5, prune_options={"calibration_samples": 0})
    with pytest.raises(ValueError, match="needs calibration data"):
        C.compress(model, C.CompressionConfig(prune_method="obc", sparsity=0.5))
    for key, value in (("calibration_samples", 0), ("obc_damping", -1.0), ("obc_damping", 11.0)):
        with pytest.raises(ConfigError, match=f"compression.{key}") as info:
            CompressionSearchConfig.from_dict({key: value})
        assert "\n" not in str(info.value)
