"""Layer types: one registry (:mod:`eqnn.layers.registry`) that complexity counting and compression dispatch
through, and one module per built-in type family that registers itself:

- :mod:`.dense`: Dense.
- :mod:`.recurrent`: LSTM, Bidirectional(LSTM), and the machinery of every recurrent cell.
- :mod:`.gru`: GRU, Bidirectional(GRU) (``reset_after=True``).
- :mod:`.conv1d`: Conv1D.
- :mod:`.free`: activations, reshaping, dropout / noise, BatchNormalization (no multiplicative weights).
- :mod:`.ldbp`: the complex FIR, nonlinear phase and polarization selection of learned DBP.

A new layer type (e.g. SimpleRNN: a :class:`.recurrent.RecurrentCell` and :func:`.recurrent.register_recurrent_cell`,
as :mod:`.gru` does) is one module that builds a :class:`LayerType` and calls :func:`register_layer_type`.
"""

# isort: skip_file
# the types register in import order (error messages list them in that order)
from .registry import (
    LAYER_TYPES,
    STRUCTURES,
    LayerType,
    find_layer_type,
    layer_kind,
    recurrent_layers,
    register_layer_type,
    structure_of,
    unregister_layer_type,
)
from . import dense, recurrent, gru, conv1d, free, ldbp  # noqa: F401  (registration)

__all__ = ["LAYER_TYPES", "STRUCTURES", "LayerType", "find_layer_type", "layer_kind", "recurrent_layers",
           "register_layer_type", "structure_of", "unregister_layer_type"]
