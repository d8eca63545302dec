"""eqnn.compress: pruning, clustering, quantization and the pipeline on tiny tf_keras models.

Two tiny models cover the four layer types: a Sequential MLP (Flatten, Dense) and a functional "rnn" model
(Conv1D, LSTM, Bidirectional(LSTM), Dense) - one model for all recurrent layers keeps the slow RNN fine-tunings
few. Fine-tuning is one epoch of two batches: the tests check structure (sparsity, codebooks, grids, shapes,
untouched inputs, plain reloadable models), not accuracy.
"""

import json

import numpy as np
import pytest
import tf_keras

from eqnn import compress as C

keras = tf_keras
L = keras.layers
WINDOW, FEATURES, N = 11, 4, 128


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, WINDOW, FEATURES)).astype("float32")
    y = np.stack([x[:, WINDOW // 2, 0] + 0.1 * x[:, WINDOW // 2 - 1, 1], x[:, WINDOW // 2, 1]], axis=1)
    return x, y.astype("float32")


@pytest.fixture(scope="module")
def ft(data):
    return C.FineTune(data[0], data[1], epochs=1, batch_size=64, learning_rate=1e-3, seed=1)


def build(kind: str) -> keras.Model:
    """"mlp": Sequential Flatten-Dense-Dense-Dense. "rnn": functional Conv1D-LSTM-Bidirectional(LSTM)-Dense."""
    keras.utils.set_random_seed(7)
    if kind == "mlp":
        return keras.Sequential([keras.Input((WINDOW, FEATURES)), L.Flatten(name="flat"),
                                 L.Dense(12, activation="relu", name="h1"), L.Dense(8, activation="tanh", name="h2"),
                                 L.Dense(2, name="out")], name=kind)
    if kind == "rnn":
        inp = keras.Input((WINDOW, FEATURES))
        h = L.Conv1D(6, 3, activation="relu", name="conv")(inp)
        h = L.LSTM(4, return_sequences=True, name="lstm")(h)
        h = L.Bidirectional(L.LSTM(4), name="bi")(h)
        return keras.Model(inp, L.Dense(2, name="out")(h), name=kind)
    raise ValueError(kind)


KINDS = ["mlp", "rnn"]
LAYER_TYPES = {"mlp": {"Dense"}, "rnn": {"Conv1D", "LSTM", "Bidirectional(LSTM)", "Dense"}}


@pytest.fixture(scope="module")
def models():
    return {kind: build(kind) for kind in KINDS}


@pytest.fixture(scope="module")
def originals(models):
    return {kind: [w.copy() for w in m.get_weights()] for kind, m in models.items()}


def evaluate_fn(data):
    def evaluate(model):
        return {"mse": float(np.mean((model(data[0]).numpy() - data[1]) ** 2))}

    return evaluate


def complexity_fn(calls):
    def complexity(model, weight_bits, activation_bits):
        calls.append((weight_bits, activation_bits))
        return {"rmps": sum(int(np.count_nonzero(w)) for w in C.kernel_weights(model).values())}

    return complexity


@pytest.fixture(scope="module")
def rnn_pipeline(models, ft, data):
    """The slow part, run once: the RNN model through prune (TFMOT, fine-tuned) -> cluster (fine-tuned, zeros
    preserved) -> 4-bit QAT with 8-bit activations. Its intermediate models serve the per-technique tests."""
    calls = []
    config = C.CompressionConfig(sparsity=0.5, n_clusters=5, weight_bits=4, activation_bits=8, quantize_mode="qat")
    result = C.compress(models["rnn"], config, ft, evaluate=evaluate_fn(data), complexity=complexity_fn(calls))
    return result, calls


@pytest.fixture(scope="module")
def pruned(models, ft, rnn_pipeline):
    """Magnitude pruning, 50 %, fine-tuned with TFMOT (constant schedule)."""
    return {"mlp": C.prune(models["mlp"], 0.5, fine_tune=ft), "rnn": rnn_pipeline[0].steps[0].model}


@pytest.fixture(scope="module")
def clustered(pruned, rnn_pipeline):
    """5 clusters (one of them the zeros) on the pruned models; fine-tuned for the RNN model only."""
    return {"mlp": C.cluster(pruned["mlp"], 5, preserve_sparsity=True), "rnn": rnn_pipeline[0].steps[1].model}


def assert_unchanged(model, weights):
    now = model.get_weights()
    assert len(now) == len(weights)
    for a, b in zip(now, weights):
        np.testing.assert_array_equal(a, b)


def assert_plain(model):
    assert isinstance(model, keras.Model)
    for layer in model.layers:
        assert type(layer).__module__.startswith("tf_keras."), type(layer)
        if isinstance(layer, L.Bidirectional):
            assert type(layer) is L.Bidirectional


def assert_predicts_and_reloads(model, x, tmp_path):
    y = model(x[:16], training=False).numpy()  # eager call: no predict-function tracing in tests
    assert y.shape == (16, 2) and np.all(np.isfinite(y))
    path = str(tmp_path / "w.weights.h5")
    model.save_weights(path)
    twin = keras.models.clone_model(model)
    twin.load_weights(path)
    np.testing.assert_allclose(twin(x[:16], training=False).numpy(), y, rtol=1e-5, atol=1e-6)


def assert_on_grid(w, bits, scales):
    """Every value is an integer multiple of its scale, inside the k-bit range; at most 2^k values."""
    assert np.unique(w).size <= 2 ** bits
    scale = np.asarray(scales, dtype=np.float64).reshape(-1)
    assert scale.size in (1, w.shape[-1] if w.ndim else 1)
    ratio = w.astype(np.float64) / np.where(scale > 0, scale, 1.0)
    np.testing.assert_allclose(ratio, np.round(ratio), atol=1e-3 * max(1.0, 2.0 ** (bits - 10)))
    assert np.max(np.round(ratio)) - np.min(np.round(ratio)) <= 2 ** bits - 1
    assert np.all(np.abs(np.round(ratio)) <= 2 ** (bits - 1))


def kernel_kinds(model):
    return {C.layer_kind(layer) for layer in model.layers if C.kernel_entries(layer)}


def test_models_cover_the_four_layer_types(models):
    for kind, m in models.items():
        assert kernel_kinds(m) == LAYER_TYPES[kind]


# ------------------------------------------------------------------------------------------------ pruning

@pytest.mark.parametrize("kind", KINDS)
def test_magnitude_prune_fine_tuned(kind, models, originals, pruned, data, tmp_path):
    p = pruned[kind]
    assert_unchanged(models[kind], originals[kind])
    assert_plain(p)
    kernels = C.kernel_weights(p)
    assert len(kernels) == len(C.kernel_weights(models[kind]))
    if kind == "rnn":  # kernels and recurrent kernels of LSTM and of both Bidirectional cells
        assert {"lstm/recurrent_kernel", "bi/forward/kernel", "bi/backward/recurrent_kernel"} <= set(kernels)
    for key, w in kernels.items():
        assert abs(np.mean(w == 0) - 0.5) <= 1.0 / w.size, key
    step = C.compression_info(p)["steps"][-1]
    assert step["step"] == "prune" and step["fine_tuned"] and step["method"] == "magnitude"
    assert step["achieved_sparsity"] == pytest.approx({k: 0.5 for k in kernels}, abs=0.02)
    # fine-tuning changed the kept weights
    w0, w1 = models[kind].get_layer("out").get_weights()[0], p.get_layer("out").get_weights()[0]
    assert not np.allclose(w1[w1 != 0], w0[w1 != 0])
    assert_predicts_and_reloads(p, data[0], tmp_path)


def test_prune_polynomial_per_layer_and_global(models, originals, ft):
    m = models["mlp"]
    p = C.prune(m, 0.3, schedule="polynomial", per_layer={"h1": 0.75, "out": 0.0}, fine_tune=ft)
    k = C.kernel_weights(p)
    assert abs(np.mean(k["h1/kernel"] == 0) - 0.75) <= 1 / k["h1/kernel"].size
    assert abs(np.mean(k["h2/kernel"] == 0) - 0.3) <= 1 / k["h2/kernel"].size
    assert np.mean(k["out/kernel"] == 0) == 0.0
    info = C.compression_info(p)["steps"][-1]
    sched = info["schedule_steps"]["h1"]
    assert 1 <= sched["end_step"] <= ft.total_steps and sched["end_step"] % sched["frequency"] == 0
    # global threshold, one shot: overall sparsity over the pruned kernels is the target, layers differ
    g = C.prune(m, 0.6, scope="global")
    k = C.kernel_weights(g)
    total = sum(int(np.sum(w == 0)) for w in k.values())
    assert abs(total / sum(w.size for w in k.values()) - 0.6) < 0.01
    fractions = C.compression_info(g)["steps"][-1]["targets"]
    assert len({round(v, 3) for v in fractions.values()}) > 1
    assert_unchanged(m, originals["mlp"])


@pytest.mark.parametrize("kind", KINDS)
def test_magnitude_prune_one_shot(kind, models, originals):
    p = C.prune(models[kind], 0.8)
    assert_plain(p)
    for key, w in C.kernel_weights(p).items():
        assert abs(np.mean(w == 0) - 0.8) <= 1.0 / w.size, key
    # one shot keeps the largest magnitudes unchanged
    w0 = models[kind].get_layer("out").get_weights()[0]
    w1 = p.get_layer("out").get_weights()[0]
    np.testing.assert_array_equal(w1[w1 != 0], w0[w1 != 0])
    assert np.min(np.abs(w0[w1 != 0])) >= np.max(np.abs(w0[w1 == 0]))
    assert_unchanged(models[kind], originals[kind])


@pytest.mark.parametrize("kind", KINDS)
def test_structured_prune_shrinks_layers(kind, models, originals, ft, data, tmp_path):
    m = models[kind]
    # fine-tuning is the same plain fit for every model: run it on the cheap MLP only
    s = C.prune(m, 0.5, method="structured", fine_tune=ft if kind == "mlp" else None)
    assert_unchanged(m, originals[kind])
    assert_plain(s)
    expect = {"mlp": {"h1": (12, 6), "h2": (8, 4)}, "rnn": {"conv": (6, 3), "lstm": (4, 2), "bi": (4, 2)}}[kind]
    for name, (before, after) in expect.items():
        assert C.units_of(m.get_layer(name)) == before
        assert C.units_of(s.get_layer(name)) == after
    assert C.units_of(s.get_layer("out")) == 2
    assert s.count_params() < m.count_params()
    assert C.compression_info(s)["steps"][-1]["units"] == {k: list(v) for k, v in expect.items()}
    assert_predicts_and_reloads(s, data[0], tmp_path)


@pytest.mark.parametrize("kind", KINDS)
def test_structured_prune_removes_dead_units_exactly(kind, models, data):
    """Units whose outgoing weights are all zero are the ones removed, and the output does not change."""
    m = C.copy_model(models[kind])
    name, consumer = {"mlp": ("h2", "out"), "rnn": ("lstm", "bi")}[kind]
    dead = [1, 3]
    if kind == "mlp":
        w = m.get_layer(consumer).get_weights()
        w[0][dead] = 0.0
    else:  # the LSTM feeds both cells of the Bidirectional layer, and itself through its recurrent kernel
        w = m.get_layer(consumer).get_weights()
        w[0][dead] = 0.0
        w[3][dead] = 0.0
        own = m.get_layer(name).get_weights()
        own[1][dead] = 0.0
        m.get_layer(name).set_weights(own)
    m.get_layer(consumer).set_weights(w)
    units = C.units_of(m.get_layer(name))
    s = C.prune(m, 0.0, method="structured", per_layer={name: len(dead) / units})
    assert C.units_of(s.get_layer(name)) == units - len(dead)
    np.testing.assert_allclose(s(data[0]).numpy(), m(data[0]).numpy(), rtol=1e-5, atol=1e-5)


def test_pruning_registry():
    assert set(C.PRUNING_METHODS) >= {"magnitude", "structured"}
    for method in C.PRUNING_METHODS.values():
        assert isinstance(method, C.PruningMethod) and callable(method.apply) and callable(method.prunable)


# ------------------------------------------------------------------------------------------------ clustering

@pytest.mark.parametrize("kind", KINDS)
def test_cluster_preserves_sparsity(kind, pruned, clustered, data, tmp_path):
    p, c = pruned[kind], clustered[kind]
    assert_plain(c)
    pk = C.kernel_weights(p)
    for key, w in C.kernel_weights(c).items():
        assert np.unique(w).size <= 5, key
        assert np.all(w[pk[key] == 0] == 0), key  # zeros stay zero
    info = C.compression_info(c)
    assert [s["step"] for s in info["steps"]] == ["prune", "cluster"]
    assert info["steps"][-1]["fine_tuned"] is (kind == "rnn")
    assert set(info["steps"][-1]["layers"]) == {layer.name for layer in p.layers if C.kernel_entries(layer)}
    assert_predicts_and_reloads(c, data[0], tmp_path)


def test_cluster_does_not_touch_its_input(pruned, originals, models, ft):
    p = pruned["mlp"]
    before = [w.copy() for w in p.get_weights()]
    C.cluster(p, 4, preserve_sparsity=True, fine_tune=ft)
    assert_unchanged(p, before)
    assert_unchanged(models["mlp"], originals["mlp"])


@pytest.mark.parametrize("init", ["linear", "kmeans++"])
def test_cluster_one_shot(init, models, originals):
    c = C.cluster(models["mlp"], np.int64(3), init=np.str_(init))  # numpy scalars, as scikit-optimize returns
    for key, w in C.kernel_weights(c).items():
        assert np.unique(w).size <= 3, key
    assert_unchanged(models["mlp"], originals["mlp"])


@pytest.fixture(scope="module")
def very_sparse(models):
    """The MLP pruned one-shot to 95 %: h1 keeps 26 of 528 weights, h2 5 of 96, out 1 of 16."""
    return C.prune(models["mlp"], 0.95)


@pytest.mark.parametrize("preserve_sparsity, n_clusters, few", [(True, 16, ["h2", "out"]), (False, 20, ["h2", "out"]),
                                                                (True, 64, ["h1", "h2", "out"])])
def test_cluster_kmeans_more_clusters_than_weights(very_sparse, preserve_sparsity, n_clusters, few):
    """kmeans++ used to crash in TFMOT (num_to_sample <= points.rows()) when a tensor had fewer (non-zero)
    weights than clusters; such a tensor has at most n_clusters distinct values already and is left as it is."""
    p = very_sparse
    pk = C.kernel_weights(p)
    # what made kmeans++ crash: more centroids to place than (non-zero) weights
    out = pk["out/kernel"]
    assert 0 < np.count_nonzero(out) < n_clusters - 1 if preserve_sparsity else out.size < n_clusters
    assert all(np.unique(pk[f"{name}/kernel"]).size <= n_clusters for name in few)
    c = C.cluster(p, n_clusters, init="kmeans++", preserve_sparsity=preserve_sparsity)
    ck = C.kernel_weights(c)
    for key, w in ck.items():
        assert np.unique(w[w != 0]).size <= n_clusters and np.unique(w).size <= n_clusters, key
        if preserve_sparsity:
            assert np.all(w[pk[key] == 0] == 0), key
    for name in ("h1", "h2", "out"):
        key = f"{name}/kernel"
        if name in few:
            np.testing.assert_array_equal(ck[key], pk[key])  # left as it is, exactly
        else:
            assert np.unique(pk[key]).size > n_clusters and not np.array_equal(ck[key], pk[key])  # clustered
    step = C.compression_info(c)["steps"][-1]
    assert step["layers"] == ["h1", "h2", "out"] and step["skipped_few_values"] == few
    assert step["clusters_per_layer"] == ({} if "h1" in few else {"h1": n_clusters}) and step["capped"] == {}


def test_cluster_few_values_stay_few_while_fine_tuning(very_sparse, ft):
    p = very_sparse
    pk = C.kernel_weights(p)
    c = C.cluster(p, 16, preserve_sparsity=True, fine_tune=ft)
    step = C.compression_info(c)["steps"][-1]
    assert step["skipped_few_values"] == ["h2", "out"] and step["fine_tuned"]
    for key, w in C.kernel_weights(c).items():
        assert np.unique(w).size <= 16, key
        assert np.count_nonzero(w) == np.count_nonzero(pk[key]) and np.all(w[pk[key] == 0] == 0), key
    h2 = C.kernel_weights(c)["h2/kernel"]
    assert np.unique(h2[h2 != 0]).size == np.count_nonzero(pk["h2/kernel"])  # as few values,
    assert not np.array_equal(h2, pk["h2/kernel"])  # but trained


def test_cluster_caps_kmeans_per_layer():
    """An LSTM whose recurrent kernel keeps 3 non-zero weights but whose kernel has 48 distinct values: TFMOT clusters
    both with one count, so the layer gets 4 clusters (the zeros and 3 more), the most kmeans++ can place."""
    keras.utils.set_random_seed(3)
    inp = keras.Input((5, 3))
    model = keras.Model(inp, L.Dense(3, name="out")(L.LSTM(4, name="lstm")(inp)))
    lstm = model.get_layer("lstm")
    kernel, recurrent, bias = lstm.get_weights()
    sparse = np.zeros_like(recurrent)
    sparse.flat[[1, 20, 40]] = [0.5, -0.25, 0.75]
    lstm.set_weights([kernel, sparse, bias])
    c = C.cluster(model, 8, init="kmeans++", preserve_sparsity=True)
    step = C.compression_info(c)["steps"][-1]
    assert step["capped"] == {"lstm": 4} and step["clusters_per_layer"] == {"lstm": 4, "out": 8}
    assert step["skipped_few_values"] == []
    ck = C.kernel_weights(c)
    assert np.unique(ck["lstm/kernel"]).size <= 4 and 4 < np.unique(ck["out/kernel"]).size <= 8
    np.testing.assert_allclose(ck["lstm/recurrent_kernel"], sparse, atol=1e-6)  # 3 values, 3 centroids: exact
    # a tensor with a single non-zero weight leaves kmeans++ no valid count: that layer is initialized linearly
    sparse[:] = 0
    sparse.flat[7] = 0.5
    lstm.set_weights([kernel, sparse, bias])
    c = C.cluster(model, 8, init="kmeans++", preserve_sparsity=True)
    step = C.compression_info(c)["steps"][-1]
    assert step["init_fallback"] == {"lstm": "linear"} and step["clusters_per_layer"]["lstm"] == 8
    ck = C.kernel_weights(c)
    assert np.unique(ck["lstm/kernel"]).size <= 8
    np.testing.assert_allclose(ck["lstm/recurrent_kernel"], sparse, atol=1e-6)


# ------------------------------------------------------------------------------------------------ quantization

@pytest.mark.parametrize("kind", KINDS)
def test_ptq_grid(kind, pruned):
    p = pruned[kind]
    before = [w.copy() for w in p.get_weights()]
    pk = C.kernel_weights(p)
    for bits, per_channel in [(2, False), (5, True), (16, False)][: 3 if kind == "mlp" else 2]:
        q = C.quantize(p, bits, per_channel=per_channel)
        info = C.compression_info(q)
        assert info["weight_bits"] == bits and info["steps"][-1]["mode"] == "ptq"
        scales = info["steps"][-1]["scales"]
        qk = C.kernel_weights(q)
        assert set(scales) == set(qk)
        for key, w in qk.items():
            assert np.all(w[pk[key] == 0] == 0), key
            if per_channel:
                assert len(scales[key]) == w.shape[-1]
                for j in range(w.shape[-1]):
                    assert_on_grid(w[..., j], bits, scales[key][j])
            else:
                assert_on_grid(w, bits, scales[key])
            if bits == 16:
                np.testing.assert_allclose(w, pk[key], atol=np.abs(pk[key]).max() / 2 ** 14)
        # biases stay float unless asked
        np.testing.assert_array_equal(q.get_layer("out").get_weights()[1], p.get_layer("out").get_weights()[1])
    assert_unchanged(p, before)
    if kind == "mlp":  # idempotent; biases on request
        q = C.quantize(p, 4)
        qq = C.quantize(q, 4)
        for a, b in zip(C.kernel_weights(qq).values(), C.kernel_weights(q).values()):
            np.testing.assert_array_equal(a, b)
        qb = C.quantize(p, 3, quantize_bias=True)
        assert_on_grid(qb.get_layer("out").get_weights()[1], 3,
                       C.compression_info(qb)["steps"][-1]["scales"]["out/bias"])


def test_quantize_array_exact():
    w = np.array([-1.0, -0.26, 0.0, 0.1, 0.5, 0.74], dtype=np.float32)
    q, scale = C.quantize_array(w, 3)  # levels -4..3, scale = max(0.74 / 3, 1 / 4)
    assert scale[0] == pytest.approx(0.25)
    np.testing.assert_array_equal(q, np.float32([-1.0, -0.25, 0.0, 0.0, 0.5, 0.75]))
    q, _ = C.quantize_array(np.zeros(5, np.float32), 4)
    assert np.all(q == 0)


def test_qat_keeps_sparsity_and_clusters(rnn_pipeline, data, tmp_path):
    """QAT with 8-bit activations on Conv1D, LSTM, Bidirectional(LSTM) and Dense of a pruned, clustered model."""
    result = rnn_pipeline[0]
    c, q = result.steps[1].model, result.steps[2].model
    assert C.weight_stats(c)["total"] == result.steps[1].total  # the QAT step did not modify its input
    assert_plain(q)
    info = C.compression_info(q)
    step = info["steps"][-1]
    ck = C.kernel_weights(c)
    qk = C.kernel_weights(q)
    assert set(qk) == set(step["scales"]) == set(ck)
    for key, w in qk.items():
        assert_on_grid(w, 4, step["scales"][key])
        assert np.all(w[ck[key] == 0] == 0), key  # sparsity kept through QAT
        assert np.unique(w[w != 0]).size <= 4, key  # clusters kept (5 clusters, one is zero)
    assert step["mode"] == "qat" and step["ptq_fallback"] == []
    assert set(step["qat_layers"]) == {"conv", "lstm", "bi", "out"}
    assert info["activation_bits"] == 8
    assert set(step["activation_ranges"]) == set(step["qat_layers"])
    assert [s["step"] for s in info["steps"]] == ["prune", "cluster", "quantize"]
    assert_predicts_and_reloads(q, data[0], tmp_path)


def test_qat_weights_only_and_full_model_save(models, originals, ft, data, tmp_path):
    m = models["mlp"]
    q = C.quantize(m, 3, mode="qat", fine_tune=ft)
    scales = C.compression_info(q)["steps"][-1]["scales"]
    for key, w in C.kernel_weights(q).items():
        assert_on_grid(w, 3, scales[key])
    path = str(tmp_path / "q.keras")
    q.save(path)
    again = keras.models.load_model(path)
    np.testing.assert_allclose(again(data[0][:8]).numpy(), q(data[0][:8]).numpy(), atol=1e-6)
    assert_unchanged(m, originals["mlp"])


def test_qat_falls_back_to_ptq_for_uncovered_layers(ft):
    """SeparableConv1D is not covered by the k-bit QAT config: it is rounded after QAT, and the info says so."""
    keras.utils.set_random_seed(3)
    m = keras.Sequential([keras.Input((WINDOW, FEATURES)), L.SeparableConv1D(4, 3, name="sep"),
                          L.Flatten(name="flat"), L.Dense(2, name="out")])
    q = C.quantize(m, 5, mode="qat", fine_tune=ft)
    step = C.compression_info(q)["steps"][-1]
    assert step["qat_layers"] == ["out"] and step["ptq_fallback"] == ["sep"]
    kernels = C.kernel_weights(q)
    assert set(kernels) == {"sep/depthwise_kernel", "sep/pointwise_kernel", "out/kernel"} == set(step["scales"])
    for key, w in kernels.items():
        assert_on_grid(w, 5, step["scales"][key])


# ------------------------------------------------------------------------------------------------ pipeline

def test_pipeline_reports_every_step(models, originals, ft, data):
    m = models["mlp"]
    calls = []
    evaluate, complexity = evaluate_fn(data), complexity_fn(calls)
    config = C.CompressionConfig(sparsity=np.float64(0.5), n_clusters=np.int64(4), weight_bits=np.int64(4),
                                 activation_bits=8, quantize_mode="ptq")
    result = C.compress(m, config, ft, evaluate=evaluate, complexity=complexity)
    assert_unchanged(m, originals["mlp"])
    assert [s.step for s in result.steps] == ["prune", "cluster", "quantize"] == config.steps
    assert calls == [(None, None), (None, None), (None, None), (4, 8)]
    base = result.baseline.total
    kern = sum(w.size for w in C.kernel_weights(m).values())
    biases = m.count_params() - kern  # zero-initialized, never trained here
    assert base["n_weights"] == m.count_params() and base["n_nonzero"] == kern
    prune_r, cluster_r, quant_r = result.steps
    assert prune_r.total["n_weights"] == base["n_weights"]
    assert prune_r.total["n_nonzero"] <= kern / 2 + biases
    assert prune_r.total["n_nonzero"] >= kern / 2 - 3
    assert cluster_r.params["preserve_sparsity"] is True  # automatic after magnitude pruning
    for layer in cluster_r.layers:
        kernel = [t for t in layer["tensors"] if t["kernel"]][0]
        assert kernel["n_distinct_nonzero"] <= 3
    assert quant_r.total["nonzero_bits"] < cluster_r.total["nonzero_bits"]
    assert quant_r.total["compressed_bits"] < quant_r.total["dense_bits"]
    for r in result.steps:
        assert set(r.evaluation) == {"mse"} and set(r.complexity) == {"rmps"} and r.seconds >= 0
        assert {"layer", "type", "n_weights", "n_nonzero", "n_distinct_nonzero", "dense_bits", "nonzero_bits",
                "compressed_bits"} <= set(r.layers[0])
    assert quant_r.complexity["rmps"] <= cluster_r.complexity["rmps"] <= prune_r.complexity["rmps"]
    d = json.loads(json.dumps(result.to_dict()))  # JSON-ready
    assert d["config"]["n_clusters"] == 4 and len(d["steps"]) == 3


def test_rnn_pipeline_report(rnn_pipeline, models, originals):
    result, calls = rnn_pipeline
    assert_unchanged(models["rnn"], originals["rnn"])
    assert [s.step for s in result.steps] == ["prune", "cluster", "quantize"]
    assert calls == [(None, None), (None, None), (None, None), (4, 8)]
    assert result.steps[1].params["preserve_sparsity"] is True
    for report in result.steps:
        assert set(report.evaluation) == {"mse"} and np.isfinite(report.evaluation["mse"])
        names = [layer["layer"] for layer in report.layers]
        assert names == ["conv", "lstm", "bi", "out"]
        for layer in report.layers:
            for t in layer["tensors"]:
                if t["kernel"]:
                    sparsity = 1 - t["n_nonzero"] / t["n_weights"]
                    assert abs(sparsity - 0.5) <= 1 / t["n_weights"] or (report.step != "prune" and
                                                                         0.5 <= sparsity <= 0.65), t
                    if report.step != "prune":
                        assert t["n_distinct_nonzero"] <= 4, t
                    assert t["bits"] == (4 if report.step == "quantize" else 32)
        assert report.model is not None
    assert result.model is result.steps[-1].model
    assert result.steps[-1].total["compressed_bits"] < result.baseline.total["compressed_bits"] / 4


def test_pipeline_optional_steps(models):
    result = C.compress(models["mlp"], C.CompressionConfig(weight_bits=6))
    assert [s.step for s in result.steps] == ["quantize"]
    assert result.steps[0].layers[0]["tensors"][0]["bits"] == 6
    assert result.steps[0].layers[0]["tensors"][-1]["bits"] == 32  # bias
    empty = C.compress(models["mlp"], C.CompressionConfig())
    assert empty.steps == [] and empty.model is not models["mlp"]


def test_size_formula():
    assert C.tensor_size_bits(100, 100, 100, 32)["compressed_bits"] == 3200
    assert C.tensor_size_bits(100, 10, 10, 32) == {"dense_bits": 3200, "nonzero_bits": 320,
                                                    "compressed_bits": 100 + 320}
    # 4 shared values in 100 dense weights: codebook 4 x 32 + 100 x 3-bit indices
    assert C.tensor_size_bits(100, 100, 4, 32)["compressed_bits"] == 4 * 32 + 100 * 3


# ------------------------------------------------------------------------------------------------ bad input

@pytest.fixture()
def no_training(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("training started before the input was checked")

    monkeypatch.setattr(keras.Model, "fit", fail)  # any training, whichever module of eqnn.compression starts it


def keras3_model():
    keras3 = pytest.importorskip("keras")
    if not keras3.__version__.startswith("3"):
        pytest.skip("keras 3 not installed")
    return keras3.Sequential([keras3.Input((3,)), keras3.layers.Dense(2)])


@pytest.mark.usefixtures("no_training")
def test_bad_input_raises_before_training(models, ft):
    m = models["mlp"]
    with pytest.raises(ValueError, match="sparsity"):
        C.prune(m, 1.0, fine_tune=ft)
    with pytest.raises(ValueError, match="sparsity"):
        C.prune(m, -0.1, fine_tune=ft)
    with pytest.raises(TypeError):
        C.prune(m, "0.5", fine_tune=ft)
    with pytest.raises(ValueError, match="pruning method"):
        C.prune(m, 0.5, method="random", fine_tune=ft)
    with pytest.raises(ValueError, match="schedule"):
        C.prune(m, 0.5, schedule="cubic", fine_tune=ft)
    with pytest.raises(ValueError, match="no layer 'nope'"):
        C.prune(m, 0.5, per_layer={"nope": 0.5}, fine_tune=ft)
    with pytest.raises(ValueError, match="cannot be pruned"):
        C.prune(m, 0.5, method="structured", per_layer={"out": 0.5}, fine_tune=ft)
    with pytest.raises(ValueError, match="per_layer"):
        C.prune(m, 0.5, per_layer={"h1": 1.5}, fine_tune=ft)
    with pytest.raises(ValueError, match="global"):
        C.prune(m, 0.5, method="structured", scope="global", fine_tune=ft)
    with pytest.raises(ValueError, match="criterion"):
        C.prune(m, 0.5, method="structured", options={"criterion": "random"}, fine_tune=ft)
    with pytest.raises(ValueError, match="n_clusters"):
        C.cluster(m, 1, fine_tune=ft)
    with pytest.raises(ValueError, match="n_clusters"):
        C.cluster(m, 2, preserve_sparsity=True, fine_tune=ft)
    with pytest.raises(TypeError):
        C.cluster(m, 4.5, fine_tune=ft)
    with pytest.raises(ValueError, match="cluster init"):
        C.cluster(m, 4, init="kmeans", fine_tune=ft)
    for bits in (1, 17, 0, 32):
        with pytest.raises(ValueError, match="weight_bits"):
            C.quantize(m, bits, mode="qat", fine_tune=ft)
    with pytest.raises(ValueError, match="activation_bits"):
        C.quantize(m, 8, activation_bits=1, mode="qat", fine_tune=ft)
    with pytest.raises(ValueError, match="quantization mode"):
        C.quantize(m, 8, mode="dynamic", fine_tune=ft)
    with pytest.raises(ValueError, match="needs fine_tune"):
        C.quantize(m, 8, mode="qat")
    with pytest.raises(ValueError, match="ptq"):
        C.quantize(m, 8, mode="qat", per_channel=True, fine_tune=ft)
    with pytest.raises(TypeError, match="FineTune"):
        C.prune(m, 0.5, fine_tune=(1, 2))
    for bad in (object(), "model", None):
        for fn in (lambda x: C.prune(x, 0.5), lambda x: C.cluster(x, 4), lambda x: C.quantize(x, 8)):
            with pytest.raises(TypeError, match="tf_keras"):
                fn(bad)
    with pytest.raises(ValueError, match="per_layer"):
        C.compress(m, C.CompressionConfig(sparsity=0.5, per_layer={"nope": 0.1}), ft)
    with pytest.raises(ValueError, match="needs fine_tune"):
        C.compress(m, C.CompressionConfig(sparsity=0.5, weight_bits=4, quantize_mode="qat"))
    with pytest.raises(TypeError, match="CompressionConfig"):
        C.compress(m, {"sparsity": 0.5}, ft)


def test_keras3_model_rejected():
    model = keras3_model()
    for fn in (lambda x: C.prune(x, 0.5), lambda x: C.cluster(x, 4), lambda x: C.quantize(x, 8),
               lambda x: C.compress(x, C.CompressionConfig(sparsity=0.5))):
        with pytest.raises(TypeError, match="Keras 3"):
            fn(model)


def test_config_and_fine_tune_validation(data):
    x, y = data
    for kwargs, err in [({"sparsity": 1.0}, ValueError), ({"n_clusters": 1}, ValueError),
                        ({"n_clusters": 2, "preserve_sparsity": True}, ValueError), ({"weight_bits": 17}, ValueError),
                        ({"weight_bits": 4, "activation_bits": 1}, ValueError), ({"activation_bits": 8}, ValueError),
                        ({"prune_method": "lottery"}, ValueError), ({"quantize_mode": "int8"}, ValueError),
                        ({"cluster_init": "kmeans"}, ValueError), ({"schedule": "cosine"}, ValueError),
                        ({"per_layer": [("a", 0.5)]}, TypeError), ({"sparsity": "0.5"}, TypeError)]:
        with pytest.raises(err):
            C.CompressionConfig(**kwargs)
    config = C.CompressionConfig(sparsity=0.2, per_layer={"h1": 0.5}, prune_method="structured",
                                 prune_options={"criterion": "incoming"}, n_clusters=np.int64(8), weight_bits=8)
    assert config.to_dict()["per_layer"] == {"h1": 0.5} and config.to_dict()["n_clusters"] == 8
    assert type(config.n_clusters) is int and config.steps == ["prune", "cluster", "quantize"]
    assert not config.cluster_preserves_sparsity()  # structured pruning leaves no zeros to preserve
    for kwargs in [{"epochs": 0}, {"batch_size": 0}, {"learning_rate": 0.0}, {"validation_split": 1.0}]:
        with pytest.raises(ValueError):
            C.FineTune(x, y, **kwargs)
    with pytest.raises(ValueError, match="length"):
        C.FineTune(x, y[:-1])
    ft = C.FineTune(x, y, epochs=3, batch_size=50, validation_split=0.25)
    assert ft.n_train == 96 and ft.steps_per_epoch == 2 and ft.total_steps == 6
