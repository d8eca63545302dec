"""Compression of learned DBP (eqnn.compression.ldbp, eqnn.compression.pruning.ldbp_taps): cost against the counting
reference after pruning (magnitude and edges), clustering and quantization; edge pruning = the masked original on
a shorter filter; the search on a tiny LDBP with the method chosen for it; bad settings named before any work.

Tiny link throughout (2 x 40 km, 2048 symbols).
"""

import json

import numpy as np
import pytest
from tiny_configs import tiny_link

import channel
from channel import ConfigError
from eqnn import compress as C
from eqnn.complexity import count_multiplications_reference, model_complexity
from eqnn.complexity.counting import quantize_to_integers
from eqnn.data import DataConfig
from eqnn.data_field import field_features, field_windows, identity_normalization, make_field_blocks, predict_field
from eqnn.models import LDBPConfig, build_model, model_config_from_dict, resized_config
from eqnn.models.ldbp import prepare
from eqnn.studies.compression import compress_equalizer
from eqnn.studies.compression_config import CompressionSearchConfig
from eqnn.training import Equalizer, load_equalizer

DATA = DataConfig(taps=0, guard_symbols=8, both_polarizations=True)


@pytest.fixture(scope="module")
def tiny():
    link = tiny_link().replace(transmitter={"n_symbols": 2048, "launch_power_dbm": 4.0})
    return channel.simulate(link, progress=False, dbp=False)


@pytest.fixture(scope="module")
def small(tiny):
    """An LDBP of 2 steps (7 taps), power filters of 3 taps, output filter of 9, its taps perturbed (no ties)."""
    cfg = prepare(LDBPConfig(taps=7, output_taps=9, power_taps=3, xi=1.0, inference_block=6, block_length=32), tiny)
    model = build_model(cfg, (cfg.input_samples(6), 4), 4)
    rng = np.random.default_rng(1)
    for layer in model.layers:
        if layer.weights:
            layer.set_weights([(w * (1 + 0.2 * rng.normal(size=w.shape))).astype(np.float32)
                               for w in layer.get_weights()])
    return cfg, model


def _window(tiny, cfg):
    return field_windows(field_features(tiny), np.array([100]), cfg.sps, cfg.reach, cfg.inference_block)[0]


def _counted(model, cfg, tiny, weight_bits=None):
    """The cost of ``model`` (config ``cfg``) equals the counting reference; returns it."""
    window = _window(tiny, cfg)
    c = model_complexity(model, weight_bits, time_steps=window.shape[0], symbols_per_window=2 * cfg.inference_block)
    ref = count_multiplications_reference(model, window)
    assert c.multiplications_per_window == ref.multiplications
    assert c.additions_per_window == ref.additions
    out = np.asarray(model(window[None]))[0]
    assert out.shape == (cfg.inference_block, 4)
    np.testing.assert_allclose(ref.output, out, rtol=0, atol=3e-4 * np.max(np.abs(ref.output)))
    return c


def _fir_names(cfg):
    return [f"fir_{i}" for i in range(1, cfg.n_steps() + 1)] + ["output"]


@pytest.mark.parametrize("method, mode", [("magnitude", "magnitude"), ("structured", "edges")])
def test_pruned_ldbp_cost_equals_the_counting_reference(tiny, small, method, mode):
    """The general method names resolve to the LDBP ones; RMpS falls and equals the reference inference's count."""
    cfg, model = small
    before = _counted(model, cfg, tiny)
    pruned = C.prune(model, 0.4, method=method)
    step = C.compression_info(pruned)["steps"][-1]
    assert step["method"] == {"magnitude": "ldbp_taps", "structured": "ldbp_edges"}[method] and step["mode"] == mode
    assert sorted(step["targets"]) == sorted(_fir_names(cfg))
    new_cfg = resized_config(cfg, pruned)
    for name in _fir_names(cfg):
        n0 = model.get_layer(name).taps
        kernel = pruned.get_layer(name).get_weights()[0]
        if mode == "magnitude":  # round(0.4 N) complex taps zero, the filter as long
            assert kernel.shape[0] == n0 and np.sum(~np.any(kernel != 0, axis=1)) == round(0.4 * n0)
        else:  # round(0.4 N / 2) taps gone at each end
            assert kernel.shape[0] == n0 - 2 * round(0.4 * n0 / 2)
    if mode == "edges":
        assert (new_cfg.taps, new_cfg.output_taps) == (7 - 2 * 1, 9 - 2 * 2)
        assert new_cfg.reach == cfg.reach - 2 * 1 - 2
    else:
        assert new_cfg == cfg
    after = _counted(pruned, new_cfg, tiny)
    assert after.rmps < before.rmps


