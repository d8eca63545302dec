"""The compression pipeline: :class:`CompressionConfig` (which steps), :func:`compress` (prune -> cluster ->
quantize, with a :class:`StepReport` of the model before and after each step) and :class:`CompressionResult`."""

from __future__ import annotations

import copy
import dataclasses
import time
import types
from collections.abc import Callable, Mapping
from typing import Any

import tf_keras as keras

from .calibration import calibration_data
from .clustering import CLUSTER_INITS, cluster
from .common import (
    SCHEDULES,
    SCOPES,
    _check_bits,
    _check_choice,
    _check_clusters,
    _check_fraction,
    _check_model,
    compression_info,
    copy_model,
)
from .fine_tune import FineTune, _check_fine_tune
from .ldbp import is_ldbp
from .pruning import PRUNING_METHODS, prune
from .pruning.registry import _prune_targets, check_budget, method_calibration, method_options
from .quantization import QUANTIZE_GRIDS, QUANTIZE_MODES, _check_pow2_terms, quantize
from .stats import weight_stats


@dataclasses.dataclass(frozen=True)
class CompressionConfig:
    """Which steps :func:`compress` runs (each optional), in the order prune -> cluster -> quantize.

    Pruning runs when ``sparsity > 0`` or ``per_layer`` is given; clustering when ``n_clusters`` is set;
    quantization when ``weight_bits`` is set. ``preserve_sparsity=None`` (clustering): ``True`` when a pruning
    step that leaves zeros (a method that is not ``structured``, e.g. magnitude) precedes and ``n_clusters >= 3``.
    numpy scalars (e.g. from scikit-optimize) are cast.
    """

    prune_method: str = "magnitude"
    sparsity: float = 0.0
    per_layer: Mapping[str, float] | None = None
    schedule: str = "constant"
    scope: str = "layer"
    prune_options: Mapping[str, Any] | None = None
    n_clusters: int | None = None
    cluster_init: str = "kmeans++"
    preserve_sparsity: bool | None = None
    weight_bits: int | None = None
    activation_bits: int | None = None
    quantize_mode: str = "ptq"
    per_channel: bool = False
    quantize_bias: bool = False
    quantize_grid: str = "uniform"
    pow2_terms: int | None = None

    def __post_init__(self):
        def put(name, value):
            object.__setattr__(self, name, value)

        put("prune_method", _check_choice(self.prune_method, "pruning method", list(PRUNING_METHODS)))
        put("sparsity", _check_fraction(self.sparsity, "sparsity"))
        if self.per_layer is not None:
            if not isinstance(self.per_layer, Mapping):
                raise TypeError("per_layer must be a dict {layer name: sparsity} or None")
            put("per_layer", types.MappingProxyType(
                {str(k): _check_fraction(v, f"per_layer[{k!r}]") for k, v in self.per_layer.items()}))
        put("schedule", _check_choice(self.schedule, "schedule", SCHEDULES))
        put("scope", _check_choice(self.scope, "scope", SCOPES))
        if self.prune_options is not None:
            if not isinstance(self.prune_options, Mapping):
                raise TypeError("prune_options must be a dict or None")
            method_options(PRUNING_METHODS[self.prune_method], self.prune_options)  # a bad option fails here
            put("prune_options", types.MappingProxyType(dict(self.prune_options)))
        put("cluster_init", _check_choice(self.cluster_init, "cluster init", list(CLUSTER_INITS)))
        if self.preserve_sparsity is not None:
            put("preserve_sparsity", bool(self.preserve_sparsity))
        if self.n_clusters is not None:
            put("n_clusters", _check_clusters(self.n_clusters, bool(self.preserve_sparsity)))
        if self.weight_bits is not None:
            put("weight_bits", _check_bits(self.weight_bits, "weight_bits"))
        if self.activation_bits is not None:
            put("activation_bits", _check_bits(self.activation_bits, "activation_bits"))
            if self.weight_bits is None:
                raise ValueError("activation_bits needs weight_bits (the quantization step)")
        put("quantize_mode", _check_choice(self.quantize_mode, "quantization mode", QUANTIZE_MODES))
        put("per_channel", bool(self.per_channel))
        put("quantize_bias", bool(self.quantize_bias))
        if self.per_channel and self.quantize_mode == "qat":
            raise ValueError("per_channel quantization is available with quantize_mode='ptq' only")
        put("quantize_grid", _check_choice(self.quantize_grid, "quantization grid", QUANTIZE_GRIDS))
        put("pow2_terms", _check_pow2_terms(self.quantize_grid, self.pow2_terms))
        if self.quantize_grid == "pow2" and self.quantize_mode == "qat":
            raise ValueError("quantize_grid='pow2' is available with quantize_mode='ptq' only")

    @property
    def prunes(self) -> bool:
        return self.sparsity > 0.0 or bool(self.per_layer)

    @property
    def steps(self) -> list[str]:
        return (["prune"] if self.prunes else []) + (["cluster"] if self.n_clusters is not None else []) + (
            ["quantize"] if self.weight_bits is not None else [])

    def cluster_preserves_sparsity(self) -> bool:
        if self.preserve_sparsity is not None:
            return self.preserve_sparsity
        # a structured method leaves no zero weights to preserve
        return self.prunes and not PRUNING_METHODS[self.prune_method].structured and (self.n_clusters or 0) >= 3

    def to_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for key in ("per_layer", "prune_options"):
            out[key] = None if out[key] is None else dict(out[key])
        return out


