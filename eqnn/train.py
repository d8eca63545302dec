"""Training and evaluation of NN equalizers, and the launch-power study behind ``eqnn train``.

- :func:`train_model`: seeded Adam/MSE training with early stopping on a validation split (best
  weights restored), one line per epoch.
- :class:`Equalizer`: a trained model with everything needed to use it (model config, resolved data
  config, normalization); :meth:`Equalizer.save` / :meth:`Equalizer.load` round-trip exactly
  (weights in TF checkpoint format, configs in JSON; nothing is unpickled).
- :func:`evaluate`: BER, Q and effective SNR of the equalized test symbols, next to CDC and DBP on the
  very same symbols (same window centres, same polarizations).
- :func:`run_training`: a training TOML (see :class:`TrainRunConfig`) -> per launch power: simulate
  independent training and test transmissions, train every model, evaluate, write
  ``results.json``, ``results.csv``, ``q_vs_power.png`` and the saved models, print a table.

Training TOML (every key optional unless noted; unknown keys are errors)::

    name = "reference-nn"           # label of the study
    powers_dbm = [0.0, 1.0]         # launch powers (dBm); required
    mode = "per_power"              # "per_power": one model per power; "combined": one model trained
                                    #   on the concatenated data of all powers, evaluated at each
    dbp = true                      # compute DBP on the test transmissions (the [scenario.receiver] variants)
    cache_dir = "results/cache"     # simulation cache (relative to the working directory); "" = none
    train_symbols = 262144          # symbols per polarization of each training transmission
    test_symbols = 65536            #   ... of each test transmission (default: scenario.transmitter.n_symbols)

    [seeds]
    train = 101                     # transmitter seed (symbols + noise) of the training transmissions
    test = 202                      # ... of the test transmissions; must differ from train

    [scenario]                      # the link: sections as in experiments/reference.toml
    base = "reference.toml"         # optional: start from this link file (relative to this file)
    name = "reference"
    [scenario.transmitter]          # overrides of the base (or of the built-in defaults)
    n_symbols = 65536

    [data]                          # eqnn.data.DataConfig
    taps = 20                       # N per side, or "auto"
    both_polarizations = false
    guard_symbols = "auto"
    normalize_targets = true

    [training]                      # TrainingConfig
    epochs = 200
    batch_size = 1000
    learning_rate = 1e-3
    validation_split = 0.1
    patience = 15
    seed = 0
    lr_patience = 5                 # halve the learning rate after 5 epochs without improvement (0: off)

    [[models]]                      # one table per model; type = mlp | lstm | bilstm | cnn_bilstm
    type = "mlp"
    name = "MLP"
    units = [100, 100, 100]
    activation = "tanh"

    [[models]]
    type = "bilstm"
    name = "biLSTM"
    units = 100
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np
import tf_keras as keras

import channel
from channel import ConfigError, LinkConfig, Metrics, Transmission, evaluate_symbols
from channel.config import check_int, read_toml, scenario_from_table, unknown_keys_error
from channel.receiver import complex_gain, normalize

from .complexity import cdc_complexity, dbp_complexity, model_complexity
from .data import (
    DataConfig,
    Normalization,
    WindowSet,
    check_independent,
    fit_normalization,
    make_windows,
    resolve_guard,
    resolve_taps,
    window_centres,
)
from .execution import InProcess
from .models import (
    ModelConfig,
    build_model,
    check_keras_model,
    count_parameters,
    model_config_from_dict,
    model_config_to_dict,
)
from .models import check_input as check_model_input
from .report import format_q_table, optimum_per_method, plot_q_vs_power, write_csv, write_json

EQUALIZER_FORMAT = "eqnn-equalizer"
EQUALIZER_VERSION = 2
WEIGHTS_PREFIX = "weights"
MODES = ("per_power", "combined")


# --------------------------------------------------------------------------------------------- configs

def _check_number(name: str, value: Any, low: float, high: float, low_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{name} = {value!r}: must be a finite number")
    if (value <= low if low_open else value < low) or value > high:
        raise ConfigError(f"{name} = {value!r} is out of range: allowed {'(' if low_open else '['}{low:g}, {high:g}]")
    return float(value)



def _from_table(cls: type, data: Any, section: str):
    unknown_keys_error(data, cls, section)
    return cls(**data)


@dataclass(frozen=True)
class TrainingConfig:
    """How a model is fitted.

    Attributes:
        epochs: maximum number of epochs, [1, 100000].
        batch_size: mini-batch size, [1, 1048576].
        learning_rate: Adam learning rate, (0, 1].
        validation_split: fraction of the training windows (the last ones of each block, contiguous)
            held out for early stopping, [0, 0.5]; 0: early stopping watches the training loss.
        patience: epochs without improvement of the validation loss before stopping, [0, 100000].
        min_delta: minimum decrease of the validation loss that counts as improvement, [0, 1].
        seed: seed of weight initialization and shuffling (``keras.utils.set_random_seed``), >= 0.
        predict_batch_size: batch size of inference, [1, 1048576].
        shuffle: shuffle the training windows every epoch.
        lr_patience: if > 0, multiply the learning rate by ``lr_factor`` after this many epochs without
            improvement of the monitored loss (ReduceLROnPlateau), [0, 100000]; 0 = constant rate.
        lr_factor: learning-rate reduction factor, (0, 1).
        min_learning_rate: lower bound of the reduced learning rate, [0, learning_rate].
    """

    epochs: int = 200
    batch_size: int = 1000
    learning_rate: float = 1e-3
    validation_split: float = 0.1
    patience: int = 15
    min_delta: float = 0.0
    seed: int = 0
    predict_batch_size: int = 8192
    shuffle: bool = True
    lr_patience: int = 0
    lr_factor: float = 0.5
    min_learning_rate: float = 1e-5

    def __post_init__(self) -> None:
        check_int("training.epochs", self.epochs, 1, 100_000)
        check_int("training.batch_size", self.batch_size, 1, 2**20)
        object.__setattr__(self, "learning_rate",
                           _check_number("training.learning_rate", self.learning_rate, 0, 1, low_open=True))
        object.__setattr__(self, "validation_split",
                           _check_number("training.validation_split", self.validation_split, 0, 0.5))
        check_int("training.patience", self.patience, 0, 100_000)
        object.__setattr__(self, "min_delta", _check_number("training.min_delta", self.min_delta, 0, 1))
        check_int("training.seed", self.seed, 0, 2**32 - 1)
        check_int("training.predict_batch_size", self.predict_batch_size, 1, 2**20)
        if not isinstance(self.shuffle, bool):
            raise ConfigError(f"training.shuffle = {self.shuffle!r}: must be true or false")
        check_int("training.lr_patience", self.lr_patience, 0, 100_000)
        factor = _check_number("training.lr_factor", self.lr_factor, 0, 1, low_open=True)
        if factor >= 1:
            raise ConfigError(f"training.lr_factor = {self.lr_factor!r} is out of range: allowed (0, 1)")
        object.__setattr__(self, "lr_factor", factor)
        object.__setattr__(self, "min_learning_rate", _check_number(
            "training.min_learning_rate", self.min_learning_rate, 0, self.learning_rate))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class SeedsConfig:
    """Transmitter seeds of the training and test transmissions (must differ), integers >= 0."""

    train: int = 101
    test: int = 202

    def __post_init__(self) -> None:
        check_int("seeds.train", self.train, 0, 2**63 - 1)
        check_int("seeds.test", self.test, 0, 2**63 - 1)
        if self.train == self.test:
            raise ConfigError(f"seeds.train = seeds.test = {self.train}: training and test transmissions must use "
                              "different seeds (independent symbols and noise)")


@dataclass(frozen=True)
class TrainRunConfig:
    """A training study: a link, launch powers, data, models and training settings (see module docstring)."""

    scenario: LinkConfig = field(default_factory=channel.reference_config)
    powers_dbm: tuple[float, ...] = (0.0,)
    mode: str = "per_power"
    seeds: SeedsConfig = field(default_factory=SeedsConfig)
    data: DataConfig = field(default_factory=DataConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    models: tuple[ModelConfig, ...] = ()
    dbp: bool = True
    cache_dir: Optional[str] = "results/cache"
    name: str = "train"
    train_symbols: Optional[int] = None
    test_symbols: Optional[int] = None

    def __post_init__(self) -> None:
        if not isinstance(self.scenario, LinkConfig):
            raise ConfigError(f"scenario: expected a channel.LinkConfig, got {type(self.scenario).__name__}")
        powers = self.powers_dbm
        if isinstance(powers, (int, float)) and not isinstance(powers, bool):
            powers = (powers,)
        if not isinstance(powers, (list, tuple)) or not powers:
            raise ConfigError(f"powers_dbm = {self.powers_dbm!r}: must be a non-empty list of launch powers (dBm)")
        checked = []
        for p in powers:
            checked.append(_check_number("powers_dbm[]", p, -30, 30))
        if len(set(checked)) != len(checked):
            raise ConfigError(f"powers_dbm = {list(powers)}: values must be distinct")
        object.__setattr__(self, "powers_dbm", tuple(checked))
        if self.mode not in MODES:
            raise ConfigError(f"mode = {self.mode!r}: allowed values are {', '.join(map(repr, MODES))}")
        for name, cls in (("seeds", SeedsConfig), ("data", DataConfig), ("training", TrainingConfig)):
            if not isinstance(getattr(self, name), cls):
                raise ConfigError(f"{name}: expected a {cls.__name__}, got {type(getattr(self, name)).__name__}")
        models = tuple(self.models)
        if not models:
            raise ConfigError("models: at least one [[models]] table is required")
        for m in models:
            model_config_to_dict(m)  # type check
        names = [m.name for m in models]
        if len(set(names)) != len(names):
            raise ConfigError(f"models[].name = {names}: names must be distinct")
        reserved = {"CDC"} | {f"DBP-{k}" for k in self.scenario.receiver.dbp_steps_per_span}
        if set(names) & reserved:
            raise ConfigError(f"models[].name {sorted(set(names) & reserved)}: reserved for the reference methods")
        object.__setattr__(self, "models", models)
        if not isinstance(self.dbp, bool):
            raise ConfigError(f"dbp = {self.dbp!r}: must be true or false")
        if self.cache_dir is not None and not isinstance(self.cache_dir, str):
            raise ConfigError(f"cache_dir = {self.cache_dir!r}: must be a path string")
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"name = {self.name!r}: must be a non-empty string")
        for key in ("train_symbols", "test_symbols"):
            value = getattr(self, key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise ConfigError(f"{key} = {value!r}: must be an integer (symbols per polarization)")
        taps = resolve_taps(self.data, self.scenario)
        guard = resolve_guard(self.data, self.scenario)
        for which in ("train", "test"):
            try:
                link = self._link(which, self.powers_dbm[0])  # validates seed and block length
            except ConfigError as exc:
                raise ConfigError(f"{which}_symbols / seeds.{which}: {exc}") from exc
            try:
                window_centres(link.transmitter.n_symbols, taps, guard)
            except ConfigError as exc:
                raise ConfigError(f"{which} data: {exc}") from exc
        for m in models:
            check_model_input(m, 2 * taps + 1)  # the family's own check (e.g. cnn_bilstm: kernel_size <= window)

    def _link(self, which: str, power_dbm: float) -> LinkConfig:
        n = self.train_symbols if which == "train" else self.test_symbols
        link = self.scenario if n is None else self.scenario.replace(transmitter={"n_symbols": n})
        seed = self.seeds.train if which == "train" else self.seeds.test
        return link.with_seed(seed).with_launch_power(power_dbm)

    def train_link(self, power_dbm: float) -> LinkConfig:
        """The link of the training transmission at ``power_dbm`` (seed and block length applied)."""
        return self._link("train", power_dbm)

    def test_link(self, power_dbm: float) -> LinkConfig:
        """The link of the test transmission at ``power_dbm``."""
        return self._link("test", power_dbm)

    def to_dict(self) -> dict:
        return {"name": self.name, "powers_dbm": list(self.powers_dbm), "mode": self.mode, "dbp": self.dbp,
                "cache_dir": self.cache_dir, "train_symbols": self.train_symbols, "test_symbols": self.test_symbols,
                "seeds": dataclasses.asdict(self.seeds),
                "scenario": self.scenario.to_dict(), "data": self.data.to_dict(),
                "training": self.training.to_dict(), "models": [model_config_to_dict(m) for m in self.models]}

    @classmethod
    def from_dict(cls, data: dict, base_dir: Union[str, Path, None] = None) -> "TrainRunConfig":
        """Build from a parsed TOML table; ``base_dir`` resolves a relative ``scenario.base``."""
        if not isinstance(data, dict):
            raise ConfigError(f"training configuration must be a table, got {type(data).__name__}")
        allowed = {"name", "powers_dbm", "mode", "dbp", "cache_dir", "train_symbols", "test_symbols", "seeds",
                   "scenario", "data", "training", "models"}
        unknown = set(data) - allowed
        if unknown:
            raise ConfigError(f"unknown top-level key(s) {sorted(unknown)}: allowed {', '.join(sorted(allowed))}")
        if "powers_dbm" not in data:
            raise ConfigError("powers_dbm is required: a list of launch powers in dBm, e.g. powers_dbm = [0.0, 1.0]")
        kwargs: dict[str, Any] = {"powers_dbm": data["powers_dbm"]}
        for key in ("name", "mode", "dbp", "train_symbols", "test_symbols"):
            if key in data:
                kwargs[key] = data[key]
        if "cache_dir" in data:
            kwargs["cache_dir"] = data["cache_dir"] or None
        kwargs["scenario"] = _scenario_from_table(data.get("scenario", {}), base_dir)
        kwargs["seeds"] = _from_table(SeedsConfig, data.get("seeds", {}), "seeds")
        kwargs["data"] = DataConfig.from_dict(data.get("data", {}))
        kwargs["training"] = _from_table(TrainingConfig, data.get("training", {}), "training")
        models = data.get("models", [])
        if isinstance(models, dict):  # [models.mlp] style: the table key is the type unless given
            models = [{"type": k, **v} if isinstance(v, dict) and "type" not in v else v for k, v in models.items()]
        if not isinstance(models, list):
            raise ConfigError("models must be an array of tables ([[models]]) or a table of tables ([models.<type>])")
        kwargs["models"] = tuple(model_config_from_dict(m, f"models[{i}]") for i, m in enumerate(models))
        return cls(**kwargs)


def _scenario_from_table(table: Any, base_dir: Union[str, Path, None]) -> LinkConfig:
    """The link of ``[scenario]``: :func:`channel.config.scenario_from_table` (shared with ``channel.load_config``)."""
    return scenario_from_table(table, base_dir)


def load_train_config(path: Union[str, Path]) -> TrainRunConfig:
    """Read a training TOML (format: module docstring). Errors are :class:`channel.ConfigError`."""
    path = Path(path)
    return TrainRunConfig.from_dict(read_toml(path, "training config"), base_dir=path.parent)


# --------------------------------------------------------------------------------------------- training

class EpochLog(keras.callbacks.Callback):
    """Prints one line per epoch: loss, validation loss, seconds."""

    def __init__(self, label: str, epochs: int, printer=print):
        super().__init__()
        self.label, self.epochs, self.printer = label, epochs, printer
        self._start = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        val = f"  val_loss {logs['val_loss']:.5g}" if "val_loss" in logs else ""
        lr = float(keras.backend.get_value(self.model.optimizer.learning_rate))
        self.printer(f"  {self.label} epoch {epoch + 1}/{self.epochs}  loss {logs.get('loss', float('nan')):.5g}"
                     f"{val}  lr {lr:.2g}  {time.perf_counter() - self._start:.1f} s", flush=True)


def validation_mask(train: WindowSet, fraction: float) -> np.ndarray:
    """Boolean mask of the validation windows: the last ``fraction`` of the windows of each block
    (each transmission), contiguous, so that every launch power of a combined set is validated."""
    mask = np.zeros(len(train), dtype=bool)
    if fraction <= 0:
        return mask
    for b in np.unique(train.block):
        idx = np.flatnonzero(train.block == b)
        n_val = int(idx.size * fraction)
        if n_val < 1:
            raise ConfigError(f"training.validation_split = {fraction} leaves no validation window out of the "
                             f"{idx.size} windows of a block")
        mask[idx[idx.size - n_val:]] = True
    return mask


def fit(model: keras.Model, train: WindowSet, config: TrainingConfig, progress: bool = True,
        label: str = "") -> dict:
    """Compile ``model`` (Adam, MSE) and fit it on ``train``; returns a summary with the history.

    Early stopping watches the validation loss (the last ``validation_split`` of the windows) and
    restores the best epoch's weights. Call ``keras.utils.set_random_seed`` before building the
    model for reproducibility (:func:`train_model` does).
    """
    check_keras_model(model)
    if not isinstance(config, TrainingConfig):
        raise TypeError(f"config must be a TrainingConfig, got {type(config).__name__}")
    held_out = validation_mask(train, config.validation_split)
    n_val = int(held_out.sum())
    if n_val:
        x_fit, y_fit = train.x[~held_out], train.y[~held_out]
        validation = (train.x[held_out], train.y[held_out])
    else:
        x_fit, y_fit, validation = train.x, train.y, None
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=config.learning_rate), loss="mse")
    monitor = "val_loss" if validation is not None else "loss"
    stopper = keras.callbacks.EarlyStopping(monitor=monitor, patience=config.patience, min_delta=config.min_delta,
                                            restore_best_weights=True)
    callbacks = [stopper]
    if config.lr_patience > 0:
        callbacks.append(keras.callbacks.ReduceLROnPlateau(monitor=monitor, factor=config.lr_factor,
                                                           patience=config.lr_patience, min_delta=config.min_delta,
                                                           min_lr=config.min_learning_rate, verbose=0))
    if progress:
        callbacks.append(EpochLog(label or model.name, config.epochs))
    start = time.perf_counter()
    history = model.fit(x_fit, y_fit, batch_size=config.batch_size, epochs=config.epochs,
                        validation_data=validation, shuffle=config.shuffle, callbacks=callbacks, verbose=0)
    hist = {k: [float(v) for v in vals] for k, vals in history.history.items()}
    losses = hist.get(monitor, [])
    best_epoch = int(np.argmin(losses)) + 1 if losses else 0
    return {"history": hist, "epochs_run": len(hist.get("loss", [])), "best_epoch": best_epoch,
            "best_loss": float(min(losses)) if losses else None, "monitor": monitor,
            "n_train_windows": int(len(x_fit)), "n_validation_windows": int(n_val),
            "train_time_s": time.perf_counter() - start}


@dataclass
class Equalizer:
    """A trained NN equalizer and what is needed to apply it.

    Attributes:
        model: the ``tf_keras`` model.  model_config: its architecture config.
        data_config: the data config with taps and guard resolved to numbers.
        normalization: feature/target normalization fitted on the training data.
        info: training summary (history, epochs, times, launch powers and seeds trained on, ...).
    """

    model: keras.Model
    model_config: ModelConfig
    data_config: DataConfig
    normalization: Normalization
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_keras_model(self.model, "Equalizer.model")
        if self.data_config.taps == "auto" or self.data_config.guard_symbols == "auto":
            raise ValueError("Equalizer.data_config must have taps and guard_symbols resolved (DataConfig.resolved)")

    @property
    def name(self) -> str:
        return self.model_config.name

    @property
    def input_shape(self) -> tuple[int, int]:
        return (2 * int(self.data_config.taps) + 1, 4)

    def windows(self, transmission: Transmission) -> WindowSet:
        return make_windows(transmission, self.data_config, self.normalization)

    def predict(self, windows: WindowSet, batch_size: int = 8192) -> np.ndarray:
        """Equalized symbols, complex (n_pol, n_windows), de-normalized (not gain-normalized)."""
        return predict_symbols(self.model, windows, batch_size)

    def save(self, path: Union[str, Path]) -> Path:
        return save_equalizer(self, path)

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


def train_model(model_config: ModelConfig, train: WindowSet, training: TrainingConfig, data_config: DataConfig,
                progress: bool = True, label: str = "") -> Equalizer:
    """Seed, build and fit one model on ``train``; returns an :class:`Equalizer`.

    ``data_config`` is the config ``train`` was made with (stored, resolved, with the equalizer).
    Same seed, data and configs give bit-identical weights.
    """
    keras.utils.set_random_seed(training.seed)
    model = build_model(model_config, train.input_shape, train.n_outputs)
    summary = fit(model, train, training, progress=progress, label=label or model_config.name)
    resolved = dataclasses.replace(data_config, taps=int(train.taps), guard_symbols=int(train.guard))
    summary.update({"n_parameters": count_parameters(model), "trained_on_powers_dbm": list(train.launch_powers_dbm),
                    "trained_on_seeds": list(train.seeds), "training": training.to_dict()})
    return Equalizer(model=model, model_config=model_config, data_config=resolved,
                     normalization=train.normalization, info=summary)


# --------------------------------------------------------------------------------------------- save / load

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
                "weights_sha256": _file_digests(tmp), "info": _jsonable(equalizer.info)}
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


def load_equalizer(path: Union[str, Path]) -> Equalizer:
    """Load a folder written by :func:`save_equalizer`: rebuild the model from its JSON config and
    restore the weights (checksums verified; nothing is unpickled)."""
    path = Path(path)
    meta_path = path / "equalizer.json"
    if not meta_path.is_file():
        raise FileNotFoundError(f"{path}: no equalizer.json (not a saved equalizer)")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as exc:
        raise channel.CorruptFileError(f"{meta_path}: not valid JSON: {exc}") from exc
    if meta.get("format") != EQUALIZER_FORMAT or meta.get("version") != EQUALIZER_VERSION:
        raise channel.CorruptFileError(f"{meta_path}: format {meta.get('format')!r} version {meta.get('version')!r}, "
                                       f"expected {EQUALIZER_FORMAT!r} version {EQUALIZER_VERSION}")
    digests = _file_digests(path)
    if digests != meta["weights_sha256"]:
        raise channel.CorruptFileError(f"{path}: weight files missing or altered (checksum mismatch)")
    model_config = model_config_from_dict(meta["model"])
    data_config = DataConfig.from_dict(meta["data"])
    model = build_model(model_config, tuple(meta["input_shape"]), int(meta["n_outputs"]))
    status = model.load_weights(str(path / meta["weights"]))
    status.expect_partial()  # the optimizer's slots are in the checkpoint too; only the model is restored
    status.assert_existing_objects_matched()
    return Equalizer(model=model, model_config=model_config, data_config=data_config,
                     normalization=Normalization.from_dict(meta["normalization"]), info=meta.get("info", {}))


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


# --------------------------------------------------------------------------------------------- evaluation

@dataclass
class Evaluation:
    """Metrics of one test transmission, every method on the same symbols.

    Attributes:
        launch_power_dbm: of the transmission.  seed: its transmitter seed.
        polarizations: "x" or "x,y": the polarizations evaluated (the NN's targets).
        n_symbols: symbols evaluated per polarization (the window centres).
        centre_range: (first, last) block index of the evaluated symbols.
        metrics: {method: channel.Metrics}: the NN(s) first, then "CDC" and "DBP-k".
        nn_gain: {NN name: complex gain removed per polarization, as [re, im]}.
    """

    launch_power_dbm: float
    seed: int
    polarizations: str
    n_symbols: int
    centre_range: tuple[int, int]
    metrics: dict[str, Metrics]
    nn_gain: dict[str, list] = field(default_factory=dict)

    def rows(self) -> list[dict]:
        """One flat dict per method (the columns of results.csv)."""
        out = []
        for method, m in self.metrics.items():
            out.append({"launch_power_dbm": self.launch_power_dbm, "method": method, "q_db": m.q_db,
                        "q_db_ci_low": m.q_db_ci[0], "q_db_ci_high": m.q_db_ci[1], "q_db_from_snr": m.q_db_from_snr,
                        "snr_db": m.snr_db, "ber": m.ber, "bit_errors": m.bit_errors, "n_bits": m.n_bits,
                        "gmi_bits": m.gmi_bits, "evm_percent": m.evm_percent, "polarizations": self.polarizations,
                        "n_symbols": self.n_symbols, "note": m.note})
        return out

    def to_dict(self) -> dict:
        return {"launch_power_dbm": self.launch_power_dbm, "seed": self.seed, "polarizations": self.polarizations,
                "n_symbols": self.n_symbols, "centre_range": list(self.centre_range),
                "metrics": {k: m.to_dict() for k, m in self.metrics.items()}, "nn_gain": self.nn_gain}


def evaluate(model: Union[Equalizer, keras.Model, Sequence[Equalizer]], transmission: Transmission,
             data_config: Optional[DataConfig] = None, normalization: Optional[Normalization] = None,
             name: str = "NN", batch_size: int = 8192, gain_normalize: bool = True,
             references: bool = True) -> Evaluation:
    """Equalize the test ``transmission`` and compare with CDC and DBP on the same symbols.

    Args:
        model: an :class:`Equalizer` (or a list of them, evaluated on the same symbols: they must use
            the same taps/guard/polarizations), or a bare ``tf_keras.Model`` together with
            ``data_config`` and ``normalization`` (the ones it was trained with).
        transmission: the test transmission (a seed not used for training).
        name: method label of a bare model.
        gain_normalize: remove one least-squares complex gain per polarization from the NN output
            against the transmitted symbols (data-aided, as ``channel`` does for CDC and DBP). An
            MSE-trained output is shrunk towards 0 by the noise; without this, hard decisions on the
            unit-energy grid would be biased.
        references: also report "CDC" and every "DBP-k" present in ``transmission.rx_dbp``.

    Returns: an :class:`Evaluation`; every method is evaluated on the transmitted symbols of the window
    centres (``channel.evaluate_symbols``), x polarization only unless the data has both.
    """
    if isinstance(model, Equalizer):
        items = [model]
    elif isinstance(model, (list, tuple)):
        items = list(model)
        if not items or not all(isinstance(m, Equalizer) for m in items):
            raise TypeError("a list given as model must hold Equalizer objects")
    else:
        check_keras_model(model)
        if data_config is None or normalization is None:
            raise ValueError("evaluate(bare tf_keras model, ...) needs data_config and normalization")
        resolved = data_config.resolved(transmission.config)
        items = [Equalizer(model=model, model_config=_bare_config(name), data_config=resolved,
                           normalization=normalization)]
    if not isinstance(transmission, Transmission):
        raise TypeError(f"transmission must be a channel.Transmission, got {type(transmission).__name__}")
    geometry = {(e.data_config.taps, e.data_config.guard_symbols, e.data_config.both_polarizations) for e in items}
    if len(geometry) != 1:
        raise ValueError(f"equalizers evaluated together must share taps, guard and polarizations, got {geometry}")
    names = [e.name for e in items]
    if len(set(names)) != len(names):
        raise ValueError(f"equalizer names must be distinct, got {names}")

    pols = list(items[0].data_config.polarizations)
    metrics: dict[str, Metrics] = {}
    gains: dict[str, list] = {}
    windows = None
    for eq in items:
        windows = eq.windows(transmission)  # the same centres for every item (same taps/guard)
        tx_sym = transmission.tx_symbols[pols][:, windows.centres]
        y = eq.predict(windows, batch_size)
        if gain_normalize:
            g = complex_gain(y, tx_sym)
            gains[eq.name] = [[float(v.real), float(v.imag)] for v in g]
            y = normalize(y, tx_sym)
        metrics[eq.name] = evaluate_symbols(y, windows.tx_indices, transmission.modulation)
    centres = windows.centres
    tx_idx = transmission.tx_indices[pols][:, centres]
    if references:
        metrics["CDC"] = evaluate_symbols(transmission.rx_cdc[pols][:, centres], tx_idx, transmission.modulation)
        for k in sorted(transmission.rx_dbp):
            metrics[f"DBP-{k}"] = evaluate_symbols(transmission.rx_dbp[k][pols][:, centres], tx_idx,
                                                   transmission.modulation)
    return Evaluation(launch_power_dbm=transmission.config.transmitter.launch_power_dbm,
                      seed=transmission.config.transmitter.seed, polarizations=",".join("xy"[p] for p in pols),
                      n_symbols=int(centres.size), centre_range=(int(centres[0]), int(centres[-1])),
                      metrics=metrics, nn_gain=gains)


def _bare_config(name: str):
    from .models import MLPConfig

    # A placeholder architecture record for a bare model: only its name is used in evaluation.
    return MLPConfig(name=name)


# --------------------------------------------------------------------------------------------- the study

def _fingerprint(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _power_tag(p: float) -> str:
    return f"{p:+.2f}dBm".replace(".", "p")


def _simulate(link: LinkConfig, cache_dir: Optional[Path], dbp: bool, progress: bool, what: str) -> Transmission:
    start = time.perf_counter()
    tr = channel.simulate(link, cache_dir=cache_dir, progress=progress, dbp=dbp)
    if progress:
        print(f"  {what}: {link.transmitter.launch_power_dbm:+.2f} dBm, seed {link.transmitter.seed}, "
              f"{link.transmitter.n_symbols} symbols/pol, CDC Q {tr.metrics['CDC'].q_db_best:.2f} dB "
              f"({time.perf_counter() - start:.1f} s)", flush=True)
    return tr


def _train_pair(p: float, config: TrainRunConfig, cache: Optional[Path], progress: bool
                ) -> tuple[Transmission, Transmission]:
    """The training and the test transmission at launch power ``p`` (dBm), simulated or from the cache."""
    train_tr = _simulate(config.train_link(p), cache, False, progress, "train")
    test_tr = _simulate(config.test_link(p), cache, config.dbp, progress, "test ")
    return train_tr, test_tr


def _train_models(config: TrainRunConfig, train_trs: list[Transmission], test_trs: list[Transmission], tag: str,
                  out: Path, resume: bool, progress: bool, verbose: bool = True) -> tuple[list[Equalizer], list[dict]]:
    """Train (or reuse, when ``resume`` and the saved fingerprint matches) every model on ``train_trs`` and save it
    in ``out/models/<name>@<tag>``; returns the equalizers and their summaries. ``verbose``: one line per model."""
    check_independent(train_trs, test_trs)
    train_set = make_windows(train_trs, config.data, fit_normalization(train_trs, config.data))
    equalizers, summaries = [], []
    for mc in config.models:
        folder = out / "models" / f"{mc.name}@{tag}"
        key = _fingerprint(model_config_to_dict(mc), config.data.to_dict(), config.training.to_dict(),
                           [t.config.digest() for t in train_trs])
        eq = None
        if resume and (folder / "equalizer.json").is_file():
            try:
                loaded = load_equalizer(folder)
                if loaded.info.get("fingerprint") == key:
                    eq = loaded
                    if verbose:
                        print(f"  {mc.name} @ {tag}: reusing the trained model in {folder}", flush=True)
            except Exception as exc:  # a damaged folder is retrained
                if verbose:
                    print(f"  {mc.name} @ {tag}: cannot reuse {folder} ({exc}); retraining", flush=True)
        if eq is None:
            if verbose:
                print(f"  training {mc.name} @ {tag} on {len(train_set)} windows of {train_set.input_shape}",
                      flush=True)
            eq = train_model(mc, train_set, config.training, config.data, progress=progress,
                             label=f"{mc.name}@{tag}")
            eq.info["fingerprint"] = key
            # the links of its data, so that the data can be simulated again (eqnn compress <model folder>)
            eq.info["train_links"] = [t.config.to_dict() for t in train_trs]
            eq.info["test_links"] = [t.config.to_dict() for t in test_trs]
            save_equalizer(eq, folder)
        summaries.append({"model": mc.name, "tag": tag, "folder": str(folder),
                          **{k: v for k, v in eq.info.items() if k != "training"}})
        equalizers.append(eq)
    return equalizers, summaries


def _costs(equalizers: list[Equalizer], powers: Sequence[float]) -> dict:
    """``{(model name, power): RMpS}`` of each trained model (eqnn.complexity, from its weights)."""
    return {(eq.name, p): model_complexity(eq.model).rmps for eq in equalizers for p in powers}


def _power_job(p: float, config: TrainRunConfig, out: Path, cache: Optional[Path], resume: bool, progress: bool,
               verbose: bool = True) -> tuple[list[dict], Evaluation, dict]:
    """Everything of launch power ``p`` in per_power mode, one independent piece of work: the two transmissions,
    every model trained (or reused) and saved, the evaluation; returns (summaries, evaluation, costs)."""
    if verbose:
        print(f"launch power {p:+.2f} dBm", flush=True)
    train_tr, test_tr = _train_pair(p, config, cache, progress)
    equalizers, summaries = _train_models(config, [train_tr], [test_tr], _power_tag(p), out, resume, progress,
                                          verbose)
    return summaries, evaluate(equalizers, test_tr, batch_size=config.training.predict_batch_size), \
        _costs(equalizers, [p])


def run_training(config: Union[str, Path, TrainRunConfig], out_dir: Union[str, Path],
                 powers: Optional[Sequence[float]] = None, cache_dir: Union[str, Path, None, bool] = None,
                 progress: bool = True, resume: bool = True, dbp: Optional[bool] = None, executor=None) -> dict:
    """Train and evaluate the configured NN equalizers at each launch power; write results.

    Args:
        config: a training TOML path or a :class:`TrainRunConfig`.
        out_dir: output folder: ``results.json``, ``results.csv``, ``q_vs_power.png`` and
            ``models/<name>@<power>/`` (saved :class:`Equalizer` folders).
        powers: launch powers (dBm) overriding ``config.powers_dbm``.
        cache_dir: simulation cache folder overriding ``config.cache_dir``; ``False`` disables caching.
        progress: print simulation progress and one line per training epoch.
        resume: reuse a saved model in ``out_dir/models`` whose configs and training data match
            (an interrupted run continues where it stopped).
        dbp: overrides ``config.dbp`` (compute DBP on the test transmissions).
        executor: where the independent work runs (:mod:`eqnn.execution`; None: here): in per_power mode one task
            per launch power (simulations, training, evaluation), in combined mode one simulation task per
            transmission, then the training here. Remote workers simulate into the cache and save the models in
            ``out_dir`` themselves (a filesystem they share with this process), and print nothing.

    Returns: the dict written to ``results.json``: ``rows`` (one per power and method: Q, SNR, BER...),
    ``models`` (training summaries), ``optimum`` (best power per method) and the config.
    """
    if not isinstance(config, TrainRunConfig):
        config = load_train_config(config)
    if powers is not None:
        config = dataclasses.replace(config, powers_dbm=tuple(float(p) for p in powers))
    if dbp is not None:
        config = dataclasses.replace(config, dbp=bool(dbp))
    if cache_dir is False:
        cache = None
    elif cache_dir is not None:
        cache = Path(cache_dir)
    else:
        cache = Path(config.cache_dir) if config.cache_dir else None
    out = Path(out_dir)
    link = config.scenario
    for p in config.powers_dbm:  # validate every power before any work
        link.with_launch_power(p)
    start = time.perf_counter()
    print(f"training study '{config.name}' on link '{link.name}': {link.link.n_spans} x "
          f"{link.link.span_length_km:g} km, {link.transmitter.modulation} {link.transmitter.symbol_rate_gbd:g} GBd, "
          f"{config.train_link(0.0).transmitter.n_symbols} training / {config.test_link(0.0).transmitter.n_symbols} "
          f"test symbols/pol; powers {list(config.powers_dbm)} dBm; mode {config.mode}; "
          f"taps N = {resolve_taps(config.data, link)}, guard {resolve_guard(config.data, link)}; "
          f"models {', '.join(m.name for m in config.models)}", flush=True)

    executor = executor or InProcess()
    remote = executor.remote
    where = out.resolve() if remote else out  # workers elsewhere: absolute paths on the shared filesystem
    cache_at = cache.resolve() if remote and cache is not None else cache
    evaluations: list[Evaluation] = []
    summaries: list[dict] = []

    # real multiplications per recovered symbol (eqnn.complexity): CDC and DBP-k from the link, each NN from its
    # trained weights (per launch power in per_power mode)
    sps = link.receiver.dbp_samples_per_symbol
    rmps: dict = {"CDC": cdc_complexity(link, samples_per_symbol=sps).rmps}
    rmps.update({f"DBP-{k}": dbp_complexity(link, k, samples_per_symbol=sps).rmps
                 for k in link.receiver.dbp_steps_per_span})

    if config.mode == "per_power":
        job = functools.partial(_power_job, config=config, out=where, cache=cache_at, resume=resume,
                                progress=progress and not remote, verbose=not remote)
        for summaries_p, ev, costs in executor.map(job, config.powers_dbm, desc="training (launch powers)",
                                                   progress=progress):
            summaries += summaries_p
            evaluations.append(ev)
            rmps.update(costs)
    else:
        job = functools.partial(_train_pair, config=config, cache=cache_at, progress=progress and not remote)
        pairs = executor.map(job, config.powers_dbm, desc="transmissions (launch powers)", progress=progress)
        equalizers, summaries = _train_models(config, [a for a, _ in pairs], [b for _, b in pairs], "combined", out,
                                              resume, progress)
        rmps.update(_costs(equalizers, config.powers_dbm))
        for _, test_tr in pairs:
            evaluations.append(evaluate(equalizers, test_tr, batch_size=config.training.predict_batch_size))
    for s in summaries:  # the folders as this process names them
        s["folder"] = str(out / "models" / Path(s["folder"]).name)

    rows = [r for ev in evaluations for r in ev.rows()]
    methods = list(dict.fromkeys(r["method"] for r in rows))
    for r in rows:
        r["rmps"] = rmps[r["method"]] if r["method"] in rmps else rmps.get((r["method"], r["launch_power_dbm"]))
    optimum = optimum_per_method(rows, methods)
    for method, b in optimum.items():
        b["rmps"] = next(r["rmps"] for r in rows if r["method"] == method
                         and r["launch_power_dbm"] == b["launch_power_dbm"])
    result = {"name": config.name, "config": config.to_dict(), "powers_dbm": list(config.powers_dbm),
              "mode": config.mode, "rows": rows, "optimum": optimum,
              "evaluations": [ev.to_dict() for ev in evaluations], "models": summaries,
              "wall_time_s": time.perf_counter() - start}
    write_json(out / "results.json", _jsonable(result))
    write_csv(out / "results.csv", rows)
    plot_q_vs_power(rows, out / "q_vs_power.png",
                    title=f"{config.name}: {link.link.n_spans}x{link.link.span_length_km:g} km, "
                          f"{link.transmitter.modulation} {link.transmitter.symbol_rate_gbd:g} GBd, "
                          f"{evaluations[0].polarizations}-pol, N={resolve_taps(config.data, link)}")
    print(format_table(rows, methods, list(config.powers_dbm)))
    print("\noptimum per method (Q from BER where measured, else from SNR; real multiplications per recovered "
          "symbol from eqnn.complexity):")
    for method, b in result["optimum"].items():
        print(f"  {method:12s} {b['q_db']:6.2f} dB at {b['launch_power_dbm']:+.2f} dBm, {b['rmps']:10.1f} RMpS"
              f"{'' if b['measured'] else '  (Q implied by SNR: too few errors)'}")
    print(f"\nwrote {out / 'results.json'}, {out / 'results.csv'}, {out / 'q_vs_power.png'}, {out / 'models'} "
          f"in {time.perf_counter() - start:.0f} s", flush=True)
    return result


def format_table(rows: list[dict], methods: list[str], powers: list[float]) -> str:
    """Q [95 % CI] and SNR per launch power (rows) and method (columns)."""
    pol = rows[0]["polarizations"] if rows else "x"
    return format_q_table(rows, methods, powers, footer=(
        f"All methods on the same symbols ({pol}-polarization window centres of the test transmission). "
        "Q [95% CI] from counted bit errors; '~' = too few errors, Q implied by the SNR."))
