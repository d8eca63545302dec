"""Compression study of a trained equalizer: a resumable Bayesian search over the prune -> cluster -> quantize
pipeline, measured on the independent test transmission, behind ``eqnn compress``.

:func:`compress_equalizer` measures the uncompressed model (Q on the test symbols, RMpS/BoP/NABS from
:mod:`eqnn.complexity`), then runs :func:`eqnn.search.search` in ``folder``; each evaluation builds an
:class:`eqnn.compress.CompressionConfig` from the proposed hyperparameters, runs :func:`eqnn.compress.compress`
(fine-tuning on a deterministic subsample of the training windows), and measures the compressed model the same
way. Every evaluated model is saved (``models/<key>/``, a loadable :class:`eqnn.train.Equalizer`; ``key`` is a
hash of the hyperparameters) before its record is written, so a killed study resumes without recomputing any
finished evaluation (:mod:`eqnn.search`), and the best model is then copied to ``best/``.

The ``[compression]`` table is :class:`eqnn.studies.compression_config.CompressionSearchConfig` (reference in
``docs/config_reference.md``).


Files in ``folder``: the search files of :mod:`eqnn.search` (``search.json``, ``evaluations.jsonl``,
``evaluations.csv``, ``result.json``, ``q_vs_rmps.png`` with CDC, DBP and the uncompressed model marked),
``setup.json`` (the inputs' fingerprint, with the compression pipeline version, and the uncompressed model's
metrics: a folder holding another model, test link, training data, configuration or pipeline version is
refused), ``models/<key>/`` (every evaluated model), ``best/`` (the best one) and ``compression.json``
(uncompressed metrics, best point with its per-step report, Pareto front, references, configuration).

Metrics of every evaluation (``evaluations.csv``, and flat in ``CompressionStudy.best`` / ``.pareto`` /
``.uncompressed``): ``q_db`` (from BER where measured, else from the SNR), ``q_measured``, ``q_db_from_snr``,
``snr_db``, ``ber``, ``bit_errors``; ``rmps``, ``bop``, ``nabs``, ``additions``
(:func:`eqnn.complexity.model_complexity` of the compressed model at its ``weight_bits`` / ``activation_bits``,
None = float); ``n_weights``, ``n_nonzero``, ``sparsity``, ``size_bits`` (compressed storage), ``dense_bits``
(:func:`eqnn.compress.weight_stats`, biases included); ``failed``; ``model`` (the key). The fine-tuning targets are
those of ``train_windows`` (whatever the equalizer was trained on, e.g. residual targets).

The "best" point is the lowest objective value (ties: lower RMpS, then higher Q, then earlier): for "constrained"
the cheapest model within the Q budget (when any is). The Q target ``Q_uncompressed - max_q_loss_db`` also marks
feasibility in the "weighted" mode. An evaluation whose compression fails at its parameters (:data:`POINT_FAILURES`,
e.g. a TFMOT limitation or a diverged fine-tuning; other errors propagate) is recorded
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np
import tensorflow as tf

import channel
from channel import ConfigError, Transmission

from .. import compress as compression
from .. import search as searching
from ..complexity import model_complexity
from ..data import WindowSet
from ..data_blocks import BlockSet
from ..data_field import FieldSet
from ..models import build_model, check_keras_model, model_config_to_dict
from ..records import TrainingResult
from ..references import dsp_costs, reference_points
from ..report import write_json
from ..training import Equalizer, evaluate, load_equalizer, save_equalizer
from ..training.equalizer import complexity_arguments
from .compression_config import CompressionSearchConfig

__all__ = ["CompressionStudy", "FAILED_Q_PENALTY_DB", "PIPELINE_VERSION", "POINT_FAILURES", "compress_equalizer",
           "compress_trained", "params_key"]

SETUP_FILE = "setup.json"
STUDY_FILE = "compression.json"
FORMAT = "eqnn-compression/1"
FAILED_Q_PENALTY_DB = 20.0
# The version of what a compression point means (the prune -> cluster -> quantize pipeline, its fine-tuning and
# its measurements). Part of every study's setup identity: bump it when a change gives other numbers for the same
# parameters, so that a folder of points computed the old way is refused instead of silently mixed with new ones.
PIPELINE_VERSION = 1
# Errors that belong to a point (its parameters cannot be compressed: a ValueError of the compression library or
# of TFMOT, a diverged fine-tuning / non-finite loss); they are recorded as a failed point. Anything else propagates.
POINT_FAILURES = (ValueError, ArithmeticError, tf.errors.InvalidArgumentError)


def _q_metrics(equalizer: Equalizer, transmission: Transmission) -> dict:
    m = evaluate(equalizer, transmission, references=False).metrics[equalizer.name]
    return {"q_db": m.q_db_best, "q_measured": m.q_db is not None, "q_db_from_snr": m.q_db_from_snr,
            "snr_db": m.snr_db, "ber": m.ber, "bit_errors": m.bit_errors}


def _cost_metrics(model, weight_bits: Optional[int], activation_bits: Optional[int], **arguments) -> dict:
    """RMpS, BoP, NABS, additions of ``model``; ``arguments``: :func:`eqnn.training.equalizer.complexity_arguments`
    (one inference block of a sequence model). Power-of-two weights (the model's compression record holds
    ``pow2_terms``) are counted as such, and ``pow2_terms`` is then a metric too."""
    pow2_terms = compression.compression_info(model).get("pow2_terms") if weight_bits is not None else None
    c = model_complexity(model, weight_bits, activation_bits, pow2_terms=pow2_terms, **arguments)
    out = {"rmps": c.rmps, "bop": c.bop, "nabs": c.nabs, "additions": c.additions,
           "weight_bits": weight_bits, "activation_bits": activation_bits}
    if pow2_terms is not None:
        out["pow2_terms"] = pow2_terms
    return out


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
    from ..models import resized_config
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
    bits = info.get("compression", {})
    return Equalizer(model=built, model_config=config, data_config=source.data_config,
                     normalization=source.normalization, info=info, weight_bits=bits.get("weight_bits"),
                     activation_bits=bits.get("activation_bits"))


# --------------------------------------------------------------------------------------------- the study

# keys added to [compression] after studies were saved: left out of the setup's inputs while at their defaults, so
# that a folder of an earlier version is still resumed
_LATER_KEYS = {"calibration_samples": 1024, "obc_damping": 0.01, "filter_importance": ["l1"]}


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
    calibration: Optional[compression.Calibration] = None


_Q_KEYS = ("q_db", "q_measured", "q_db_from_snr", "snr_db", "ber", "bit_errors")


def _evaluate_point(context: _PointContext, params: dict) -> dict:
    """One evaluation of the search: compress at ``params``, measure, save the model in
    ``<folder>/models/<key>``; the metrics of the module docstring.

    A compression that fails at these parameters (:data:`POINT_FAILURES`: e.g. a TFMOT limitation, a diverged
    fine-tuning) is recorded as a failed point, not raised; any other error (a bug, ``MemoryError``, an interrupt)
    propagates and records nothing, so that the point is evaluated again after the fix."""
    c = context
    model, uncompressed = c.equalizer.model, c.uncompressed

    def measure_q(candidate) -> dict:
        if candidate is model:  # the baseline report of every compress() call: measured once already
            return {k: uncompressed[k] for k in _Q_KEYS}
        # the architecture config of the candidate (e.g. a learned DBP with shorter filters reads a shorter input)
        config = _resized_model_config(c.equalizer.model_config, candidate)
        return _q_metrics(dataclasses.replace(c.equalizer, model=candidate, model_config=config),
                          c.test_transmission)

    def cost(candidate, weight_bits, activation_bits) -> dict:
        config = _resized_model_config(c.equalizer.model_config, candidate)
        return _cost_metrics(candidate, weight_bits, activation_bits,
                             **complexity_arguments(config, c.equalizer.data_config.n_outputs))

    cc = c.config.compression_config(params, model)
    key = params_key(params)
    try:
        result = compression.compress(model, cc, c.fine_tune, evaluate=measure_q, complexity=cost,
                                      calibration=c.calibration)
    except POINT_FAILURES as exc:  # recorded, so that a resumed study does not retry it forever
        message = f"{type(exc).__name__}: {exc}"[:500]
        if c.progress:
            print(f"\ncompression failed at {params}: {message}", flush=True)
        failed = {"q_db": uncompressed["q_db"] - FAILED_Q_PENALTY_DB, "rmps": uncompressed["rmps"],
                  "failed": True, "error": message, "model": ""}
        if c.config.cost != "rmps":  # the cost the objective reads: the uncompressed one
            failed[c.config.cost] = uncompressed[c.config.cost]
        return failed
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


# keys of the [compression] table added after studies were first written, with the value that means "as before":
# left out of a study's identity at that value, so that an existing folder still resumes
_IDENTITY_DEFAULTS = {"quantize_grid": ["uniform"], "pow2_terms": 2, "cost": "rmps", **_LATER_KEYS}


def _identity_config(config: CompressionSearchConfig) -> dict:
    """The configuration part of a study's identity: every key but ``n_calls`` and the later keys at their
    "as before" value."""
    return {k: v for k, v in config.to_dict().items()
            if k != "n_calls" and not (k in _IDENTITY_DEFAULTS and v == _IDENTITY_DEFAULTS[k])}


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
    if not isinstance(train_windows, (WindowSet, BlockSet, FieldSet)):
        raise TypeError(f"train_windows must be an eqnn.data.WindowSet (or an eqnn.data_blocks.BlockSet for a "
                        f"sequence model, an eqnn.data_field.FieldSet for a learned DBP), got "
                        f"{type(train_windows).__name__}")
    if isinstance(train_windows, BlockSet) != (equalizer.blocks is not None):
        raise TypeError(f"train_windows: a {type(train_windows).__name__} does not fit the "
                        f"{'sequence' if equalizer.blocks is not None else 'windowed'} model {equalizer.name!r} "
                        "(make it with equalizer.training_set)")
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
        try:
            stored = json.loads(path.read_text())
        except ValueError as exc:
            raise channel.CorruptFileError(f"{path}: not valid JSON ({exc}): delete {folder} to start over") from exc
        if stored.get("inputs") == inputs:
            return stored["uncompressed"]
        diff = sorted(k for k in set(inputs) | set(stored.get("inputs", {}))
                      if stored.get("inputs", {}).get(k) != inputs.get(k))
        raise ConfigError(f"{folder} holds a compression study of other inputs ({', '.join(diff)} differ): use "
                          f"another output folder (--out), or delete {folder} to start over")
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

    The resume rule (the only one, for ``eqnn compress`` and ``eqnn run`` alike): ``folder`` is resumed when its
    ``setup.json`` records the same inputs (model and its weights, test link, fine-tuning data, configuration,
    :data:`PIPELINE_VERSION`); a folder of other inputs is refused with a :class:`channel.ConfigError` naming it
    and what differs (delete it to start over), never deleted.

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
    calibration = config.calibration(train_windows)
    references = dict(reference_points(test_transmission, equalizer) if references is None else references)
    inputs = {"model": _digest(model_config_to_dict(equalizer.model_config), equalizer.data_config.to_dict(),
                               equalizer.normalization.to_dict(), arrays=model.get_weights()),
              "test_link": test_transmission.config.digest(),
              "fine_tune_data": _digest(arrays=[] if fine_tune is None else [fine_tune.x, fine_tune.y]),
              "config": _identity_config(config),
              "pipeline": PIPELINE_VERSION}
    if calibration is not None:  # only studies with a post-training method (older setups stay resumable)
        inputs["calibration_data"] = _digest(arrays=[calibration.x, calibration.y])
    if "measured_digest" in test_transmission.info:  # measured data: the symbols read, not only the link
        inputs["test_data"] = test_transmission.info["measured_digest"]

    def measure_uncompressed() -> dict:
        ev = evaluate(equalizer, test_transmission)
        same = {m: v.q_db_best for m, v in ev.metrics.items() if m != equalizer.name}
        stats = compression.weight_stats(model)["total"]
        return {**_q_metrics(equalizer, test_transmission),
                **_cost_metrics(model, equalizer.weight_bits, equalizer.activation_bits,
                                **complexity_arguments(equalizer.model_config, equalizer.data_config.n_outputs)),
                **_size_metrics(stats), "n_symbols": ev.n_symbols, "references_same_symbols": same}

    folder.mkdir(parents=True, exist_ok=True)
    uncompressed = _setup(folder, inputs, measure_uncompressed)
    q_target = uncompressed["q_db"] - config.max_q_loss_db
    reference = uncompressed[config.cost]
    if config.objective == "constrained":
        objective = searching.Objective.constrained(q_target, reference, cost=config.cost)
    else:
        objective = searching.Objective.weighted(config.weight, rmps_reference=reference, q_target=q_target,
                                                 cost=config.cost)
    context = _PointContext(equalizer=equalizer, fine_tune=fine_tune, test_transmission=test_transmission,
                            config=config, uncompressed=uncompressed, folder=folder.resolve(), progress=progress,
                            calibration=calibration)
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


def compress_trained(training: TrainingResult, name: str, power_dbm: float, config: CompressionSearchConfig,
                     folder: Union[str, Path], cache_dir: Optional[Path], dbp: bool = True, progress: bool = True,
                     executor=None) -> CompressionStudy:
    """Compress the model ``name`` of a finished training stage at launch power ``power_dbm``: the one path of
    ``eqnn compress <TOML>`` and of stage 3 of ``eqnn run``.

    The saved equalizer used at ``power_dbm`` is loaded, its training transmissions (that power, or every power of
    a combined model) and the test transmission at ``power_dbm`` are simulated again (from ``cache_dir``, where the
    training stage left them), or read again from the measured dataset, and :func:`compress_equalizer` searches in
    ``folder`` (resumed under its rule).
    ``dbp``: DBP references (also needs the training config's ``dbp``).
    """
    train = training.config
    equalizer = load_equalizer(training.model(name, power_dbm).folder)
    train_powers = [power_dbm] if train.mode == "per_power" else list(train.powers_dbm)
    train_trs = [train.transmission("train", q, cache_dir=cache_dir, dbp=False, progress=progress)
                 for q in train_powers]
    test_tr = train.transmission("test", power_dbm, cache_dir=cache_dir, dbp=dbp and train.dbp, progress=progress)
    windows = equalizer.training_set(train_trs)  # windows, or blocks of a sequence model
    return compress_equalizer(equalizer, windows, test_tr, config, folder,
                              references=reference_points(test_tr, equalizer), progress=progress, executor=executor)
