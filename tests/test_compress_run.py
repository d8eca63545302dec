"""eqnn.compress_run and `eqnn compress`: the [compression] table and its errors, the search space, a tiny
end-to-end study (files, best point, saved best model = measured model, resume without re-evaluation), exact
save/load of structurally pruned models, and the command line on a TOML and on a saved equalizer."""

import dataclasses
import json
import re
import shutil

import numpy as np
import pytest
from tiny_configs import TINY_DATA, TINY_TRAINING, train_tiny_mlp

import channel
import channel.link
from channel import ConfigError
from eqnn import compress as compression
from eqnn import compress_run
from eqnn.cli import main
from eqnn.complexity import cdc_complexity, dbp_complexity, model_complexity
from eqnn.compress_run import (
    CompressionSearchConfig,
    _as_equalizer,
    compress_equalizer,
    reference_points,
)
from eqnn.models import BiLSTMConfig, MLPConfig, build_model
from eqnn.search import Categorical, Integer, Real
from eqnn.studies import compression as compression_study
from eqnn.train import Equalizer, evaluate, load_equalizer, save_equalizer
from eqnn.training import fitting

DATA = TINY_DATA


@pytest.fixture(scope="module")
def trained():
    return train_tiny_mlp(epochs=2)


# --------------------------------------------------------------------------------------------- config

@pytest.mark.parametrize("table, match", [
    ({"sparsity": [0.2, 1.0]}, r"compression.sparsity = \[0.2, 1.0\]: allowed numbers in \[0, 1\)"),
    ({"sparsity": -0.1}, r"compression.sparsity = -0.1: allowed numbers in \[0, 1\)"),
    ({"sparsity": "high"}, r"compression.sparsity = 'high'"),
    ({"sparsity": [0.5, 0.1]}, r"compression.sparsity = \[0.5, 0.1\]: a range must be \[low, high\]"),
    ({"clusters": 1}, r"compression.clusters = 1: allowed integers in \[2, 65536\]"),
    ({"clusters": [1, 8]}, r"compression.clusters = \[1, 8\]: allowed integers in \[2, "),
    ({"weight_bits": [3, 17]}, r"compression.weight_bits = \[3, 17\]: allowed integers in \[2, 16\]"),
    ({"weight_bits": 1}, r"compression.weight_bits = 1: allowed integers in \[2, 16\]"),
    ({"activation_bits": 20}, r"compression.activation_bits = 20: allowed integers in \[2, 16\]"),
    ({"pruning_methods": ["magnitude", "random"]}, r"compression.pruning_methods = .*allowed one of \['magnitude', "
                                                   r"'structured'"),
    ({"pruning_methods": []}, r"compression.pruning_methods = \[\]"),
    ({"objective": "best"}, r"compression.objective = 'best': allowed 'constrained', 'weighted'"),
    ({"max_q_loss_db": -1}, r"compression.max_q_loss_db = -1: allowed a number in \[0, 10\]"),
    ({"weight": 2}, r"compression.weight = 2: allowed a number in \[0, 1\]"),
    ({"n_calls": 0}, r"compression.n_calls = 0 is out of range"),
    ({"fine_tune_epochs": -1}, r"compression.fine_tune_epochs = -1 is out of range"),
    ({"fine_tune_learning_rate": 0}, r"compression.fine_tune_learning_rate = 0: allowed a number in \(0, 1\]"),
    ({"sparsity": 0.5, "clusters": 8, "weight_bits": 6, "pruning_methods": "magnitude"}, r"search space is empty"),
    ({"sparsity": 0.0, "clusters": False, "weight_bits": False}, r"nothing to compress"),
    ({"activation_bits": 8, "weight_bits": False}, r"compression.activation_bits = 8 needs compression.weight_bits"),
    ({"quantize_mode": "qat", "fine_tune_epochs": 0}, r"'qat' needs compression.fine_tune_epochs >= 1"),
    ({"sparsity_scope": "global", "pruning_methods": "structured"}, r"sparsity_scope = 'global' applies to magnitude"),
    ({"sparsity_scope": "neuron"}, r"compression.sparsity_scope = 'neuron': allowed 'layer', 'global', 'per_layer'"),
    ({"bits": 4}, r"unknown key\(s\) \['bits'\] in \[compression\]: allowed .*weight_bits"),
])
def test_bad_compression_tables_name_the_key(table, match):
    with pytest.raises(ConfigError, match=match):
        CompressionSearchConfig.from_dict(table)


