"""One-cycle pruning ("one_cycle"; Hubens, Mancas, Gosselin & Zaharia, 2022, "One-Cycle Pruning: Pruning ConvNets
Under a Tight Training Budget"): unstructured magnitude pruning from the first to the last step of ONE training
run of the model's architecture from a fresh, seeded initialization (no pre-training; the given model's weights
are not used), so the whole fine-tuning budget is the training.

Sparsity schedule, with ``u = t / (T - 1)`` the position of training step ``t`` of ``T`` in [0, 1]::

    f(u) = 1 / (1 + exp(-alpha u + beta))                   (the paper's logistic one-cycle curve)
    s(u) = s_target (f(u) - f(0)) / (f(1) - f(0))            (normalized: s(0) = 0, s(1) = s_target exactly)

monotone in ``u`` and never above the target. Before each step, every pruned kernel (``n`` weights) keeps its
``max(round(n (1 - s(u))), 1)`` largest magnitudes among the surviving ones (a pruned weight is never revived), and
the pruned weights are held at exactly zero (:class:`.masks.KeepMasks`); at the last step the target is reached.
Options: ``alpha`` (> 0, default 14) and ``beta`` (default 5), the values of the authors' library (fasterai's
``sched_onecycle``); ``learning_rate``: ``"one_cycle"`` (default; Smith's one-cycle policy the paper trains with:
cosine warm-up from ``eta/25`` to the fine-tuning rate ``eta`` over the first 25 % of the steps, cosine decay to
``eta/1e5``) or ``"constant"`` (``eta``). The ``schedule`` argument of :func:`eqnn.compress.prune` is not used
(this schedule is the method).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras as keras

from .. import catalog
from ..common import kernel_entries
from ..fine_tune import FineTune, _fit
from . import masks as M
from .registry import PruningMethod, register_pruning_method

NAME = "one_cycle"
# the options (alpha, beta, learning_rate: defaults and ranges) are the catalog's
SPEC = catalog.BUILTIN[NAME]
LEARNING_RATES = catalog.ONE_CYCLE_RATES
DEFAULTS = SPEC.check_options.defaults


def check_options(options: Mapping[str, Any], epochs: int | None = None) -> dict:
    """The options completed with :data:`DEFAULTS`; a one-line ValueError naming a bad key (any budget works)."""
    return SPEC.check_options(options)


def one_cycle_sparsity(position: Any, target: float, alpha: float = 14.0, beta: float = 5.0) -> np.ndarray:
    """``s(u)`` of the module docstring at ``position`` ``u`` in [0, 1] (array or scalar)."""
    u = np.clip(np.asarray(position, dtype=np.float64), 0.0, 1.0)

    def f(x):
        return 1.0 / (1.0 + np.exp(-alpha * x + beta))

    f0, f1 = f(0.0), f(1.0)
    return np.where(u >= 1.0, target, np.minimum(target * (f(u) - f0) / (f1 - f0), target))


class OneCycleRate(keras.optimizers.schedules.LearningRateSchedule):
    """Smith's one-cycle learning rate: cosine from ``peak/25`` up to ``peak`` over the first ``warmup`` fraction
    of ``total`` steps, then cosine down to ``peak/1e5``."""

    def __init__(self, peak: float, total: int, warmup: float = 0.25):
        self.peak, self.total, self.warmup = float(peak), int(total), float(warmup)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        up = max(1.0, self.warmup * self.total)
        down = max(1.0, self.total - up)

        def cos(start, end, pos):
            return end + (start - end) * 0.5 * (1.0 + tf.cos(np.pi * tf.clip_by_value(pos, 0.0, 1.0)))

        return tf.where(step < up, cos(self.peak / 25.0, self.peak, step / up),
                        cos(self.peak, self.peak / 1e5, (step - up) / down))

    def get_config(self):
        return {"peak": self.peak, "total": self.total, "warmup": self.warmup}


def _apply(model: keras.Model, targets: Mapping[str, float], *, schedule: str, scope: str,
           fine_tune: FineTune | None, options: Mapping[str, Any]) -> tuple[keras.Model, dict]:
    o = check_options(options, fine_tune.epochs)
    names = [name for name, s in targets.items() if s > 0.0]
    current = M.fresh_copy(model)
    kernels = M.kernel_variables(current, names)
    total = fine_tune.total_steps
    alive = {key: np.ones(var.shape, dtype=bool) for _, key, var in kernels}
    trace: list[float] = []  # the scheduled sparsity (of the first pruned layer's fraction 1) at each step

    def update(step: int) -> None:
        u = step / (total - 1) if total > 1 else 1.0
        for name, key, var in kernels:
            s = float(one_cycle_sparsity(u, targets[name], o["alpha"], o["beta"]))
            alive[key] = M.nested_topk(var.numpy(), alive[key], s)
        keeper.set([(var, alive[key]) for _, key, var in kernels])
        trace.append(float(one_cycle_sparsity(u, 1.0, o["alpha"], o["beta"])))

    keeper = M.KeepMasks(on_batch_begin=update)
    rate = OneCycleRate(fine_tune.learning_rate, total) if o["learning_rate"] == "one_cycle" else None
    history = _fit(current, fine_tune, [keeper], learning_rate=rate)
    info = {**o, "fine_tuned": True, "from_scratch": True, "epochs_trained": fine_tune.epochs, "steps": total,
            "history": history, "schedule_fraction_at": {"first": trace[0], "middle": trace[len(trace) // 2],
                                                          "last": trace[-1]},
            "achieved_sparsity": M.achieved_sparsity(current, names)}
    return current, info


ONE_CYCLE = register_pruning_method(PruningMethod.from_catalog(
    NAME, lambda model: [layer.name for layer in model.layers if kernel_entries(layer)], _apply))
