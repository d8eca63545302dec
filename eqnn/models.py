"""NN equalizer architectures: typed configs and ``tf_keras`` builders.

Every model is built with ``tf_keras`` (Keras 2), never ``tf.keras``/Keras 3: TensorFlow Model
Optimization (pruning, clustering, quantization) accepts only Keras 2 models. Input: windows
``(2N + 1, 4)``; output: ``n_outputs`` real numbers (I/Q of the equalized centre symbol, per
polarization), linear.

Architectures (names used in TOML ``type = ...``):

- ``mlp``: Flatten -> Dense(units[0], activation) -> ... -> Dense(n_outputs).
- ``lstm``: LSTM(units) many-to-one (last hidden state) -> Dense(n_outputs).
- ``bilstm``: Bidirectional(LSTM(units)) many-to-one (final states of both directions,
  concatenated) -> Dense(n_outputs).
- ``cnn_bilstm``: Conv1D(filters, kernel_size, activation, "valid") -> Bidirectional(LSTM(units))
  many-to-one -> Dense(n_outputs).

Layer names are fixed ("dense_1", "lstm", "bilstm", "conv1d", "output") so that complexity
counting and compression can find them.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar, Union

import tf_keras as keras

from channel import ConfigError
from channel.config import check_int

ACTIVATIONS = ("tanh", "relu", "sigmoid", "elu", "selu", "gelu", "swish", "leaky_relu", "linear")
MAX_UNITS = 4096



def _check_activation(name: str, value: Any) -> None:
    if value not in ACTIVATIONS:
        raise ConfigError(f"{name} = {value!r}: allowed values are {', '.join(map(repr, ACTIVATIONS))}")


def _check_name(section: str, value: Any) -> None:
    if not isinstance(value, str) or not value.strip() or any(c in value for c in '/\\:*?"<>|'):
        raise ConfigError(f"{section}.name = {value!r}: must be a non-empty label without / \\ : * ? \" < > |")


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
        _check_name("models.mlp", self.name)
        if isinstance(self.units, list):
            object.__setattr__(self, "units", tuple(self.units))
        if not isinstance(self.units, tuple) or not 1 <= len(self.units) <= 16:
            raise ConfigError(f"models.mlp.units = {self.units!r}: must be a list of 1 to 16 layer widths")
        for u in self.units:
            check_int("models.mlp.units[]", u, 1, MAX_UNITS)
        _check_activation("models.mlp.activation", self.activation)


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
        _check_name("models.lstm", self.name)
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
        _check_name("models.bilstm", self.name)
        check_int("models.bilstm.units", self.units, 1, MAX_UNITS)


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
        _check_name("models.cnn_bilstm", self.name)
        check_int("models.cnn_bilstm.filters", self.filters, 1, MAX_UNITS)
        check_int("models.cnn_bilstm.kernel_size", self.kernel_size, 1, 1001)
        _check_activation("models.cnn_bilstm.activation", self.activation)
        check_int("models.cnn_bilstm.units", self.units, 1, MAX_UNITS)


ModelConfig = Union[MLPConfig, LSTMConfig, BiLSTMConfig, CNNBiLSTMConfig]
MODEL_TYPES: dict[str, type] = {c.type: c for c in (MLPConfig, LSTMConfig, BiLSTMConfig, CNNBiLSTMConfig)}


def model_config_to_dict(config: ModelConfig) -> dict:
    """``{"type": ..., field: value ...}`` (JSON/TOML-ready)."""
    _check_model_config(config)
    d = {"type": config.type}
    for k, v in dataclasses.asdict(config).items():
        d[k] = list(v) if isinstance(v, tuple) else v
    return d


def model_config_from_dict(data: dict, section: str = "models") -> ModelConfig:
    """Build a model config from ``{"type": "mlp" | "lstm" | "bilstm" | "cnn_bilstm", ...fields}``."""
    if not isinstance(data, dict):
        raise ConfigError(f"[{section}] must be a table, got {data!r}")
    kind = data.get("type")
    if kind not in MODEL_TYPES:
        raise ConfigError(f"{section}.type = {kind!r}: allowed values are {', '.join(map(repr, MODEL_TYPES))}")
    cls = MODEL_TYPES[kind]
    names = {f.name for f in dataclasses.fields(cls)}
    values = {k: v for k, v in data.items() if k != "type"}
    unknown = set(values) - names
    if unknown:
        raise ConfigError(f"unknown key(s) {sorted(unknown)} in [{section}] of type {kind!r}: "
                          f"allowed type, {', '.join(sorted(names))}")
    return cls(**values)


def _check_model_config(config: Any) -> None:
    if not isinstance(config, tuple(MODEL_TYPES.values())):
        raise TypeError(f"expected a model config ({', '.join(c.__name__ for c in MODEL_TYPES.values())}), "
                        f"got {type(config).__name__}")


def check_keras_model(model: Any, what: str = "model") -> keras.Model:
    """Return ``model`` if it is a ``tf_keras.Model``; else raise a TypeError explaining why it must be."""
    if isinstance(model, keras.Model):
        return model
    kind = f"{type(model).__module__}.{type(model).__qualname__}"
    hint = ""
    if type(model).__module__.startswith("keras"):
        hint = (" It looks like a Keras 3 (tf.keras / keras) model: build it with `import tf_keras as keras` "
                "(TensorFlow Model Optimization supports only Keras 2).")
    raise TypeError(f"{what} must be a tf_keras.Model, got {kind}.{hint}")


def _input(input_shape: tuple[int, int]) -> keras.layers.Input:
    if len(input_shape) != 2 or not all(isinstance(v, int) and v > 0 for v in input_shape):
        raise ValueError(f"input_shape must be (window_length, features) positive integers, got {input_shape!r}")
    return keras.Input(shape=tuple(input_shape), name="window")


def build_mlp(config: MLPConfig, input_shape: tuple[int, int], n_outputs: int) -> keras.Model:
    inputs = _input(input_shape)
    h = keras.layers.Flatten(name="flatten")(inputs)
    for i, units in enumerate(config.units, start=1):
        if config.activation == "leaky_relu":
            h = keras.layers.Dense(units, name=f"dense_{i}")(h)
            h = keras.layers.LeakyReLU(name=f"leaky_relu_{i}")(h)
        else:
            h = keras.layers.Dense(units, activation=config.activation, name=f"dense_{i}")(h)
    outputs = keras.layers.Dense(n_outputs, name="output")(h)
    return keras.Model(inputs, outputs, name=_keras_name(config))


def build_lstm(config: LSTMConfig, input_shape: tuple[int, int], n_outputs: int) -> keras.Model:
    inputs = _input(input_shape)
    h = keras.layers.LSTM(config.units, name="lstm")(inputs)
    outputs = keras.layers.Dense(n_outputs, name="output")(h)
    return keras.Model(inputs, outputs, name=_keras_name(config))


def build_bilstm(config: BiLSTMConfig, input_shape: tuple[int, int], n_outputs: int) -> keras.Model:
    inputs = _input(input_shape)
    h = keras.layers.Bidirectional(keras.layers.LSTM(config.units), name="bilstm")(inputs)
    outputs = keras.layers.Dense(n_outputs, name="output")(h)
    return keras.Model(inputs, outputs, name=_keras_name(config))


def build_cnn_bilstm(config: CNNBiLSTMConfig, input_shape: tuple[int, int], n_outputs: int) -> keras.Model:
    inputs = _input(input_shape)
    if config.kernel_size > input_shape[0]:
        raise ConfigError(f"models.cnn_bilstm.kernel_size = {config.kernel_size} exceeds the window length "
                          f"{input_shape[0]} (2 * taps + 1): allowed [1, {input_shape[0]}]")
    if config.activation == "leaky_relu":
        h = keras.layers.Conv1D(config.filters, config.kernel_size, padding="valid", name="conv1d")(inputs)
        h = keras.layers.LeakyReLU(name="conv1d_leaky_relu")(h)
    else:
        h = keras.layers.Conv1D(config.filters, config.kernel_size, padding="valid", activation=config.activation,
                                name="conv1d")(inputs)
    h = keras.layers.Bidirectional(keras.layers.LSTM(config.units), name="bilstm")(h)
    outputs = keras.layers.Dense(n_outputs, name="output")(h)
    return keras.Model(inputs, outputs, name=_keras_name(config))


BUILDERS = {"mlp": build_mlp, "lstm": build_lstm, "bilstm": build_bilstm, "cnn_bilstm": build_cnn_bilstm}


def _keras_name(config: ModelConfig) -> str:
    return config.type


def build_model(config: Union[ModelConfig, dict], input_shape: tuple[int, int], n_outputs: int) -> keras.Model:
    """Build the (uncompiled) ``tf_keras`` model of ``config`` for windows ``input_shape`` = (2N + 1, 4).

    ``config``: a model config dataclass or its dict form (``{"type": ..., ...}``).
    Weights are initialized from TensorFlow's global seed: call ``keras.utils.set_random_seed`` first
    for reproducible weights.
    """
    if isinstance(config, dict):
        config = model_config_from_dict(config)
    _check_model_config(config)
    if isinstance(n_outputs, bool) or not isinstance(n_outputs, int) or n_outputs < 1:
        raise ValueError(f"n_outputs must be a positive integer, got {n_outputs!r}")
    model = BUILDERS[config.type](config, tuple(int(v) for v in input_shape), n_outputs)
    return check_keras_model(model)


def count_parameters(model: keras.Model) -> int:
    """Number of trainable parameters."""
    check_keras_model(model)
    return int(sum(math.prod(w.shape) for w in model.trainable_weights))
