"""Filter pruning of the convolutional front-end ("filters", eqnn.compression.pruning.filters): the smaller model
computes what the original computes with the removed filters zeroed; L1 and Taylor importance (the Taylor scores
against a NumPy derivation); cost against the counting reference; the search's categorical; bad settings."""

import numpy as np
import pytest
import tf_keras as keras

import eqnn  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)
from channel import ConfigError
from eqnn import complexity as cx
from eqnn import compress as C
from eqnn.compression.pruning import filters
from eqnn.studies.compression_config import CompressionSearchConfig

T, F = 9, 4


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(4)


def _front_end():
    return keras.Sequential([
        keras.Input((T, F)),
        keras.layers.Conv1D(6, 3, padding="same", activation="relu", name="c1"),
        keras.layers.Conv1D(5, 3, activation="tanh", name="c2"),
        keras.layers.Flatten(),
        keras.layers.Dense(8, activation="tanh", name="d1"),
        keras.layers.Dense(2, name="out")])


def _data(n=96):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, T, F)).astype(np.float32), rng.normal(size=(n, 2)).astype(np.float32)


def _masked(model, removed):
    """A copy of ``model`` with the kernels and biases of the removed filters zeroed."""
    masked = C.copy_model(model)
    for name, gone in removed.items():
        kernel, bias = masked.get_layer(name).get_weights()
        kernel[..., gone], bias[gone] = 0.0, 0.0
        masked.get_layer(name).set_weights([kernel, bias])
    return masked


def _check_smaller_and_equal(model, pruned, x, expected_filters):
    removed = C.compression_info(pruned)["steps"][-1]["removed"]
    for name, n in expected_filters.items():
        assert pruned.get_layer(name).filters == n == model.get_layer(name).filters - len(removed[name])
    np.testing.assert_allclose(pruned(x).numpy(), _masked(model, removed)(x).numpy(), rtol=1e-5, atol=1e-5)
    return removed


def test_l1_removes_the_filters_of_least_l1_norm_and_the_model_shrinks():
    model, (x, _) = _front_end(), _data()
    assert C.PRUNING_METHODS["filters"].prunable(model) == ["c1", "c2"]
    assert C.PRUNING_METHODS["filters"].structured
    pruned = C.prune(model, 0.5, method="filters")
    removed = _check_smaller_and_equal(model, pruned, x, {"c1": 3, "c2": 3})  # round(0.5 * 5) = 2 removed
    for name in ("c1", "c2"):
        l1 = np.abs(model.get_layer(name).kernel.numpy()).sum(axis=(0, 1))
        assert sorted(removed[name]) == sorted(np.argsort(l1)[:len(removed[name])].tolist())
    assert pruned.get_layer("d1").kernel.shape == (7 * 3, 8)  # the inputs that read removed filters are gone
    window = x[0]
    ref = cx.count_multiplications_reference(pruned, window)
    np.testing.assert_allclose(ref.output, pruned(window[None]).numpy()[0], rtol=1e-5, atol=1e-5)
    mc = cx.model_complexity(pruned)
    assert ref.multiplications == mc.multiplications_per_window
    assert mc.layers[0].multiplications_per_window == T * 3 * F * 3  # L_out K C_in F of the smaller conv
    assert mc.rmps < cx.model_complexity(model).rmps


