"""The recurrent families ``lstm``, ``bilstm``, ``gru``, ``bigru``: one recurrent layer over the window, then a
linear output; one implementation (:class:`RecurrentConfig`, :func:`build_recurrent`), parameterized by the cell
("lstm" / "gru") and the direction.

The recurrent layer is named after its family ("lstm", "bilstm", "gru", "bigru"); "output" is the Dense layer.
``readout`` chooses what the output layer reads:

- ``"flatten"`` (the published form, e.g. Liu et al., Opt. Express 30(18), 2022): the recurrent layer returns its
  output at every time step (``return_sequences=True``; both directions concatenated in a Bidirectional), a
  "flatten" layer flattens the ``T x features`` and Dense(n_outputs) reads all of them.
- ``"final"``: many-to-one, the final hidden state (of both directions, concatenated) -> Dense(n_outputs).

Either way the recurrence runs over all ``T`` steps, and is counted so. The layers keep the form that runs on cuDNN
on a GPU (default activations, no recurrent dropout, not unrolled, with bias; GRU ``reset_after=True``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

from channel.validation import check_choice, check_int

from ..keras2 import keras  # tf_keras, imported on first use (configs validate without TensorFlow)
from .common import MAX_UNITS, check_name, keras_name, model_input
from .registry import ModelFamily, register_model_family

READOUTS = ("flatten", "final")
CELLS = {"lstm": "LSTM", "gru": "GRU"}  # cell -> its tf_keras layer class name


@dataclass(frozen=True)
class RecurrentConfig:
    """Shared fields and checks of the recurrent families (not a family itself: no ``type``).

    Attributes:
        name: label.  units: hidden units (per direction), integer in [1, 4096].
        readout: "flatten" (every time step, flattened, -> Dense) or "final" (the final state -> Dense).
    """

    type: ClassVar[str] = ""
    cell: ClassVar[str] = "lstm"          # a key of CELLS
    bidirectional: ClassVar[bool] = False
    name: str = ""
    units: int = 100
    readout: str = "flatten"

    def __post_init__(self) -> None:
        section = f"models.{self.type}"
        check_name(section, self.name)
        check_int(f"{section}.units", self.units, 1, MAX_UNITS)
        check_choice(f"{section}.readout", self.readout, READOUTS)

    @property
    def layer_name(self) -> str:
        """Name of the recurrent layer: "lstm", "bilstm", "gru" or "bigru"."""
        return ("bi" if self.bidirectional else "") + self.cell


@dataclass(frozen=True)
class LSTMConfig(RecurrentConfig):
    """Unidirectional LSTM over the window.

    Attributes:
        name: label.  units: hidden units, integer in [1, 4096].
        readout: "flatten" (the LSTM output at every time step, flattened, -> Dense; the published form) or
            "final" (the last hidden state -> Dense).
    """

    type: ClassVar[str] = "lstm"
    cell: ClassVar[str] = "lstm"
    name: str = "LSTM"


@dataclass(frozen=True)
class BiLSTMConfig(RecurrentConfig):
    """Bidirectional LSTM over the window.

    Attributes:
        name: label.  units: hidden units per direction, integer in [1, 4096].
        readout: "flatten" (both directions at every time step, flattened, -> Dense; the published form) or
            "final" (the final states of both directions, concatenated, -> Dense).
    """

    type: ClassVar[str] = "bilstm"
    cell: ClassVar[str] = "lstm"
    bidirectional: ClassVar[bool] = True
    name: str = "biLSTM"


@dataclass(frozen=True)
class GRUConfig(RecurrentConfig):
    """Unidirectional GRU (``reset_after=True``) over the window.

    Attributes:
        name: label.  units: hidden units, integer in [1, 4096].
        readout: "flatten" (the GRU output at every time step, flattened, -> Dense; the published form) or
            "final" (the last hidden state -> Dense).
    """

    type: ClassVar[str] = "gru"
    cell: ClassVar[str] = "gru"
    name: str = "GRU"


@dataclass(frozen=True)
class BiGRUConfig(RecurrentConfig):
    """Bidirectional GRU (``reset_after=True``) over the window.

    Attributes:
        name: label.  units: hidden units per direction, integer in [1, 4096].
        readout: "flatten" (both directions at every time step, flattened, -> Dense; the published form) or
            "final" (the final states of both directions, concatenated, -> Dense).
    """

    type: ClassVar[str] = "bigru"
    cell: ClassVar[str] = "gru"
    bidirectional: ClassVar[bool] = True
    name: str = "biGRU"


def recurrent_layer(config: RecurrentConfig) -> keras.layers.Layer:
    """The recurrent layer of ``config``, named ``config.layer_name``, returning sequences with the flatten
    readout."""
    named = {} if config.bidirectional else {"name": config.layer_name}
    cell = getattr(keras.layers, CELLS[config.cell])
    rnn = cell(config.units, return_sequences=config.readout == "flatten", **named)
    return keras.layers.Bidirectional(rnn, name=config.layer_name) if config.bidirectional else rnn


def recurrent_head(config: RecurrentConfig, h: Any, n_outputs: int) -> Any:
    """Recurrent layer -> (flatten) -> Dense(n_outputs) "output" on the tensor ``h``."""
    h = recurrent_layer(config)(h)
    if config.readout == "flatten":
        h = keras.layers.Flatten(name="flatten")(h)
    return keras.layers.Dense(n_outputs, name="output")(h)


def recurrent_units(config: RecurrentConfig, model: keras.Model) -> int:
    """Units (per direction) of the recurrent layer of ``model`` (built from ``config``, maybe pruned)."""
    layer = model.get_layer(config.layer_name)
    return (layer.forward_layer if config.bidirectional else layer).units


def build_recurrent(config: RecurrentConfig, input_shape: tuple[int, int], n_outputs: int) -> keras.Model:
    inputs = model_input(input_shape)
    return keras.Model(inputs, recurrent_head(config, inputs, n_outputs), name=keras_name(config))


def recurrent_roles(config: RecurrentConfig) -> dict[str, str]:
    return {config.layer_name: "recurrent", "output": "output"}


def recurrent_resized(config: RecurrentConfig, model: keras.Model) -> RecurrentConfig:
    return dataclasses.replace(config, units=recurrent_units(config, model))


# the former builder names of the LSTM families
build_lstm = build_bilstm = build_recurrent

# models saved before ``readout`` existed read the final state
SAVED_DEFAULTS = {"readout": "final"}

LSTM, BILSTM, GRU, BIGRU = (
    register_model_family(ModelFamily(config=cls, build=build_recurrent, roles=recurrent_roles,
                                      resized_config=recurrent_resized, saved_defaults=SAVED_DEFAULTS))
    for cls in (LSTMConfig, BiLSTMConfig, GRUConfig, BiGRUConfig))
