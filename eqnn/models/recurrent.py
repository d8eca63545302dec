"""The ``lstm`` and ``bilstm`` families: a recurrent layer over the window, many-to-one, then a linear output.

- ``lstm``: LSTM(units) (last hidden state, ``units`` features) -> Dense(n_outputs); layers "lstm", "output".
- ``bilstm``: Bidirectional(LSTM(units)) (final states of both directions, concatenated: ``2 units`` features)
  -> Dense(n_outputs); layers "bilstm", "output".
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import tf_keras as keras

from channel.validation import check_int

from .common import MAX_UNITS, check_name, keras_name, model_input
from .registry import ModelFamily, register_model_family


@dataclass(frozen=True)
class LSTMConfig:
    """Unidirectional LSTM over the window, many-to-one.

    Attributes:
        name: label.  units: hidden units, integer in [1, 4096].
    """

    type: ClassVar[str] = "lstm"
    name: str = "LSTM"
    units: int = 100

    def __post_init__(self) -> None:
        check_name("models.lstm", self.name)
        check_int("models.lstm.units", self.units, 1, MAX_UNITS)


@dataclass(frozen=True)
class BiLSTMConfig:
    """Bidirectional LSTM over the window, many-to-one.

    Attributes:
        name: label.  units: hidden units per direction, integer in [1, 4096].
    """

    type: ClassVar[str] = "bilstm"
    name: str = "biLSTM"
    units: int = 100

    def __post_init__(self) -> None:
        check_name("models.bilstm", self.name)
        check_int("models.bilstm.units", self.units, 1, MAX_UNITS)


def bilstm_layer(units: int):
    """The many-to-one Bidirectional(LSTM(units)) layer named "bilstm" (also used by ``cnn_bilstm``)."""
    return keras.layers.Bidirectional(keras.layers.LSTM(units), name="bilstm")


def bilstm_units(model: keras.Model) -> int:
    """Units per direction of the "bilstm" layer of ``model``."""
    return model.get_layer("bilstm").forward_layer.units


def build_lstm(config: LSTMConfig, input_shape: tuple[int, int], n_outputs: int) -> keras.Model:
    inputs = model_input(input_shape)
    h = keras.layers.LSTM(config.units, name="lstm")(inputs)
    outputs = keras.layers.Dense(n_outputs, name="output")(h)
    return keras.Model(inputs, outputs, name=keras_name(config))


def build_bilstm(config: BiLSTMConfig, input_shape: tuple[int, int], n_outputs: int) -> keras.Model:
    inputs = model_input(input_shape)
    h = bilstm_layer(config.units)(inputs)
    outputs = keras.layers.Dense(n_outputs, name="output")(h)
    return keras.Model(inputs, outputs, name=keras_name(config))


LSTM = register_model_family(ModelFamily(
    config=LSTMConfig, build=build_lstm, roles=lambda config: {"lstm": "recurrent", "output": "output"},
    resized_config=lambda config, model: dataclasses.replace(config, units=model.get_layer("lstm").units)))
BILSTM = register_model_family(ModelFamily(
    config=BiLSTMConfig, build=build_bilstm, roles=lambda config: {"bilstm": "recurrent", "output": "output"},
    resized_config=lambda config, model: dataclasses.replace(config, units=bilstm_units(model))))