@dataclasses.dataclass(frozen=True)
class StepReport:
    """The model after one step: weight statistics (:func:`weight_stats`) and the injected measurements.

    ``model`` is the model after this step (the next step works on a copy of it, so it stays as reported).
    """

    step: str
    params: dict
    layers: list[dict]
    total: dict
    evaluation: dict | None
    complexity: dict | None
    seconds: float
    info: dict
    model: keras.Model | None = dataclasses.field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        """JSON-ready (without the model)."""
        return copy.deepcopy({f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "model"})


@dataclasses.dataclass(frozen=True)
class CompressionResult:
    model: keras.Model
    config: CompressionConfig
    baseline: StepReport
    steps: list[StepReport]

    def to_dict(self) -> dict:
        return {"config": self.config.to_dict(), "baseline": self.baseline.to_dict(),
                "steps": [s.to_dict() for s in self.steps]}


def _step_report(step: str, params: dict, model: keras.Model, seconds: float, evaluate, complexity) -> StepReport:
    info = compression_info(model)
    stats = weight_stats(model)
    evaluation = None
    if evaluate is not None:
        evaluation = evaluate(model)
        if not isinstance(evaluation, Mapping):
            raise TypeError(f"evaluate(model) must return a dict, got {type(evaluation).__name__}")
        evaluation = dict(evaluation)
    cost = None
    if complexity is not None:
        cost = complexity(model, info.get("weight_bits"), info.get("activation_bits"))
        if not isinstance(cost, Mapping):
            raise TypeError(f"complexity(model, weight_bits, activation_bits) must return a dict, got "
                            f"{type(cost).__name__}")
        cost = dict(cost)
    last = info["steps"][-1] if info["steps"] and step != "original" else {}
    return StepReport(step=step, params=params, layers=stats["layers"], total=stats["total"], evaluation=evaluation,
                      complexity=cost, seconds=seconds, info=last, model=model)


