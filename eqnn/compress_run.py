"""Compression study of a trained equalizer: a resumable Bayesian search over the prune -> cluster -> quantize
pipeline, measured on the independent test transmission, behind ``eqnn compress``.

:func:`compress_equalizer` measures the uncompressed model (Q on the test symbols, RMpS/BoP/NABS from
:mod:`eqnn.complexity`), then runs :func:`eqnn.search.search` in ``folder``; each evaluation builds an
:class:`eqnn.compress.CompressionConfig` from the proposed hyperparameters, runs :func:`eqnn.compress.compress`
(fine-tuning on a deterministic subsample of the training windows), and measures the compressed model the same
way. Every evaluated model is saved (``models/<key>/``, a loadable :class:`eqnn.train.Equalizer`; ``key`` is a
hash of the hyperparameters) before its record is written, so a killed study resumes without recomputing any
finished evaluation (:mod:`eqnn.search`), and the best model is then copied to ``best/``.

The ``[compression]`` table (:class:`CompressionSearchConfig`; every key optional, unknown keys are errors).
A range ``[low, high]`` is a search dimension, a single value is fixed::

    [compression]
    n_calls = 40                     # evaluations in the study (--calls overrides), [1, 10000]
    n_initial_points = 10            # random points before the Gaussian process, [1, 10000]
    objective = "constrained"        # "constrained": minimize RMpS subject to Q >= Q_uncompressed - max_q_loss_db;
                                     # "weighted": weight * log10(RMpS / RMpS_uncompressed) - (1 - weight) * dQ/1 dB
    max_q_loss_db = 0.1              # Q budget below the uncompressed model on the same symbols, [0, 10] dB
    weight = 0.5                     # weighted objective: [0, 1] (1 = RMpS only)
    sparsity = [0.0, 0.95]           # pruned fraction, each in [0, 1) (structured: fraction of units removed)
    sparsity_scope = "layer"         # "layer": one fraction for every layer; "global": one magnitude threshold
                                     # over all layers (magnitude pruning; structured stays per layer);
                                     # "per_layer": one search dimension per prunable layer
    pruning_methods = ["magnitude", "structured"]   # eqnn.compress.PRUNING_METHODS; several = a categorical
    schedule = "polynomial"          # "constant" | "polynomial", or a list of both (categorical)
    clusters = [4, 64]               # clusters per tensor, >= 2; false = no clustering
    cluster_init = "linear"          # "linear" | "kmeans++" | "density" | "random", or a list (categorical);
                                     # kmeans++ fails in TFMOT when a tensor has fewer weights than clusters
    weight_bits = [3, 12]            # bits of the quantized kernels, 2..16; false = no quantization
    activation_bits = false          # 2..16 (simulated in QAT, recorded in PTQ); false = float activations
    quantize_mode = "ptq"            # "ptq" | "qat", or ["ptq", "qat"] (categorical)
    per_channel = false              # PTQ: one scale per output channel
    fine_tune_epochs = 2             # epochs of fine-tuning per step, [0, 1000]; 0 = one-shot (no training)
    fine_tune_batch_size = 512       # [1, 1048576]
    fine_tune_learning_rate = 1e-4   # Adam, (0, 1]
    fine_tune_windows = 32768        # at most this many training windows (a seeded subsample); 0 = all
    seed = 0                         # seed of the search, the subsample and the fine-tuning, >= 0

Files in ``folder``: the search files of :mod:`eqnn.search` (``search.json``, ``evaluations.jsonl``,
``evaluations.csv``, ``result.json``, ``q_vs_rmps.png`` with CDC, DBP and the uncompressed model marked),
``setup.json`` (the inputs' fingerprint and the uncompressed model's metrics: a folder holding another model,
test link, training data or configuration is refused), ``models/<key>/`` (every evaluated model),
``best/`` (the best one) and ``compression.json`` (uncompressed metrics, best point with its per-step
report, Pareto front, references, configuration).

Metrics of every evaluation (``evaluations.csv``, and flat in ``CompressionStudy.best`` / ``.pareto`` /
``.uncompressed``): ``q_db`` (from BER where measured, else from the SNR), ``q_measured``, ``q_db_from_snr``,
``snr_db``, ``ber``, ``bit_errors``; ``rmps``, ``bop``, ``nabs``, ``additions``
(:func:`eqnn.complexity.model_complexity` of the compressed model at its ``weight_bits`` / ``activation_bits``,
None = float); ``n_weights``, ``n_nonzero``, ``sparsity``, ``size_bits`` (compressed storage), ``dense_bits``
(:func:`eqnn.compress.weight_stats`, biases included); ``failed``; ``model`` (the key). The fine-tuning targets are
those of ``train_windows`` (whatever the equalizer was trained on, e.g. residual targets).

The "best" point is the lowest objective value (ties: lower RMpS, then higher Q, then earlier): for "constrained"
the cheapest model within the Q budget (when any is). The Q target ``Q_uncompressed - max_q_loss_db`` also marks
feasibility in the "weighted" mode. An evaluation whose compression raises (e.g. a TFMOT limitation) is recorded
with ``failed = true``, the uncompressed RMpS and a Q ``FAILED_Q_PENALTY_DB`` below the uncompressed one (a penalty
that steers the optimizer away, not a measurement); failed points are never the best nor on the Pareto front.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np

import channel
from channel import ConfigError, LinkConfig, Transmission, evaluate_symbols
from channel.config import check_int, read_toml, unknown_keys_error

from . import compress as compression
from . import search as searching
from .complexity import cdc_complexity, dbp_complexity, model_complexity
from .data import WindowSet, make_windows, window_centres
from .models import build_model, check_keras_model, model_config_to_dict
from .report import write_csv, write_json
from .train import Equalizer, TrainRunConfig, evaluate, load_equalizer, run_training, save_equalizer

__all__ = ["CompressionSearchConfig", "CompressionStudy", "compress_equalizer", "reference_points", "dsp_costs",
           "load_compression_config", "compress_saved_equalizer", "compress_command", "FAILED_Q_PENALTY_DB"]

SETUP_FILE = "setup.json"
STUDY_FILE = "compression.json"
FORMAT = "eqnn-compression/1"
FAILED_Q_PENALTY_DB = 20.0
OBJECTIVES = ("constrained", "weighted")
SCOPES = ("layer", "global", "per_layer")
MAX_CLUSTERS = 65536
DEFAULT_CACHE = Path("results") / "cache"


# --------------------------------------------------------------------------------------------- config

def _key(name: str) -> str:
    return f"compression.{name}"


def _number(name: str, value: Any, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not low <= value <= high:
        raise ConfigError(f"{_key(name)} = {value!r}: allowed a number in [{low:g}, {high:g}]")
    return float(value)


def _span(name: str, value: Any, low: float, high: Optional[float], integer: bool, open_high: bool = False):
    """A fixed value or a ``[low, high]`` range of numbers inside ``[low, high]`` (``[low, high)``)."""
    allowed = (f"{'integers' if integer else 'numbers'} in [{low:g}, {high:g}{')' if open_high else ']'}"
               if high is not None else f"integers >= {low:g}")
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    if not 1 <= len(items) <= 2:
        raise ConfigError(f"{_key(name)} = {value!r}: allowed one value or a range [low, high] of {allowed}")
    for v in items:
        ok = not isinstance(v, bool) and isinstance(v, (int, np.integer) if integer else (int, float)) \
            and math.isfinite(v) and v >= low and (high is None or (v < high if open_high else v <= high))
        if not ok:
            raise ConfigError(f"{_key(name)} = {value!r}: allowed {allowed} (one value or a range [low, high])")
    items = [int(v) if integer else float(v) for v in items]
    if len(items) == 2 and items[0] > items[1]:
        raise ConfigError(f"{_key(name)} = {value!r}: a range must be [low, high] with low <= high")
    return items[0] if len(items) == 1 or items[0] == items[1] else tuple(items)


def _optional_span(name: str, value: Any, low: int, high: int):
    if value is None or value is False:
        return None
    return _span(name, value, low, high, integer=True)


def _choices(name: str, value: Any, allowed: Sequence[str]) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not items or any(v not in allowed for v in items) \
            or len(set(items)) != len(items):
        raise ConfigError(f"{_key(name)} = {value!r}: allowed one of {list(allowed)} or a list of distinct ones")
    return tuple(str(v) for v in items)


def _is_range(value) -> bool:
    return isinstance(value, tuple)


@dataclass(frozen=True)
class CompressionSearchConfig:
    """The ``[compression]`` table: search space, objective and fine-tuning (format: module docstring)."""

    n_calls: int = 40
    n_initial_points: int = 10
    objective: str = "constrained"
    max_q_loss_db: float = 0.1
    weight: float = 0.5
    sparsity: Union[float, tuple[float, float]] = (0.0, 0.95)
    sparsity_scope: str = "layer"
    pruning_methods: tuple[str, ...] = ("magnitude", "structured")
    schedule: tuple[str, ...] = ("polynomial",)
    clusters: Union[int, tuple[int, int], None] = (4, 64)
    cluster_init: tuple[str, ...] = ("linear",)
    weight_bits: Union[int, tuple[int, int], None] = (3, 12)
    activation_bits: Union[int, tuple[int, int], None] = None
    quantize_mode: tuple[str, ...] = ("ptq",)
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
        if self.objective not in OBJECTIVES:
            raise ConfigError(f"{_key('objective')} = {self.objective!r}: allowed {', '.join(map(repr, OBJECTIVES))}")
        put("max_q_loss_db", _number("max_q_loss_db", self.max_q_loss_db, 0.0, 10.0))
        put("weight", _number("weight", self.weight, 0.0, 1.0))
        put("sparsity", _span("sparsity", self.sparsity, 0.0, 1.0, integer=False, open_high=True))
        if self.sparsity_scope not in SCOPES:
            raise ConfigError(f"{_key('sparsity_scope')} = {self.sparsity_scope!r}: allowed "
                              f"{', '.join(map(repr, SCOPES))}")
        put("pruning_methods", _choices("pruning_methods", self.pruning_methods, list(compression.PRUNING_METHODS)))
        put("schedule", _choices("schedule", self.schedule, compression.SCHEDULES))
        put("clusters", _optional_span("clusters", self.clusters, 2, MAX_CLUSTERS))
        put("cluster_init", _choices("cluster_init", self.cluster_init, list(compression.CLUSTER_INITS)))
        put("weight_bits", _optional_span("weight_bits", self.weight_bits, compression.MIN_BITS,
                                          compression.MAX_BITS))
        put("activation_bits", _optional_span("activation_bits", self.activation_bits, compression.MIN_BITS,
                                              compression.MAX_BITS))
        put("quantize_mode", _choices("quantize_mode", self.quantize_mode, compression.QUANTIZE_MODES))
        if not isinstance(self.per_channel, bool):
            raise ConfigError(f"{_key('per_channel')} = {self.per_channel!r}: must be true or false")
        check_int(_key("fine_tune_epochs"), self.fine_tune_epochs, 0, 1000)
        check_int(_key("fine_tune_batch_size"), self.fine_tune_batch_size, 1, 2**20)
        lr = self.fine_tune_learning_rate
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not (math.isfinite(lr) and 0 < lr <= 1):
            raise ConfigError(f"{_key('fine_tune_learning_rate')} = {lr!r}: allowed a number in (0, 1]")
        put("fine_tune_learning_rate", float(lr))
        if self.fine_tune_windows in (None, False, 0):
            put("fine_tune_windows", None)
        else:
            check_int(_key("fine_tune_windows"), self.fine_tune_windows, 1, 2**31)
        check_int(_key("seed"), self.seed, 0, 2**32 - 1)
        self._check_combinations()
        if not (self.prunes and self.sparsity_scope == "per_layer" and _is_range(self.sparsity)):
            self.search_space()  # raises if empty (per-layer sparsity ranges are dimensions of any model)

    def _check_combinations(self) -> None:
        if self.activation_bits is not None and self.weight_bits is None:
            raise ConfigError(f"{_key('activation_bits')} = {self.activation_bits!r} needs {_key('weight_bits')} "
                              "(activations are quantized in the quantization step)")
        if self.weight_bits is not None and "qat" in self.quantize_mode and self.fine_tune_epochs == 0:
            raise ConfigError(f"{_key('quantize_mode')} 'qat' needs {_key('fine_tune_epochs')} >= 1 "
                              "(quantization-aware training)")
        if self.per_channel and "qat" in self.quantize_mode:
            raise ConfigError(f"{_key('per_channel')} = true needs {_key('quantize_mode')} = 'ptq' only")
        if self.sparsity_scope == "global" and "magnitude" not in self.pruning_methods:
            raise ConfigError(f"{_key('sparsity_scope')} = 'global' applies to magnitude pruning: add 'magnitude' "
                              f"to {_key('pruning_methods')} or use 'layer' / 'per_layer'")
        if self.sparsity == 0.0 and self.clusters is None and self.weight_bits is None:
            raise ConfigError("compression: nothing to compress: sparsity is 0, clusters and weight_bits are false")

    @property
    def prunes(self) -> bool:
        return self.sparsity != 0.0

    def with_calls(self, n_calls: Optional[int]) -> "CompressionSearchConfig":
        """A copy with ``n_calls`` replaced (None: unchanged); validated like the TOML value."""
        return self if n_calls is None else dataclasses.replace(self, n_calls=n_calls)

    @staticmethod
    def prunable_layers(model, methods: Sequence[str]) -> list[str]:
        """Layers of ``model`` that any of ``methods`` can prune, in model order."""
        names = set()
        for m in methods:
            names |= set(compression.PRUNING_METHODS[m].prunable(model))
        return [layer.name for layer in model.layers if layer.name in names]

    def search_space(self, model=None) -> list:
        """The :mod:`eqnn.search` dimensions (fixed values are not dimensions; knobs of a step that does not run
        neither). ``model`` is needed with ``sparsity_scope = "per_layer"`` (one dimension per prunable layer)
        and checks that every pruning method can prune it. Raises :class:`ConfigError` if the space is empty."""
        dims: list = []
        if self.prunes:
            if model is not None:
                for m in self.pruning_methods:
                    if not compression.PRUNING_METHODS[m].prunable(model):
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
        if not dims:
            raise ConfigError("compression: the search space is empty (every knob is fixed): give a range [low, high] "
                              "for sparsity, clusters, weight_bits or activation_bits, or several pruning_methods, "
                              "schedule, cluster_init or quantize_mode values")
        return dims

    def compression_config(self, params: Mapping[str, Any], model=None) -> compression.CompressionConfig:
        """The pipeline of one evaluation: ``params`` (a point of :meth:`search_space`) over the fixed values."""
        def pick(name, fixed):
            return params.get(name, fixed)

        method = pick("pruning_method", self.pruning_methods[0])
        sparsity, per_layer, scope = 0.0, None, "layer"
        if self.prunes:
            if self.sparsity_scope == "per_layer" and _is_range(self.sparsity):
                prunable = compression.PRUNING_METHODS[method].prunable(model)
                per_layer = {name: float(params[f"sparsity:{name}"]) for name in prunable}
            else:
                sparsity = float(pick("sparsity", self.sparsity))
                scope = "global" if self.sparsity_scope == "global" and method == "magnitude" else "layer"
        clusters = pick("clusters", self.clusters)
        weight_bits = pick("weight_bits", self.weight_bits)
        return compression.CompressionConfig(
            prune_method=method, sparsity=sparsity, per_layer=per_layer, scope=scope,
            schedule=pick("schedule", self.schedule[0]), n_clusters=clusters,
            cluster_init=pick("cluster_init", self.cluster_init[0]), weight_bits=weight_bits,
            activation_bits=pick("activation_bits", self.activation_bits) if weight_bits is not None else None,
            quantize_mode=pick("quantize_mode", self.quantize_mode[0]), per_channel=self.per_channel)

    def fine_tune(self, windows: WindowSet) -> Optional[compression.FineTune]:
        """The fine-tuning data: at most ``fine_tune_windows`` windows (seeded subsample, in order); None if
        ``fine_tune_epochs`` is 0."""
        if self.fine_tune_epochs == 0:
            return None
        n = len(windows)
        if self.fine_tune_windows is None or self.fine_tune_windows >= n:
            index = np.arange(n)
        else:
            index = np.sort(np.random.default_rng(self.seed).choice(n, self.fine_tune_windows, replace=False))
        return compression.FineTune(x=windows.x[index], y=windows.y[index], epochs=self.fine_tune_epochs,
                                    batch_size=self.fine_tune_batch_size,
                                    learning_rate=self.fine_tune_learning_rate, seed=self.seed)

    def to_dict(self) -> dict:
        return {f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v
                for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, table: Any, section: str = "compression") -> "CompressionSearchConfig":
        unknown_keys_error(table, cls, section)
        try:
            return cls(**table)
        except ConfigError as exc:
            if section == "compression":
                raise
            raise ConfigError(str(exc).replace("compression.", f"{section}.")) from exc


def load_compression_config(path: Union[str, Path]) -> CompressionSearchConfig:
    """The ``[compression]`` table of a TOML file (other tables are ignored)."""
    data = read_toml(path, "compression config")
    return CompressionSearchConfig.from_dict(data.get("compression", {}))


# --------------------------------------------------------------------------------------------- references

def dsp_costs(test_transmission: Transmission) -> dict[str, dict]:
    """RMpS, BoP and NABS of CDC and of each DBP variant of ``test_transmission`` (at the DBP oversampling, as
    ``eqnn simulate`` reports them)."""
    link = test_transmission.config
    sps = link.receiver.dbp_samples_per_symbol
    costs = [cdc_complexity(link, samples_per_symbol=sps)]
    costs += [dbp_complexity(link, k, samples_per_symbol=sps) for k in sorted(test_transmission.rx_dbp)]
    return {c.name: {"rmps": c.rmps, "bop": c.bop, "nabs": c.nabs, "bits": c.bits} for c in costs}


def reference_points(test_transmission: Transmission, equalizer: Optional[Equalizer] = None
                     ) -> dict[str, tuple[float, float]]:
    """``{"CDC": (rmps, q_db), "DBP-k": ...}`` of the test transmission: RMpS from :mod:`eqnn.complexity` (at the
    DBP oversampling, as ``eqnn simulate`` reports), Q the best available (from BER, else from SNR).

    Q is that of ``test_transmission.metrics`` (the whole block), or, with ``equalizer``, measured on the symbols
    the equalizer is evaluated on (its window centres and target polarizations), as :func:`eqnn.train.evaluate`.
    """
    if not isinstance(test_transmission, Transmission):
        raise TypeError(f"test_transmission must be a channel.Transmission, got {type(test_transmission).__name__}")
    rmps = {method: cost["rmps"] for method, cost in dsp_costs(test_transmission).items()}
    if equalizer is None:
        metrics = test_transmission.metrics
    else:
        dc = equalizer.data_config
        pols = list(dc.polarizations)
        centres = window_centres(test_transmission.rx_cdc.shape[-1], int(dc.taps), int(dc.guard_symbols))
        tx = test_transmission.tx_indices[pols][:, centres]
        received = {"CDC": test_transmission.rx_cdc, **{f"DBP-{k}": v for k, v in test_transmission.rx_dbp.items()}}
        metrics = {m: evaluate_symbols(rx[pols][:, centres], tx, test_transmission.modulation)
                   for m, rx in received.items()}
    return {m: (float(rmps[m]), float(metrics[m].q_db_best)) for m in rmps if m in metrics}


# --------------------------------------------------------------------------------------------- measurements

def _q_metrics(equalizer: Equalizer, transmission: Transmission) -> dict:
    m = evaluate(equalizer, transmission, references=False).metrics[equalizer.name]
    return {"q_db": m.q_db_best, "q_measured": m.q_db is not None, "q_db_from_snr": m.q_db_from_snr,
            "snr_db": m.snr_db, "ber": m.ber, "bit_errors": m.bit_errors}


def _cost_metrics(model, weight_bits: Optional[int], activation_bits: Optional[int]) -> dict:
    c = model_complexity(model, weight_bits, activation_bits)
    return {"rmps": c.rmps, "bop": c.bop, "nabs": c.nabs, "additions": c.additions,
            "weight_bits": weight_bits, "activation_bits": activation_bits}


def _size_metrics(total: Mapping) -> dict:
    return {"n_weights": total["n_weights"], "n_nonzero": total["n_nonzero"], "sparsity": total["sparsity"],
            "size_bits": total["compressed_bits"], "dense_bits": total["dense_bits"]}


def _digest(*parts: Any, arrays: Sequence[np.ndarray] = ()) -> str:
    h = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode())
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:20]


def params_key(params: Mapping[str, Any]) -> str:
    """The folder name of the model evaluated at ``params`` (``models/<key>``)."""
    return _digest(dict(params))[:12]


def _resized_model_config(model_config, model):
    """The architecture config of a (possibly structurally pruned) model built from ``model_config``."""
    from .models import resized_config

    return resized_config(model_config, model)


def _as_equalizer(source: Equalizer, model, info: dict) -> Equalizer:
    """An :class:`Equalizer` of the compressed ``model`` that :func:`eqnn.train.load_equalizer` rebuilds exactly:
    the architecture config with the model's (possibly pruned) widths, and a model built from it that holds
    ``model``'s weights layer by layer."""
    config = _resized_model_config(source.model_config, model)
    built = build_model(config, source.input_shape, source.data_config.n_outputs)
    weighted = {layer.name for layer in model.layers if layer.weights}
    if weighted != {layer.name for layer in built.layers if layer.weights}:
        raise RuntimeError(f"compressed model layers {sorted(weighted)} do not match the architecture {config}")
    for layer in built.layers:
        if layer.weights:
            layer.set_weights(model.get_layer(layer.name).get_weights())
    return Equalizer(model=built, model_config=config, data_config=source.data_config,
                     normalization=source.normalization, info=info)


