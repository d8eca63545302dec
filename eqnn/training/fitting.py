"""Fitting an NN equalizer: seeded Adam/MSE training with early stopping on a held-out validation split.

- :func:`fit`: compile and fit a ``tf_keras`` model on a :class:`eqnn.data.WindowSet` (best weights restored),
  or on any set with arrays ``.x`` (n, ...) and ``.y`` (n, ...) (e.g. blocks of a sequence model).
- :func:`make_dataset`: the ``tf.data`` pipeline of :func:`fit` (seeded shuffle each epoch, batch, prefetch).
- :func:`make_optimizer` / :func:`lr_at_epoch`: Adam or AdamW (``weight_decay``) and the learning-rate schedule.
- :func:`train_model`: seed, build and fit one model config; returns an :class:`Equalizer`.
- :func:`validation_mask`: which windows are held out (the end of every block).
- :class:`EpochLog`: one printed line per epoch.
- :class:`ValidationQ`: the Q-factor of the validation split after every epoch (``training.monitor = "q"``).
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Sequence

import numpy as np
import tensorflow as tf
import tf_keras as keras

from channel import ConfigError
from channel.metrics import count_bit_errors, hard_decision, q_factor_db
from channel.receiver import normalize
from channel.transmitter import qam_constellation

from ..data import DataConfig, WindowSet
from ..models import ModelConfig, build_model, check_keras_model, count_parameters
from .config import TrainingConfig
from .equalizer import Equalizer

__all__ = ["EpochLog", "LearningRateSchedule", "ValidationQ", "fit", "lr_at_epoch", "make_dataset", "make_optimizer",
           "train_model", "validation_mask"]


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
        val += f"  val_q {logs['val_q']:.3f} dB" if "val_q" in logs else ""
        lr = float(keras.backend.get_value(self.model.optimizer.learning_rate))
        self.printer(f"  {self.label} epoch {epoch + 1}/{self.epochs}  loss {logs.get('loss', float('nan')):.5g}"
                     f"{val}  lr {lr:.2g}  {time.perf_counter() - self._start:.1f} s", flush=True)


class ValidationQ(keras.callbacks.Callback):
    """Adds ``val_q`` to the epoch's logs (before early stopping and the learning-rate callbacks read them): the
    Q-factor in dB, ``20 log10(sqrt(2) erfcinv(2 BER))``, of the validation symbols.

    The model's outputs on ``held_out`` are turned into equalized symbols (``held_out.outputs_to_symbols``),
    gain-normalized against the transmitted symbols per polarization (as the evaluation does), hard-decided
    and compared bit by bit with the transmitted indices (``held_out.symbol_indices()``). Zero bit errors count
    as half an error (a finite Q above any measured one, so that the history stays valid JSON).

    Args: ``held_out``: the validation :class:`eqnn.data.WindowSet` or :class:`eqnn.data.BlockSet`;
    ``modulation``: its format; ``batch_size``: inference batch (items).
    """

    def __init__(self, held_out, modulation: str, batch_size: int):
        super().__init__()
        self.x, self.modulation, self.batch_size = held_out.x, modulation, int(batch_size)
        self.to_symbols = held_out.outputs_to_symbols
        self.tx_indices = np.asarray(held_out.symbol_indices())
        self.tx_symbols = qam_constellation(modulation)[0][self.tx_indices]

    def q_db(self) -> float:
        out = self.model.predict(self.x, batch_size=self.batch_size, verbose=0)
        received = normalize(self.to_symbols(out), self.tx_symbols)
        errors, n_bits = count_bit_errors(hard_decision(received, self.modulation), self.tx_indices,
                                          self.modulation)
        return float(q_factor_db(max(errors, 0.5) / n_bits))

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["val_q"] = self.q_db()


def validation_mask(train: WindowSet, fraction: float) -> np.ndarray:
    """Boolean mask of the validation windows: the last ``fraction`` of the windows of each block
    (each transmission), contiguous, so that every launch power of a combined set is validated.
    A set without a ``block`` array (one entry per window) counts as one block."""
    n = int(np.shape(train.x)[0])
    mask = np.zeros(n, dtype=bool)
    if fraction <= 0:
        return mask
    block = getattr(train, "block", None)
    block = np.zeros(n, dtype=np.int64) if block is None or np.shape(block) != (n,) else np.asarray(block)
    for b in np.unique(block):
        idx = np.flatnonzero(block == b)
        n_val = int(idx.size * fraction)
        if n_val < 1:
            raise ConfigError(f"training.validation_split = {fraction} leaves no validation window out of the "
                             f"{idx.size} windows of a block")
        mask[idx[idx.size - n_val:]] = True
    return mask


def lr_at_epoch(config: TrainingConfig, epoch: int, current: float | None = None) -> float:
    """The learning rate of ``epoch`` (0-based) under ``config.lr_schedule`` and ``warmup_epochs``.

    "plateau" and "constant" keep ``current`` (the optimizer's rate, which ReduceLROnPlateau may have lowered;
    ``learning_rate`` when None) after the warm-up; "cosine" decays from ``learning_rate`` to
    ``min_learning_rate`` over the epochs after the warm-up.
    """
    base, warm = config.learning_rate, config.warmup_epochs
    if epoch < warm:
        return base * (epoch + 1) / (warm + 1)
    if config.lr_schedule == "cosine":
        span = max(1, config.epochs - warm - 1)
        t = min(1.0, (epoch - warm) / span)
        return config.min_learning_rate + (base - config.min_learning_rate) * 0.5 * (1 + math.cos(math.pi * t))
    if epoch == warm and warm > 0:
        return base
    return base if current is None else current


class LearningRateSchedule(keras.callbacks.Callback):
    """Sets the optimizer's learning rate at the start of every epoch (:func:`lr_at_epoch`)."""

    def __init__(self, config: TrainingConfig):
        super().__init__()
        self.config = config

    def on_epoch_begin(self, epoch, logs=None):
        current = float(keras.backend.get_value(self.model.optimizer.learning_rate))
        keras.backend.set_value(self.model.optimizer.learning_rate, lr_at_epoch(self.config, epoch, current))


