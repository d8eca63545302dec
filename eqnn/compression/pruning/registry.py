"""The registry of pruning methods and :func:`prune`, which validates, resolves the targets and calls a method.

A method is a :class:`PruningMethod`: what it can prune (``prunable``), how (``apply``) and what it can do
(capability flags), so that no code compares method names. Everything but ``prunable`` and ``apply`` is its
:class:`eqnn.compression.catalog.MethodSpec` (:attr:`PruningMethod.spec`), which a configuration is checked against
without TensorFlow: a built-in method is built from its catalog entry (:meth:`PruningMethod.from_catalog`), and
:func:`register_pruning_method` keeps :data:`PRUNING_METHODS` and :data:`eqnn.compression.catalog.METHODS` the same
(a method from elsewhere is added to both; one that disagrees with its built-in entry is refused). A new method is
one module calling :func:`register_pruning_method`::

    register_pruning_method(PruningMethod("my_method", prunable=lambda model: [layer names], apply=fn,
                                          supports_global_scope=False))
    fn(model, targets: {layer name: fraction}, *, schedule, scope, fine_tune, options) -> (new plain model, info)

A method that reads data besides the fine-tuning (post-training methods: Optimal Brain Compression, a Taylor
importance) declares ``needs_calibration`` and gets ``calibration=`` (a :class:`eqnn.compression.calibration.
Calibration`) as a further keyword of ``apply``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import tf_keras as keras

from .. import catalog
from ..calibration import Calibration, calibration_data
from ..common import SCHEDULES, SCOPES, _check_choice, _check_fraction, _check_model, attach_info, copy_model
from ..common import kernel_entries as _kernel_entries
from ..fine_tune import FineTune, _check_fine_tune, _seed


@dataclasses.dataclass(frozen=True)
class PruningMethod:
    """A pruning method of the registry.

    ``prunable(model)``: the names of the layers the method can prune. ``apply(model, targets, *, schedule,
    scope, fine_tune, options)``: prune the named layers to their target fractions (``targets`` maps every prunable
    layer to its fraction, 0 = untouched) and return ``(new plain model, info dict)``; it must not modify ``model``.

    Capabilities:
        structured: removes whole units (neurons, filters, LSTM units), so the model gets smaller and keeps no zero
            weights (a later clustering step has no sparsity to preserve; a saved model needs its architecture
            config resized).
        supports_global_scope: ``scope="global"`` (one magnitude threshold over all layers) is meaningful: the
            targets are then computed from the kernels' magnitudes by :func:`prune`.
        needs_fine_tune: the method cannot prune one-shot (``fine_tune=None`` is rejected by :func:`prune`).
        check_options: ``check_options(options) -> options``: validates (one-line error naming the key) and completes
            the method's options before any work; None: ``apply`` checks them itself.
        option_names: the options the method takes (a search passes only these of its method options).
        check_fine_tune: ``check_fine_tune(options, epochs)``: raises a one-line ValueError if ``epochs``
            fine-tuning epochs cannot hold the training these (checked) options ask for (e.g. one epoch per
            training phase); None: any budget works.
        needs_calibration: ``needs_calibration(options) -> bool``: whether ``apply`` needs calibration data with
            these (checked) options; a method that has it gets ``calibration=`` (a :class:`Calibration` or None) as
            a keyword of ``apply``. None: the method reads no calibration data.
        stands_for: names of general methods this one replaces on a model they find nothing to prune in and it
            does (:func:`method_for`; e.g. learned DBP's tap pruning for "magnitude" and "structured").
        model_types: the built-in model types (at their default sizes) in which ``prunable`` finds layers (stated by the
            catalog for its methods; () = not stated).
    """

    name: str
    prunable: Callable[[keras.Model], list[str]]
    apply: Callable[..., tuple[keras.Model, dict]]
    description: str = ""
    structured: bool = False
    supports_global_scope: bool = False
    needs_fine_tune: bool = False
    check_options: Callable[[Mapping[str, Any]], dict] | None = None
    option_names: tuple[str, ...] = ()
    check_fine_tune: Callable[[Mapping[str, Any], int], None] | None = None
    needs_calibration: Callable[[Mapping[str, Any]], bool] | None = None
    stands_for: tuple[str, ...] = ()
    model_types: tuple[str, ...] = ()

    @classmethod
    def from_catalog(cls, name: str, prunable: Callable[[keras.Model], list[str]],
                     apply: Callable[..., tuple[keras.Model, dict]]) -> "PruningMethod":
        """The built-in method ``name``: its catalog entry (:data:`eqnn.compression.catalog.BUILTIN`) with its
        TensorFlow code."""
        spec = catalog.BUILTIN[name]
        return cls(prunable=prunable, apply=apply, **{f: getattr(spec, f) for f in _SPEC_FIELDS})

    @property
    def spec(self) -> catalog.MethodSpec:
        """The method without its TensorFlow code: what the catalog holds."""
        return catalog.MethodSpec(**{f: getattr(self, f) for f in _SPEC_FIELDS})


_SPEC_FIELDS = tuple(f.name for f in dataclasses.fields(catalog.MethodSpec))
PRUNING_METHODS: dict[str, PruningMethod] = {}


def register_pruning_method(method: PruningMethod) -> PruningMethod:
    """Add (or replace) a method in :data:`PRUNING_METHODS` and its spec in :data:`eqnn.compression.catalog.METHODS`
    (ValueError if a built-in name disagrees with its catalog entry); ``prune(..., method=name)`` and a
    ``[compression]`` table then take it."""
    if not isinstance(method, PruningMethod):
        raise TypeError("register_pruning_method takes a PruningMethod")
    catalog.add_method(method.spec)
    PRUNING_METHODS[method.name] = method
    return method


def unregister_pruning_method(name: str) -> None:
    """Remove a method, here and from the catalog (a test that registers a toy method cleans up with this)."""
    PRUNING_METHODS.pop(name, None)
    catalog.remove_method(name)


def method_for(model: keras.Model, name: str) -> str:
    """The method that runs when ``name`` is asked for on ``model``: ``name`` itself if it finds a layer to prune,
    else the first registered method that ``stands_for`` it and finds one (e.g. "magnitude" on a learned DBP ->
    "ldbp_taps"), else ``name`` (whose empty ``prunable`` then gives the usual error). Unknown names pass through."""
    method = PRUNING_METHODS.get(name)
    if method is None or method.prunable(model):
        return name
    for other in PRUNING_METHODS.values():
        if name in other.stands_for and other.prunable(model):
            return other.name
    return name


def _global_fractions(model: keras.Model, names: Sequence[str], sparsity: float) -> dict[str, float]:
    """Per-layer fractions from one magnitude threshold over the kernels of ``names``."""
    if not names or sparsity == 0.0:
        return {name: sparsity for name in names}
    mags, owner = [], []
    for i, name in enumerate(names):
        for _, var in _kernel_entries(model.get_layer(name)):
            a = np.abs(var.numpy()).ravel()
            mags.append(a)
            owner.append(np.full(a.size, i))
    mags, owner = np.concatenate(mags), np.concatenate(owner)
    n_prune = int(round(sparsity * mags.size))
    pruned = owner[np.argsort(mags, kind="stable")[:n_prune]]
    sizes = np.bincount(owner, minlength=len(names))
    counts = np.bincount(pruned, minlength=len(names))
    return {name: float(min(counts[i] / sizes[i], (sizes[i] - 1) / sizes[i])) for i, name in enumerate(names)}


def _prune_targets(model: keras.Model, sparsity: Any, method: Any, schedule: Any, per_layer: Any,
                   scope: Any) -> tuple[PruningMethod, str, str, dict[str, float]]:
    """Validate the arguments of :func:`prune`; returns (method, schedule, scope, per-layer targets)."""
    _check_model(model)
    name = method_for(model, _check_choice(method, "pruning method", list(PRUNING_METHODS)))
    pm = PRUNING_METHODS[name]
    schedule = _check_choice(schedule, "schedule", SCHEDULES)
    scope = _check_choice(scope, "scope", SCOPES)
    sparsity = _check_fraction(sparsity, "sparsity")
    prunable = pm.prunable(model)
    if per_layer is not None and not isinstance(per_layer, Mapping):
        raise TypeError(f"per_layer must be a dict {{layer name: sparsity}}, got {type(per_layer).__name__}")
    overrides: dict[str, float] = {}
    for layer_name, s in (per_layer or {}).items():
        layer_name = str(layer_name)
        names = [layer.name for layer in model.layers]
        if layer_name not in names:
            raise ValueError(f"per_layer: no layer {layer_name!r} in model {model.name!r} (layers: {names})")
        if layer_name not in prunable:
            raise ValueError(f"per_layer: layer {layer_name!r} cannot be pruned by method {name!r} "
                             f"(prunable: {prunable})")
        overrides[layer_name] = _check_fraction(s, f"per_layer[{layer_name!r}]")
    if not prunable:
        raise ValueError(f"model {model.name!r} has no layer that method {name!r} can prune")
    rest = [n for n in prunable if n not in overrides]
    if scope == "global":
        if not pm.supports_global_scope:
            able = [m.name for m in PRUNING_METHODS.values() if m.supports_global_scope]
            raise ValueError(f"scope='global' is supported by the {', '.join(able)} method only, not {name!r}")
        targets = _global_fractions(model, rest, sparsity)
    else:
        targets = {n: sparsity for n in rest}
    targets.update(overrides)
    return pm, schedule, scope, {n: targets[n] for n in prunable}


def method_options(pm: PruningMethod, options: Any) -> dict:
    """The options of method ``pm``, checked by its ``check_options`` (before any work)."""
    if options is not None and not isinstance(options, Mapping):
        raise TypeError("options must be a dict or None")
    options = dict(options or {})
    return pm.check_options(options) if pm.check_options is not None else options


def check_budget(pm: PruningMethod, options: Mapping[str, Any], fine_tune: FineTune | None) -> None:
    """The method's ``check_fine_tune`` on the fine-tuning epochs (nothing to check without fine-tuning)."""
    if pm.check_fine_tune is not None and fine_tune is not None:
        pm.check_fine_tune(options, fine_tune.epochs)


def method_calibration(pm: PruningMethod, options: Mapping[str, Any], calibration: Any,
                       fine_tune: FineTune | None) -> Calibration | None:
    """The calibration data of method ``pm`` (``calibration``, else the fine-tuning windows), or ValueError if
    the method needs some with these ``options`` and has none."""
    data = calibration_data(calibration, fine_tune)
    if pm.needs_calibration is not None and data is None and pm.needs_calibration(options):
        raise ValueError(f"pruning method {pm.name!r} needs calibration data (a few training windows): pass "
                         "calibration= (or fine_tune, whose windows are then used)")
    return data


def prune(model: keras.Model, sparsity: float, *, method: str = "magnitude", schedule: str = "constant",
          per_layer: Mapping[str, float] | None = None, fine_tune: FineTune | None = None, scope: str = "layer",
          options: Mapping[str, Any] | None = None, calibration: Any = None) -> keras.Model:
    """Prune a trained model; returns a new plain tf_keras model (``model`` is unchanged).

    ``sparsity``: fraction in [0, 1) for every prunable layer (``method="magnitude"``: of its kernels' weights;
    ``"obc"``: of the weights of each kernel row; ``"structured"``: of its units; ``"filters"``: of its Conv1D
    filters). ``per_layer``: ``{layer name: fraction}`` overriding ``sparsity`` for those
    layers (0 leaves a layer untouched). ``scope="global"`` (methods with ``supports_global_scope``, e.g. magnitude):
    one magnitude threshold over the layers not in ``per_layer``. ``schedule``: ``"constant"`` (TFMOT
    ConstantSparsity) or ``"polynomial"``
    (PolynomialDecay from 0, reaching the target after ~70 % of the fine-tuning steps; structured: 3 stages).
    ``fine_tune=None``: one-shot. ``options``: method-specific (structured: ``criterion="outgoing"|"incoming"``;
    lottery_ticket, one_cycle, gradual_structured: their modules), checked before any work.
    ``calibration``: data of the methods with ``needs_calibration`` (obc, filters with the Taylor importance): a
    :class:`Calibration`, an ``(x, y)`` pair or an array of inputs; None: the fine-tuning windows, if any.
    """
    pm, schedule, scope, targets = _prune_targets(model, sparsity, method, schedule, per_layer, scope)
    _check_fine_tune(fine_tune)
    if pm.needs_fine_tune and fine_tune is None and any(s > 0.0 for s in targets.values()):
        raise ValueError(f"pruning method {pm.name!r} needs fine_tune (it cannot prune one-shot)")
    options = method_options(pm, options)
    check_budget(pm, options, fine_tune)
    extra = {}
    if pm.needs_calibration is not None:
        extra["calibration"] = method_calibration(pm, options, calibration, fine_tune)
    _seed(fine_tune)
    start = time.perf_counter()
    if any(s > 0.0 for s in targets.values()):
        pruned, info = pm.apply(model, targets, schedule=schedule, scope=scope, fine_tune=fine_tune,
                                options=options, **extra)
    else:  # nothing to prune: no training either
        pruned, info = copy_model(model), {"fine_tuned": False, "note": "all targets are 0: model copied unchanged"}
    step = {"step": "prune", "method": pm.name, "schedule": schedule, "scope": scope,
            "targets": {k: float(v) for k, v in targets.items()}, "seconds": time.perf_counter() - start, **info}
    return attach_info(pruned, model, step)

