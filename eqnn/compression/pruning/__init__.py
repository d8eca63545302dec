"""Pruning: the registry of methods (:mod:`.registry`) and one module per method, each registering itself:
:mod:`.magnitude` ("magnitude", unstructured), :mod:`.structured` ("structured", whole units), :mod:`.obc`
("obc", Optimal Brain Compression: post-training OBS on calibration windows) and :mod:`.filters` ("filters",
whole Conv1D filters by L1 norm or Taylor importance)."""

# isort: skip_file
# the methods register in import order (the order of PRUNING_METHODS, a search's categorical choices)
from .registry import (
    PRUNING_METHODS,
    PruningMethod,
    prune,
    register_pruning_method,
    unregister_pruning_method,
)
from .magnitude import PrunableBidirectional, prunable_class
from .structured import units_of
from . import magnitude, structured, obc, filters  # noqa: F401

__all__ = ["PRUNING_METHODS", "PrunableBidirectional", "PruningMethod", "prunable_class", "prune",
           "register_pruning_method", "units_of", "unregister_pruning_method"]