# --------------------------------------------------------------------------------------------- the study

@dataclass
class _PointContext:
    """What every evaluation of a compression search needs: sent once to each worker, not with every task."""

    equalizer: Equalizer
    fine_tune: Optional[compression.FineTune]
    test_transmission: Transmission
    config: CompressionSearchConfig
    uncompressed: dict
    folder: Path
    progress: bool = False


_Q_KEYS = ("q_db", "q_measured", "q_db_from_snr", "snr_db", "ber", "bit_errors")


def _evaluate_point(context: _PointContext, params: dict) -> dict:
    """One evaluation of the search: compress at ``params``, measure, save the model in
    ``<folder>/models/<key>``; the metrics of the module docstring (a failed compression is recorded, not raised)."""
    c = context
    model, uncompressed = c.equalizer.model, c.uncompressed

    def measure_q(candidate) -> dict:
        if candidate is model:  # the baseline report of every compress() call: measured once already
            return {k: uncompressed[k] for k in _Q_KEYS}
        return _q_metrics(dataclasses.replace(c.equalizer, model=candidate), c.test_transmission)

    cc = c.config.compression_config(params, model)
    key = params_key(params)
    try:
        result = compression.compress(model, cc, c.fine_tune, evaluate=measure_q, complexity=_cost_metrics)
    except Exception as exc:  # noqa: BLE001 - recorded, so that a resumed study does not retry it forever
        message = f"{type(exc).__name__}: {exc}"[:500]
        if c.progress:
            print(f"\ncompression failed at {params}: {message}", flush=True)
        return {"q_db": uncompressed["q_db"] - FAILED_Q_PENALTY_DB, "rmps": uncompressed["rmps"],
                "failed": True, "error": message, "model": ""}
    final = result.steps[-1] if result.steps else result.baseline
    metrics = {**final.evaluation, **final.complexity, **_size_metrics(final.total), "failed": False, "model": key}
    info = {"compression": {"key": key, "params": dict(params), "config": cc.to_dict(), "metrics": metrics,
                            "weight_bits": final.complexity["weight_bits"],
                            "activation_bits": final.complexity["activation_bits"],
                            "report": result.to_dict()},
            "source": c.equalizer.info}
    save_equalizer(_as_equalizer(c.equalizer, result.model, info), c.folder / "models" / key)
    return metrics