def compress(model: keras.Model, config: CompressionConfig, fine_tune: FineTune | None = None,
             evaluate: Callable[[keras.Model], Mapping] | None = None,
             complexity: Callable[[keras.Model, int | None, int | None], Mapping] | None = None,
             calibration: Any = None) -> CompressionResult:
    """Run prune -> cluster -> quantize as configured, reporting the model before and after each step.

    ``evaluate(model) -> dict`` (e.g. Q-factor on the test set) and ``complexity(model, weight_bits,
    activation_bits) -> dict`` (RMpS, BoP, NABS; bits are ``None`` while the model is float) are injected so this
    module depends on neither training nor complexity code. ``calibration``: data of a pruning method with
    ``needs_calibration`` (:func:`eqnn.compress.prune`) and of ``quantize_mode="obq"`` (None: the fine-tuning
    windows). Every argument is checked before any training.
    """
    _check_model(model)
    if not isinstance(config, CompressionConfig):
        raise TypeError(f"config must be a CompressionConfig, got {type(config).__name__}")
    _check_fine_tune(fine_tune)
    for fn, what in ((evaluate, "evaluate"), (complexity, "complexity")):
        if fn is not None and not callable(fn):
            raise TypeError(f"{what} must be callable or None")
    if config.prunes:
        pm = _prune_targets(model, config.sparsity, config.prune_method, config.schedule, config.per_layer,
                            config.scope)[0]
        if pm.needs_fine_tune and fine_tune is None:
            raise ValueError(f"pruning method {pm.name!r} needs fine_tune (it cannot prune one-shot)")
        options = method_options(pm, config.prune_options)
        check_budget(pm, options, fine_tune)
        method_calibration(pm, options, calibration, fine_tune)
    if config.weight_bits is not None and config.quantize_mode == "qat" and fine_tune is None:
        raise ValueError("quantize_mode='qat' needs fine_tune")
    if config.weight_bits is not None and config.quantize_mode == "obq" and \
            calibration_data(calibration, fine_tune) is None:
        raise ValueError("quantize_mode='obq' needs calibration data: pass calibration= (or fine_tune)")
    if config.weight_bits is not None and config.quantize_mode != "ptq" and is_ldbp(model):
        raise ValueError(f"quantize_mode={config.quantize_mode!r} is not available for the learned DBP "
                         f"{model.name!r}: use 'ptq'")
    if config.n_clusters is not None:
        _check_clusters(config.n_clusters, config.cluster_preserves_sparsity())

    baseline = _step_report("original", {}, model, 0.0, evaluate, complexity)
    reports, current = [], model
    if config.prunes:
        params = {"method": config.prune_method, "sparsity": config.sparsity, "schedule": config.schedule,
                  "scope": config.scope, "per_layer": dict(config.per_layer or {})}
        start = time.perf_counter()
        current = prune(current, config.sparsity, method=config.prune_method, schedule=config.schedule,
                        per_layer=config.per_layer, fine_tune=fine_tune, scope=config.scope,
                        options=config.prune_options, calibration=calibration)
        reports.append(_step_report("prune", params, current, time.perf_counter() - start, evaluate, complexity))
    if config.n_clusters is not None:
        params = {"n_clusters": config.n_clusters, "init": config.cluster_init,
                  "preserve_sparsity": config.cluster_preserves_sparsity()}
        start = time.perf_counter()
        current = cluster(current, config.n_clusters, init=config.cluster_init,
                          preserve_sparsity=params["preserve_sparsity"], fine_tune=fine_tune)
        reports.append(_step_report("cluster", params, current, time.perf_counter() - start, evaluate, complexity))
    if config.weight_bits is not None:
        params = {"weight_bits": config.weight_bits, "activation_bits": config.activation_bits,
                  "mode": config.quantize_mode, "per_channel": config.per_channel,
                  "quantize_bias": config.quantize_bias}
        if config.quantize_grid != "uniform":
            params.update(grid=config.quantize_grid, pow2_terms=config.pow2_terms)
        start = time.perf_counter()
        current = quantize(current, config.weight_bits, activation_bits=config.activation_bits,
                           mode=config.quantize_mode, per_channel=config.per_channel,
                           quantize_bias=config.quantize_bias, fine_tune=fine_tune, grid=config.quantize_grid,
                           pow2_terms=config.pow2_terms,
                           calibration=calibration if config.quantize_mode == "obq" else None)
        reports.append(_step_report("quantize", params, current, time.perf_counter() - start, evaluate,
                                    complexity))
    if current is model:
        current = copy_model(model)
        object.__setattr__(current, "eqnn_info", compression_info(model))
    return CompressionResult(model=current, config=config, baseline=baseline, steps=reports)

