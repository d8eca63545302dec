"""The ``cnn_bilstm`` family: Conv1D(filters, kernel_size, activation, "valid") -> Bidirectional(LSTM(units)) ->
(Flatten) -> Dense(n_outputs), the readout of the recurrent families (:mod:`.recurrent`).

The "valid" convolution turns ``T`` time slots into ``T - kernel_size + 1``, so ``kernel_size <= T = 2 taps + 1``
(:func:`check_cnn_input`). Layers: "conv1d" (a "conv1d_leaky_relu" LeakyReLU follows it with ``activation =
"leaky_relu"``), "bilstm", "flatten" (readout "flatten"), "output".
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

from channel.validation import ConfigError, check_int

from ..keras2 import keras  # tf_keras, imported on first use (configs validate without TensorFlow)
from .common import MAX_UNITS, check_activation, keras_name, model_input
from .recurrent import SAVED_DEFAULTS, RecurrentConfig, recurrent_head, recurrent_roles, recurrent_units
from .registry import ModelFamily, register_model_family


@dataclass(frozen=True)
class CNNBiLSTMConfig(RecurrentConfig):
    """1-D convolution followed by a bidirectional LSTM.

    Attributes:
        name: label.  units: biLSTM hidden units per direction, [1, 4096].
        readout: "flatten" (both directions at every time step, flattened, -> Dense; the published form) or
            "final" (the final states of both directions, concatenated, -> Dense).
        filters: Conv1D filters, [1, 4096].  kernel_size: Conv1D kernel, [1, 1001] (at most the window length
        2N + 1, checked when built).  activation: of the convolution.
    """

    type: ClassVar[str] = "cnn_bilstm"
    cell: ClassVar[str] = "lstm"
    bidirectional: ClassVar[bool] = True
    name: str = "CNN+biLSTM"
    filters: int = 64
    kernel_size: int = 11
    activation: str = "relu"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int("models.cnn_bilstm.filters", self.filters, 1, MAX_UNITS)
        check_int("models.cnn_bilstm.kernel_size", self.kernel_size, 1, 1001)
        check_activation("models.cnn_bilstm.activation", self.activation)


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
    return keras.Model(inputs, recurrent_head(config, h, n_outputs), name=keras_name(config))


def cnn_resized(config: CNNBiLSTMConfig, model: keras.Model) -> CNNBiLSTMConfig:
    return dataclasses.replace(config, units=recurrent_units(config, model),
                               filters=model.get_layer("conv1d").filters)


CNN_BILSTM = register_model_family(ModelFamily(
    config=CNNBiLSTMConfig, build=build_cnn_bilstm,
    roles=lambda config: {"conv1d": "conv", **recurrent_roles(config)},
    resized_config=cnn_resized, check_input=check_cnn_input,
    saved_defaults=SAVED_DEFAULTS))
