"""The ``[compression]`` table: :class:`CompressionSearchConfig`, the search space, objective and fine-tuning of a
compression study (``eqnn compress``, stage 3 of ``eqnn run``).

A range ``[low, high]`` is a search dimension, a single value is fixed; every key is optional and unknown keys are
errors. The format reference is generated from the class into ``docs/config_reference.md``
(``python -m eqnn.docs``).

The table is checked against :mod:`eqnn.compression.catalog` (the pruning methods, their options and the other
names), without TensorFlow: a bad table fails before TensorFlow starts. The compression package itself (TensorFlow)
is imported by the methods that build or read models (:meth:`CompressionSearchConfig.search_space` with a model,
:meth:`~CompressionSearchConfig.compression_config`, :meth:`~CompressionSearchConfig.fine_tune`,
:meth:`~CompressionSearchConfig.calibration`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence, Union

import numpy as np

from channel import ConfigError
from channel.config import read_toml, unknown_keys_error
from channel.validation import (
    check_bool,
    check_choice,
    check_choices,
    check_int,
    check_number,
    check_span,
    interval_text,
)

from .. import search as searching
from ..complexity.counting import MAX_POW2_TERMS
from ..compression import catalog
from ..data import WindowSet
from ..limits import MAX_BITS, MIN_BITS, SEARCH_SCOPES

if TYPE_CHECKING:
    from .. import compress as compression

__all__ = ["CompressionSearchConfig", "load_compression_config", "COSTS", "OBJECTIVES", "SCOPES", "MAX_CLUSTERS"]

OBJECTIVES = ("constrained", "weighted")
COSTS = searching.COSTS
SCOPES = SEARCH_SCOPES  # "per_layer": one search dimension per prunable layer, a search-level scope
MAX_CLUSTERS = 65536


def _compression():
    """The compression package (:mod:`eqnn.compress`; imports TensorFlow), for the methods that work on models."""
    from .. import compress

    return compress


def _key(name: str) -> str:
    return f"compression.{name}"


def _number(name: str, value: Any, low: float, high: float, low_open: bool = False) -> float:
    """:func:`check_number`, worded as this table's errors always were ("allowed a number in [low, high]")."""
    try:
        return check_number(_key(name), value, low, high, low_open=low_open)
    except ConfigError:
        raise ConfigError(f"{_key(name)} = {value!r}: allowed a number in "
                          f"{interval_text(low, high, low_open)}") from None


def _choice(name: str, value: Any, choices: Sequence[str]) -> str:
    """:func:`check_choice`, worded as this table's errors always were ("allowed 'a', 'b'")."""
    try:
        return check_choice(_key(name), value, choices)
    except ConfigError:
        raise ConfigError(f"{_key(name)} = {value!r}: allowed {', '.join(map(repr, choices))}") from None


def _optional_span(name: str, value: Any, low: int, high: int):
    if value is None or value is False:
        return None
    return check_span(_key(name), value, low, high, integer=True)


def _is_range(value) -> bool:
    return isinstance(value, tuple)