@dataclass
class CompressionStudy:
    """A finished compression study: uncompressed and best metrics (flat dicts), the search, the Pareto front."""

    folder: Path
    name: str
    launch_power_dbm: float
    config: CompressionSearchConfig
    uncompressed: dict
    best: Optional[dict]
    search: searching.SearchResult
    references: dict[str, tuple[float, float]] = field(default_factory=dict)
    q_target_db: float = math.nan
    dsp_costs: dict[str, dict] = field(default_factory=dict)

    @property
    def pareto(self) -> list[dict]:
        """Non-dominated (RMpS, Q) evaluations (failed ones excluded), by RMpS: ``{"call", "params", "q_db",
        "rmps", ...metrics}``."""
        evs = [e for e in self.search.evaluations if not e.metrics.get("failed")]
        return [_point(evs[i]) for i in searching.pareto_front([(e.rmps, e.q_db) for e in evs])]

    def to_dict(self) -> dict:
        return {"format": FORMAT, "model": self.name, "launch_power_dbm": self.launch_power_dbm,
                "folder": str(self.folder), "config": self.config.to_dict(),
                "q_target_db": self.q_target_db, "uncompressed": self.uncompressed, "best": self.best,
                "pareto": self.pareto, "references": {k: list(v) for k, v in self.references.items()},
                "dsp_costs": self.dsp_costs,
                "n_evaluations": len(self.search.evaluations),
                "n_failed": sum(1 for e in self.search.evaluations if e.metrics.get("failed"))}


