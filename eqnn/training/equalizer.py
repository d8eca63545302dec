"""The trained equalizer record and its folder on disk.

- :class:`Equalizer`: a trained model with everything needed to use it (model config, resolved data config,
  normalization, the bit widths of a quantized model, training info).
- :func:`save_equalizer` / :func:`load_equalizer`: a folder with ``equalizer.json`` (configs, normalization, bit
  widths, info, weight checksums) and the weights in TF checkpoint format; the round trip is exact and nothing is
  unpickled.
- :func:`predict_symbols`: run a model on windows with a large batch and de-normalize.
- :func:`predict_stream`: run a sequence (many-to-many) model over a transmission in overlapping blocks.
- :func:`training_set`: the training data of a model config: windows, blocks for a sequence family, or a field
  family's own input (learned DBP: blocks of the received field, :mod:`eqnn.data_field`).

Dispatch on the input kind. A windowed family (many-to-one) sees windows (:func:`eqnn.data.make_windows`); a
sequence family (``ModelFamily.blocks``, :mod:`eqnn.models.sequence`) trains on blocks
(:func:`eqnn.data_blocks.make_blocks`) and infers in overlapping blocks (:func:`eqnn.data_blocks.block_plan`);
:meth:`Equalizer.predict_transmission` returns the equalized symbols at the window centres of the data config in
both cases, so every method is evaluated on the same symbols. :meth:`Equalizer.complexity` costs a sequence model
on one inference block, divided by the symbols it delivers.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

import numpy as np

import channel
from channel import Transmission

from ..complexity import model_complexity
from ..data import DataConfig, Normalization, WindowSet, make_windows, targets_to_complex, window_centres
from ..data_blocks import BlockSet, block_plan, cut, make_blocks, stitch, stream_features
from ..keras2 import keras  # tf_keras, imported on first use
from ..models import (
    BlockGeometry,
    ModelConfig,
    build_model,
    check_keras_model,
    custom_input_of,
    family_of,
    model_config_from_dict,
    model_config_to_dict,
)
from ..report import jsonable

__all__ = ["EQUALIZER_FORMAT", "EQUALIZER_VERSION", "Equalizer", "blocks_of", "complexity_arguments",
           "load_equalizer", "predict_blocks", "predict_stream", "predict_symbols", "read_equalizer_meta",
           "save_equalizer", "training_set"]

EQUALIZER_FORMAT = "eqnn-equalizer"
EQUALIZER_VERSION = 3  # 3: weight_bits / activation_bits recorded; version 2 folders load with both None
READABLE_VERSIONS = (2, 3)
WEIGHTS_PREFIX = "weights"


@dataclass
class Equalizer:
    """A trained NN equalizer and what is needed to apply it.

    Attributes:
        model: the ``tf_keras`` model.
        model_config: its architecture config.
        data_config: the data config with taps and guard resolved to numbers.
        normalization: feature/target normalization fitted on the training data.
        info: training summary (history, epochs, times, launch powers and seeds trained on, ...).
        weight_bits: bits of the quantized weights of a compressed model, 2..16; None = float weights.
        activation_bits: bits of its quantized activations; None = float activations.
    """

    model: keras.Model
    model_config: ModelConfig
    data_config: DataConfig
    normalization: Normalization
    info: dict = field(default_factory=dict)
    weight_bits: Optional[int] = None
    activation_bits: Optional[int] = None

    def __post_init__(self) -> None:
        check_keras_model(self.model, "Equalizer.model")
        if self.data_config.taps == "auto" or self.data_config.guard_symbols == "auto":
            raise ValueError("Equalizer.data_config must have taps and guard_symbols resolved (DataConfig.resolved)")
        for name in ("weight_bits", "activation_bits"):
            bits = getattr(self, name)
            if bits is not None:
                if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 1 <= bits <= 64:
                    raise ValueError(f"Equalizer.{name} = {bits!r}: must be None (float) or a number of bits")
                setattr(self, name, int(bits))

    def complexity(self):
        """:func:`eqnn.complexity.model_complexity` of the model at its own bit widths (RMpS, BoP, NABS); a sequence
        model per delivered symbol of one inference block (:func:`complexity_arguments`)."""
        return model_complexity(self.model, self.weight_bits, self.activation_bits,
                                **complexity_arguments(self.model_config, self.data_config.n_outputs))

    @property
    def name(self) -> str:
        return self.model_config.name

    @property
    def blocks(self) -> Optional[BlockGeometry]:
        """The block geometry of a sequence (many-to-many) model; None for a windowed one."""
        return blocks_of(self.model_config)

    @property
    def input_shape(self) -> tuple[int, int]:
        """Windows ``(2N + 1, 4)``; a sequence model: its training blocks ``(L, 4)``."""
        custom = custom_input_of(self.model_config)
        if custom is not None:
            return tuple(custom.input_shape(self.model_config))
        geometry = self.blocks
        if geometry is not None:
            return (int(geometry.block_length), 4)
        return (2 * int(self.data_config.taps) + 1, 4)

    def windows(self, transmission: Transmission) -> WindowSet:
        return make_windows(transmission, self.data_config, self.normalization)

    def training_set(self, transmissions) -> Union[WindowSet, BlockSet]:
        """The fine-tuning/training data of this equalizer from ``transmissions``: windows or blocks."""
        return training_set(self.model_config, transmissions, self.data_config, self.normalization)

    def predict_transmission(self, transmission: Transmission, batch_size: int = 8192
                             ) -> tuple[np.ndarray, np.ndarray]:
        """(equalized symbols complex (n_pol, n_centres), centres int64): at the window centres of the data config
        for windowed, sequence and field (:attr:`eqnn.models.ModelFamily.custom_input`) models alike (the same
        symbols, for a fair comparison)."""
        custom = custom_input_of(self.model_config)
        if custom is not None:
            return custom.predict(self.model, self.model_config, transmission, self.data_config, batch_size)
        if self.blocks is None:
            windows = self.windows(transmission)
            return self.predict(windows, batch_size), windows.centres
        return predict_stream(self.model, transmission, self.data_config, self.normalization, self.blocks,
                              batch_size)

    def predict(self, windows: WindowSet, batch_size: int = 8192) -> np.ndarray:
        """Equalized symbols, complex (n_pol, n_windows), de-normalized (not gain-normalized)."""
        return predict_symbols(self.model, windows, batch_size)

    def save(self, path: Union[str, Path]) -> Path:
        return save_equalizer(self, path)

    def __reduce__(self):
        """Pickled (for Dask workers) as its configs and weight arrays, rebuilt by :func:`build_model` as
        :func:`load_equalizer` does: Keras' own pickling of a model (a ``.keras`` archive) cannot rebuild every
        custom layer of this package (the LDBP's failed with "'str' object is not callable" on a worker)."""
        return (_rebuild_equalizer, (model_config_to_dict(self.model_config), self.data_config.to_dict(),
                                     self.normalization.to_dict(), tuple(self.input_shape),
                                     int(self.data_config.n_outputs), self.model.get_weights(), self.info,
                                     self.weight_bits, self.activation_bits))

    @classmethod
    def load(cls, path: Union[str, Path]) -> "Equalizer":
        return load_equalizer(path)


def predict_symbols(model: keras.Model, windows: WindowSet, batch_size: int = 8192) -> np.ndarray:
    """Run ``model`` on ``windows`` with a large batch and de-normalize: complex (n_pol, n_windows)."""
    check_keras_model(model)
    expected = tuple(model.input_shape[1:])
    if expected != windows.input_shape:
        raise ValueError(f"model expects windows of shape {expected}, got {windows.input_shape} "
                         f"(taps = {windows.taps}): use the data config the model was trained with")
    # Eager calls on large chunks: as fast as model.predict for big batches, without tracing a
    # predict function per model (seconds for RNNs), and the same numbers for every data size.
    out = np.concatenate([model(windows.x[i:i + batch_size], training=False).numpy()
                          for i in range(0, len(windows), batch_size)]) if len(windows) else \
        np.zeros((0, int(model.output_shape[-1])), np.float32)
    if out.shape[1] != windows.n_outputs:
        raise ValueError(f"model has {out.shape[1]} outputs, the data {windows.n_outputs}")
    return windows.outputs_to_symbols(out)



def blocks_of(model_config) -> Optional[BlockGeometry]:
    """The :class:`eqnn.models.BlockGeometry` of a sequence model config; None for a windowed family (or a bare
    model's label)."""
    try:
        family = family_of(model_config)
    except TypeError:
        return None
    return None if family.blocks is None else family.blocks(model_config)


def complexity_arguments(model_config, n_outputs: int) -> dict:
    """Extra arguments of :func:`eqnn.complexity.model_complexity` for a model of ``model_config``: none for a
    windowed family; for a sequence family one inference block (``time_steps = B``) delivering
    ``symbols_per_window = (B - 2 O) n_outputs / 2`` symbols; a family with a custom input says itself."""
    custom = custom_input_of(model_config)
    if custom is not None:
        return dict(custom.complexity_arguments(model_config, int(n_outputs)))
    geometry = blocks_of(model_config)
    if geometry is None:
        return {}
    return {"time_steps": int(geometry.inference_block),
            "symbols_per_window": int(geometry.delivered) * max(int(n_outputs) // 2, 1)}


def training_set(model_config, transmissions, data_config: DataConfig, normalization: Normalization
                 ) -> Union[WindowSet, BlockSet]:
    """The training data of ``model_config``: windows, blocks of its ``block_length`` for a sequence family, or
    the family's own (:attr:`eqnn.models.ModelFamily.custom_input`; ``normalization`` unused)."""
    custom = custom_input_of(model_config)
    if custom is not None:
        return custom.training_set(model_config, transmissions, data_config)
    geometry = blocks_of(model_config)
    if geometry is None:
        return make_windows(transmissions, data_config, normalization)
    return make_blocks(transmissions, data_config, normalization, geometry.block_length)


def predict_blocks(model: keras.Model, stream: np.ndarray, geometry: BlockGeometry, batch_size: int = 8192
                   ) -> np.ndarray:
    """Outputs ``(S, n_outputs)`` of a sequence model over ``stream`` ``(S, features)``: cut into blocks of
    ``geometry.inference_block`` overlapping by ``geometry.overlap`` on each side, run in batches of about
    ``batch_size`` symbols, the delivered outputs stitched (:func:`eqnn.data_blocks.block_plan`)."""
    plan = block_plan(stream.shape[0], geometry.inference_block, geometry.overlap)
    blocks = cut(np.asarray(stream, dtype=np.float32), plan)
    per_batch = max(1, int(batch_size) // plan.block)
    # model.predict runs a compiled graph; calling the model eagerly steps a recurrent layer through its time loop
    # op by op in Python (minutes for a biLSTM over 2^16 symbols, against seconds)
    out = model.predict(blocks, batch_size=per_batch, verbose=0)
    return stitch(out, plan)


def predict_stream(model: keras.Model, transmission: Transmission, data_config: DataConfig,
                   normalization: Normalization, geometry: BlockGeometry, batch_size: int = 8192
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Run a sequence model over the stream ``[guard, n - guard)`` of ``transmission`` in blocks of
    ``geometry.inference_block`` overlapping by ``geometry.overlap`` (:func:`eqnn.data_blocks.block_plan`), stitch
    the delivered outputs, and return (equalized symbols complex (n_pol, n_centres), centres) at the window
    centres of ``data_config`` (taps and guard resolved)."""
    check_keras_model(model)
    taps, guard = int(data_config.taps), int(data_config.guard_symbols)
    n = transmission.rx_cdc.shape[-1]
    centres = window_centres(n, taps, guard)
    out = predict_blocks(model, stream_features(transmission, guard, normalization), geometry, batch_size)
    if out.shape[-1] != data_config.n_outputs:
        raise ValueError(f"model has {out.shape[-1]} outputs, the data {data_config.n_outputs}")
    outputs = out[centres - guard]
    pols = list(data_config.polarizations)
    offset = transmission.rx_cdc[pols][:, centres] if data_config.residual else 0
    symbols = targets_to_complex(normalization.invert_y(outputs)) + offset
    return symbols, centres


def _file_digests(folder: Path) -> dict[str, str]:
    out = {}
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.name.startswith(WEIGHTS_PREFIX):
            out[p.name] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def save_equalizer(equalizer: Equalizer, path: Union[str, Path]) -> Path:
    """Save to folder ``path``: ``equalizer.json`` (configs, normalization, info, weight checksums) and
    the weights in TF checkpoint format (``weights.index``, ``weights.data-*``).

    Written into a temporary sibling folder and renamed into place, so ``path`` is never half-written.
    """
    check_keras_model(equalizer.model, "Equalizer.model")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        equalizer.model.save_weights(str(tmp / WEIGHTS_PREFIX), save_format="tf")
        ckpt = tmp / "checkpoint"  # the bookkeeping file of tf.train.Checkpoint; the prefix is enough
        if ckpt.exists():
            ckpt.unlink()
        meta = {"format": EQUALIZER_FORMAT, "version": EQUALIZER_VERSION,
                "model": model_config_to_dict(equalizer.model_config), "data": equalizer.data_config.to_dict(),
                "normalization": equalizer.normalization.to_dict(), "input_shape": list(equalizer.input_shape),
                "n_outputs": equalizer.data_config.n_outputs, "weights": WEIGHTS_PREFIX,
                "weights_sha256": _file_digests(tmp), "weight_bits": equalizer.weight_bits,
                "activation_bits": equalizer.activation_bits, "info": jsonable(equalizer.info, nan="none")}
        (tmp / "equalizer.json").write_text(json.dumps(meta, indent=1, allow_nan=False) + "\n")
        old = None
        if path.exists():
            old = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".old"))
            os.replace(path, old / "x")
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


META_KEYS = ("model", "data", "input_shape", "n_outputs", "weights", "weights_sha256", "normalization")


def read_equalizer_meta(path: Union[str, Path]) -> dict:
    """The checked ``equalizer.json`` of a folder written by :func:`save_equalizer`, without TensorFlow: readable
    UTF-8 JSON, an object of this format and version with every entry a model needs (:data:`META_KEYS`), a model
    and data config that validate, and weight files whose checksums match. Anything else raises
    :class:`channel.CorruptFileError` in one line that names the file and what to do; a folder without the file,
    FileNotFoundError."""
    path = Path(path)
    meta_path = path / "equalizer.json"
    if not meta_path.is_file():
        raise FileNotFoundError(f"{path}: no equalizer.json (not a saved equalizer)")
    advice = f"the saved equalizer is damaged: delete {path} and train the model again"
    try:
        meta = json.loads(meta_path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise channel.CorruptFileError(f"{meta_path}: not UTF-8 text (byte {exc.start}); {advice}") from None
    except json.JSONDecodeError as exc:
        raise channel.CorruptFileError(f"{meta_path}: not valid JSON ({exc}); {advice}") from exc
    except OSError as exc:
        raise channel.CorruptFileError(f"{meta_path}: cannot be read ({exc.strerror or exc}); {advice}") from exc
    if not isinstance(meta, dict):
        raise channel.CorruptFileError(f"{meta_path}: a JSON {type(meta).__name__}, not an object; {advice}")
    if meta.get("format") != EQUALIZER_FORMAT or meta.get("version") not in READABLE_VERSIONS:
        raise channel.CorruptFileError(f"{meta_path}: format {meta.get('format')!r} version {meta.get('version')!r}, "
                                       f"expected {EQUALIZER_FORMAT!r} version "
                                       f"{' or '.join(map(str, READABLE_VERSIONS))}")
    missing = [k for k in META_KEYS if k not in meta]
    if missing:
        raise channel.CorruptFileError(f"{meta_path}: missing entr{'y' if len(missing) == 1 else 'ies'} "
                                       f"{', '.join(missing)}; {advice}")
    try:
        model_config_from_dict(meta["model"], saved=True)
        DataConfig.from_dict(meta["data"])
        shape = tuple(int(v) for v in meta["input_shape"])
        int(meta["n_outputs"])
        if not isinstance(meta["weights"], str) or not isinstance(meta["weights_sha256"], dict) or len(shape) != 2:
            raise TypeError("weights, weights_sha256 or input_shape of the wrong type")
    except (channel.ConfigError, TypeError, ValueError) as exc:
        raise channel.CorruptFileError(f"{meta_path}: {exc}; {advice}") from exc
    if _file_digests(path) != meta["weights_sha256"]:
        raise channel.CorruptFileError(f"{path}: weight files missing or altered (checksum mismatch)")
    return meta


def _rebuild_equalizer(model: dict, data: dict, normalization: dict, input_shape: tuple, n_outputs: int,
                       weights: list, info: dict, weight_bits, activation_bits) -> Equalizer:
    """The :class:`Equalizer` of :meth:`Equalizer.__reduce__`: the model built from its config, then its weights."""
    model_config = model_config_from_dict(model, saved=True)
    keras_model = build_model(model_config, tuple(input_shape), int(n_outputs))
    keras_model.set_weights(weights)
    return Equalizer(model=keras_model, model_config=model_config, data_config=DataConfig.from_dict(data),
                     normalization=Normalization.from_dict(normalization), info=info, weight_bits=weight_bits,
                     activation_bits=activation_bits)


def load_equalizer(path: Union[str, Path]) -> Equalizer:
    """Load a folder written by :func:`save_equalizer`: rebuild the model from its JSON config and
    restore the weights (checksums verified; nothing is unpickled). A damaged folder raises
    :class:`channel.CorruptFileError` (:func:`read_equalizer_meta`)."""
    path = Path(path)
    meta = read_equalizer_meta(path)
    model_config = model_config_from_dict(meta["model"], saved=True)  # older records: former defaults
    data_config = DataConfig.from_dict(meta["data"])
    model = build_model(model_config, tuple(meta["input_shape"]), int(meta["n_outputs"]))
    status = model.load_weights(str(path / meta["weights"]))
    status.expect_partial()  # the optimizer's slots are in the checkpoint too; only the model is restored
    status.assert_existing_objects_matched()
    return Equalizer(model=model, model_config=model_config, data_config=data_config,
                     normalization=Normalization.from_dict(meta["normalization"]), info=meta.get("info", {}),
                     weight_bits=meta.get("weight_bits"), activation_bits=meta.get("activation_bits"))
