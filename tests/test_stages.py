"""The stages' shared rules and the defects fixed with the refactoring by capability (issue 18): bit widths of a
saved compressed equalizer, bare models, the one cache_dir rule, the compression pipeline version, which errors a
compression point records, one-line command-line errors, plots that leave the caller's matplotlib alone, one
launch-power rule and the typed records."""

import json
from pathlib import Path

import pytest
from tiny_configs import TINY_DATA, TINY_TRAINING, tiny_link, train_tiny_mlp

import channel
from channel import ConfigError
from eqnn import compress as compression
from eqnn.cli import main
from eqnn.complexity import model_complexity
from eqnn.compress_run import CompressionSearchConfig, _as_equalizer, compress_equalizer
from eqnn.models import LSTMConfig, MLPConfig, build_model
from eqnn.train import Equalizer, evaluate, load_equalizer, run_training, save_equalizer

DATA = TINY_DATA


@pytest.fixture(scope="module")
def trained():
    return train_tiny_mlp(epochs=1)


# --------------------------------------------------------------------------------------------- bit widths

def test_reloaded_compressed_equalizer_keeps_its_bit_widths(trained, tmp_path):
    eq, _, _ = trained
    result = compression.compress(eq.model, compression.CompressionConfig(weight_bits=4, activation_bits=6))
    info = {"compression": {"weight_bits": 4, "activation_bits": 6}}
    compressed = _as_equalizer(eq, result.model, info)
    assert (compressed.weight_bits, compressed.activation_bits) == (4, 6)
    before = compressed.complexity()
    assert before.bop == model_complexity(result.model, 4, 6).bop < model_complexity(result.model).bop
    loaded = load_equalizer(save_equalizer(compressed, tmp_path / "q"))
    assert (loaded.weight_bits, loaded.activation_bits) == (4, 6)
    assert loaded.complexity().bop == before.bop and loaded.complexity().rmps == before.rmps
    # a folder of the previous format (version 2, no bit widths) still loads, as float weights
    meta = json.loads((tmp_path / "q" / "equalizer.json").read_text())
    meta["version"] = 2
    del meta["weight_bits"], meta["activation_bits"]
    (tmp_path / "q" / "equalizer.json").write_text(json.dumps(meta))
    old = load_equalizer(tmp_path / "q")
    assert old.weight_bits is None and old.complexity().bop == model_complexity(old.model).bop


def test_best_model_of_a_study_reports_its_quantized_cost(trained, tmp_path):
    eq, train_set, te = trained
    config = CompressionSearchConfig(n_calls=1, n_initial_points=1, sparsity=0.0, clusters=False, weight_bits=[3, 6],
                                     fine_tune_epochs=0)
    study = compress_equalizer(eq, train_set, te, config, tmp_path / "s", progress=False)
    best = load_equalizer(tmp_path / "s" / "best")
    assert best.weight_bits == study.best["weight_bits"] == study.best["params"]["weight_bits"]
    assert best.complexity().bop == study.best["bop"]


# --------------------------------------------------------------------------------------------- bare models

def test_a_bare_model_is_not_labelled_an_mlp(trained):
    from eqnn.train import _bare_config

    eq, train_set, te = trained
    assert _bare_config("NN").type != "mlp"
    lstm = build_model(LSTMConfig(units=4), train_set.input_shape, 2)
    ev = evaluate(lstm, te, DATA, eq.normalization, name="LSTM: bare", references=False)
    assert list(ev.metrics) == ["LSTM: bare"]  # any label: nothing is saved under it


# --------------------------------------------------------------------------------------------- cache_dir

def test_empty_cache_dir_is_the_runs_own_cache(tmp_path):
    path = tmp_path / "train.toml"
    path.write_text('name = "tiny"\npowers_dbm = [1.0]\ncache_dir = ""\ndbp = false\n' + TINY_TRAINING)
    out = tmp_path / "out"
    run_training(path, out, progress=False)
    assert len(list((out / "cache").iterdir())) >= 2  # the training and the test transmission
    from eqnn.training.run import cache_folder

    assert cache_folder("", out) == cache_folder(None, out) == out / "cache"
    assert cache_folder("c", out) == Path("c") and cache_folder("", out, False) is None
    assert cache_folder("c", out, "d") == Path("d")