def _point(e: searching.Evaluation) -> dict:
    return {"call": e.call, "params": dict(e.params), **e.metrics, "objective": e.objective, "feasible": e.feasible}


def _check_inputs(equalizer, train_windows, test_transmission, config) -> None:
    if not isinstance(equalizer, Equalizer):
        check_keras_model(equalizer, "equalizer")  # a bare model: say what it must be
        raise TypeError(f"equalizer must be an eqnn.train.Equalizer (a trained model with its data config and "
                        f"normalization), got a bare {type(equalizer).__name__}")
    check_keras_model(equalizer.model, "equalizer.model")
    if not isinstance(config, CompressionSearchConfig):
        raise TypeError(f"config must be a CompressionSearchConfig, got {type(config).__name__}")
    if not isinstance(train_windows, WindowSet):
        raise TypeError(f"train_windows must be an eqnn.data.WindowSet, got {type(train_windows).__name__}")
    if train_windows.input_shape != equalizer.input_shape or train_windows.n_outputs != \
            equalizer.data_config.n_outputs:
        raise ValueError(f"train_windows {train_windows.input_shape} -> {train_windows.n_outputs} outputs do not fit "
                         f"the equalizer {equalizer.input_shape} -> {equalizer.data_config.n_outputs}")
    if not isinstance(test_transmission, Transmission):
        raise TypeError(f"test_transmission must be a channel.Transmission, got {type(test_transmission).__name__}")


