"""Shared pieces of the model families: activations, name/width checks, the input layer, Keras-2 checks.

Every model is built with ``tf_keras`` (Keras 2), never ``tf.keras``/Keras 3: TensorFlow Model Optimization
(pruning, clustering, quantization) accepts only Keras 2 models. Input: windows ``(2N + 1, 4)`` (``T = 2N + 1``
time slots, I/Q of both polarizations); output: ``n_outputs`` real numbers, linear.
"""

from __future__ import annotations

import math
from typing import Any

from channel.validation import ConfigError, check_choice

from ..keras2 import keras, not_tf_keras_message  # tf_keras, imported on first use

ACTIVATIONS = ("tanh", "relu", "sigmoid", "elu", "selu", "gelu", "swish", "leaky_relu", "linear")
MAX_UNITS = 4096


def check_activation(name: str, value: Any) -> str:
    """``value`` if it is one of :data:`ACTIVATIONS`, else :class:`ConfigError` naming ``name``."""
    return check_choice(name, value, ACTIVATIONS)


def check_name(section: str, value: Any) -> None:
    """A model label: a non-empty string usable as a folder name."""
    if not isinstance(value, str) or not value.strip() or any(c in value for c in '/\\:*?"<>|'):
        raise ConfigError(f"{section}.name = {value!r}: must be a non-empty label without / \\ : * ? \" < > |")


def check_keras_model(model: Any, what: str = "model") -> keras.Model:
    """Return ``model`` if it is a ``tf_keras.Model``; else raise a TypeError explaining why it must be."""
    if isinstance(model, keras.Model):
        return model
    raise TypeError(not_tf_keras_message(model, what))


def model_input(input_shape: tuple[int, int]) -> keras.layers.Input:
    """``keras.Input`` named "window" of shape ``(T, features)``; ValueError unless both are positive integers."""
    if len(input_shape) != 2 or not all(isinstance(v, int) and v > 0 for v in input_shape):
        raise ValueError(f"input_shape must be (window_length, features) positive integers, got {input_shape!r}")
    return keras.Input(shape=tuple(input_shape), name="window")


def keras_name(config: Any) -> str:
    """The Keras model name of a built config: its TOML type name."""
    return config.type


def count_parameters(model: keras.Model) -> int:
    """Number of trainable parameters."""
    check_keras_model(model)
    return int(sum(math.prod(w.shape) for w in model.trainable_weights))
