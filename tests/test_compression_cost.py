"""The compression search's cost (`[compression] cost = "rmps" | "bop" | "nabs"`), power-of-two quantization and the
pruning method as a categorical dimension, end to end from a TOML table on a tiny LSTM equalizer."""

import json
import math

import numpy as np
import pytest
from tiny_configs import TINY_DATA, tiny_link

from channel import ConfigError
from eqnn.complexity import model_complexity
from eqnn.compress_run import CompressionSearchConfig, compress_equalizer
from eqnn.layers.recurrent import constant_gate_values
from eqnn.search import Objective
from eqnn.studies.compression_config import load_compression_config
from eqnn.train import load_equalizer

TOML = """
[compression]
n_calls = 3
n_initial_points = 3
seed = 0
cost = "bop"
sparsity = [0.2, 0.8]
pruning_methods = ["magnitude", "gates"]
clusters = false
weight_bits = [3, 8]
quantize_grid = ["uniform", "pow2"]
pow2_terms = [1, 3]
fine_tune_epochs = 0
max_q_loss_db = 3.0
"""


# --------------------------------------------------------------------------------------------- settings


@pytest.mark.parametrize("table, match", [
    ({"cost": "flops"}, r"^compression.cost = 'flops': allowed 'rmps', 'bop', 'nabs'$"),
    ({"quantize_grid": "log"}, r"^compression.quantize_grid = 'log'"),
    ({"pow2_terms": 0}, r"^compression.pow2_terms = 0: allowed integers in \[1, 8\]"),
    ({"pow2_terms": [2, 9]}, r"^compression.pow2_terms = \[2, 9\]"),
    ({"quantize_grid": "pow2", "quantize_mode": ["ptq", "qat"]}, r"^compression.quantize_grid 'pow2' needs "
                                                                  r"compression.quantize_mode = 'ptq' only"),
    ({"pruning_methods": ["gates", "pruning"]}, r"^compression.pruning_methods = .*'gates'"),
])
def test_bad_settings_are_one_line_errors_naming_the_key(table, match):
    with pytest.raises(ConfigError, match=match) as err:
        CompressionSearchConfig.from_dict(table)
    assert "\n" not in str(err.value)


def test_objective_cost_replaces_rmps_and_the_default_spec_is_unchanged():
    rmps_only = Objective.constrained(9.0, 100.0)
    assert "cost" not in rmps_only.spec() and Objective(**rmps_only.spec()) == rmps_only
    bop = Objective.constrained(9.0, 1e5, cost="bop")
    assert bop.spec()["cost"] == "bop" and Objective(**bop.spec()) == bop
    metrics = {"q_db": 9.5, "rmps": 100.0, "bop": 1e4}
    v = math.log10(1e4 / 1e5)
    assert bop.value(metrics) == pytest.approx(v / (1 + abs(v)))
    assert rmps_only.value(metrics) == 0.0  # RMpS at the ceiling: no reward, whatever the bits
    fewer_bits = {**metrics, "bop": 5e3}
    assert bop.value(fewer_bits) < bop.value(metrics)
    weighted = Objective.weighted(0.5, rmps_reference=1e5, cost="nabs")
    assert weighted.value({"q_db": 1.0, "rmps": 1.0, "nabs": 1e4}) == pytest.approx(0.5 * -1 - 0.5 * 1.0)
    with pytest.raises(ValueError, match="cost = 'bits'"):
        Objective.constrained(9.0, 1.0, cost="bits")
    with pytest.raises(ValueError, match="bop must be a finite number"):
        bop.value({"q_db": 9.0, "rmps": 1.0})


def test_toml_search_space_has_the_categorical_method_grid_and_terms(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(TOML)
    config = load_compression_config(path)
    assert config.cost == "bop" and config.pruning_methods == ("magnitude", "gates")
    names = [d.name for d in config.search_space()]
    assert names == ["sparsity", "pruning_method", "weight_bits", "quantize_grid", "pow2_terms"]
    cc = config.compression_config({"sparsity": 0.5, "pruning_method": "gates", "weight_bits": 5,
                                    "quantize_grid": "pow2", "pow2_terms": 2})
    assert (cc.prune_method, cc.quantize_grid, cc.pow2_terms) == ("gates", "pow2", 2)
    uniform = config.compression_config({"sparsity": 0.5, "pruning_method": "magnitude", "weight_bits": 5,
                                         "quantize_grid": "uniform", "pow2_terms": 2})
    assert (uniform.quantize_grid, uniform.pow2_terms) == ("uniform", None)


# --------------------------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def lstm_equalizer():
    import channel
    from eqnn.data import make_datasets
    from eqnn.models import LSTMConfig
    from eqnn.train import TrainingConfig, train_model

    link = tiny_link()
    tr, te = channel.simulate(link.with_seed(11), dbp=False), channel.simulate(link.with_seed(12), dbp=False)
    train_set, _ = make_datasets(tr, te, TINY_DATA)
    eq = train_model(LSTMConfig(units=4), train_set, TrainingConfig(epochs=1, batch_size=256, seed=0), TINY_DATA,
                     progress=False)
    return eq, train_set, te


def test_search_with_method_dimension_and_bop_cost_end_to_end(lstm_equalizer, tmp_path):
    eq, train_set, te = lstm_equalizer
    path = tmp_path / "c.toml"
    path.write_text(TOML)
    config = load_compression_config(path)
    folder = tmp_path / "study"
    study = compress_equalizer(eq, train_set, te, config, folder, references={}, progress=False)
    spec = json.loads((folder / "search.json").read_text())["spec"]
    assert spec["objective"]["cost"] == "bop"
    assert spec["objective"]["rmps_reference"] == study.uncompressed["bop"]
    evaluations = study.search.evaluations
    assert len(evaluations) == 3 and not any(e.metrics.get("failed") for e in evaluations)
    assert {e.params["pruning_method"] for e in evaluations} == {"magnitude", "gates"}
    assert {e.params["quantize_grid"] for e in evaluations} == {"uniform", "pow2"}
    objective = Objective.constrained(study.q_target_db, study.uncompressed["bop"], cost="bop")
    for e in evaluations:
        assert e.objective == pytest.approx(objective.value(e.metrics))  # BoP, not RMpS, is what is minimized
        saved = load_equalizer(folder / "models" / e.metrics["model"])
        terms = e.metrics.get("pow2_terms")
        assert (terms is not None) == (e.params["quantize_grid"] == "pow2")
        cost = model_complexity(saved.model, e.params["weight_bits"], None, pow2_terms=terms)
        assert (cost.rmps, cost.bop) == (e.metrics["rmps"], e.metrics["bop"])
        if e.params["pruning_method"] == "gates":
            lstm = saved.model.get_layer("lstm")
            assert np.isfinite(constant_gate_values(lstm)).sum() == round(e.params["sparsity"] * 16)
        # fewer bits, lower BoP: the objective rewards them (RMpS does not change)
        fewer = model_complexity(saved.model, e.params["weight_bits"] - 1, None, pow2_terms=terms) \
            if e.params["weight_bits"] > 3 and terms is None else None
        if fewer is not None:
            assert fewer.rmps == cost.rmps and fewer.bop < cost.bop