def test_taylor_importance_matches_its_derivation_and_prunes_the_least_important():
    model = keras.Sequential([keras.Input((T, F)), keras.layers.Conv1D(6, 3, activation="relu", name="c"),
                              keras.layers.Flatten(), keras.layers.Dense(2, name="out")])
    x, y = _data()
    scores = filters.taylor_importance(model, ["c"], C.Calibration(x, y))["c"]
    # by hand: C_n = mean_j (z_n W + b - y_n)_j^2, dC_n/dz_n = 2 / J (e_n W^T), z the relu feature map
    kernel, bias = model.get_layer("c").get_weights()
    w_out, b_out = model.get_layer("out").get_weights()
    z = keras.Model(model.inputs, model.get_layer("c").output)(x).numpy().astype(np.float64)
    e = z.reshape(len(x), -1) @ w_out + b_out - y
    grad = (2.0 / e.shape[1] * e @ w_out.T).reshape(z.shape)
    expected = np.abs((z * grad).mean(axis=1)).mean(axis=0)
    np.testing.assert_allclose(scores, expected, rtol=1e-4)
    pruned = C.prune(model, 0.5, method="filters", options={"importance": "taylor"}, calibration=(x, y))
    removed = _check_smaller_and_equal(model, pruned, x, {"c": 3})
    assert sorted(removed["c"]) == sorted(np.argsort(expected)[:3].tolist())
    # the fine-tuning windows are the calibration when none is given; then the smaller model is fine-tuned
    ft = C.FineTune(x, y, epochs=1, batch_size=32)
    tuned = C.prune(model, 0.5, method="filters", options={"importance": "taylor", "calibration_samples": 40},
                    fine_tune=ft)
    step = C.compression_info(tuned)["steps"][-1]
    assert step["fine_tuned"] and step["calibration_samples"] == 40 and tuned.get_layer("c").filters == 3


def test_search_offers_the_importance_as_a_categorical():
    config = CompressionSearchConfig(pruning_methods=("structured", "filters"), filter_importance=("l1", "taylor"),
                                     sparsity=(0.1, 0.8), clusters=None, weight_bits=None)
    assert [d.name for d in config.search_space()] == ["sparsity", "pruning_method", "filter_importance"]
    cc = config.compression_config({"sparsity": 0.3, "pruning_method": "filters", "filter_importance": "taylor"})
    assert dict(cc.prune_options) == {"importance": "taylor", "calibration_samples": 1024}
    # a method without options gets none (defaults leave the existing methods as they were)
    assert config.compression_config({"sparsity": 0.3, "pruning_method": "structured",
                                      "filter_importance": "taylor"}).prune_options is None
    only_l1 = CompressionSearchConfig(pruning_methods=("filters",), clusters=None, weight_bits=None)
    assert [d.name for d in only_l1.search_space()] == ["sparsity"]


def test_bad_settings_fail_in_one_line_before_any_work(monkeypatch):
    model, (x, y) = _front_end(), _data(8)
    monkeypatch.setattr(filters, "_structured_once", lambda *a, **k: pytest.fail("pruned despite bad settings"))
    cases = [({"options": {"importance": "l2"}}, "filters.importance"),
             ({"options": {"importance": "taylor", "calibration_samples": 0}, "calibration": (x, y)},
              "filters.calibration_samples"),
             ({"options": {"criterion": "outgoing"}}, "criterion"),
             ({"options": {"importance": "taylor"}}, "needs calibration data"),
             ({"scope": "global"}, "scope='global'"),
             ({"per_layer": {"d1": 0.5}}, "cannot be pruned by method 'filters'")]
    for kwargs, needle in cases:
        with pytest.raises(ValueError, match=needle) as info:
            C.prune(model, 0.5, method="filters", **kwargs)
        assert "\n" not in str(info.value)
    for bad in (1.0, -0.1):
        with pytest.raises(ValueError, match="sparsity"):
            C.prune(model, bad, method="filters")
    mlp = keras.Sequential([keras.Input((T, F)), keras.layers.Flatten(), keras.layers.Dense(4),
                            keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="no layer that method 'filters' can prune"):
        C.prune(mlp, 0.5, method="filters")
    with pytest.raises(ValueError, match="filters.importance"):
        C.CompressionConfig(prune_method="filters", sparsity=0.5, prune_options={"importance": "random"})
    with pytest.raises(ConfigError, match="compression.filter_importance") as info:
        CompressionSearchConfig.from_dict({"filter_importance": ["l1", "l2"]})
    assert "\n" not in str(info.value)
