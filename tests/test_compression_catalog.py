"""The catalog of the compression library (eqnn.compression.catalog), which a [compression] table is checked against
before TensorFlow starts: importable without TensorFlow, its option tables, and the same as the TensorFlow registry
(names, order, flags, options, the model types each method prunes), so that neither can drift from the other."""

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from channel import ConfigError
from eqnn.compression import catalog
from eqnn.studies.compression_config import CompressionSearchConfig

ROOT = Path(__file__).resolve().parent.parent


def test_catalog_and_the_table_import_without_tensorflow():
    code = ("import sys, eqnn.compression, eqnn.compression.catalog, eqnn.studies.compression_config, eqnn.study, "
            "eqnn.studies.compress_cli\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'tf_keras', "
            "'tensorflow_model_optimization'}))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert proc.stdout.strip() == "[]", proc.stdout + proc.stderr


@pytest.mark.parametrize("method, options, expected", [
    ("lottery_ticket", {}, {"rewind": "learning_rate", "rounds": 2, "rewind_at": 0.1}),
    ("lottery_ticket", {"rounds": 3.0, "rewind": "weights"}, {"rewind": "weights", "rounds": 3, "rewind_at": 0.1}),
    ("obc", {"damping": 1}, {"calibration_samples": 1024, "damping": 1.0}),
    ("magnitude", {}, {}),
    ("ldbp_taps", {}, {"mode": "magnitude"}),
])
def test_option_tables_complete_the_defaults(method, options, expected):
    checked = catalog.METHODS[method].check_options(options)
    assert checked == expected and [type(v) for v in checked.values()] == [type(v) for v in expected.values()]


@pytest.mark.parametrize("method, options, error", [
    ("lottery_ticket", {"rounds": 0}, r"lottery_ticket.rounds = 0 is out of range: allowed integers in [1, 100]"),
    ("lottery_ticket", {"rounds": 2.5}, r"lottery_ticket.rounds = 2.5: must be an integer in [1, 100]"),
    ("one_cycle", {"alpha": 0.0}, "one_cycle.alpha = 0.0 is out of range: allowed (0, 100]"),
    ("gradual_structured", {"ramp": float("nan")}, "gradual_structured.ramp = nan: must be a finite number in (0, 1]"),
    ("obc", {"damping": -1.0}, "obc.damping = -1.0 is out of range: allowed [0, inf)"),
    ("filters", {"importance": "l2"}, "filters.importance = 'l2': allowed values are 'l1', 'taylor'"),
    ("gates", {"level": 3}, "gates.level = 3: allowed values are 'weights', 'gates', 'neurons'"),
    ("structured", {"criterion": "outgoing", "steps": 2}, "structured: unknown option(s) ['steps']: allowed criterion"),
    ("magnitude", {"rounds": 2}, "magnitude: unknown option(s) ['rounds']: allowed none"),
])
def test_option_tables_name_the_bad_option(method, options, error):
    with pytest.raises(ValueError) as info:
        catalog.METHODS[method].check_options(options)
    assert str(info.value) == error


def test_budget_of_lottery_ticket():
    budget = catalog.METHODS["lottery_ticket"].check_fine_tune
    budget({"rewind": "weights", "rounds": 2}, 3)
    with pytest.raises(ValueError, match=r"^lottery_ticket: fine-tuning epochs = 2 is fewer than its 3 training "):
        budget({"rewind": "weights", "rounds": 2}, 2)


# ------------------------------------------------------------------------------------ against the TF registry

def test_registry_is_the_catalog():
    from eqnn import compress as C

    assert list(C.PRUNING_METHODS) == list(catalog.METHODS)
    assert set(catalog.BUILTIN) <= set(C.PRUNING_METHODS)
    for name, method in C.PRUNING_METHODS.items():
        assert method.spec == catalog.METHODS[name], name
    for name, spec in catalog.BUILTIN.items():
        assert C.PRUNING_METHODS[name].spec == spec, name
        assert C.PRUNING_METHODS[name].option_names == tuple(spec.options), name  # every option is declared
    assert tuple(C.CLUSTER_INITS) == catalog.CLUSTER_INITS  # the TFMOT mapping names what the table allows
    assert (C.SCHEDULES, C.QUANTIZE_MODES, C.QUANTIZE_GRIDS) == (catalog.SCHEDULES, catalog.QUANTIZE_MODES,
                                                                 catalog.QUANTIZE_GRIDS)


def test_catalog_states_the_model_types_each_method_prunes():
    """Each built-in model family at its default size: the methods whose ``prunable`` finds a layer are those whose
    catalog entry lists the type."""
    from eqnn import compress as C
    from eqnn import models

    types = [t for t, config in models.MODEL_TYPES.items() if config.__module__.startswith("eqnn.models.")]
    assert set().union(*(spec.model_types for spec in catalog.BUILTIN.values())) <= set(types)
    for model_type in types:
        model = models.build_model(models.model_config_from_dict({"type": model_type}), (41, 4), 2)
        found = [name for name in catalog.BUILTIN if C.PRUNING_METHODS[name].prunable(model)]
        assert found == [name for name, spec in catalog.BUILTIN.items() if model_type in spec.model_types], model_type


def test_a_method_that_disagrees_with_its_catalog_entry_is_refused():
    from eqnn import compress as C

    magnitude = C.PRUNING_METHODS["magnitude"]
    with pytest.raises(ValueError, match=r"pruning method 'magnitude' disagrees with its catalog entry"):
        C.register_pruning_method(dataclasses.replace(magnitude, supports_global_scope=False))
    assert C.PRUNING_METHODS["magnitude"] is magnitude and catalog.METHODS["magnitude"] == catalog.BUILTIN["magnitude"]


def test_a_registered_method_joins_the_catalog_and_the_table():
    from eqnn import compress as C

    toy = C.PruningMethod("toy_catalog", prunable=lambda model: [], apply=lambda *a, **k: None, needs_fine_tune=True)
    C.register_pruning_method(toy)
    try:
        assert catalog.METHODS["toy_catalog"] == toy.spec and list(catalog.METHODS) == list(C.PRUNING_METHODS)
        config = CompressionSearchConfig(pruning_methods=["toy_catalog"], prune_options={"toy_catalog": {"k": 1}})
        assert config.prune_options == {"toy_catalog": {"k": 1}}  # no check_options: its apply checks them
        with pytest.raises(ConfigError, match=r"\['toy_catalog'\] prune while training"):
            CompressionSearchConfig(pruning_methods=["toy_catalog"], fine_tune_epochs=0)
    finally:
        C.unregister_pruning_method("toy_catalog")
    assert "toy_catalog" not in catalog.METHODS and list(catalog.METHODS) == list(C.PRUNING_METHODS)
    with pytest.raises(ConfigError, match=r"^compression.pruning_methods = \['toy_catalog'\]: allowed one of"):
        CompressionSearchConfig(pruning_methods=["toy_catalog"])
