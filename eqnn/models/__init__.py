"""NN equalizer architectures: typed configs and ``tf_keras`` builders, one module per family.

Every model is built with ``tf_keras`` (Keras 2), never ``tf.keras``/Keras 3: TensorFlow Model
Optimization (pruning, clustering, quantization) accepts only Keras 2 models. Input: windows
``(2N + 1, 4)``; output: ``n_outputs`` real numbers (I/Q of the equalized centre symbol, per
polarization), linear.

Families (names used in TOML ``type = ...``), each registered by its module through
:func:`register_model_family` (:mod:`eqnn.models.registry`):

- ``mlp`` (:mod:`.mlp`): Flatten -> Dense(units[0], activation) -> ... -> Dense(n_outputs).
- ``lstm``, ``bilstm``, ``gru``, ``bigru`` (:mod:`.recurrent`): LSTM(units), Bidirectional(LSTM(units)),
  GRU(units), Bidirectional(GRU(units)), then the ``readout``: "flatten" (every time step, flattened ->
  Dense(n_outputs); the default, the published form) or "final" (the final state(s) -> Dense(n_outputs)).
- ``cnn_bilstm`` (:mod:`.cnn`): Conv1D(filters, kernel_size, activation, "valid") -> Bidirectional(LSTM(units))
  -> the same readout.
- ``sequence`` (:mod:`.sequence`): many-to-many over blocks of symbols ``(T, 4) -> (T, n_outputs)``: stacked
  LSTM / biLSTM / GRU / biGRU (return_sequences) or dilated "same" Conv1D layers, then a per-time-step
  Dense(n_outputs); inference in overlapping blocks (:mod:`eqnn.data_blocks`).
- ``ldbp`` (:mod:`.ldbp`): learned digital back-propagation on the received field before CDC (complex FIRs and
  nonlinear phase rotations, initialized as DBP; :mod:`eqnn.data_field`).

Layer names belong to their family module; the rest of the toolkit asks the family
(:func:`layer_roles`, :func:`resized_config`, :func:`check_input`) instead of naming layers.
"""

# isort: skip_file
from __future__ import annotations

from typing import Union

# the families register in import order, the order of MODEL_TYPES (listed in error messages)
from .mlp import MLPConfig, build_mlp
from .recurrent import (
    READOUTS,
    BiGRUConfig,
    BiLSTMConfig,
    GRUConfig,
    LSTMConfig,
    RecurrentConfig,
    build_bilstm,
    build_lstm,
    build_recurrent,
)
from .cnn import CNNBiLSTMConfig, build_cnn_bilstm
from .sequence import SequenceConfig, build_sequence
from .ldbp import LDBPConfig, build_ldbp
from .common import ACTIVATIONS, MAX_UNITS, check_keras_model, count_parameters
from .registry import (
    FAMILIES,
    MODEL_TYPES,
    ROLES,
    BlockGeometry,
    CustomInput,
    ModelFamily,
    block_geometry,
    build_model,
    check_input,
    custom_input_of,
    family_of,
    layer_roles,
    model_config_from_dict,
    model_config_to_dict,
    prunable_layers,
    register_model_family,
    resized_config,
    unregister_model_family,
)

ModelConfig = Union[MLPConfig, LSTMConfig, BiLSTMConfig, GRUConfig, BiGRUConfig, CNNBiLSTMConfig, SequenceConfig,
                    LDBPConfig]

__all__ = ["ACTIVATIONS", "BiGRUConfig", "BiLSTMConfig", "BlockGeometry", "CNNBiLSTMConfig", "CustomInput", "FAMILIES",
           "GRUConfig", "LDBPConfig", "LSTMConfig", "MAX_UNITS", "MLPConfig", "MODEL_TYPES", "ModelConfig",
           "ModelFamily", "READOUTS", "ROLES", "RecurrentConfig", "SequenceConfig", "block_geometry", "build_bilstm",
           "build_cnn_bilstm", "build_ldbp", "build_lstm", "build_mlp", "build_model", "build_recurrent",
           "build_sequence", "check_input", "check_keras_model", "count_parameters", "custom_input_of", "family_of",
           "layer_roles", "model_config_from_dict", "model_config_to_dict", "prunable_layers", "register_model_family",
           "resized_config", "unregister_model_family"]
