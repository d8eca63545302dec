"""The ``sequence`` family: many-to-many equalizers that map a block of received symbols to one output per symbol.

Shapes: input ``(T, 4)`` (``[Re x, Im x, Re y, Im y]`` of ``T`` consecutive received symbols after CDC, normalized as
windows are), output ``(T, n_outputs)`` (the residual correction of each symbol, as for windows). The time axis is
left variable (``keras.Input((None, 4))``): the model trains on blocks of ``block_length`` L and infers on blocks of
``inference_block`` B (:mod:`eqnn.data_blocks`).

Cells (``cell``):

- ``"lstm"``, ``"gru"``: ``k`` stacked recurrent layers (``units = [n_1, ..., n_k]``, or one integer), each
  ``return_sequences=True``: ``h^l_t = cell(h^{l-1}_t, h^l_{t-1})``;
- ``"bilstm"``, ``"bigru"``: the same, each layer ``Bidirectional`` (forward and backward over the block, outputs
  concatenated: ``2 n_l`` features per step);
- ``"cnn"``: ``layers`` stacked ``Conv1D(filters_l, kernel_size, dilation_rate = d_l, padding="same", activation)``
  (``filters`` and ``dilation`` one integer for every layer or a list per layer);

then ``"output"``: ``Dense(n_outputs)`` applied at every time step (a Dense on a ``(T, C)`` input: ``T``
matrix-vector products). Layers are named ``"<cell>_1" ... "<cell>_k"`` and ``"output"``. The cells ``gru`` and
``bigru`` need a GRU layer type in :mod:`eqnn.layers` (complexity and compression dispatch through it).

Training (:func:`eqnn.data_blocks.make_blocks`, through the same :func:`eqnn.training.fit`): consecutive blocks of L
symbols of the training stream, a target per symbol (residual and normalization as for windows), MSE over every
position, ``training.batch_size`` blocks per mini-batch, early stopping on the last ``validation_split`` of the blocks
of each transmission.

Inference in overlapping blocks. A stream is cut into blocks of B symbols overlapping their neighbours by O
(``overlap``) on each side; each block delivers its ``B - 2 O`` central outputs (:func:`eqnn.data_blocks.block_plan`).
For ``cnn`` an output depends on the inputs within the receptive reach ``R = sum_l d_l ceil((K - 1) / 2)`` on each
side, so with ``O >= R`` (the default, ``overlap = "auto"``) blocked inference equals one pass over the whole stream
exactly. Recurrent cells have an unbounded (fading) memory: ``overlap = "auto"`` is
:data:`DEFAULT_RECURRENT_OVERLAP` symbols (about the residual nonlinear memory of the links studied).

Cost per recovered symbol (:mod:`eqnn.complexity`): the multiplications of one inference block of B symbols, overlap
included, divided by the symbols it delivers, ``(B - 2 O) n_outputs / 2``::

    RMpS = M(B) / ((B - 2 O) n_outputs / 2)

with ``M(B)`` counted on the actual weights over a ``(B, 4)`` input: e.g. unpruned biLSTM(n_h) with ``n_i = 4``
inputs and 2 outputs: ``M(B) = B (2 n_h (4 n_i + 4 n_h + 3) + 2 n_h n_o)``; for n_h = 32, B = 2048, O = 40:
``2048 (9408 + 128) / 1968 = 9923.6`` RMpS (the windowed biLSTM-32 over 41 symbols with a flatten readout costs
390,976).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar, Union

from channel.validation import ConfigError, check_choice, check_int

from ..keras2 import keras  # tf_keras, imported on first use (configs validate without TensorFlow)
from .common import MAX_UNITS, check_activation, check_name, keras_name
from .registry import BlockGeometry, ModelFamily, register_model_family

CELLS = ("lstm", "bilstm", "gru", "bigru", "cnn")
RECURRENT_CELLS = ("lstm", "bilstm", "gru", "bigru")
DEFAULT_RECURRENT_OVERLAP = 40
MAX_LAYERS = 16
MAX_BLOCK = 2**20


def _int_list(key: str, value, n_layers=None) -> tuple[int, ...]:
    """One integer or a list of 1..16 integers, as a tuple (checked element by element)."""
    if isinstance(value, (list, tuple)):
        values = tuple(value)
        if not 1 <= len(values) <= MAX_LAYERS:
            raise ConfigError(f"{key} = {list(values)!r}: must be an integer or a list of 1 to {MAX_LAYERS} integers")
    else:
        values = (value,)
    for v in values:
        check_int(f"{key}[]" if len(values) > 1 else key, v, 1, MAX_UNITS)
    return values


def gru_supported(bidirectional: bool) -> bool:
    """Whether :mod:`eqnn.layers` has a layer type that costs a (Bidirectional) GRU layer."""
    from .. import layers

    probe = keras.layers.GRU(2)
    if bidirectional:
        probe = keras.layers.Bidirectional(probe)
    layer_type = layers.find_layer_type(probe)
    if layer_type is None or layer_type.tally is None:
        return False
    if layer_type.check is not None:
        try:
            if layer_type.check(probe) is False:
                return False
        except Exception:  # the check of another type (e.g. Bidirectional(LSTM) only)
            return False
    return True


@dataclass(frozen=True)
class SequenceConfig:
    """A many-to-many equalizer: trained on blocks of ``block_length`` symbols with a target per symbol, applied in
    blocks of ``inference_block`` symbols overlapping by ``overlap`` on each side (:mod:`eqnn.models.sequence`).

    Attributes:
        name: label.
        cell: "lstm", "bilstm", "gru", "bigru" (recurrent, stacked) or "cnn" (stacked 1-D convolutions).
        units: recurrent cells: hidden units per layer (per direction), an integer or a list (one per stacked
            layer), each in [1, 4096].
        filters: cnn: filters per layer, an integer (every layer) or a list of ``layers`` integers, [1, 4096].
        kernel_size: cnn: kernel size of every layer, [1, 1001].
        layers: cnn: number of Conv1D layers, [1, 16].
        dilation: cnn: dilation rate, an integer (every layer) or a list of ``layers`` integers, [1, 4096].
        activation: cnn: activation of the Conv1D layers (:data:`eqnn.models.ACTIVATIONS`).
        block_length: training block length L (symbols), [1, 1048576].
        inference_block: inference block length B (symbols), > 2 overlap, [2, 1048576].
        overlap: symbols discarded on each side of an inference block, an integer in [0, 524288] or "auto" (cnn:
            the receptive reach; recurrent: 40).
    """

    type: ClassVar[str] = "sequence"
    name: str = "sequence"
    cell: str = "bilstm"
    units: Union[int, tuple[int, ...]] = 32
    filters: Union[int, tuple[int, ...]] = 32
    kernel_size: int = 9
    layers: int = 2
    dilation: Union[int, tuple[int, ...]] = 1
    activation: str = "tanh"
    block_length: int = 128
    inference_block: int = 2048
    overlap: Union[int, str] = "auto"

    def __post_init__(self) -> None:
        s = "models.sequence"
        check_name(s, self.name)
        check_choice(f"{s}.cell", self.cell, CELLS)
        for key in ("units", "filters", "dilation"):
            value = getattr(self, key)
            if isinstance(value, list):
                object.__setattr__(self, key, tuple(value))
        units = _int_list(f"{s}.units", self.units)
        check_int(f"{s}.layers", self.layers, 1, MAX_LAYERS)
        filters = _int_list(f"{s}.filters", self.filters)
        dilation = _int_list(f"{s}.dilation", self.dilation)
        for key, values in (("filters", filters), ("dilation", dilation)):
            if len(values) > 1 and len(values) != self.layers:
                raise ConfigError(f"{s}.{key} = {list(values)}: a list must have one entry per layer "
                                  f"(layers = {self.layers}), or give one integer")
        check_int(f"{s}.kernel_size", self.kernel_size, 1, 1001)
        check_activation(f"{s}.activation", self.activation)
        del units
        check_int(f"{s}.block_length", self.block_length, 1, MAX_BLOCK)
        check_int(f"{s}.inference_block", self.inference_block, 2, MAX_BLOCK)
        if isinstance(self.overlap, str):
            if self.overlap != "auto":
                raise ConfigError(f"{s}.overlap = {self.overlap!r}: allowed an integer in [0, {MAX_BLOCK // 2}] "
                                  "or 'auto'")
        else:
            check_int(f"{s}.overlap", self.overlap, 0, MAX_BLOCK // 2)
        overlap = self.resolved_overlap
        if self.inference_block <= 2 * overlap:
            raise ConfigError(f"{s}.inference_block = {self.inference_block} (model {self.name!r}) must exceed "
                              f"2 * overlap = {2 * overlap} (overlap = {self.overlap!r}): allowed inference_block > "
                              f"{2 * overlap}")
        if self.cell in ("gru", "bigru") and not gru_supported(self.cell == "bigru"):
            raise ConfigError(f"{s}.cell = {self.cell!r} (model {self.name!r}) needs the GRU layer type in "
                              "eqnn.layers (complexity counting and compression of GRU layers), which is not "
                              f"registered: allowed here {', '.join(repr(c) for c in CELLS if 'gru' not in c)}")

    @property
    def unit_list(self) -> tuple[int, ...]:
        return tuple(self.units) if isinstance(self.units, tuple) else (int(self.units),)

    @property
    def filter_list(self) -> tuple[int, ...]:
        f = self.filters
        return tuple(f) if isinstance(f, tuple) and len(f) > 1 else (int(f[0] if isinstance(f, tuple) else f),) * \
            self.layers

    @property
    def dilation_list(self) -> tuple[int, ...]:
        d = self.dilation
        return tuple(d) if isinstance(d, tuple) and len(d) > 1 else (int(d[0] if isinstance(d, tuple) else d),) * \
            self.layers

    @property
    def receptive_reach(self) -> int:
        """cnn: how many symbols on either side an output depends on, ``sum_l d_l ceil((K - 1) / 2)``; 0 else."""
        if self.cell != "cnn":
            return 0
        span = self.kernel_size - 1
        return sum(d * (span - span // 2) for d in self.dilation_list)

    @property
    def resolved_overlap(self) -> int:
        if self.overlap != "auto":
            return int(self.overlap)
        return self.receptive_reach if self.cell == "cnn" else DEFAULT_RECURRENT_OVERLAP

    def layer_names(self) -> list[str]:
        n = self.layers if self.cell == "cnn" else len(self.unit_list)
        return [f"{self.cell}_{i}" for i in range(1, n + 1)]


def _recurrent_layer(cell: str, units: int, name: str):
    rnn = keras.layers.LSTM if cell in ("lstm", "bilstm") else keras.layers.GRU
    if cell.startswith("bi"):
        return keras.layers.Bidirectional(rnn(units, return_sequences=True), name=name)
    return rnn(units, return_sequences=True, name=name)


def build_sequence(config: SequenceConfig, input_shape: tuple, n_outputs: int) -> keras.Model:
    """The model of ``config`` over a variable time axis: ``(None, features)`` -> ``(None, n_outputs)``
    (``input_shape[0]``, the training block length, is not fixed in the model)."""
    features = int(input_shape[-1])
    inputs = keras.Input(shape=(None, features), name="block")
    h = inputs
    names = config.layer_names()
    if config.cell == "cnn":
        for name, filters, rate in zip(names, config.filter_list, config.dilation_list):
            if config.activation == "leaky_relu":
                h = keras.layers.Conv1D(filters, config.kernel_size, padding="same", dilation_rate=rate,
                                        name=name)(h)
                h = keras.layers.LeakyReLU(name=f"{name}_leaky_relu")(h)
            else:
                h = keras.layers.Conv1D(filters, config.kernel_size, padding="same", dilation_rate=rate,
                                        activation=config.activation, name=name)(h)
    else:
        for name, units in zip(names, config.unit_list):
            h = _recurrent_layer(config.cell, units, name)(h)
    outputs = keras.layers.Dense(n_outputs, name="output")(h)
    return keras.Model(inputs, outputs, name=keras_name(config))


def sequence_roles(config: SequenceConfig) -> dict[str, str]:
    role = "conv" if config.cell == "cnn" else "recurrent"
    return {**dict.fromkeys(config.layer_names(), role), "output": "output"}


def _width(layer) -> int:
    if isinstance(layer, keras.layers.Bidirectional):
        return int(layer.forward_layer.units)
    if isinstance(layer, keras.layers.Conv1D):
        return int(layer.filters)
    return int(layer.units)


def sequence_resized(config: SequenceConfig, model: keras.Model) -> SequenceConfig:
    widths = tuple(_width(model.get_layer(n)) for n in config.layer_names())
    if config.cell == "cnn":
        return dataclasses.replace(config, filters=widths if len(set(widths)) > 1 else widths[0])
    return dataclasses.replace(config, units=widths if len(widths) > 1 else widths[0])


def sequence_blocks(config: SequenceConfig) -> BlockGeometry:
    return BlockGeometry(block_length=config.block_length, inference_block=config.inference_block,
                         overlap=config.resolved_overlap)


SEQUENCE = register_model_family(ModelFamily(
    config=SequenceConfig, build=build_sequence, roles=sequence_roles, resized_config=sequence_resized,
    blocks=sequence_blocks))
