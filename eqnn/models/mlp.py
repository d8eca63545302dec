"""The ``mlp`` family: Flatten -> Dense(units[0], activation) -> ... -> Dense(n_outputs).

Per window of ``T`` time slots x 4 features the first hidden layer sees ``4 T`` inputs. Layers: "dense_1" ...
"dense_<n>" (hidden; a "leaky_relu_<i>" LeakyReLU layer follows each with ``activation = "leaky_relu"``) and
"output" (linear).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

from channel.validation import ConfigError, check_int

from ..keras2 import keras  # tf_keras, imported on first use (configs validate without TensorFlow)
from .common import MAX_UNITS, check_activation, check_name, keras_name, model_input
from .registry import ModelFamily, register_model_family


@dataclass(frozen=True)
class MLPConfig:
    """Multilayer perceptron on the flattened window.

    Attributes:
        name: label of the model in results ("" = the type name).
        units: hidden layer widths, e.g. (100, 100, 100); each an integer in [1, 4096]; 1..16 layers.
        activation: hidden activation, one of ``ACTIVATIONS``.
    """

    type: ClassVar[str] = "mlp"
    name: str = "MLP"
    units: tuple[int, ...] = (100, 100, 100)
    activation: str = "tanh"

    def __post_init__(self) -> None:
        check_name("models.mlp", self.name)
        if isinstance(self.units, list):
            object.__setattr__(self, "units", tuple(self.units))
        if not isinstance(self.units, tuple) or not 1 <= len(self.units) <= 16:
            raise ConfigError(f"models.mlp.units = {self.units!r}: must be a list of 1 to 16 layer widths")
        for u in self.units:
            check_int("models.mlp.units[]", u, 1, MAX_UNITS)
        check_activation("models.mlp.activation", self.activation)


def _hidden(config: MLPConfig) -> list[str]:
    return [f"dense_{i}" for i in range(1, len(config.units) + 1)]


def build_mlp(config: MLPConfig, input_shape: tuple[int, int], n_outputs: int) -> keras.Model:
    inputs = model_input(input_shape)
    h = keras.layers.Flatten(name="flatten")(inputs)
    for i, (units, name) in enumerate(zip(config.units, _hidden(config)), start=1):
        if config.activation == "leaky_relu":
            h = keras.layers.Dense(units, name=name)(h)
            h = keras.layers.LeakyReLU(name=f"leaky_relu_{i}")(h)
        else:
            h = keras.layers.Dense(units, activation=config.activation, name=name)(h)
    outputs = keras.layers.Dense(n_outputs, name="output")(h)
    return keras.Model(inputs, outputs, name=keras_name(config))


def mlp_roles(config: MLPConfig) -> dict[str, str]:
    return {**dict.fromkeys(_hidden(config), "hidden"), "output": "output"}


def mlp_resized(config: MLPConfig, model: keras.Model) -> MLPConfig:
    return dataclasses.replace(config, units=tuple(model.get_layer(n).units for n in _hidden(config)))


MLP = register_model_family(ModelFamily(config=MLPConfig, build=build_mlp, roles=mlp_roles,
                                        resized_config=mlp_resized))