def test_edge_pruning_gives_a_shorter_filter_equal_to_the_masked_original(tiny, small):
    cfg, model = small
    trimmed = C.prune(model, 0.5, method="ldbp_taps", per_layer={"fir_1": 0.5, "fir_2": 0.0, "output": 0.3},
                      options={"mode": "edges"})
    trims = {"fir_1": 2, "fir_2": 0, "output": 1}  # round(0.5 * 7 / 2), round(0.3 * 9 / 2)
    masked = C.copy_model(model)
    for name, e in trims.items():
        kernel = masked.get_layer(name).get_weights()[0]
        kernel[:e], kernel[kernel.shape[0] - e:] = 0.0, 0.0
        masked.get_layer(name).set_weights([kernel])
        assert trimmed.get_layer(name).taps == model.get_layer(name).taps - 2 * e
    new_cfg = resized_config(cfg, trimmed)
    assert new_cfg.taps_per_step == (3, 7) and new_cfg.output_taps == 7
    assert new_cfg.reach == cfg.reach - 3
    # the same symbols through the whole data path (each model reads its own input length)
    y_masked, centres = predict_field(masked, cfg, tiny, DATA)
    y_trimmed, again = predict_field(trimmed, new_cfg, tiny, DATA)
    assert np.array_equal(centres, again)
    np.testing.assert_allclose(y_trimmed, y_masked, rtol=0, atol=1e-5 * np.max(np.abs(y_masked)))
    # the resized config is a valid table and rebuilds the architecture (a saved model loads)
    rebuilt = build_model(model_config_from_dict(json.loads(json.dumps(
        {"type": "ldbp", **{k: v for k, v in new_cfg.__dict__.items() if k != "link"},
         "link": new_cfg.link.__dict__}))), (1, 4), 4)
    assert [w.shape for w in rebuilt.get_weights()] == [w.shape for w in trimmed.get_weights()]
    _counted(trimmed, new_cfg, tiny)


def test_clustering_gives_at_most_k_values_per_tensor(tiny, small):
    cfg, model = small
    pruned = C.prune(model, 0.3, method="magnitude")
    clustered = C.cluster(pruned, 3, init="kmeans++", preserve_sparsity=True)
    scales = []
    for layer in clustered.layers:
        for key, var in C.kernel_entries(layer):
            w = var.numpy()
            if key.endswith("/scale"):
                scales.append(float(w))
                continue
            assert np.unique(w).size <= 3, key
            before = pruned.get_layer(layer.name).get_weights()[0 if "kernel" in key else 1]
            assert np.array_equal(w == 0, before == 0) if "kernel" in key else True  # zeros kept
    assert len(set(scales)) <= 3 and len(scales) == cfg.n_steps()
    c = _counted(clustered, cfg, tiny)
    assert c.rmps < _counted(pruned, cfg, tiny).rmps
    # linear init without preserving the zeros: at most k values, zero possibly among them
    for layer in C.cluster(model, 2, init="linear").layers:
        for key, var in C.kernel_entries(layer):
            assert np.unique(var.numpy()).size <= 2, key


def test_quantization_puts_every_tap_and_constant_on_the_k_bit_grid(tiny, small):
    cfg, model = small
    q = C.quantize(model, 5)
    for layer in q.layers:
        for key, var in C.kernel_entries(layer):
            w = var.numpy().astype(np.float64)
            scale = max(w.max() / 15, -w.min() / 16)
            assert np.allclose(w / scale, np.rint(w / scale), atol=1e-4), key
            assert np.array_equal(quantize_to_integers(w, 5) * scale, np.rint(w / scale) * scale)
    stats = C.weight_stats(q)
    nl = next(row for row in stats["layers"] if row["layer"] == "nonlinear_1")
    assert {t["name"]: (t["kernel"], t["bits"]) for t in nl["tensors"]} == {
        "nonlinear_1/scale": (True, 5), "nonlinear_1/power_filter": (True, 5)}
    _counted(q, cfg, tiny, weight_bits=5)
    with pytest.raises(ValueError, match="quantize_mode 'qat' is not available"):
        C.quantize(model, 5, mode="qat", fine_tune=C.FineTune(x=np.zeros((1, 80, 4)), y=np.zeros((1, 6, 4))))


def test_fine_tuning_keeps_the_pruned_taps_at_zero(tiny, small):
    cfg, model = small
    blocks = make_field_blocks([tiny], DATA, cfg)
    ft = C.FineTune(x=blocks.x[:16], y=blocks.y[:16], epochs=2, batch_size=8, learning_rate=1e-3, seed=2)
    pruned = C.prune(model, 0.4, method="ldbp_taps", fine_tune=ft, schedule="polynomial")
    info = C.compression_info(pruned)["steps"][-1]
    assert info["stages"] == 2 and len(info["history"]) == 2
    for name in _fir_names(cfg):
        kernel = pruned.get_layer(name).get_weights()[0]
        assert np.sum(~np.any(kernel != 0, axis=1)) == round(0.4 * kernel.shape[0])
    assert not np.array_equal(pruned.get_layer("nonlinear_1").get_weights()[0],
                              model.get_layer("nonlinear_1").get_weights()[0])  # it trained
    edges = C.prune(model, 0.4, method="ldbp_edges", fine_tune=ft)  # trains on the cropped blocks
    assert edges.get_layer("fir_1").taps == 5 and C.compression_info(edges)["steps"][-1]["fine_tuned"]


