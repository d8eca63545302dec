"""Pruning: the registry of methods (:mod:`.registry`) and one module per method, each registering itself:
:mod:`.magnitude` ("magnitude", unstructured), :mod:`.structured` ("structured", whole units), :mod:`.obc`
("obc", Optimal Brain Compression: post-training OBS on calibration windows), :mod:`.filters` ("filters",
whole Conv1D filters by L1 norm or Taylor importance) and :mod:`.gates` ("gates", LSTM gate / neuron group
sparsity); pruning while training (helpers in :mod:`.masks`):
:mod:`.lottery_ticket` ("lottery_ticket", iterative magnitude pruning with weight or learning-rate rewinding),
:mod:`.one_cycle` ("one_cycle", one training run from scratch on a one-cycle sparsity schedule) and
:mod:`.gradual_structured` ("gradual_structured", units masked while training, then removed);
:mod:`.ldbp_taps` ("ldbp_taps", "ldbp_edges": the filter taps of learned DBP, standing for "magnitude" and
"structured" on it).

A built-in method's flags and options (names, defaults, ranges) are its entry in :mod:`eqnn.compression.catalog`
(no TensorFlow: a configuration is checked against it before TensorFlow starts); its module adds the TensorFlow
code (``PruningMethod.from_catalog(name, prunable, apply)``). A new built-in method is a catalog entry, a module
and a line below."""

# isort: skip_file
# the methods register in import order (the order of PRUNING_METHODS, a search's categorical choices)
from .registry import (
    PRUNING_METHODS,
    PruningMethod,
    method_for,
    prune,
    register_pruning_method,
    unregister_pruning_method,
)
from .magnitude import PrunableBidirectional, prunable_class
from .structured import units_of
from . import magnitude, structured, obc, filters, gates  # noqa: F401
from . import lottery_ticket, one_cycle, gradual_structured  # noqa: F401
from . import ldbp_taps  # noqa: F401

__all__ = ["PRUNING_METHODS", "PrunableBidirectional", "PruningMethod", "method_for", "prunable_class", "prune",
           "register_pruning_method", "units_of", "unregister_pruning_method"]