def test_other_section_name_in_errors():
    with pytest.raises(ConfigError, match=r"study.compression.clusters = 1"):
        CompressionSearchConfig.from_dict({"clusters": 1}, section="study.compression")


def test_search_space_and_pipeline_config(trained):
    model = trained[0].model
    default = CompressionSearchConfig()
    assert default.search_space() == [Real("sparsity", 0.0, 0.95),
                                      Categorical("pruning_method", ("magnitude", "structured")),
                                      Integer("clusters", 4, 64), Integer("weight_bits", 3, 12)]
    assert CompressionSearchConfig.from_dict(json.loads(json.dumps(default.to_dict()))) == default
    # fixed values are not dimensions; knobs of a step that does not run neither
    fixed = CompressionSearchConfig(sparsity=0.5, pruning_methods="magnitude", clusters=False, weight_bits=[4, 4],
                                    schedule=["constant", "polynomial"], quantize_mode=["ptq", "qat"])
    assert [d.name for d in fixed.search_space()] == ["schedule", "quantize_mode"]
    cc = fixed.compression_config({"schedule": "constant", "quantize_mode": "qat"})
    assert (cc.prune_method, cc.sparsity, cc.schedule, cc.n_clusters, cc.weight_bits, cc.quantize_mode) == (
        "magnitude", 0.5, "constant", None, 4, "qat")
    # per-layer sparsity: one dimension per layer that some method can prune (structured spares the output)
    per_layer = CompressionSearchConfig(sparsity_scope="per_layer", clusters=False, weight_bits=False)
    with pytest.raises(ConfigError, match="per_layer"):
        per_layer.search_space()
    names = [d.name for d in per_layer.search_space(model)]
    assert names == ["sparsity:dense_1", "sparsity:output", "pruning_method"]
    structured = per_layer.compression_config(
        {"sparsity:dense_1": 0.5, "sparsity:output": 0.3, "pruning_method": "structured"}, model)
    assert dict(structured.per_layer) == {"dense_1": 0.5}
    magnitude = per_layer.compression_config(
        {"sparsity:dense_1": 0.5, "sparsity:output": 0.3, "pruning_method": "magnitude"}, model)
    assert dict(magnitude.per_layer) == {"dense_1": 0.5, "output": 0.3}
    glob = CompressionSearchConfig(sparsity_scope="global").compression_config(
        {"sparsity": 0.4, "pruning_method": "magnitude", "clusters": 5, "weight_bits": 6})
    assert (glob.scope, glob.sparsity, glob.n_clusters, glob.weight_bits) == ("global", 0.4, 5, 6)


def test_bad_models_are_rejected_before_any_work(trained, tmp_path):
    eq, train_set, te = trained
    config = CompressionSearchConfig(n_calls=1)

    class Sequential:  # what a Keras 3 model looks like to the check
        pass

    Sequential.__module__, Sequential.__qualname__ = "keras.src.models.sequential", "Sequential"
    with pytest.raises(TypeError, match=r"must be a tf_keras.Model, got keras.src.models.sequential.Sequential"):
        compress_equalizer(Sequential(), train_set, te, config, tmp_path / "a")
    with pytest.raises(TypeError, match=r"must be an eqnn.train.Equalizer"):
        compress_equalizer(eq.model, train_set, te, config, tmp_path / "b")
    with pytest.raises(TypeError, match="CompressionSearchConfig"):
        compress_equalizer(eq, train_set, te, {"n_calls": 1}, tmp_path / "c")
    assert not any(tmp_path.iterdir())


def test_reference_points(trained):
    eq, _, te = trained
    link = te.config
    whole = reference_points(te)
    assert set(whole) == {"CDC", "DBP-1"}
    assert whole["CDC"] == (cdc_complexity(link, samples_per_symbol=2).rmps, te.metrics["CDC"].q_db_best)
    assert whole["DBP-1"][0] == dbp_complexity(link, 1).rmps
    same = reference_points(te, eq)  # on the symbols the NN is evaluated on, as eqnn.train.evaluate does
    ev = evaluate(eq, te)
    for method in ("CDC", "DBP-1"):
        assert same[method] == (whole[method][0], ev.metrics[method].q_db_best)