def _setup(folder: Path, inputs: dict, measure) -> dict:
    """The uncompressed model's metrics, measured once per folder; refuses a folder of other inputs."""
    path = folder / SETUP_FILE
    inputs = json.loads(json.dumps(inputs))
    if path.is_file():
        stored = json.loads(path.read_text())
        if stored.get("inputs") == inputs:
            return stored["uncompressed"]
        diff = sorted(k for k in set(inputs) | set(stored.get("inputs", {}))
                      if stored.get("inputs", {}).get(k) != inputs.get(k))
        raise ConfigError(f"{folder} holds a compression study of other inputs ({', '.join(diff)} differ): use "
                          "another output folder (--out), or delete this one to start over")
    if (folder / searching.RECORDS_FILE).exists():
        raise ConfigError(f"{folder} holds search records without {SETUP_FILE}: use another output folder")
    uncompressed = measure()
    write_json(path, {"format": FORMAT, "inputs": inputs, "uncompressed": uncompressed})
    return uncompressed


def _copy_folder_atomic(src: Path, dst: Path) -> None:
    tmp = Path(tempfile.mkdtemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".tmp"))
    try:
        shutil.copytree(src, tmp, dirs_exist_ok=True)
        if dst.exists():
            old = Path(tempfile.mkdtemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".old"))
            os.replace(dst, old / "x")
            shutil.rmtree(old, ignore_errors=True)
        os.replace(tmp, dst)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _best(search_result: searching.SearchResult, folder: Path) -> Optional[dict]:
    """The best non-failed point with its compression report; ``best/`` refreshed if missing or stale."""
    ok = [e for e in search_result.evaluations if not e.metrics.get("failed")]
    if not ok:
        return None
    # ties (e.g. feasible points that all cost the uncompressed RMpS) go to the cheaper, then the better point,
    # which keeps the best point on the Pareto front
    e = min(ok, key=lambda ev: (ev.objective, ev.rmps, -ev.q_db, ev.call))
    key = e.metrics["model"]
    best_dir = folder / "best"

    def saved_key(path: Path):
        try:
            return json.loads((path / "equalizer.json").read_text())["info"]["compression"]["key"]
        except (OSError, ValueError, KeyError, TypeError):
            return None

    if saved_key(best_dir) != key:
        _copy_folder_atomic(folder / "models" / key, best_dir)
    info = json.loads((best_dir / "equalizer.json").read_text())["info"]["compression"]
    return {**_point(e), "model_folder": str(best_dir), "compression_config": info["config"],
            "report": info["report"]}


