"""Unit pruning during training ("gradual_structured"; node pruning while training, after Bondarenko et al.'s
comparison of node and weight pruning): whole units (Dense neurons, Conv1D filters, LSTM / GRU units, per direction
in a Bidirectional) are masked gradually while the model trains, then removed, so the result is a smaller model
with no separate fine-tuning phase after the last removal.

Which layers, how many units and how they are ranked are those of :mod:`.structured` (a chain model; the last
weighted layer is never pruned; ``round(s n)`` of the ``n`` units removed, at least one kept; ``criterion``
``"outgoing"`` or ``"incoming"`` squared L2 norms). Training starts from the given (trained) model and lasts the
fine-tuning's epochs. Masking a unit zeroes every weight that :func:`.structured.remove_units` would drop: its own
kernel columns, bias entries and recurrent rows and columns, and the weights of the next weighted layer that read
it (at every time step after a Flatten); a masked unit then feeds nothing, and the smaller model computes the same
outputs as the masked one. Masks are nested: a masked unit scores zero and is never revived.

Schedule of the removed fraction of ``n - n_final`` units (``schedule`` of :func:`eqnn.compress.prune`):
``"constant"``: all at step 0; ``"polynomial"``: ``updates`` mask updates at steps ``t_k = round((k - 1) / K *
ramp * T)``, ``k = 1..K``, each reaching ``1 - (1 - k / K)^3`` of the removal (Zhu & Gupta's cubic ramp), then the
rest of the ``T`` steps train the final mask. Options: ``criterion`` (default ``"outgoing"``), ``updates`` (K, in
[1, 1000], default 8), ``ramp`` (fraction of the steps in (0, 1], default 0.7).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import tf_keras as keras

from ...layers import structure_of
from .. import catalog
from ..common import copy_model
from ..fine_tune import FineTune, _fit
from . import masks as M
from .registry import PruningMethod, register_pruning_method
from .structured import (
    _chain_layers,
    _check_structured_model,
    _choose_keeps,
    _structured_layers,
    remove_units,
    unit_masks,
    units_of,
)

NAME = "gradual_structured"
# the options (criterion, updates, ramp: defaults and ranges) are the catalog's
SPEC = catalog.BUILTIN[NAME]
CRITERIA = catalog.CRITERIA
DEFAULTS = SPEC.check_options.defaults


def check_options(options: Mapping[str, Any], epochs: int | None = None) -> dict:
    """The options completed with :data:`DEFAULTS`; a one-line ValueError naming a bad key (any budget works)."""
    return SPEC.check_options(options)


def update_plan(total_steps: int, schedule: str, updates: int, ramp: float) -> dict[int, float]:
    """``{step: fraction of the removal reached before that step}``; the last entry is 1."""
    if schedule == "constant":
        return {0: 1.0}
    plan: dict[int, float] = {}
    for k in range(1, updates + 1):
        step = min(int(round((k - 1) / updates * ramp * total_steps)), total_steps - 1)
        plan[step] = max(plan.get(step, 0.0), 1.0 - (1.0 - k / updates) ** 3)
    return plan


def train_unit_masks(model: keras.Model, targets: Mapping[str, float], fine_tune: FineTune, schedule: str,
                     options: Mapping[str, Any]) -> tuple[keras.Model, dict, dict]:
    """Train a copy of ``model`` while masking units; returns ``(masked model, kept units {layer: indices}, info)``.
    ``options`` already checked (:func:`check_options`)."""
    o = options
    current = copy_model(model)
    layers = _chain_layers(current)
    units0 = {name: units_of(current.get_layer(name)) for name in targets}
    final = {name: units0[name] - min(int(round(s * units0[name])), units0[name] - 1) for name, s in targets.items()}
    plan = update_plan(fine_tune.total_steps, schedule, o["updates"], o["ramp"])
    state: dict[str, Any] = {"keeps": {}, "log": []}
    masked_layers = [layer for layer in layers if layer.weights and structure_of(layer) != "per_feature"]

    def update(step: int) -> None:
        if step not in plan:
            return
        frac = plan[step]
        remove = {name: int(round(frac * (units0[name] - final[name]))) for name in targets}
        weights = {layer.name: layer.get_weights() for layer in layers}
        keeps = _choose_keeps(layers, weights, remove, o["criterion"])
        masks = unit_masks(current, keeps)
        keeper.set([(var, mask) for layer in masked_layers
                    for var, mask in zip(layer.weights, masks[layer.name])])
        state["keeps"] = keeps
        state["log"].append({"step": step, "fraction": frac, "removed": remove})

    keeper = M.KeepMasks(on_batch_begin=update)
    history = _fit(current, fine_tune, [keeper])
    info = {**o, "fine_tuned": True, "epochs_trained": fine_tune.epochs, "updates_done": state["log"],
            "history": history, "units": {name: [units0[name], final[name]] for name in targets}}
    return current, state["keeps"], info


def _apply(model: keras.Model, targets: Mapping[str, float], *, schedule: str, scope: str,
           fine_tune: FineTune | None, options: Mapping[str, Any]) -> tuple[keras.Model, dict]:
    o = check_options(options, fine_tune.epochs)
    if scope != "layer":
        raise ValueError(f"{NAME} pruning supports scope='layer' only")
    _check_structured_model(model)
    masked, keeps, info = train_unit_masks(model, targets, fine_tune, schedule, o)
    smaller = remove_units(masked, keeps)
    info["units"] = {name: [info["units"][name][0], units_of(smaller.get_layer(name))] for name in targets}
    info["max_abs_difference_to_masked"] = float(np.max(np.abs(
        smaller(fine_tune.x[:256]).numpy() - masked(fine_tune.x[:256]).numpy())))
    return smaller, info


GRADUAL_STRUCTURED = register_pruning_method(PruningMethod.from_catalog(NAME, _structured_layers, _apply))
