"""The ``cnn_bilstm`` family: Conv1D(filters, kernel_size, activation, "valid") -> Bidirectional(LSTM(units))
many-to-one -> Dense(n_outputs).

The "valid" convolution turns ``T`` time slots into ``T - kernel_size + 1``, so ``kernel_size <= T = 2 taps + 1``
(:func:`check_cnn_input`). Layers: "conv1d" (a "conv1d_leaky_relu" LeakyReLU follows it with ``activation =
"leaky_relu"``), "bilstm", "output".
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import tf_keras as keras

from channel.validation import ConfigError, check_int

from .common import MAX_UNITS, check_activation, check_name, keras_name, model_input
from .recurrent import bilstm_layer, bilstm_units
from .registry import ModelFamily, register_model_family


@dataclass(frozen=True)
class CNNBiLSTMConfig:
    """1-D convolution followed by a bidirectional LSTM, many-to-one.

    Attributes:
        name: label.  filters: Conv1D filters, [1, 4096].  kernel_size: Conv1D kernel, [1, 1001]
        (at most the window length 2N + 1, checked when built).  activation: of the convolution.
        units: biLSTM hidden units per direction, [1, 4096].
    """

    type: ClassVar[str] = "cnn_bilstm"
    name: str = "CNN+biLSTM"
    filters: int = 64
    kernel_size: int = 11
    activation: str = "relu"
    units: int = 100

    def __post_init__(self) -> None:
        check_name("models.cnn_bilstm", self.name)
        check_int("models.cnn_bilstm.filters", self.filters, 1, MAX_UNITS)
        check_int("models.cnn_bilstm.kernel_size", self.kernel_size, 1, 1001)
        check_activation("models.cnn_bilstm.activation", self.activation)
        check_int("models.cnn_bilstm.units", self.units, 1, MAX_UNITS)


def check_cnn_input(config: CNNBiLSTMConfig, window_length: int) -> None:
    """``kernel_size <= window_length`` (``= 2 taps + 1``), else :class:`ConfigError`."""
    if config.kernel_size > window_length:
        raise ConfigError(f"models.{config.type}.kernel_size = {config.kernel_size} (model {config.name!r}) exceeds "
                          f"the window length 2 * taps + 1 = {window_length}")


def build_cnn_bilstm(config: CNNBiLSTMConfig, input_shape: tuple[int, int], n_outputs: int) -> keras.Model:
    inputs = model_input(input_shape)
    if config.kernel_size > input_shape[0]:
        raise ConfigError(f"models.cnn_bilstm.kernel_size = {config.kernel_size} exceeds the window length "
                          f"{input_shape[0]} (2 * taps + 1): allowed [1, {input_shape[0]}]")
    if config.activation == "leaky_relu":
        h = keras.layers.Conv1D(config.filters, config.kernel_size, padding="valid", name="conv1d")(inputs)
        h = keras.layers.LeakyReLU(name="conv1d_leaky_relu")(h)
    else:
        h = keras.layers.Conv1D(config.filters, config.kernel_size, padding="valid", activation=config.activation,
                                name="conv1d")(inputs)
    h = bilstm_layer(config.units)(h)
    outputs = keras.layers.Dense(n_outputs, name="output")(h)
    return keras.Model(inputs, outputs, name=keras_name(config))


def cnn_resized(config: CNNBiLSTMConfig, model: keras.Model) -> CNNBiLSTMConfig:
    return dataclasses.replace(config, units=bilstm_units(model), filters=model.get_layer("conv1d").filters)


CNN_BILSTM = register_model_family(ModelFamily(
    config=CNNBiLSTMConfig, build=build_cnn_bilstm,
    roles=lambda config: {"conv1d": "conv", "bilstm": "recurrent", "output": "output"},
    resized_config=cnn_resized, check_input=check_cnn_input))