def compress_equalizer(equalizer: Equalizer, train_windows: WindowSet, test_transmission: Transmission,
                       config: CompressionSearchConfig, folder: Union[str, Path],
                       references: Optional[Mapping[str, tuple[float, float]]] = None,
                       progress: bool = True, executor=None) -> CompressionStudy:
    """Search the compression hyperparameters of ``equalizer`` (module docstring); resumes in ``folder``.

    Args:
        equalizer: a trained :class:`eqnn.train.Equalizer` (a ``tf_keras`` model).
        train_windows: the windows it was trained on (fine-tuning data; made with its data config/normalization).
        test_transmission: the independent test transmission (Q of every model, on the same symbols).
        config: the search (``[compression]`` table).
        folder: output folder; the same call again resumes (nothing finished is recomputed).
        references: ``{"CDC": (rmps, q_db), ...}`` marked on the plot and recorded; None:
            ``reference_points(test_transmission, equalizer)``; ``{}``: none.
        progress: a progress bar per evaluation (eqnn.search) and a summary.
        executor: where the evaluations run (:mod:`eqnn.execution`; None: in this process, one at a time). On a
            Dask cluster the equalizer, the fine-tuning windows and the test transmission are sent once to each
            worker, the search evaluates as many points at once as there are worker threads (batched Bayesian
            search, :mod:`eqnn.search`), and the workers save the evaluated models in ``folder`` (a filesystem
            they share with this process).

    Every input is checked, and the search space built, before any computation.
    """
    _check_inputs(equalizer, train_windows, test_transmission, config)
    model = equalizer.model
    space = config.search_space(model)
    folder = Path(folder)
    fine_tune = config.fine_tune(train_windows)
    references = dict(reference_points(test_transmission, equalizer) if references is None else references)
    inputs = {"model": _digest(model_config_to_dict(equalizer.model_config), equalizer.data_config.to_dict(),
                               equalizer.normalization.to_dict(), arrays=model.get_weights()),
              "test_link": test_transmission.config.digest(),
              "fine_tune_data": _digest(arrays=[] if fine_tune is None else [fine_tune.x, fine_tune.y]),
              "config": {k: v for k, v in config.to_dict().items() if k != "n_calls"}}

    def measure_uncompressed() -> dict:
        ev = evaluate(equalizer, test_transmission)
        same = {m: v.q_db_best for m, v in ev.metrics.items() if m != equalizer.name}
        stats = compression.weight_stats(model)["total"]
        return {**_q_metrics(equalizer, test_transmission), **_cost_metrics(model, None, None),
                **_size_metrics(stats), "n_symbols": ev.n_symbols, "references_same_symbols": same}

    folder.mkdir(parents=True, exist_ok=True)
    uncompressed = _setup(folder, inputs, measure_uncompressed)
    q_target = uncompressed["q_db"] - config.max_q_loss_db
    if config.objective == "constrained":
        objective = searching.Objective.constrained(q_target, uncompressed["rmps"])
    else:
        objective = searching.Objective.weighted(config.weight, rmps_reference=uncompressed["rmps"],
                                                 q_target=q_target)
    context = _PointContext(equalizer=equalizer, fine_tune=fine_tune, test_transmission=test_transmission,
                            config=config, uncompressed=uncompressed, folder=folder.resolve(), progress=progress)
    marked = {**references, f"{equalizer.name} uncompressed": (uncompressed["rmps"], uncompressed["q_db"])}
    try:
        result = searching.search(_evaluate_point, space, n_calls=config.n_calls, objective=objective, folder=folder,
                                  n_initial_points=config.n_initial_points, seed=config.seed, references=marked,
                                  progress=progress, executor=executor, shared=(context,))
    except searching.SearchMismatchError as exc:
        raise ConfigError(str(exc)) from exc
    power_dbm = test_transmission.config.transmitter.launch_power_dbm
    result.plot(folder / searching.PLOT_FILE, references=marked,
                title=f"{equalizer.name} compressed at {power_dbm:+.1f} dBm ({config.objective}, "
                      f"{len(result.evaluations)} evaluations)")
    study = CompressionStudy(folder=folder, name=equalizer.name, launch_power_dbm=power_dbm,
                             config=config, uncompressed=uncompressed,
                             best=_best(result, folder), search=result, references=references, q_target_db=q_target,
                             dsp_costs=dsp_costs(test_transmission))
    write_json(folder / STUDY_FILE, study.to_dict())
    return study