# --------------------------------------------------------------------------------------------- the study

@pytest.mark.parametrize("config", [MLPConfig(units=(8, 6)), BiLSTMConfig(units=4)], ids=lambda c: c.type)
def test_structurally_pruned_models_save_and_load_exactly(config, trained, tmp_path):
    _, train_set, _ = trained
    model = build_model(config, train_set.input_shape, 2)
    source = Equalizer(model=model, model_config=config, data_config=trained[0].data_config,
                       normalization=train_set.normalization)
    pruned = compression.prune(model, 0.5, method="structured")
    saved = save_equalizer(_as_equalizer(source, pruned, {"note": 1}), tmp_path / "eq")
    loaded = load_equalizer(saved)
    units = loaded.model_config.units
    assert (units == (4, 3)) if config.type == "mlp" else (units == 2)
    for layer in pruned.layers:
        for a, b in zip(layer.get_weights(), loaded.model.get_layer(layer.name).get_weights()):
            np.testing.assert_array_equal(a, b)
    assert model_complexity(loaded.model).rmps == model_complexity(pruned).rmps < model_complexity(model).rmps


@pytest.fixture(scope="module")
def study(trained, tmp_path_factory):
    eq, train_set, te = trained
    # structured pruning: TFMOT magnitude pruning with fine-tuning costs ~10 s per call (the CLI test below
    # runs it one-shot; tests/test_compress.py covers it)
    config = CompressionSearchConfig(n_calls=4, n_initial_points=3, sparsity=[0.0, 0.9], pruning_methods="structured",
                                     clusters=False, weight_bits=[3, 8], fine_tune_epochs=1, fine_tune_batch_size=128,
                                     fine_tune_windows=600, max_q_loss_db=0.5)
    folder = tmp_path_factory.mktemp("study") / "mlp"
    calls = []
    original = compression.compress

    def counting(*args, **kwargs):
        calls.append(args[1])
        return original(*args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(compression, "compress", counting)
        result = compress_equalizer(eq, train_set, te, config, folder, progress=False)
    return result, folder, config, calls


def test_study_writes_its_files_and_the_best_point(study, trained):
    result, folder, config, calls = study
    eq, _, te = trained
    assert len(calls) == 4 and len(result.search.evaluations) == 4
    for name in ("search.json", "evaluations.jsonl", "evaluations.csv", "result.json", "compression.json",
                 "setup.json", "best/equalizer.json"):
        assert (folder / name).is_file(), name
    assert (folder / "q_vs_rmps.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(list((folder / "models").iterdir())) == 4
    saved = json.loads((folder / "compression.json").read_text())
    assert saved == json.loads(json.dumps(result.to_dict()))
    assert set(saved["references"]) == {"CDC", "DBP-1"}
    u = result.uncompressed
    assert u["q_db"] == pytest.approx(evaluate(eq, te).metrics[eq.name].q_db_best)
    assert u["rmps"] == model_complexity(eq.model).rmps == 20 * 8 + 8 * 2
    assert result.q_target_db == pytest.approx(u["q_db"] - 0.5)
    # the best point: lowest objective, on the Pareto front, with the report of every pipeline step
    best = result.best
    assert best["objective"] == min(e.objective for e in result.search.evaluations)
    assert best["call"] in [p["call"] for p in result.pareto]
    fronts = [(p["rmps"], p["q_db"]) for p in result.pareto]
    assert fronts == sorted(fronts) and all(a[1] < b[1] for a, b in zip(fronts, fronts[1:]))
    assert [s["step"] for s in best["report"]["steps"]] == (["prune"] if best["params"]["sparsity"] > 0 else []) + [
        "quantize"]
    assert best["report"]["steps"][-1]["complexity"]["rmps"] == best["rmps"]
    assert all(c.weight_bits in range(3, 9) and c.n_clusters is None for c in calls)


def test_saved_best_model_is_the_measured_one(study, trained):
    result, folder, _, _ = study
    _, _, te = trained
    best = load_equalizer(folder / "best")
    info = best.info["compression"]
    assert info["params"] == result.best["params"] and info["weight_bits"] == result.best["params"]["weight_bits"]
    cost = model_complexity(best.model, info["weight_bits"], info["activation_bits"])
    assert (cost.rmps, cost.bop, cost.nabs) == (result.best["rmps"], result.best["bop"], result.best["nabs"])
    assert evaluate(best, te).metrics[best.name].q_db_best == pytest.approx(result.best["q_db"], abs=1e-9)
    for name, w in compression.kernel_weights(best.model).items():  # on a weight_bits grid
        assert np.unique(w).size <= 2 ** info["weight_bits"], name


def test_resume_recomputes_nothing(study, trained, monkeypatch):
    result, folder, config, _ = study
    eq, train_set, te = trained
    calls = []
    original = compression.compress
    monkeypatch.setattr(compression, "compress", lambda *a, **k: calls.append(a[1]) or original(*a, **k))
    monkeypatch.setattr(compression_study, "evaluate", lambda *a, **k: pytest.fail("re-measured a model"))
    (folder / "compression.json").unlink()
    best_dir = folder / "best"
    shutil.rmtree(best_dir)
    again = compress_equalizer(eq, train_set, te, config, folder, progress=False)
    assert calls == [] and again.best == result.best and (folder / "compression.json").is_file()
    assert load_equalizer(best_dir).info["compression"]["params"] == result.best["params"]
    # another configuration in the same folder is refused before any work
    with pytest.raises(ConfigError, match=r"holds a compression study of other inputs \(config differ"):
        compress_equalizer(eq, train_set, te, dataclasses.replace(config, fine_tune_epochs=2), folder,
                           progress=False)
    assert calls == []


def test_failed_compression_is_recorded_not_retried(trained, tmp_path, monkeypatch):
    eq, train_set, te = trained
    config = CompressionSearchConfig(n_calls=3, n_initial_points=3, pruning_methods="magnitude", clusters=False,
                                     weight_bits=[4, 8], fine_tune_epochs=0)
    calls = []
    original = compression.compress

    def first_fails(*args, **kwargs):
        calls.append(args[1])
        if len(calls) == 1:
            raise ValueError("TFMOT says no")
        return original(*args, **kwargs)

    monkeypatch.setattr(compression, "compress", first_fails)
    result = compress_equalizer(eq, train_set, te, config, tmp_path / "f", progress=False)
    failed = result.search.evaluations[0].metrics
    assert failed["failed"] and "ValueError: TFMOT says no" in failed["error"]
    assert failed["q_db"] == result.uncompressed["q_db"] - compress_run.FAILED_Q_PENALTY_DB
    assert result.best["call"] != 0 and 0 not in [p["call"] for p in result.pareto]
    assert json.loads((tmp_path / "f" / "compression.json").read_text())["n_failed"] == 1
    compress_equalizer(eq, train_set, te, config, tmp_path / "f", progress=False)
    assert len(calls) == 3


# --------------------------------------------------------------------------------------------- command line

TINY_STUDY = """
name = "tiny"
powers_dbm = [0.0, 2.0]
cache_dir = ""
""" + TINY_TRAINING + """[compression]
n_calls = 5
n_initial_points = 2
sparsity = [0.0, 0.8]
pruning_methods = "magnitude"
clusters = false
weight_bits = [4, 8]
fine_tune_epochs = 0
[study]
title = "shared with eqnn run"
"""


def test_cli_compresses_a_toml_study_and_a_saved_equalizer(tmp_path, monkeypatch, capsys):
    path = tmp_path / "study.toml"
    path.write_text(TINY_STUDY)
    out, cache = tmp_path / "out", tmp_path / "cache"
    assert main(["compress", str(path), "--calls", "2", "--power", "2", "--out", str(out), "--cache", str(cache),
                 "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "MLP compressed" in printed and "CDC" in printed and "DBP-1" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert [r["method"] for r in summary["rows"]] == ["MLP", "MLP compressed", "CDC", "DBP-1"]
    link = load_equalizer(out / "train" / "models" / "MLP@+2p00dBm").info["test_links"][0]
    assert summary["rows"][2]["bop"] == cdc_complexity(channel.LinkConfig.from_dict(link)).bop
    study = json.loads((out / "MLP@+2p00dBm" / "compression.json").read_text())
    assert study["n_evaluations"] == 2 and study["launch_power_dbm"] == 2.0  # --calls overrides n_calls
    assert (out / "MLP@+2p00dBm" / "best" / "equalizer.json").is_file()

    # the saved equalizer records its links: compressing it again needs no propagation (transmissions cached)
    monkeypatch.setattr(channel.link, "propagate_link", lambda *a, **k: pytest.fail("simulated again"))
    calls = []
    original = compression.compress
    monkeypatch.setattr(compression, "compress", lambda *a, **k: calls.append(a[1]) or original(*a, **k))
    eq_folder = out / "train" / "models" / "MLP@+2p00dBm"
    out2 = tmp_path / "out2"
    args = ["compress", str(eq_folder), "--config", str(path), "--out", str(out2), "--cache", str(cache), "--quiet"]
    assert main([*args, "--calls", "3"]) == 0 and len(calls) == 3
    first = json.loads((out2 / "compression.json").read_text())
    assert first["uncompressed"] == study["uncompressed"]  # same model, same test symbols
    # a larger budget resumes: only the new evaluations run (n_calls = 5 from the [compression] table); here the
    # model's links come from the training run's results.json (models saved before links were recorded)
    meta = json.loads((eq_folder / "equalizer.json").read_text())
    del meta["info"]["train_links"], meta["info"]["test_links"]
    (eq_folder / "equalizer.json").write_text(json.dumps(meta))
    assert main(args) == 0 and len(calls) == 5
    again = json.loads((out2 / "compression.json").read_text())
    assert again["n_evaluations"] == 5 and again["uncompressed"] == first["uncompressed"]
    records = [json.loads(line) for line in (out2 / "evaluations.jsonl").read_text().splitlines()]
    assert [r["call"] for r in records] == [0, 1, 2, 3, 4]
    assert all(c.prune_method == "magnitude" and c.weight_bits in range(4, 9) for c in calls)
    # a bad table in --config: one line, before any work (eqnn.studies.compress_cli.compress_inputs, no TensorFlow)
    bad = tmp_path / "bad.toml"
    bad.write_text(TINY_STUDY.replace('pruning_methods = "magnitude"', 'pruning_methods = ["magnitude", "prune"]'))
    assert main(["compress", str(eq_folder), "--config", str(bad), "--out", str(tmp_path / "out3"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("eqnn compress: error: compression.pruning_methods = ['magnitude', 'prune']: allowed one "
                          "of ['magnitude', ") and err.count("\n") == 1, err
    assert not (tmp_path / "out3").exists() and len(calls) == 5


@pytest.mark.parametrize("changes, args, match", [
    ([("clusters = false", "clusters = 1")], [], r"compression.clusters = 1: allowed integers in \[2, "),
    ([("weight_bits = [4, 8]", "weight_bits = [4, 20]")], [], r"compression.weight_bits = \[4, 20\]"),
    ([("sparsity = [0.0, 0.8]", "sparsity = 0.5"), ("weight_bits = [4, 8]", "weight_bits = 6")], [],
     r"search space is empty"),
    ([("n_calls = 5", "n_call = 5")], [], r"unknown key\(s\) \['n_call'\] in \[compression\]"),
    ([], ["--calls", "0"], r"compression.n_calls = 0"),
    ([], ["--power", "7"], r"--power 7: allowed one of powers_dbm \[0.0, 2.0\]"),
    ([], ["--model", "LSTM"], r"--model 'LSTM': allowed MLP"),
    ([("type = \"mlp\"", "type = \"transformer\"")], [], r"models\[0\].type = 'transformer'"),
])
def test_cli_rejects_bad_input_before_training(tmp_path, monkeypatch, capsys, changes, args, match):
    text = TINY_STUDY
    for old, new in changes:
        text = text.replace(old, new)
    path = tmp_path / "bad.toml"
    path.write_text(text)
    monkeypatch.setattr(fitting, "train_model", lambda *a, **k: pytest.fail("trained despite bad input"))
    monkeypatch.setattr(channel.link, "propagate_link", lambda *a, **k: pytest.fail("simulated despite bad input"))
    assert main(["compress", str(path), "--out", str(tmp_path / "o"), *args]) == 2
    err = capsys.readouterr().err
    assert "eqnn compress: error:" in err
    assert re.search(match, err), err
    assert main(["compress", str(tmp_path / "missing.toml")]) == 2
    assert "does not exist" in capsys.readouterr().err