def test_search_on_a_tiny_ldbp_chooses_the_ldbp_methods(tiny, small, tmp_path):
    cfg, model = small
    cfg = model_config_from_dict({"type": "ldbp", "taps": 7, "output_taps": 9, "power_taps": 3, "xi": 1.0,
                                  "block_length": 32, "inference_block": 64, "name": "LDBP",
                                  "link": cfg.link.__dict__})
    eq = Equalizer(model=build_model(cfg, (1, 4), 4), model_config=cfg, data_config=DataConfig(
        taps=0, guard_symbols=8, both_polarizations=True), normalization=identity_normalization(4))
    for layer in eq.model.layers:
        if layer.weights:
            layer.set_weights(model.get_layer(layer.name).get_weights())
    blocks = eq.training_set([tiny])
    config = CompressionSearchConfig(n_calls=3, n_initial_points=3, sparsity=(0.2, 0.6),
                                     pruning_methods=("magnitude", "structured"), clusters=None, weight_bits=None,
                                     fine_tune_epochs=0, max_q_loss_db=3.0)
    study = compress_equalizer(eq, blocks, tiny, config, tmp_path / "c", references={}, progress=False)
    evs = study.search.evaluations
    assert len(evs) == 3 and not any(e.metrics["failed"] for e in evs)
    assert {e.params["pruning_method"] for e in evs} == {"magnitude", "structured"}
    for e in evs:
        saved = load_equalizer(tmp_path / "c" / "models" / e.metrics["model"])
        step = saved.info["compression"]["report"]["steps"][0]["info"]
        assert step["method"] == {"magnitude": "ldbp_taps", "structured": "ldbp_edges"}[e.params["pruning_method"]]
        assert saved.complexity().rmps == pytest.approx(e.metrics["rmps"])  # the saved (resized) model
        assert e.metrics["rmps"] < study.uncompressed["rmps"]


def test_an_ldbp_equalizer_pickles_as_its_configs_and_weights(tiny, small):
    """What Dask sends to its workers (the search's shared context): Keras' own pickling of the LDBP model could
    not rebuild it on a worker ("'str' object is not callable"); the equalizer now pickles as configs and weights
    and comes back with the same weights and the same output."""
    import pickle

    cfg, model = small
    eq = Equalizer(model=model, model_config=cfg, data_config=DATA, normalization=identity_normalization(4),
                   info={"epochs": 3}, weight_bits=8)
    back = pickle.loads(pickle.dumps(eq))
    assert back.model_config == eq.model_config and back.data_config == eq.data_config
    assert (back.info, back.weight_bits, back.activation_bits) == ({"epochs": 3}, 8, None)
    assert all(np.array_equal(a, b) for a, b in zip(back.model.get_weights(), eq.model.get_weights()))
    window = _window(tiny, cfg)[None]
    np.testing.assert_array_equal(np.asarray(back.model(window)), np.asarray(eq.model(window)))


def test_bad_ldbp_compression_settings_are_named_before_any_work(small):
    cfg, model = small
    qat = CompressionSearchConfig(quantize_mode=("ptq", "qat"), fine_tune_epochs=1)
    with pytest.raises(ConfigError, match=r"compression.quantize_mode = \['ptq', 'qat'\]: only 'ptq' is available"):
        qat.search_space(model)
    with pytest.raises(ValueError, match="ldbp_taps.mode = 'middle'"):
        C.prune(model, 0.5, method="ldbp_taps", options={"mode": "middle"})
    with pytest.raises(ValueError, match=r"ldbp_edges: unknown option\(s\) \['mode'\]: allowed none"):
        C.prune(model, 0.5, method="ldbp_edges", options={"mode": "edges"})
    with pytest.raises(ValueError, match="scope='global' is supported by"):
        C.prune(model, 0.5, method="ldbp_edges", scope="global")
    with pytest.raises(ValueError, match="quantize_mode='qat' is not available for the learned DBP"):
        C.compress(model, C.CompressionConfig(sparsity=0.5, weight_bits=4, quantize_mode="qat"),
                   C.FineTune(x=np.zeros((1, 80, 4)), y=np.zeros((1, 6, 4))))
    for spec, match in [({"taps_per_step": [3, 4]}, r"models.ldbp.taps_per_step\[1\] = 4"),
                        ({"taps_per_step": "5"}, "models.ldbp.taps_per_step = '5'")]:
        with pytest.raises(ConfigError, match=match):
            model_config_from_dict({"type": "ldbp", **spec})
    with pytest.raises(ConfigError, match="taps_per_step has 1 entries"):
        model_config_from_dict({"type": "ldbp", "taps_per_step": [5], "link": cfg.link.__dict__})