# --------------------------------------------------------------------------------------------- command line

def _links_of(equalizer: Equalizer, folder: Path) -> tuple[list[LinkConfig], list[LinkConfig]]:
    """Training and test links of a saved equalizer: recorded by ``eqnn train`` in its info, else rebuilt from the
    ``results.json`` of the training run that holds ``folder`` (``<run>/models/<name>@<power>``)."""
    info = equalizer.info
    if info.get("train_links") and info.get("test_links"):
        return ([LinkConfig.from_dict(d) for d in info["train_links"]],
                [LinkConfig.from_dict(d) for d in info["test_links"]])
    results = folder.resolve().parent.parent / "results.json"
    powers = info.get("trained_on_powers_dbm")
    if not results.is_file() or not powers:
        raise ConfigError(f"{folder}: the equalizer does not record its training and test links and "
                          f"{results} is missing: compress from the training TOML instead")
    config = TrainRunConfig.from_dict(json.loads(results.read_text())["config"])
    return [config.train_link(p) for p in powers], [config.test_link(p) for p in powers]


def _pick_test_link(links: list[LinkConfig], power_dbm: Optional[float], where: str) -> LinkConfig:
    powers = [link.transmitter.launch_power_dbm for link in links]
    if power_dbm is None:
        if len(links) == 1:
            return links[0]
        raise ConfigError(f"{where} was tested at {powers} dBm: choose one with --power")
    for link in links:
        if math.isclose(link.transmitter.launch_power_dbm, power_dbm, abs_tol=1e-9):
            return link
    raise ConfigError(f"--power {power_dbm:g}: {where} was tested at {powers} dBm only")


def _simulate(link: LinkConfig, cache_dir, dbp: bool, progress: bool) -> Transmission:
    return channel.simulate(link, cache_dir=cache_dir, dbp=dbp, progress=progress)


def compress_saved_equalizer(source: Union[str, Path, Equalizer], config: CompressionSearchConfig,
                             out: Union[str, Path], power_dbm: Optional[float] = None,
                             cache_dir: Union[str, Path, None] = DEFAULT_CACHE, dbp: bool = True,
                             progress: bool = True, folder: Union[str, Path, None] = None,
                             executor=None) -> CompressionStudy:
    """Compress an equalizer saved by ``eqnn train`` (folder ``models/<name>@<power>``): its training and test
    transmissions are simulated again (cached), the training windows made with its stored normalization.
    ``power_dbm`` picks the test power of a model trained on several ("combined"). ``folder``: where the saved
    model is (when ``source`` is an already loaded Equalizer). ``executor``: see :func:`compress_equalizer`."""
    if isinstance(source, Equalizer) and folder is None:
        raise ValueError("compress_saved_equalizer(Equalizer, ...) needs folder= (where it was saved)")
    equalizer = source if isinstance(source, Equalizer) else load_equalizer(source)
    where = Path(folder if folder is not None else source)
    train_links, test_links = _links_of(equalizer, where)
    test_link = _pick_test_link(test_links, power_dbm, str(where))
    config.search_space(equalizer.model)  # model-dependent checks before any simulation
    train_trs = [_simulate(link, cache_dir, False, progress) for link in train_links]
    test_tr = _simulate(test_link, cache_dir, dbp, progress)
    windows = make_windows(train_trs, equalizer.data_config, equalizer.normalization)
    return compress_equalizer(equalizer, windows, test_tr, config, out,
                              references=reference_points(test_tr, equalizer), progress=progress, executor=executor)


def _load_toml(path: Path) -> tuple[TrainRunConfig, CompressionSearchConfig]:
    data = read_toml(path, "compression study")
    compress_table = data.pop("compression", {})
    data.pop("study", None)  # `eqnn run` study files share this format
    train = TrainRunConfig.from_dict(data, base_dir=path.parent)
    return train, CompressionSearchConfig.from_dict(compress_table)


def _from_toml(train: TrainRunConfig, config: CompressionSearchConfig, out: Path, power_dbm, model, cache_dir, dbp,
               progress, executor=None) -> list[CompressionStudy]:
    names = [m.name for m in train.models]
    if model is not None and model not in names:
        raise ConfigError(f"--model {model!r}: allowed {', '.join(names)} (the [[models]] names)")
    if power_dbm is not None and not any(math.isclose(power_dbm, p, abs_tol=1e-9) for p in train.powers_dbm):
        raise ConfigError(f"--power {power_dbm:g}: allowed one of powers_dbm {list(train.powers_dbm)}")
    powers = [power_dbm] if power_dbm is not None and train.mode == "per_power" else None
    training = run_training(train, out / "train", powers=powers, cache_dir=cache_dir, progress=progress,
                            executor=executor)
    cache = None if cache_dir is False else cache_dir or train.cache_dir or None
    studies = []
    for name in [model] if model else names:
        p = power_dbm if power_dbm is not None else training["optimum"][name]["launch_power_dbm"]
        tag = "combined" if train.mode == "combined" else next(
            s["tag"] for s in training["models"] if s["model"] == name and s["trained_on_powers_dbm"] == [p])
        equalizer = load_equalizer(out / "train" / "models" / f"{name}@{tag}")
        train_powers = [p] if train.mode == "per_power" else list(train.powers_dbm)
        train_trs = [_simulate(train.train_link(q), cache, False, progress) for q in train_powers]
        test_tr = _simulate(train.test_link(p), cache, dbp and train.dbp, progress)
        windows = make_windows(train_trs, equalizer.data_config, equalizer.normalization)
        folder = out / f"{name}@{tag}"
        print(f"compressing {name} at {p:+.2f} dBm: {config.n_calls} evaluations in {folder}", flush=True)
        studies.append(compress_equalizer(equalizer, windows, test_tr, config, folder,
                                          references=reference_points(test_tr, equalizer), progress=progress,
                                          executor=executor))
    return studies