def make_optimizer(config: TrainingConfig) -> keras.optimizers.Optimizer:
    """Adam (``weight_decay`` = 0) or AdamW with decoupled decay of the kernels (biases excluded)."""
    if config.weight_decay > 0:
        optimizer = keras.optimizers.AdamW(learning_rate=config.learning_rate, weight_decay=config.weight_decay)
        optimizer.exclude_from_weight_decay(var_names=["bias"])
        return optimizer
    return keras.optimizers.Adam(learning_rate=config.learning_rate)


def make_dataset(x: np.ndarray, y: np.ndarray, batch_size: int, shuffle: bool = False, seed: int = 0,
                 augment: Sequence[str] = (), y_swap: np.ndarray | None = None) -> tf.data.Dataset:
    """``(x, y)`` as a ``tf.data.Dataset`` of batches: indices shuffled with ``seed`` (a new order every epoch,
    the same sequence of orders for the same seed), batched, gathered from the arrays, prefetched.

    Shuffling indices rather than elements keeps one copy of the arrays and a full (not windowed) shuffle.
    ``augment`` (:data:`eqnn.data.AUGMENTATIONS`): each example gets a random transformation, drawn anew at every
    epoch from a stream seeded by ``seed`` (:func:`augment_batch`); "polarization_swap" needs ``y_swap``, the
    targets of the swapped examples.
    """
    n = int(np.shape(x)[0])
    augment = tuple(augment)
    swap = "polarization_swap" in augment
    if swap and (y_swap is None or np.shape(y_swap) != np.shape(y)):
        raise ValueError("polarization_swap augmentation needs y_swap shaped like y")
    x_t = tf.convert_to_tensor(np.asarray(x, dtype=np.float32))
    y_t = tf.convert_to_tensor(np.asarray(y, dtype=np.float32))
    ys_t = tf.convert_to_tensor(np.asarray(y_swap, dtype=np.float32)) if swap else None
    ds = tf.data.Dataset.range(n)
    if shuffle:
        ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)
    if augment:
        draws = tf.data.Dataset.random(seed=seed + 1, rerandomize_each_iteration=True)
        ds = tf.data.Dataset.zip((ds, draws)).batch(batch_size)
        rotate = "phase_rotation" in augment

        def gather(i, r):
            r = tf.math.floormod(r, 8)
            quarter = tf.math.floormod(r, 4) if rotate else tf.zeros_like(r)
            swapped = tf.equal(r // 4, 1) if swap else tf.zeros_like(r, dtype=tf.bool)
            yy = tf.gather(y_t, i)
            if swap:
                yy = _where_batch(swapped, tf.gather(ys_t, i), yy)
            return augment_batch(tf.gather(x_t, i), yy, quarter, swapped)

        ds = ds.map(gather, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    else:
        ds = ds.batch(batch_size).map(lambda i: (tf.gather(x_t, i), tf.gather(y_t, i)),
                                      num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    options = tf.data.Options()
    options.deterministic = True
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)


def _where_batch(condition, a, b):
    """Per-example choice between ``a`` and ``b`` (first axis), ``condition``: bool (batch,)."""
    shape = tf.concat([tf.shape(condition), tf.ones([tf.rank(a) - 1], tf.int32)], axis=0)
    return tf.where(tf.reshape(condition, shape), a, b)


def _rotate_pairs(v, quarter):
    """Rotate every [Re, Im] pair of the last axis of ``v`` by ``quarter`` x 90 degrees (per example)."""
    pairs = tf.reshape(v, tf.concat([tf.shape(v)[:-1], [-1, 2]], axis=0))
    re, im = pairs[..., 0], pairs[..., 1]
    angle = tf.cast(quarter, v.dtype) * (np.pi / 2)
    shape = tf.concat([tf.shape(quarter), tf.ones([tf.rank(re) - 1], tf.int32)], axis=0)
    c, s = tf.reshape(tf.round(tf.cos(angle)), shape), tf.reshape(tf.round(tf.sin(angle)), shape)
    return tf.reshape(tf.stack([c * re - s * im, s * re + c * im], axis=-1), tf.shape(v))


def augment_batch(x, y, quarter, swapped):
    """Apply the QAM link's symmetries to a batch (:mod:`eqnn.data`, "Augmentation").

    Args:
        x: float (batch, ..., 4) normalized features ``[Re x, Im x, Re y, Im y]``.
        y: float (batch, ..., n_outputs) normalized targets, already those of the swapped example where
            ``swapped`` (the caller picks them: for x-only targets they are the y polarization's).
        quarter: int (batch,) in 0..3: rotate every complex value by ``quarter`` x 90 degrees.
        swapped: bool (batch,): exchange the polarizations of the features.
    Returns: ``(x, y)`` transformed, same shapes. Exact (rotations by multiples of 90 degrees are sign changes
    and swaps of components), and commuting with an isotropic normalization.
    """
    x = _where_batch(swapped, tf.gather(x, [2, 3, 0, 1], axis=-1), x)
    return _rotate_pairs(x, quarter), _rotate_pairs(y, quarter)


def fit(model: keras.Model, train: WindowSet, config: TrainingConfig, progress: bool = True,
        label: str = "", callbacks: Sequence[keras.callbacks.Callback] = ()) -> dict:
    """Compile ``model`` (Adam or AdamW, MSE) and fit it on ``train``; returns a summary with the history.

    ``train`` is a :class:`WindowSet` or any object with arrays ``.x`` and ``.y`` of equal first dimension
    (and optionally ``.block``, one entry per row, for the validation split). Batches come from
    :func:`make_dataset`; ``config.jit_compile`` compiles the steps with XLA. Early stopping watches the
    validation loss (the last ``validation_split`` of the windows of each block), or its Q-factor with
    ``config.monitor = "q"`` (:class:`ValidationQ`; the set must give symbols: ``outputs_to_symbols``,
    ``symbol_indices``, ``modulation``), and restores the best epoch's weights. Call
    ``keras.utils.set_random_seed`` before building the model for reproducibility (:func:`train_model` does).
    ``callbacks``: more Keras callbacks (after the built-in ones).
    """
    check_keras_model(model)
    if not isinstance(config, TrainingConfig):
        raise TypeError(f"config must be a TrainingConfig, got {type(config).__name__}")
    if not hasattr(train, "x") or not hasattr(train, "y") or np.shape(train.x)[0] != np.shape(train.y)[0]:
        raise TypeError("train must have arrays .x and .y with the same number of rows")
    held_out = validation_mask(train, config.validation_split)
    n_val = int(held_out.sum())
    if n_val:
        x_fit, y_fit = train.x[~held_out], train.y[~held_out]
        validation = make_dataset(train.x[held_out], train.y[held_out], max(config.batch_size,
                                                                           config.predict_batch_size))
    else:
        x_fit, y_fit, validation = train.x, train.y, None
    augment = tuple(getattr(train, "augment", ()) or ())
    y_swap = getattr(train, "y_swap", None)
    if y_swap is not None:
        y_swap = y_swap[~held_out] if n_val else y_swap
    data = make_dataset(x_fit, y_fit, config.batch_size, shuffle=config.shuffle, seed=config.seed,
                        augment=augment, y_swap=y_swap)
    model.compile(optimizer=make_optimizer(config), loss="mse", jit_compile=config.jit_compile,
                  steps_per_execution=config.steps_per_execution)
    monitor = loss_monitor = "val_loss" if validation is not None else "loss"
    extra_callbacks, callbacks, mode = list(callbacks), [], "min"
    if config.monitor == "q":
        if not n_val or not hasattr(train, "outputs_to_symbols") or not hasattr(train, "symbol_indices"):
            raise ConfigError(f"training.monitor = 'q' needs a validation split of a data set that gives symbols "
                              f"({type(train).__name__} does not): use monitor = 'loss'")
        callbacks.append(ValidationQ(train.take(held_out), train.modulation, config.predict_batch_size))
        monitor, mode = "val_q", "max"
    stopper = keras.callbacks.EarlyStopping(monitor=monitor, patience=config.patience, min_delta=config.min_delta,
                                            restore_best_weights=True, mode=mode)
    callbacks.append(stopper)
    if config.lr_schedule != "plateau" or config.warmup_epochs > 0:
        callbacks.append(LearningRateSchedule(config))
    if config.lr_schedule == "plateau" and config.lr_patience > 0:
        # the learning rate follows the (smooth) loss also when the Q selects the epoch: the Q of a validation
        # split moves by a few hundredths of a dB from epoch to epoch without a trend, and plateaus of it came
        # too soon (the rate was quartered by epoch 48 of the MLP of benchmarks/README.md section 4c)
        callbacks.append(keras.callbacks.ReduceLROnPlateau(monitor=loss_monitor, factor=config.lr_factor,
                                                           patience=config.lr_patience, min_delta=config.min_delta,
                                                           min_lr=config.min_learning_rate, verbose=0))
    if progress:
        callbacks.append(EpochLog(label or model.name, config.epochs))
    callbacks += extra_callbacks
    callbacks.append(keras.callbacks.TerminateOnNaN())
    start = time.perf_counter()
    history = model.fit(data, epochs=config.epochs, validation_data=validation, callbacks=callbacks, verbose=0)
    hist = {k: [float(v) for v in vals] for k, vals in history.history.items()}
    if not all(np.all(np.isfinite(w)) for w in model.get_weights()) or not np.all(np.isfinite(hist.get("loss", []))):
        raise RuntimeError(f"training of {label or model.name!r} diverged: the loss or the weights became "
                           f"non-finite in epoch {len(hist.get('loss', []))} of {config.epochs} (learning rate "
                           f"{config.learning_rate}); lower training.learning_rate or check the model's start")
    losses = hist.get(monitor, [])
    best = (np.argmax if mode == "max" else np.argmin)(losses) if losses else None
    best_epoch = int(best) + 1 if losses else 0
    return {"history": hist, "epochs_run": len(hist.get("loss", [])), "best_epoch": best_epoch,
            "best_loss": float(losses[best]) if losses else None, "monitor": monitor,
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
