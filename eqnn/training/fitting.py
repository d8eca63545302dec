"""Fitting an NN equalizer: seeded Adam/MSE training with early stopping on a held-out validation split.

- :func:`fit`: compile and fit a ``tf_keras`` model on a :class:`eqnn.data.WindowSet` (best weights restored).
- :func:`train_model`: seed, build and fit one model config; returns an :class:`Equalizer`.
- :func:`validation_mask`: which windows are held out (the end of every block).
- :class:`EpochLog`: one printed line per epoch.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import tf_keras as keras

from channel import ConfigError

from ..data import DataConfig, WindowSet
from ..models import ModelConfig, build_model, check_keras_model, count_parameters
from .config import TrainingConfig
from .equalizer import Equalizer

__all__ = ["EpochLog", "fit", "train_model", "validation_mask"]


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