def summary_rows(studies: Sequence[CompressionStudy]) -> list[dict]:
    """Per study: the uncompressed model, the best compressed one and each reference (once per launch power)."""
    rows, seen = [], set()
    for study in studies:
        u, b, p = study.uncompressed, study.best, study.launch_power_dbm
        rows.append({"launch_power_dbm": p, "method": study.name, "q_db": u["q_db"], "rmps": u["rmps"],
                     "bop": u["bop"], "nabs": u["nabs"], "size_bits": u["size_bits"], "params": ""})
        if b is not None:
            rows.append({"launch_power_dbm": p, "method": f"{study.name} compressed", "q_db": b["q_db"],
                         "rmps": b["rmps"], "bop": b["bop"], "nabs": b["nabs"], "size_bits": b["size_bits"],
                         "params": ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                                             for k, v in b["params"].items())})
        for method, (rmps, q) in study.references.items():
            if (p, method, rmps, q) in seen:  # the same reference of another model at the same power
                continue
            seen.add((p, method, rmps, q))
            cost = study.dsp_costs.get(method, {})
            rows.append({"launch_power_dbm": p, "method": method, "q_db": q, "rmps": rmps, "bop": cost.get("bop"),
                         "nabs": cost.get("nabs"), "size_bits": None, "params": ""})
    return rows


def format_summary(rows: Sequence[Mapping]) -> str:
    """The summary table printed by ``eqnn compress``."""
    def num(v, fmt):
        return f"{'-':>{fmt.split('.')[0]}}" if v is None else format(v, fmt)

    lines = [f"{'P (dBm)':>8}  {'method':24s} {'Q (dB)':>7} {'RMpS':>10} {'BoP':>12} {'size (bit)':>11}  params"]
    for r in rows:
        lines.append(f"{r['launch_power_dbm']:+8.2f}  {r['method']:24s} {r['q_db']:7.2f} {num(r['rmps'], '10.1f')} "
                     f"{num(r['bop'], '12.4g')} {num(r['size_bits'], '11.0f')}  {r['params']}")
    return "\n".join(lines)


def compress_command(source: Union[str, Path], *, calls: Optional[int] = None, out: Union[str, Path, None] = None,
                     power_dbm: Optional[float] = None, model: Optional[str] = None,
                     config_path: Union[str, Path, None] = None, cache_dir: Union[str, Path, None, bool] = None,
                     dbp: bool = True, progress: bool = True, executor=None) -> list[CompressionStudy]:
    """``eqnn compress``: ``source`` is a saved equalizer folder (settings from the ``[compression]`` table of
    ``config_path``, else the defaults) or a training TOML with a ``[compression]`` table (models trained or reused
    in ``<out>/train``, each compressed at its best test power, or ``power_dbm``; ``model``: only that one).
    ``calls`` overrides ``n_calls``. ``cache_dir``: simulation cache (None: the TOML's ``cache_dir``, results/cache
    for a folder; False: none). ``executor``: where the training and the search evaluations run
    (:mod:`eqnn.execution`; None: here). Every input is checked before any training. Writes ``summary.json`` and
    ``summary.csv`` to ``out`` (default ``results/compress-<name>``) and prints the summary table."""
    source = Path(source)
    start = time.perf_counter()
    if source.is_dir():
        if not (source / "equalizer.json").is_file():
            raise ConfigError(f"{source} is not a saved equalizer folder (no equalizer.json)")
        config = (load_compression_config(config_path) if config_path else CompressionSearchConfig()).with_calls(calls)
        out = Path(out or Path("results") / f"compress-{source.name}")
        equalizer = load_equalizer(source)
        if model is not None and model != equalizer.name:
            raise ConfigError(f"--model {model!r}: the equalizer in {source} is {equalizer.name!r}")
        cache = None if cache_dir is False else (cache_dir or DEFAULT_CACHE)
        studies = [compress_saved_equalizer(equalizer, config, out, power_dbm, cache, dbp, progress, folder=source,
                                            executor=executor)]
    elif source.is_file():
        if config_path is not None:
            raise ConfigError("--config applies to an equalizer folder; a TOML source carries its own [compression]")
        train, config = _load_toml(source)
        config = config.with_calls(calls)
        out = Path(out or Path("results") / f"compress-{train.name}")
        studies = _from_toml(train, config, out, power_dbm, model, cache_dir, dbp, progress, executor)
    else:
        raise ConfigError(f"{source} does not exist: give a saved equalizer folder or a training TOML")
    rows = summary_rows(studies)
    write_json(out / "summary.json", {"rows": rows, "studies": [s.to_dict() for s in studies]})
    write_csv(out / "summary.csv", rows)
    print(format_summary(rows))
    print(f"\nwrote {out / 'summary.json'}, {out / 'summary.csv'} and the studies in {out} "
          f"({time.perf_counter() - start:.0f} s)", flush=True)
    return studies