@dataclass(frozen=True)
class CompressionSearchConfig:
    """The ``[compression]`` table: search space, objective and fine-tuning of a compression study.

    A range ``[low, high]`` is a search dimension, a single value is fixed; a list of choices is a categorical
    dimension.

    Attributes:
        n_calls: evaluations in the study (``--calls`` overrides), [1, 10000].
        n_initial_points: random points before the Gaussian process, [1, 10000] and at most ``n_calls`` (in a TOML
            table and with ``--calls``).
        objective: "constrained" (minimize RMpS subject to Q >= Q_uncompressed - max_q_loss_db) or "weighted"
            (weight * log10(RMpS / RMpS_uncompressed) - (1 - weight) * dQ / 1 dB).
        max_q_loss_db: Q budget below the uncompressed model on the same symbols, [0, 10] dB.
        weight: weight of the weighted objective, [0, 1] (1 = RMpS only).
        cost: the cost the objective minimizes (in place of RMpS, against the uncompressed model's): "rmps" (real
            multiplications per symbol; blind to the bit widths), "bop" (bit operations per symbol: fewer weight and
            activation bits and power-of-two weights are rewarded) or "nabs" (additions and bit shifts per symbol).
            The Pareto front and the plot stay in RMpS.
        sparsity: pruned fraction, each in [0, 1) (structured pruning: the fraction of units removed).
        sparsity_scope: "layer" (one fraction for every layer), "global" (one magnitude threshold over all layers;
            magnitude pruning) or "per_layer" (one search dimension per prunable layer).
        pruning_methods: "magnitude", "structured", "obc" (Optimal Brain Compression: post-training OBS on
            calibration windows), "filters" (whole Conv1D filters), "gates" (LSTM gate / neuron group sparsity),
            and three that prune while training and need fine_tune_epochs >= 1 (their whole training budget):
            "lottery_ticket", "one_cycle", "gradual_structured" (eqnn.compress.PRUNING_METHODS); several = a
            categorical. On a learned DBP "magnitude" / "structured" run as "ldbp_taps" / "ldbp_edges" (its filter
            taps: the smallest zeroed / the outermost removed), which may also be named.
        prune_options: options of each pruning method, a table per method name, e.g.
            ``[compression.prune_options.lottery_ticket]`` ``rewind = "weights"``, ``rounds = 3``
            (lottery_ticket: rewind "weights" | "learning_rate", rounds in [1, 100], rewind_at in [0, 1); one_cycle:
            alpha in (0, 100], beta in [-100, 100], learning_rate "one_cycle" | "constant"; structured and
            gradual_structured: criterion "outgoing" | "incoming"; gradual_structured: updates in [1, 1000], ramp
            in (0, 1]; gates: level "weights" | "gates" | "neurons", penalty >= 0; obc: calibration_samples >= 1,
            damping >= 0; filters: importance "l1" | "taylor", calibration_samples >= 1; ldbp_taps: mode
            "magnitude" | "edges"; magnitude and ldbp_edges take none: eqnn.compression.catalog.METHODS); over the
            keys above that a method takes. Unknown options are errors.
        schedule: "constant" | "polynomial" pruning schedule, or a list of both (categorical).
        calibration_samples: training windows (a seeded subsample; blocks of a sequence model) that the
            post-training methods ("obc", "filters" with the Taylor importance, quantize_mode "obq") run through
            the model, >= 1.
        obc_damping: dampening lambda of the "obc" Hessian, H = 2 X^T X + lambda mean(diag(2 X^T X)) I, [0, 10].
        filter_importance: "l1" (L1 norm of the filter) | "taylor" (first-order Taylor importance on the
            calibration windows) of "filters" pruning, or a list of both (categorical).
        clusters: clusters per tensor, >= 2; false = no clustering.
        cluster_init: "linear" | "kmeans++" | "density" | "random", or a list (categorical).
        weight_bits: bits of the quantized kernels, 2..16; false = no quantization.
        activation_bits: bits of the activations, 2..16 (simulated in QAT, recorded in PTQ); false = float.
        quantize_mode: "ptq" | "qat" | "obq" (Optimal Brain Quantization: post-training, the grid of "ptq" with
            OBS compensation on the calibration windows), or a list (categorical).
        quantize_grid: "uniform" (two's-complement grid) | "pow2" (weights are scaled sums of at most
            ``pow2_terms`` signed powers of two: shifts and adds; PTQ only), or ["uniform", "pow2"] (categorical).
        pow2_terms: terms of a power-of-two weight, [1, 8], or a range [low, high] (a search dimension); used with
            quantize_grid "pow2".
        per_channel: PTQ with one scale per output channel.
        fine_tune_epochs: epochs of fine-tuning per step, [0, 1000]; 0 = one-shot (no training).
        fine_tune_batch_size: fine-tuning mini-batch size, [1, 1048576].
        fine_tune_learning_rate: Adam learning rate of the fine-tuning, (0, 1].
        fine_tune_windows: at most this many training windows (a seeded subsample); 0 = all. For a sequence model
            at most this many training targets: ``fine_tune_windows // block_length`` blocks (at least 1).
        seed: seed of the search, the subsample and the fine-tuning, >= 0.
    """

    n_calls: int = 40
    n_initial_points: int = 10
    objective: str = "constrained"
    max_q_loss_db: float = 0.1
    weight: float = 0.5
    sparsity: Union[float, tuple[float, float]] = (0.0, 0.95)
    sparsity_scope: str = "layer"
    pruning_methods: tuple[str, ...] = ("magnitude", "structured")
    prune_options: Optional[Mapping[str, Mapping[str, Any]]] = None
    schedule: tuple[str, ...] = ("polynomial",)
    calibration_samples: int = 1024
    obc_damping: float = 0.01
    filter_importance: tuple[str, ...] = ("l1",)
    clusters: Union[int, tuple[int, int], None] = (4, 64)
    cluster_init: tuple[str, ...] = ("linear",)
    weight_bits: Union[int, tuple[int, int], None] = (3, 12)
    activation_bits: Union[int, tuple[int, int], None] = None
    quantize_mode: tuple[str, ...] = ("ptq",)
    quantize_grid: tuple[str, ...] = ("uniform",)
    pow2_terms: Union[int, tuple[int, int]] = 2
    cost: str = "rmps"
    per_channel: bool = False
    fine_tune_epochs: int = 2
    fine_tune_batch_size: int = 512
    fine_tune_learning_rate: float = 1e-4
    fine_tune_windows: Optional[int] = 32768
    seed: int = 0

    def __post_init__(self) -> None:
        def put(name, value):
            object.__setattr__(self, name, value)

        check_int(_key("n_calls"), self.n_calls, 1, 10_000)
        check_int(_key("n_initial_points"), self.n_initial_points, 1, 10_000)
        _choice("objective", self.objective, OBJECTIVES)
        put("max_q_loss_db", _number("max_q_loss_db", self.max_q_loss_db, 0.0, 10.0))
        put("weight", _number("weight", self.weight, 0.0, 1.0))
        put("sparsity", check_span(_key("sparsity"), self.sparsity, 0.0, 1.0, high_open=True))
        _choice("sparsity_scope", self.sparsity_scope, SCOPES)
        put("pruning_methods", check_choices(_key("pruning_methods"), self.pruning_methods, list(catalog.METHODS)))
        put("schedule", check_choices(_key("schedule"), self.schedule, catalog.SCHEDULES))
        check_int(_key("calibration_samples"), self.calibration_samples, 1, 2**31)
        put("obc_damping", _number("obc_damping", self.obc_damping, 0.0, 10.0))
        put("filter_importance", check_choices(_key("filter_importance"), self.filter_importance,
                                               catalog.IMPORTANCES))
        put("clusters", _optional_span("clusters", self.clusters, 2, MAX_CLUSTERS))
        put("cluster_init", check_choices(_key("cluster_init"), self.cluster_init, catalog.CLUSTER_INITS))
        put("weight_bits", _optional_span("weight_bits", self.weight_bits, MIN_BITS, MAX_BITS))
        put("activation_bits", _optional_span("activation_bits", self.activation_bits, MIN_BITS, MAX_BITS))
        put("quantize_mode", check_choices(_key("quantize_mode"), self.quantize_mode, catalog.QUANTIZE_MODES))
        put("quantize_grid", check_choices(_key("quantize_grid"), self.quantize_grid, catalog.QUANTIZE_GRIDS))
        put("pow2_terms", check_span(_key("pow2_terms"), self.pow2_terms, 1, MAX_POW2_TERMS, integer=True))
        _choice("cost", self.cost, COSTS)
        check_bool(_key("per_channel"), self.per_channel)
        check_int(_key("fine_tune_epochs"), self.fine_tune_epochs, 0, 1000)
        check_int(_key("fine_tune_batch_size"), self.fine_tune_batch_size, 1, 2**20)
        put("fine_tune_learning_rate", _number("fine_tune_learning_rate", self.fine_tune_learning_rate, 0.0, 1.0,
                                               low_open=True))
        if self.fine_tune_windows in (None, False, 0):
            put("fine_tune_windows", None)
        else:
            check_int(_key("fine_tune_windows"), self.fine_tune_windows, 1, 2**31)
        check_int(_key("seed"), self.seed, 0, 2**32 - 1)
        put("prune_options", self._checked_prune_options())
        self._check_combinations()
        if not (self.prunes and self.sparsity_scope == "per_layer" and _is_range(self.sparsity)):
            self.search_space()  # raises if empty (per-layer sparsity ranges are dimensions of any model)

    def _checked_prune_options(self) -> Optional[dict]:
        """``prune_options`` as ``{method: {key: value}}``, each table checked by its method before any work."""
        if self.prune_options is None:
            return None
        key = _key("prune_options")
        if not isinstance(self.prune_options, Mapping):
            raise ConfigError(f"{key} = {self.prune_options!r}: must be a table of tables {{method: {{option: "
                              "value}}}}")
        out = {}
        for method, options in self.prune_options.items():
            if method not in self.pruning_methods:
                raise ConfigError(f"{key}.{method}: not one of {_key('pruning_methods')} = "
                                  f"{list(self.pruning_methods)}")
            if not isinstance(options, Mapping):
                raise ConfigError(f"{key}.{method} = {options!r}: must be a table of options")
            pm = catalog.METHODS[method]
            try:
                checked = dict(options) if pm.check_options is None else pm.check_options(dict(options))
                if pm.check_fine_tune is not None and self.fine_tune_epochs:
                    pm.check_fine_tune(checked, self.fine_tune_epochs)
            except (TypeError, ValueError) as exc:
                text = str(exc)
                # the catalog's errors start with the method's name ("lottery_ticket.rounds = 0 ...")
                raise ConfigError(f"{key}.{text}" if text.startswith((f"{method}.", f"{method}:"))
                                  else f"{key}.{method}: {text}") from None
            out[method] = checked
        return out

    def _check_combinations(self) -> None:
        if self.activation_bits is not None and self.weight_bits is None:
            raise ConfigError(f"{_key('activation_bits')} = {self.activation_bits!r} needs {_key('weight_bits')} "
                              "(activations are quantized in the quantization step)")
        if self.weight_bits is not None and "qat" in self.quantize_mode and self.fine_tune_epochs == 0:
            raise ConfigError(f"{_key('quantize_mode')} 'qat' needs {_key('fine_tune_epochs')} >= 1 "
                              "(quantization-aware training)")
        if "pow2" in self.quantize_grid and "qat" in self.quantize_mode:
            raise ConfigError(f"{_key('quantize_grid')} 'pow2' needs {_key('quantize_mode')} = 'ptq' only "
                              "(power-of-two weights are rounded post-training)")
        if self.per_channel and "qat" in self.quantize_mode:
            raise ConfigError(f"{_key('per_channel')} = true needs {_key('quantize_mode')} = 'ptq' only")
        if self.sparsity_scope == "global" and not any(catalog.METHODS[m].supports_global_scope
                                                        for m in self.pruning_methods):
            raise ConfigError(f"{_key('sparsity_scope')} = 'global' applies to magnitude pruning: add 'magnitude' "
                              f"to {_key('pruning_methods')} or use 'layer' / 'per_layer'")
        trainers = [m for m in self.pruning_methods if catalog.METHODS[m].needs_fine_tune]
        if self.prunes and trainers and self.fine_tune_epochs == 0:
            raise ConfigError(f"{_key('pruning_methods')} {trainers} prune while training: they need "
                              f"{_key('fine_tune_epochs')} >= 1, got 0")
        if self.sparsity == 0.0 and self.clusters is None and self.weight_bits is None:
            raise ConfigError("compression: nothing to compress: sparsity is 0, clusters and weight_bits are false")

    @property
    def prunes(self) -> bool:
        return self.sparsity != 0.0

    def with_calls(self, n_calls: Optional[int]) -> "CompressionSearchConfig":
        """A copy with ``n_calls`` replaced (None: unchanged; ``eqnn compress --calls``); validated like the TOML
        value, and no smaller than ``n_initial_points``."""
        if n_calls is None:
            return self
        config = dataclasses.replace(self, n_calls=n_calls)
        if config.n_initial_points > config.n_calls:
            raise ConfigError(f"--calls {n_calls}: fewer than compression.n_initial_points = "
                              f"{config.n_initial_points} (the random points before the Gaussian process): allowed "
                              f"--calls >= {config.n_initial_points}, or lower n_initial_points in [compression]")
        return config

    def check_initial_points(self, section: str = "compression") -> "CompressionSearchConfig":
        """``self``, or :class:`ConfigError` if ``n_initial_points`` exceeds ``n_calls`` (checked for a TOML table,
        where both are the user's; a config built in Python may ask for fewer calls than its default 10 initial
        points, and then every call is an initial point)."""
        if self.n_initial_points > self.n_calls:
            raise ConfigError(f"{section}.n_initial_points = {self.n_initial_points}: more than {section}.n_calls = "
                              f"{self.n_calls}; allowed integers in [1, n_calls] (the random points come before "
                              "the Gaussian process, within the n_calls evaluations)")
        return self

    @staticmethod
    def prunable_layers(model, methods: Sequence[str]) -> list[str]:
        """Layers of ``model`` that any of ``methods`` can prune, in model order."""
        compression = _compression()
        names = set()
        for m in methods:
            names |= set(compression.PRUNING_METHODS[compression.method_for(model, m)].prunable(model))
        return [layer.name for layer in model.layers if layer.name in names]

    def search_space(self, model=None) -> list:
        """The :mod:`eqnn.search` dimensions (fixed values are not dimensions; knobs of a step that does not run
        neither). ``model`` is needed with ``sparsity_scope = "per_layer"`` (one dimension per prunable layer)
        and checks that every pruning method can prune it. Raises :class:`ConfigError` if the space is empty."""
        dims: list = []
        if self.prunes:
            if model is not None:
                compression = _compression()
                for m in self.pruning_methods:
                    if not compression.PRUNING_METHODS[compression.method_for(model, m)].prunable(model):
                        raise ConfigError(f"{_key('pruning_methods')}: method {m!r} finds no layer to prune in "
                                          f"model {model.name!r}")
            if _is_range(self.sparsity):
                if self.sparsity_scope == "per_layer":
                    if model is None:
                        raise ConfigError(f"{_key('sparsity_scope')} = 'per_layer': the dimensions depend on the "
                                          "model; call search_space(model)")
                    dims += [searching.Real(f"sparsity:{name}", *self.sparsity)
                             for name in self.prunable_layers(model, self.pruning_methods)]
                else:
                    dims.append(searching.Real("sparsity", *self.sparsity))
            if len(self.pruning_methods) > 1:
                dims.append(searching.Categorical("pruning_method", self.pruning_methods))
            if len(self.schedule) > 1 and self.fine_tune_epochs > 0:
                dims.append(searching.Categorical("schedule", self.schedule))
            if len(self.filter_importance) > 1 and any(
                    "importance" in catalog.METHODS[m].option_names for m in self.pruning_methods):
                dims.append(searching.Categorical("filter_importance", self.filter_importance))
        if model is not None and self.weight_bits is not None and set(self.quantize_mode) - {"ptq"} and \
                _compression().is_ldbp(model):
            raise ConfigError(f"{_key('quantize_mode')} = {list(self.quantize_mode)}: only 'ptq' is available for the "
                              f"learned DBP {model.name!r} (its layers are quantized post-training)")
        if self.clusters is not None:
            if _is_range(self.clusters):
                dims.append(searching.Integer("clusters", *self.clusters))
            if len(self.cluster_init) > 1:
                dims.append(searching.Categorical("cluster_init", self.cluster_init))
        if self.weight_bits is not None:
            for name in ("weight_bits", "activation_bits"):
                if _is_range(getattr(self, name)):
                    dims.append(searching.Integer(name, *getattr(self, name)))
            if len(self.quantize_mode) > 1:
                dims.append(searching.Categorical("quantize_mode", self.quantize_mode))
            if len(self.quantize_grid) > 1:
                dims.append(searching.Categorical("quantize_grid", self.quantize_grid))
            if "pow2" in self.quantize_grid and _is_range(self.pow2_terms):
                dims.append(searching.Integer("pow2_terms", *self.pow2_terms))
        if not dims:
            raise ConfigError("compression: the search space is empty (every knob is fixed): give a range [low, high] "
                              "for sparsity, clusters, weight_bits, activation_bits or pow2_terms, or several "
                              "pruning_methods, schedule, cluster_init, quantize_mode or quantize_grid values")
        return dims

    def compression_config(self, params: Mapping[str, Any], model=None) -> compression.CompressionConfig:
        """The pipeline of one evaluation: ``params`` (a point of :meth:`search_space`) over the fixed values."""
        compression = _compression()

        def pick(name, fixed):
            return params.get(name, fixed)

        method = pick("pruning_method", self.pruning_methods[0])
        if model is not None:  # e.g. "magnitude" on a learned DBP: "ldbp_taps"
            method = compression.method_for(model, method)
        sparsity, per_layer, scope = 0.0, None, "layer"
        if self.prunes:
            if self.sparsity_scope == "per_layer" and _is_range(self.sparsity):
                prunable = compression.PRUNING_METHODS[method].prunable(model)
                per_layer = {name: float(params[f"sparsity:{name}"]) for name in prunable}
            else:
                sparsity = float(pick("sparsity", self.sparsity))
                scope = ("global" if self.sparsity_scope == "global"
                         and compression.PRUNING_METHODS[method].supports_global_scope else "layer")
        # the options the chosen method takes (option_names); none for magnitude / structured
        offered = {"calibration_samples": self.calibration_samples, "damping": self.obc_damping,
                   "importance": pick("filter_importance", self.filter_importance[0])}
        options = {k: v for k, v in offered.items() if k in compression.PRUNING_METHODS[method].option_names}
        options.update((self.prune_options or {}).get(method, {}))  # the method's own table
        clusters = pick("clusters", self.clusters)
        weight_bits = pick("weight_bits", self.weight_bits)
        grid = pick("quantize_grid", self.quantize_grid[0])
        pow2_terms = int(pick("pow2_terms", self.pow2_terms)) if grid == "pow2" else None
        return compression.CompressionConfig(
            prune_method=method, sparsity=sparsity, per_layer=per_layer, scope=scope, prune_options=options or None,
            schedule=pick("schedule", self.schedule[0]), n_clusters=clusters,
            cluster_init=pick("cluster_init", self.cluster_init[0]), weight_bits=weight_bits,
            activation_bits=pick("activation_bits", self.activation_bits) if weight_bits is not None else None,
            quantize_mode=pick("quantize_mode", self.quantize_mode[0]), per_channel=self.per_channel,
            quantize_grid=grid, pow2_terms=pow2_terms)

    def fine_tune(self, windows: WindowSet) -> Optional[compression.FineTune]:
        """The fine-tuning data: at most ``fine_tune_windows`` windows (seeded subsample, in order); None if
        ``fine_tune_epochs`` is 0."""
        if self.fine_tune_epochs == 0:
            return None
        n = len(windows)
        # a window has one target, a training block of a sequence model (eqnn.data_blocks.BlockSet) L of them
        limit = None if self.fine_tune_windows is None else \
            max(1, self.fine_tune_windows // int(getattr(windows, "targets_per_item", 1)))
        if limit is None or limit >= n:
            index = np.arange(n)
        else:
            index = np.sort(np.random.default_rng(self.seed).choice(n, limit, replace=False))
        return _compression().FineTune(x=windows.x[index], y=windows.y[index], epochs=self.fine_tune_epochs,
                                    batch_size=self.fine_tune_batch_size,
                                    learning_rate=self.fine_tune_learning_rate, seed=self.seed)

    def calibration(self, windows: WindowSet) -> Optional[compression.Calibration]:
        """The calibration windows of the post-training methods: at most ``calibration_samples`` training windows
        (seeded subsample, in order) with their targets; None if neither a method of ``pruning_methods`` (when
        pruning) nor ``quantize_mode`` "obq" (when quantizing) reads calibration data."""
        pruning = self.prunes and any(catalog.METHODS[m].needs_calibration is not None
                                      for m in self.pruning_methods)
        if not pruning and not (self.weight_bits is not None and "obq" in self.quantize_mode):
            return None
        n = len(windows)
        if self.calibration_samples >= n:
            index = np.arange(n)
        else:
            index = np.sort(np.random.default_rng(self.seed).choice(n, self.calibration_samples, replace=False))
        return _compression().Calibration(windows.x[index], windows.y[index])

    def to_dict(self) -> dict:
        out = {f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v
               for f in dataclasses.fields(self)}
        if out["prune_options"] is None:
            del out["prune_options"]  # absent as before the key existed: earlier study folders still match
        else:
            out["prune_options"] = {m: dict(o) for m, o in out["prune_options"].items()}
        return out

    @classmethod
    def from_dict(cls, table: Any, section: str = "compression") -> "CompressionSearchConfig":
        unknown_keys_error(table, cls, section)
        try:
            return cls(**table).check_initial_points()
        except ConfigError as exc:
            if section == "compression":
                raise
            raise ConfigError(str(exc).replace("compression.", f"{section}.")) from exc


def load_compression_config(path: Union[str, Path]) -> CompressionSearchConfig:
    """The ``[compression]`` table of a TOML file (other tables are ignored)."""
    data = read_toml(path, "compression config")
    return CompressionSearchConfig.from_dict(data.get("compression", {}))
