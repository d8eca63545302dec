"""Iterative magnitude pruning (IMP) with rewinding ("lottery_ticket"): unstructured, over ``rounds`` rounds.

Each round prunes the fraction ``p = 1 - (1 - s)^(1/R)`` of the surviving kernel weights with the smallest
magnitudes (per tensor; round ``r`` keeps ``max(round(n (1 - s)^(r/R)), 1)`` of the ``n`` weights, so the last round
keeps TFMOT's count for the target ``s``), then retrains the survivors with the pruned weights held at exactly zero
(:class:`.masks.KeepMasks`). Two ways to restart each retraining (option ``rewind``):

* ``"weights"`` (Frankle & Carbin, ICLR 2019, "The lottery ticket hypothesis"; with rewinding to an early step,
  Frankle et al., ICML 2020, "Linear mode connectivity and the lottery ticket hypothesis"): the method trains the
  model's architecture from a fresh, seeded initialization and saves every weight at step
  ``k = round(rewind_at * steps of that first phase)`` (``rewind_at = 0``: the initialization itself, the 2019
  ticket). Each round then sets the surviving weights (and every bias) back to their values at step ``k``, the
  pruned ones to zero, and retrains. Only the architecture of the given model is used (its trained weights are not
  a point of this trajectory).
* ``"learning_rate"`` (Zimmer, Spiegel & Pokutta, ICLR 2023, "How I learned to stop worrying and love retraining":
  budgeted IMP with a linearly decaying learning rate): starts from the given trained model; each round prunes and
  retrains briefly with the learning rate restarted at the fine-tuning rate ``eta`` and decaying linearly to zero
  over the round's steps, ``eta_t = eta (1 - t / T)``, without touching the weights.

Budget: the fine-tuning's ``epochs`` are the whole training of the method, split over its phases as evenly as
possible: ``rounds + 1`` phases with ``rewind="weights"`` (the dense training first), ``rounds`` with
``"learning_rate"``; so ``epochs`` must be at least the number of phases. Options: ``rewind``
(``"weights"`` | ``"learning_rate"``, default ``"learning_rate"``), ``rounds`` (>= 1, default 2), ``rewind_at``
(fraction of the first phase's steps in [0, 1), default 0.1; weights rewinding only). The ``schedule`` argument
of :func:`eqnn.compress.prune` is not used (the rounds are the schedule).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import tf_keras as keras

from .. import catalog
from ..common import copy_model, kernel_entries
from ..fine_tune import FineTune, _fit
from . import masks as M
from .registry import PruningMethod, register_pruning_method

NAME = "lottery_ticket"
# the options (rewind, rounds, rewind_at: defaults and ranges) and the budget rule are the catalog's
SPEC = catalog.BUILTIN[NAME]
REWINDS = catalog.REWINDS
DEFAULTS = SPEC.check_options.defaults
check_fine_tune = SPEC.check_fine_tune  # one fine-tuning epoch at least per training phase
phases = catalog.lottery_ticket_phases


def check_options(options: Mapping[str, Any], epochs: int | None = None) -> dict:
    """The options completed with :data:`DEFAULTS` (and, given ``epochs``, :func:`check_fine_tune`); a one-line
    ValueError naming a bad key."""
    o = SPEC.check_options(options)
    check_fine_tune(o, epochs)
    return o


def round_sparsity(sparsity: float, round_: int, rounds: int) -> float:
    """Sparsity after round ``round_`` of ``rounds``: ``1 - (1 - s)^(round_/rounds)`` (a fraction ``p`` of the
    survivors pruned per round)."""
    return 1.0 - (1.0 - sparsity) ** (round_ / rounds)


class _SaveAt(keras.callbacks.Callback):
    """Saves ``model.get_weights()`` before the batch of (0-based) step ``step``."""

    def __init__(self, step: int):
        super().__init__()
        self.step, self.seen, self.weights = step, 0, None

    def on_train_batch_begin(self, batch, logs=None):
        if self.seen == self.step:
            self.weights = [w.copy() for w in self.model.get_weights()]
        self.seen += 1


def lottery_ticket(model: keras.Model, targets: Mapping[str, float], fine_tune: FineTune, options: Mapping[str, Any],
                   on_rewind: Callable[[keras.Model, list, dict], None] | None = None) -> tuple[keras.Model, dict]:
    """IMP as in the module docstring; ``options`` already checked (:func:`check_options`). ``on_rewind(model,
    rewind_weights, masks)`` is called right after each rewind, before retraining (a test's probe); ``masks`` is
    ``{kernel key: bool array}``."""
    o = options
    rounds = o["rounds"]
    epochs = M.phase_epochs(fine_tune.epochs, phases(o))
    names = [name for name, s in targets.items() if s > 0.0]
    info: dict[str, Any] = {"rewind": o["rewind"], "rounds": rounds, "phase_epochs": epochs,
                            "epochs_trained": int(sum(epochs)), "history": []}
    rewind_weights = None
    if o["rewind"] == "weights":
        current = M.fresh_copy(model)
        first = fine_tune.with_epochs(epochs[0])
        step = min(int(round(o["rewind_at"] * first.total_steps)), first.total_steps - 1)
        saver = _SaveAt(step)
        info["history"].append(_fit(current, first, [saver]))
        rewind_weights = saver.weights
        info["rewind_step"] = step
        epochs = epochs[1:]
    else:
        current = copy_model(model)
    kernels = M.kernel_variables(current, names)
    alive = {key: np.ones(var.shape, dtype=bool) for _, key, var in kernels}
    keeper = M.KeepMasks()
    for r in range(1, rounds + 1):
        for name, key, var in kernels:
            alive[key] = M.nested_topk(var.numpy(), alive[key], round_sparsity(targets[name], r, rounds))
        phase = fine_tune.with_epochs(epochs[r - 1])
        if rewind_weights is not None:
            current.set_weights(rewind_weights)
            rate = None
        else:
            rate = keras.optimizers.schedules.PolynomialDecay(fine_tune.learning_rate, phase.total_steps,
                                                              end_learning_rate=0.0, power=1.0)
        if rate is not None:  # the schedule as used: eta at the first step, 0 after the last
            info.setdefault("learning_rate", []).append([float(rate(0)), float(rate(phase.total_steps // 2)),
                                                         float(rate(phase.total_steps))])
        keeper.set([(var, alive[key]) for _, key, var in kernels])
        if on_rewind is not None:
            on_rewind(current, rewind_weights, {key: a.copy() for key, a in alive.items()})
        info["history"].append(_fit(current, phase, [keeper], learning_rate=rate))
    info["per_round_fraction"] = {name: 1.0 - (1.0 - s) ** (1.0 / rounds) for name, s in targets.items() if s > 0}
    return current, info


def _lottery_layers(model: keras.Model) -> list[str]:
    return [layer.name for layer in model.layers if kernel_entries(layer)]


def _apply(model: keras.Model, targets: Mapping[str, float], *, schedule: str, scope: str,
           fine_tune: FineTune | None, options: Mapping[str, Any]) -> tuple[keras.Model, dict]:
    options = check_options(options, fine_tune.epochs)
    pruned, info = lottery_ticket(model, targets, fine_tune, options)
    info["fine_tuned"] = True
    info["achieved_sparsity"] = M.achieved_sparsity(pruned, [n for n, s in targets.items() if s > 0])
    return pruned, info


LOTTERY_TICKET = register_pruning_method(PruningMethod.from_catalog(NAME, _lottery_layers, _apply))