# --------------------------------------------------------------------------------------------- compression points

def _cheap_search():
    return CompressionSearchConfig(n_calls=1, n_initial_points=1, sparsity=0.0, clusters=False, weight_bits=[4, 6],
                                   fine_tune_epochs=0)


def test_a_changed_compression_pipeline_refuses_the_old_points(trained, tmp_path, monkeypatch):
    from eqnn.studies import compression as compression_study

    eq, train_set, te = trained
    folder = tmp_path / "s"
    compress_equalizer(eq, train_set, te, _cheap_search(), folder, progress=False)
    monkeypatch.setattr(compression_study, "PIPELINE_VERSION", compression_study.PIPELINE_VERSION + 1)
    with pytest.raises(ConfigError, match=rf"{folder} holds a compression study of other inputs \(pipeline differ\).*"
                                          rf"delete {folder} to start over"):
        compress_equalizer(eq, train_set, te, _cheap_search(), folder, progress=False)


@pytest.mark.parametrize("error", [TypeError("a bug"), MemoryError(), KeyError("x")], ids=lambda e: type(e).__name__)
def test_an_error_that_is_no_failure_of_the_point_propagates(trained, tmp_path, monkeypatch, error):
    eq, train_set, te = trained

    def broken(*a, **k):
        raise error

    monkeypatch.setattr(compression, "compress", broken)
    folder = tmp_path / "s"
    with pytest.raises(type(error)):
        compress_equalizer(eq, train_set, te, _cheap_search(), folder, progress=False)
    records = folder / "evaluations.jsonl"
    assert not records.exists() or not records.read_text().strip()  # nothing recorded: evaluated again next time


def test_a_diverged_point_is_recorded(trained, tmp_path, monkeypatch):
    eq, train_set, te = trained

    def diverged(*a, **k):
        raise FloatingPointError("fine-tuning loss is nan")

    monkeypatch.setattr(compression, "compress", diverged)
    study = compress_equalizer(eq, train_set, te, _cheap_search(), tmp_path / "s", progress=False)
    assert study.search.evaluations[0].metrics["failed"] and study.best is None


# --------------------------------------------------------------------------------------------- command line

def _saved_untracked_equalizer(tmp_path) -> "Equalizer":
    link = tiny_link()
    model = build_model(MLPConfig(units=(4,)), (5, 4), 2)
    from eqnn.data import Normalization

    norm = Normalization(x_mean=(0.0,) * 4, x_std=(1.0,) * 4, y_mean=(0.0,) * 2, y_std=(1.0,) * 2)
    eq = Equalizer(model=model, model_config=MLPConfig(units=(4,)), data_config=DATA.resolved(link),
                   normalization=norm, info={"trained_on_powers_dbm": [2.0]})
    return save_equalizer(eq, tmp_path / "run" / "models" / "MLP@+2p00dBm")


def test_damaged_files_are_one_line_errors(tmp_path, capsys):
    folder = _saved_untracked_equalizer(tmp_path)
    (tmp_path / "run" / "results.json").write_text(json.dumps({"rows": []}))  # damaged: no "config"
    assert main(["compress", str(folder), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("eqnn compress: error:") and "results.json" in err and "Traceback" not in err
    (folder / "equalizer.json").write_text("{not json")
    assert main(["compress", str(folder), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert "not valid JSON" in capsys.readouterr().err


@pytest.mark.parametrize("error", [
    lambda: __import__("eqnn.search", fromlist=["x"]).SearchLockedError("another process is searching in f"),
    lambda: channel.PropagationError("non-finite field after span 2"),
    lambda: channel.CorruptFileError("cache entry damaged"),
], ids=["locked", "propagation", "corrupt"])
def test_expected_errors_end_as_one_line(tmp_path, capsys, monkeypatch, error):
    import eqnn.study

    def failing(*a, **k):
        raise error()

    monkeypatch.setattr(eqnn.study, "run_study", failing)
    assert main(["run", str(tmp_path / "study.toml")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("eqnn run: error:") and err.count("\n") == 1


# --------------------------------------------------------------------------------------------- plots

def test_plots_leave_the_callers_backend_and_figures_alone(tmp_path):
    import matplotlib
    import matplotlib.pyplot as plt

    from eqnn.report import plot_q_vs_power
    from eqnn.search import Objective, Real, SearchResult
    from eqnn.study import plot_q_vs_rmps

    before = matplotlib.get_backend()
    matplotlib.use("svg")
    try:
        fig = plt.figure()
        rows = [{"method": "CDC", "launch_power_dbm": p, "q_db": 6.0 + p, "q_db_from_snr": 6.0 + p} for p in (0, 1)]
        plot_q_vs_power(rows, tmp_path / "a.png")
        table = [{"method": "CDC", "kind": "DSP", "rmps": 100.0, "q_db": 7.0, "q_measured": True}]
        plot_q_vs_rmps(table, {}, tmp_path / "b.png")
        SearchResult(evaluations=[], space=(Real("x", 0.0, 1.0),),
                     objective=Objective.constrained(6.0, 100.0)).plot(tmp_path / "c.png",
                                                                       references={"CDC": (100.0, 7.0)})
        assert matplotlib.get_backend() == "svg"
        assert plt.get_fignums() == [fig.number]
        for name in ("a.png", "b.png", "c.png"):
            assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
    finally:
        plt.close("all")
        matplotlib.use(before)


# --------------------------------------------------------------------------------------------- launch powers

def test_one_rule_matches_launch_powers(tmp_path):
    from eqnn.report import format_q_table
    from eqnn.study import load_study

    row = {"method": "CDC", "launch_power_dbm": 0.1 + 0.2, "q_db": 7.0, "q_db_ci_low": 6.9, "q_db_ci_high": 7.1,
           "snr_db": 15.0}
    assert "7.00 [6.90,7.10]" in format_q_table([row], ["CDC"], [0.3])
    path = tmp_path / "s.toml"
    path.write_text('name = "tiny"\npowers_dbm = [0.3]\n' + TINY_TRAINING
                    + "[compression]\nn_calls = 2\nn_initial_points = 2\nweight_bits = [4, 6]\n"
                    + "[study]\ncompress_at = 0.30000000000000004\n")
    assert load_study(path).compress_at == 0.3
    from eqnn.records import same_power

    assert same_power(0.1 + 0.2, 0.3) and not same_power(0.3, 0.31)


# --------------------------------------------------------------------------------------------- records

def test_records_are_typed_and_write_the_same_keys():
    from eqnn.records import QRow, TrainedModel, best_per_method

    row = QRow(launch_power_dbm=1.0, method="MLP", q_db=None, q_db_ci_low=None, q_db_ci_high=None, q_db_from_snr=8.0,
               snr_db=14.0, ber=1e-5, bit_errors=3, n_bits=10**6, gmi_bits=3.9, evm_percent=20.0, polarizations="x",
               n_symbols=1000, rmps=12.0)
    other = row.replace(launch_power_dbm=2.0, q_db=9.0, q_db_ci_low=8.8, q_db_ci_high=9.2)
    assert list(row.to_dict())[-2:] == ["note", "rmps"] and "dbp_xi" not in row.to_dict()
    assert list(row.replace(has_dbp_xi=True).to_dict())[-4:] == ["dbp_xi", "dbp_nonlinear_position",
                                                                 "dbp_power_filter_bandwidth", "rmps"]
    best = best_per_method([row, other], ["MLP"])["MLP"]
    assert (best.launch_power_dbm, best.q_db, best.measured, best.rmps) == (2.0, 9.0, True, 12.0)
    assert list(best.to_dict()) == ["launch_power_dbm", "q_db", "measured", "snr_db", "rmps"]
    with pytest.raises(AttributeError):
        row.q_db = 1.0  # frozen
    tm = TrainedModel(name="MLP", tag="+1p00dBm", folder="f", powers_dbm=(1.0,), rmps=12.0, summary={"epochs_run": 2})
    assert tm.covers(1.0 + 1e-12) and not tm.covers(2.0)
    assert tm.to_dict() == {"model": "MLP", "tag": "+1p00dBm", "folder": "f", "epochs_run": 2}
    assert TrainedModel(name="MLP", tag="combined", folder="f", powers_dbm=(1.0, 2.0), rmps=1.0).covers(5.0)
