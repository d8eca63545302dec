"""One command reproduces a study: ``eqnn run experiments/<study>.toml``.

A study file is a training TOML (:class:`eqnn.train.TrainRunConfig`) plus a ``[compression]`` table (the search:
:class:`eqnn.studies.compression_config.CompressionSearchConfig`; leave it out to skip compression) and a
``[study]`` table (:class:`StudyConfig`); the reference of every key is ``docs/config_reference.md``
(``python -m eqnn.docs``).

Every section is validated (:func:`load_study`) before anything is simulated; an error names the key and
the allowed values. :func:`run_study` then runs four stages, each cached, so that a repeated or
interrupted run continues from what is done (one line per stage says what is reused):

1. **DSP sweep**: the test transmission (seed ``seeds.test``, ``test_symbols``) at every launch power of
   ``dsp_powers_dbm`` and ``powers_dbm``, with CDC and each DBP variant of ``[scenario.receiver]``
   (``channel.sweep_launch_power``; cached by config hash in ``cache_dir``, the very transmissions stage 2
   tests on). CDC and DBP are measured on the symbols the NNs are measured on: the window centres (guard
   and taps removed) of the target polarization(s).
2. **Training**: :func:`eqnn.training.run.train_stage` into ``<out>/train`` (reuses finished models).
3. **Compression**: for each model of ``compress``, at ``compress_at``: the saved equalizer, its training
   windows and the test transmission (all from the caches) go to
   :func:`eqnn.studies.compression.compress_trained` (the path of ``eqnn compress`` too), whose search in
   ``<out>/compress/<model>`` resumes; a folder of other inputs (another model, power or setting) is refused with
   a message naming it (delete it to start over).
4. **Report**: ``report.md`` (the link, the table, both plots), ``q_vs_power.png``, ``q_vs_rmps.png``,
   ``results.json`` and ``methods.csv``, ``q_vs_power.csv``, ``pareto.csv`` (every number of the report).
   RMpS/BoP/NABS: :mod:`eqnn.complexity` (CDC and DBP of the link, NNs from their actual weights).

Stages 1-3 submit their independent work through an executor (:mod:`eqnn.execution`, ``run_study(executor=...)``,
``eqnn run --workers N | --scheduler ADDRESS``): in this process by default, else one task per launch power of the
sweep and of the training, and several compression points at once (batched search, :mod:`eqnn.search`).
"""

from __future__ import annotations

import datetime
import math
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Optional, Union

from channel import ConfigError, Transmission, evaluate_symbols
from channel.config import read_toml
from channel.storage import cache_path, check_cache_entry, write_text_atomic
from channel.validation import check_number

from . import provenance
from .data import resolve_guard, resolve_taps, window_centres
from .execution import sweep
from .records import CompressionPoint, QRow, TrainingResult, best_per_method, same_power
from .references import dsp_complexity
from .report import jsonable, new_figure, plot_q_vs_power, save_figure, write_csv, write_json
from .search import RECORDS_FILE
from .studies.compression_config import CompressionSearchConfig
from .training import TrainRunConfig
from .training.config import cache_folder

COMPRESS_AT = "nn_optimum"
STUDY_KEYS = ("dsp_powers_dbm", "compress", "compress_at", "out_dir", "title")
TABLE_COLUMNS = ("method", "rmps", "bop", "nabs", "launch_power_dbm", "q_db", "q_measured", "q_db_ci_low",
                 "q_db_ci_high", "q_db_from_snr", "gain_over_cdc_db", "gain_basis", "optimum_at_edge")
EDGE_MARK = "†"


def _check_compress_names(compress: Any, names: list[str]) -> None:
    """``study.compress``: distinct names of ``[[models]]`` tables."""
    if not isinstance(compress, (list, tuple)) or not all(isinstance(c, str) for c in compress):
        raise ConfigError(f"study.compress = {compress!r}: must be a list of model names, allowed: "
                          f"{', '.join(names)}")
    unknown = [c for c in compress if c not in names]
    if unknown:
        raise ConfigError(f"study.compress: unknown model(s) {unknown}: allowed {', '.join(names)} "
                          "(the names of the [[models]] tables)")
    if len(set(compress)) != len(compress):
        raise ConfigError(f"study.compress = {list(compress)}: names must be distinct")


@dataclass(frozen=True)
class StudyConfig:
    """A whole study (``eqnn run``): the training study, the compression search and the ``[study]`` table.

    Attributes:
        train: the :class:`eqnn.train.TrainRunConfig` (every top-level key but ``[compression]``/``[study]``).
        compression: the ``[compression]`` table as a ``CompressionSearchConfig``, or None (no stage 3).
        dsp_powers_dbm: extra launch powers of the CDC/DBP sweep (dBm), each in [-30, 30], on top of
            ``powers_dbm`` (the sweep always covers those too).
        compress: names of the ``[[models]]`` to compress; default: all of them when a ``[compression]`` table is
            given; [] = none.
        compress_at: "nn_optimum" (each model's best launch power in stage 2) or a launch power from
            ``powers_dbm``.
        out_dir: results folder (relative to the working directory); "" = ``results/<name>``.
        title: heading of ``report.md``; "" = the study's name.
    """

    train: TrainRunConfig
    compression: Any = None
    dsp_powers_dbm: tuple[float, ...] = ()
    compress: tuple[str, ...] = ()
    compress_at: Union[str, float] = COMPRESS_AT
    out_dir: str = ""
    title: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.train, TrainRunConfig):
            raise ConfigError(f"train: expected an eqnn.train.TrainRunConfig, got {type(self.train).__name__}")
        if self.compression is not None and not isinstance(self.compression, CompressionSearchConfig):
            raise ConfigError(f"compression: expected a CompressionSearchConfig, got {type(self.compression).__name__}")
        powers = self.dsp_powers_dbm
        if not isinstance(powers, (list, tuple)):
            raise ConfigError(f"study.dsp_powers_dbm = {powers!r}: must be a list of launch powers (dBm)")
        checked = []
        for p in powers:
            try:
                checked.append(check_number("study.dsp_powers_dbm[]", p, -30, 30))
            except ConfigError:
                raise ConfigError(f"study.dsp_powers_dbm: {p!r} is not allowed: launch powers are numbers in "
                                  "[-30, 30]") from None
        if len(set(checked)) != len(checked):
            raise ConfigError(f"study.dsp_powers_dbm = {list(powers)}: values must be distinct")
        object.__setattr__(self, "dsp_powers_dbm", tuple(checked))
        names = [m.name for m in self.train.models]
        compress = self.compress
        _check_compress_names(compress, names)
        if compress and self.compression is None:
            raise ConfigError(f"study.compress = {list(compress)} needs a [compression] table (the search settings)")
        object.__setattr__(self, "compress", tuple(compress))
        at = self.compress_at
        if isinstance(at, str):
            if at != COMPRESS_AT:
                raise ConfigError(f"study.compress_at = {at!r}: allowed {COMPRESS_AT!r} or one of powers_dbm "
                                  f"{list(self.train.powers_dbm)}")
        elif isinstance(at, bool) or not isinstance(at, (int, float)) or not math.isfinite(at) \
                or not any(same_power(at, p) for p in self.train.powers_dbm):
            raise ConfigError(f"study.compress_at = {at!r}: allowed {COMPRESS_AT!r} or one of powers_dbm "
                              f"{list(self.train.powers_dbm)} (the models are trained and tested there)")
        else:  # the value of powers_dbm it matches (the models are trained and tested there)
            object.__setattr__(self, "compress_at", next(p for p in self.train.powers_dbm if same_power(at, p)))
        for key in ("out_dir", "title"):
            if not isinstance(getattr(self, key), str):
                raise ConfigError(f"study.{key} = {getattr(self, key)!r}: must be a string")
        link = self.train.test_link(self.train.powers_dbm[0])
        for p in self.sweep_powers:
            link.with_launch_power(p)
            if self.train.dataset is not None and not any(same_power(p, q)
                                                          for q in self.train.dataset.launch_power_dbm):
                raise ConfigError(f"study.dsp_powers_dbm: {p:g} dBm is not a launch power of the dataset: allowed "
                                  f"dataset.launch_power_dbm {list(self.train.dataset.launch_power_dbm)}")

    @property
    def name(self) -> str:
        return self.train.name

    @property
    def sweep_powers(self) -> list[float]:
        """Launch powers of the DSP sweep: ``dsp_powers_dbm`` and ``powers_dbm``, sorted (a power of both once,
        as ``powers_dbm`` gives it)."""
        extra = [p for p in self.dsp_powers_dbm if not any(same_power(p, q) for q in self.train.powers_dbm)]
        return sorted(set(extra) | set(self.train.powers_dbm))

    def default_out_dir(self) -> Path:
        return Path(self.out_dir) if self.out_dir else Path("results") / self.name

    def to_dict(self) -> dict:
        out = self.train.to_dict()
        if self.compression is not None:
            out["compression"] = self.compression.to_dict()
        out["study"] = {"dsp_powers_dbm": list(self.dsp_powers_dbm), "compress": list(self.compress),
                        "compress_at": self.compress_at, "out_dir": self.out_dir, "title": self.title}
        return out

    @classmethod
    def from_dict(cls, data: dict, base_dir: Union[str, Path, None] = None) -> "StudyConfig":
        """Build from a parsed study TOML; ``base_dir`` resolves a relative ``scenario.base``.

        The training part and the ``[study]`` table are validated first, then the ``[compression]`` table (against
        :mod:`eqnn.compression.catalog`); none of it imports TensorFlow, so a bad file fails before it starts."""
        if not isinstance(data, dict):
            raise ConfigError(f"a study must be a table, got {type(data).__name__}")
        allowed = {f.name for f in fields(TrainRunConfig)} | {"compression", "study"}
        unknown = set(data) - allowed
        if unknown:
            raise ConfigError(f"unknown top-level key(s) {sorted(unknown)}: allowed {', '.join(sorted(allowed))}")
        data = dict(data)
        study = data.pop("study", {})
        compression_table = data.pop("compression", None)
        if not isinstance(study, dict):
            raise ConfigError(f"[study] must be a table, got {study!r}")
        bad = set(study) - set(STUDY_KEYS)
        if bad:
            raise ConfigError(f"unknown key(s) {sorted(bad)} in [study]: allowed {', '.join(STUDY_KEYS)}")
        train = TrainRunConfig.from_dict(data, base_dir=base_dir)
        kwargs = dict(study)
        if compression_table is not None and not isinstance(compression_table, dict):
            raise ConfigError(f"[compression] must be a table, got {compression_table!r}")
        # the [study] table as if there were no compression, and the names of study.compress, first
        cls(train=train, compression=None, **{k: v for k, v in kwargs.items() if k != "compress"})
        if "compress" in kwargs:
            _check_compress_names(kwargs["compress"], [m.name for m in train.models])
        if compression_table is None:
            return cls(train=train, compression=None, **{**kwargs, "compress": kwargs.get("compress", [])})
        compression = CompressionSearchConfig.from_dict(compression_table, section="compression")
        if "compress" not in kwargs:
            kwargs["compress"] = [m.name for m in train.models]
        return cls(train=train, compression=compression, **kwargs)


def load_study(path: Union[str, Path]) -> StudyConfig:
    """Read and validate a study TOML (format: module docstring), without importing TensorFlow; errors are
    :class:`channel.ConfigError`."""
    path = Path(path)
    return StudyConfig.from_dict(read_toml(path, "study file"), base_dir=path.parent)


# --------------------------------------------------------------------------------------------- stages

@dataclass(frozen=True)
class StudyCompression:
    """Stage 3's outcome for one model: where it was compressed and its study.

    Attributes:
        name: the model's name.
        launch_power_dbm: the launch power it was compressed and measured at.
        study: the :class:`eqnn.compress_run.CompressionStudy`.
    """

    name: str
    launch_power_dbm: float
    study: Any

    @property
    def point(self) -> CompressionPoint | None:
        """The best compressed model, or None when every evaluation failed."""
        best = self.study.best
        return None if best is None else CompressionPoint.from_best(self.name, self.launch_power_dbm, best)


def _stage(n: int, text: str) -> None:
    print(f"stage {n}/4 {text}", flush=True)


def _dsp_rows(tr: Transmission, config: TrainRunConfig, rmps: dict) -> list[QRow]:
    """Q of CDC and each DBP variant on the symbols the NNs are evaluated on (same centres and polarizations)."""
    link = tr.config
    taps, guard = resolve_taps(config.data, link), resolve_guard(config.data, link)
    centres = window_centres(link.transmitter.n_symbols, taps, guard)
    pols = list(config.data.polarizations)
    tx = tr.tx_indices[pols][:, centres]
    metrics = {"CDC": evaluate_symbols(tr.rx_cdc[pols][:, centres], tx, tr.modulation)}
    for k in sorted(tr.rx_dbp):
        metrics[f"DBP-{k}"] = evaluate_symbols(tr.rx_dbp[k][pols][:, centres], tx, tr.modulation)
    rows = []
    for method, m in metrics.items():
        k = int(method[4:]) if method.startswith("DBP-") else None
        row = QRow.from_metrics(link.transmitter.launch_power_dbm, method, m, ",".join("xy"[p] for p in pols),
                                int(centres.size))
        rows.append(row.replace(**tr.dbp_settings(k), has_dbp_xi=True, rmps=rmps[method]))
    return rows


def _stage_dsp(config: StudyConfig, cache: Path, progress: bool, log: dict, executor) -> list[QRow]:
    train = config.train
    powers = config.sweep_powers
    links = [train.test_link(p) for p in powers]
    if train.dataset is not None:  # measured: the test parts of the dataset
        _stage(1, f"DSP on the measured test data (CDC{', DBP' if train.dbp else ''}) at {len(powers)} launch powers "
                  f"{powers} dBm")
        start = time.perf_counter()
        trs = [train.transmission("test", p, dbp=train.dbp) for p in powers]
        costs = dsp_complexity(links[0])
        rows = [r for tr in trs for r in _dsp_rows(tr, train, {k: c.rmps for k, c in costs.items()})]
        log["dsp"] = {"powers_dbm": powers, "reused": 0, "simulated": 0, "measured": len(powers),
                      "seconds": time.perf_counter() - start}
        return rows
    cached = sum(cache_path(cache, link).exists() for link in links)
    variants = ", ".join(["CDC"] + [f"DBP-{k}" for k in train.scenario.receiver.dbp_steps_per_span if train.dbp])
    _stage(1, f"DSP sweep ({variants}) at {len(powers)} launch powers {powers} dBm on the test seed "
              f"{train.seeds.test}: {cached} cached, {len(powers) - cached} to simulate")
    start = time.perf_counter()
    trs = sweep(executor, links[0], powers, cache_dir=cache, progress=progress, dbp=train.dbp)
    costs = dsp_complexity(links[0])
    rows = [r for tr in trs for r in _dsp_rows(tr, train, {k: c.rmps for k, c in costs.items()})]
    log["dsp"] = {"powers_dbm": powers, "reused": cached, "simulated": len(powers) - cached,
                  "seconds": time.perf_counter() - start}
    return rows


def _saved_models(folder: Path) -> dict[str, int]:
    return {str(p.parent): p.stat().st_mtime_ns for p in folder.glob("models/*/equalizer.json")}


def _check_cache_entries(config: StudyConfig, cache: Optional[Path]) -> None:
    """Every cache entry of the study (test and training links at every launch power) can be read and written: a
    folder (or another non-file) in the way is reported before any work (:func:`channel.storage.check_cache_entry`)."""
    if cache is None or config.train.dataset is not None:  # measured data are read, not cached
        return
    train = config.train
    links = [train.test_link(p) for p in config.sweep_powers] + [train.train_link(p) for p in train.powers_dbm]
    for link in links:
        check_cache_entry(cache_path(cache, link))


def _stage_training(config: StudyConfig, out: Path, cache: Path, progress: bool, log: dict,
                    executor, verbose: bool = False) -> TrainingResult:
    from .training.run import train_stage

    folder = out / "train"
    before = _saved_models(folder)
    n_models = len(config.train.models) * (len(config.train.powers_dbm) if config.train.mode == "per_power" else 1)
    _stage(2, f"training {n_models} model(s) ({', '.join(m.name for m in config.train.models)}; mode "
              f"{config.train.mode}) in {folder}: {len(before)} saved model(s) found, reused if unchanged")
    start = time.perf_counter()
    result = train_stage(config.train, folder, cache_dir=cache, progress=progress, executor=executor, verbose=verbose,
                         tables=False)  # one table: the final one of the report
    after = _saved_models(folder)
    reused = sum(1 for m in result.models if before.get(m.folder) == after.get(m.folder))
    log["training"] = {"models": len(result.models), "reused": reused, "trained": len(result.models) - reused,
                       "seconds": time.perf_counter() - start}
    print(f"  training: {reused} model(s) reused, {len(result.models) - reused} trained", flush=True)
    return result


def _stage_compression(config: StudyConfig, out: Path, cache: Path, training: TrainingResult, progress: bool,
                       log: dict, executor) -> dict[str, StudyCompression]:
    """Stage 3: each model of ``study.compress`` at ``compress_at``, by the one path of ``eqnn compress``
    (:func:`eqnn.studies.compression.compress_trained`); ``<out>/compress/<model>`` resumes under its rule (a
    folder of other inputs is refused, naming it: delete it to start over)."""
    if not config.compress:
        _stage(3, "compression: skipped (no [compression] table or study.compress = [])")
        log["compression"] = {}
        return {}
    from .studies.compression import compress_trained

    studies = {}
    log["compression"] = {}
    for name in config.compress:
        power = (training.optimum[name].launch_power_dbm if config.compress_at == COMPRESS_AT
                 else config.compress_at)
        folder = out / "compress" / name
        _stage(3, f"compression of {name} at {power:+.2f} dBm ({config.compression.n_calls} search calls) in "
                  f"{folder}: {_count_evaluations(folder)} evaluation(s) already done (reused)")
        start = time.perf_counter()
        study = compress_trained(training, name, power, config.compression, folder, cache, progress=progress,
                                 executor=executor)
        studies[name] = StudyCompression(name=name, launch_power_dbm=power, study=study)
        n_new = int(getattr(study.search, "n_new", 0))
        log["compression"][name] = {"launch_power_dbm": power, "evaluations": len(study.search.evaluations),
                                    "reused": len(study.search.evaluations) - n_new, "new": n_new,
                                    "seconds": time.perf_counter() - start}
    return studies


def _count_evaluations(folder: Path) -> int:
    path = folder / RECORDS_FILE
    if not path.is_file():
        return 0
    return sum(1 for line in path.read_text().splitlines() if line.strip().endswith("}"))


# --------------------------------------------------------------------------------------------- results

def _q_interval(bit_errors: Optional[int], n_bits: Optional[int]) -> tuple[Optional[float], Optional[float]]:
    """The 95 % confidence interval (dB) of the Q counted from ``bit_errors`` in ``n_bits`` (Clopper-Pearson, as
    :func:`channel.evaluate_symbols`); the upper end is None at zero errors; (None, None) when not known."""
    if bit_errors is None or not n_bits:
        return None, None
    from channel.metrics import ber_confidence_interval, q_factor_db

    lo, hi = ber_confidence_interval(int(bit_errors), int(n_bits))
    low, high = q_factor_db(hi), (q_factor_db(lo) if lo > 0 else float("nan"))
    return (low if math.isfinite(low) else None), (high if math.isfinite(high) else None)


def _actual_compression(folder: Path) -> dict:
    """What the best compressed model in ``folder`` (``<compress>/<model>/best``) actually is, measured from its
    weights (not the search parameters): the fraction of zero kernel weights, the most distinct non-zero values
    of a kernel (its clusters, after quantization), its weight bits, and the totals of
    :func:`eqnn.compress.weight_stats` (biases included)."""
    from .compression.stats import weight_stats
    from .training import load_equalizer

    eq = load_equalizer(folder)
    stats = weight_stats(eq.model, weight_bits=eq.weight_bits)
    kernels = [t for layer in stats["layers"] for t in layer["tensors"] if t["kernel"]]
    n = sum(t["n_weights"] for t in kernels)
    zeros = sum(t["n_weights"] - t["n_nonzero"] for t in kernels)
    return {"kernel_sparsity": zeros / n if n else 0.0,
            "max_distinct_kernel_values": max((t["n_distinct_nonzero"] for t in kernels), default=0),
            "weight_bits": eq.weight_bits, "sparsity_all_weights": stats["total"]["sparsity"],
            "n_weights": stats["total"]["n_weights"], "n_nonzero": stats["total"]["n_nonzero"]}


def _method_table(dsp_rows: list[QRow], training: TrainingResult, compression: dict[str, StudyCompression],
                  link) -> tuple[list[dict], list[dict]]:
    """The report table (one row per method, each at its optimal launch power) and the Q-vs-power rows.

    Every row carries the Q's 95 % confidence interval from the counted bit errors (``q_db_ci_low``/``_high``;
    a bound only where too few errors were counted to measure Q) and the Q implied by the SNR. The gain over CDC
    compares like with like (``gain_basis``): both Qs counted from bit errors ("BER") where the method's and CDC's
    are, else both implied by the SNR ("SNR"), each at its own optimal launch power."""
    from .training import load_equalizer

    costs = dsp_complexity(link)
    nn_names = [m.name for m in training.config.models]
    nn_rows = [r for r in training.rows if r.method in nn_names]
    table = []

    def q_fields(b) -> dict:
        return {"launch_power_dbm": b.launch_power_dbm, "q_db": b.q_db, "q_measured": b.measured,
                "q_db_ci_low": b.q_db_ci_low, "q_db_ci_high": b.q_db_ci_high, "q_db_from_snr": b.q_db_from_snr,
                "snr_db": b.snr_db}

    for method, b in best_per_method(dsp_rows, list(dict.fromkeys(r.method for r in dsp_rows))).items():
        c = costs[method]
        table.append({"method": method, "kind": "DSP", "rmps": c.rmps, "bop": c.bop, "nabs": c.nabs, "bits": c.bits,
                      **q_fields(b)})
    for method, b in best_per_method(nn_rows, nn_names).items():
        eq = load_equalizer(training.model(method, b.launch_power_dbm).folder)
        c = eq.complexity()  # at its own bit widths
        nn_rows = [r.replace(rmps=c.rmps) if r.method == method else r for r in nn_rows]
        table.append({"method": method, "kind": "NN", "rmps": c.rmps, "bop": c.bop, "nabs": c.nabs,
                      "bits": c.weight_bits, **q_fields(b)})
    power_rows = [r.to_dict() for r in dsp_rows] + [r.to_dict() for r in nn_rows]
    for item in compression.values():
        best = item.point
        if best is None:  # every evaluation failed: nothing to report
            continue
        method = f"{item.name} compressed"
        same = next((r for r in nn_rows if r.method == item.name and same_power(r.launch_power_dbm,
                                                                                  best.launch_power_dbm)), None)
        low, high = _q_interval(best.bit_errors, same.n_bits if same is not None else None)
        folder = Path(item.study.folder) / "best"
        actual = _actual_compression(folder) if (folder / "equalizer.json").is_file() else {}
        table.append({"method": method, "kind": "compressed NN", "rmps": best.rmps, "bop": best.bop,
                      "nabs": best.nabs, "bits": best.weight_bits, "launch_power_dbm": best.launch_power_dbm,
                      "q_db": best.q_db, "q_measured": best.q_measured, "q_db_ci_low": low, "q_db_ci_high": high,
                      "q_db_from_snr": best.q_db_from_snr, "snr_db": best.snr_db,
                      "params": dict(best.params), "actual": actual})
        power_rows.append({"launch_power_dbm": best.launch_power_dbm, "method": method,
                           "q_db": best.q_db if best.q_measured else None, "q_db_ci_low": low, "q_db_ci_high": high,
                           "q_db_from_snr": best.q_db_from_snr, "snr_db": best.snr_db, "ber": best.ber,
                           "bit_errors": best.bit_errors, "rmps": best.rmps})
    cdc = next(r for r in table if r["method"] == "CDC")
    for row in table:
        if row["q_measured"] and cdc["q_measured"]:
            row["gain_basis"], row["gain_over_cdc_db"] = "BER", row["q_db"] - cdc["q_db"]
        else:  # at least one Q is implied by the SNR: compare both implied by the SNR
            row["gain_basis"] = "SNR"
            row["gain_over_cdc_db"] = (None if row["q_db_from_snr"] is None or cdc["q_db_from_snr"] is None
                                       else row["q_db_from_snr"] - cdc["q_db_from_snr"])
        swept = sorted({r["launch_power_dbm"] for r in power_rows if r["method"] == row["method"]})
        at = [edge for edge in (swept[0], swept[-1]) if same_power(row["launch_power_dbm"], edge)]
        row["optimum_at_edge"] = len(swept) > 1 and bool(at)
        row["optimum_edge"] = ("highest" if same_power(row["launch_power_dbm"], swept[-1]) else "lowest") \
            if row["optimum_at_edge"] else None
    return table, power_rows


def _pareto_rows(compression: dict[str, StudyCompression]) -> list[dict]:
    rows = []
    for name, item in compression.items():
        for point in item.study.pareto:
            rows.append({"equalizer": name, "launch_power_dbm": item.launch_power_dbm,
                         **{k: v for k, v in point.items() if k not in ("params", "model")},
                         **{f"param:{k}": v for k, v in point["params"].items()}})
    return rows


def plot_q_vs_rmps(table: list[dict], compression: dict[str, StudyCompression], path: Union[str, Path],
                   title: str = "") -> Path:
    """Q versus RMpS (log x): per compressed model every search evaluation, the Pareto front (step line) and the
    chosen compressed model (a star), the uncompressed NNs, CDC and each DBP variant as labelled points (each at its
    optimal launch power), each with its own marker and its 95 % confidence interval from the counted bit errors as
    an error bar (one-sided where too few errors were counted). Colors follow the table order, as in
    ``q_vs_power.png``; hollow markers: Q implied by the SNR. Labels of neighbouring points alternate above and below,
    so that points on top of each other (DBP variants of equal Q, a compressed model at the cost of the uncompressed)
    stay readable. The caller's matplotlib backend and figures are untouched (:func:`eqnn.report.new_figure`)."""
    fig, ax = new_figure()
    for i, row in enumerate(table):
        color = f"C{i % 10}"
        marker = POINT_MARKERS[i % len(POINT_MARKERS)]
        name = row["method"].removesuffix(" compressed")
        if row["kind"] == "compressed NN":
            study = compression[name].study
            evs = [e for e in study.search.evaluations if not e.metrics.get("failed")]
            ax.plot([e.rmps for e in evs], [e.q_db for e in evs], ".", color=color, alpha=0.4, ms=5,
                    label=f"{row['method']}: {len(evs)} search evaluations")
            front = study.pareto
            ax.step([p["rmps"] for p in front], [p["q_db"] for p in front], "-", where="post", color=color, lw=1.5)
            ax.plot([p["rmps"] for p in front], [p["q_db"] for p in front], "o", color=color, ms=4, mfc="none",
                    label=f"{row['method']}: Pareto front")
            marker = "*"
        _point_with_interval(ax, row, marker, color, size=13 if marker == "*" else 8)
        ax.annotate(row["method"], (row["rmps"], row["q_db"]), textcoords="offset points",
                    xytext=(7, 5 if i % 2 == 0 else -12), fontsize="small")
    ax.set_xscale("log")
    ax.margins(x=0.12)
    ax.set_xlabel("real multiplications per symbol (RMpS)")
    ax.set_ylabel("Q-factor (dB) at the optimal launch power")
    ax.grid(True, which="both", alpha=0.3)
    if compression:
        ax.legend(fontsize="small")
    if title:
        ax.set_title(title, fontsize="medium")
    return save_figure(fig, path)


# markers of the labelled points of q_vs_rmps.png (the compressed model: a star), distinct for up to 9 methods
POINT_MARKERS = "sD^vP<>hX"


def _point_with_interval(ax, row: dict, marker: str, color: str, size: float) -> None:
    """One labelled point at (RMpS, Q) with its 95 % interval as an error bar (to the bound alone when one-sided)."""
    q, low, high = row["q_db"], row.get("q_db_ci_low"), row.get("q_db_ci_high")
    below = max(q - low, 0.0) if low is not None else 0.0
    above = max(high - q, 0.0) if high is not None else 0.0
    if low is not None or high is not None:
        ax.errorbar([row["rmps"]], [q], yerr=[[below], [above]], fmt="none", ecolor=color, elinewidth=1, capsize=3,
                    zorder=3)
    ax.plot([row["rmps"]], [q], marker, color=color, ms=size, zorder=4,
            mec="k" if row["q_measured"] else color, mew=0.6 if row["q_measured"] else 1.5,
            mfc=None if row["q_measured"] else "none")


def _fmt(value, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.{digits}f}"


def _fmt_count(value) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def _ci_text(low, high) -> str:
    if low is None and high is None:
        return "-"
    if high is None:
        return f">= {_fmt(low)}"
    return f"[{_fmt(low)}, {_fmt(high)}]"


def q_text(row: dict) -> str:
    """A report row's Q as prose: ``"9.49 dB [9.42, 9.57]"`` (counted from bit errors, with its 95 % interval) or
    ``"~12.05 dB (implied by the SNR)"``; the one wording of the report and of docs/make_quickstart.py."""
    if not row["q_measured"]:
        return f"~{_fmt(row['q_db'])} dB (implied by the SNR)"
    low, high = row.get("q_db_ci_low"), row.get("q_db_ci_high")
    return f"{_fmt(row['q_db'])} dB" + ("" if low is None and high is None else f" {_ci_text(low, high)}")


def markdown_table(table: list[dict]) -> str:
    """The report table: Q with its 95 % confidence interval from the counted bit errors; Q marked '~' where implied
    by the SNR (too few bit errors: the interval is then a bound from the errors counted); the gain over CDC on one
    basis per row (BER or SNR, column "basis"); an optimum at the edge of the powers tried marked as not
    bracketed."""
    lines = ["| Method | RMpS | BoP | Optimal launch power (dBm) | Q (dB) | 95 % CI of Q from bit errors (dB) | "
             "Gain over CDC (dB) | Gain basis |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in table:
        q = _fmt(r["q_db"]) if r["q_measured"] else f"~{_fmt(r['q_db'])}"
        edge = EDGE_MARK if r.get("optimum_at_edge") else ""
        gain = r.get("gain_over_cdc_db")
        ci = _ci_text(r.get("q_db_ci_low"), r.get("q_db_ci_high"))
        lines.append(f"| {r['method']} | {_fmt_count(r['rmps'])} | {_fmt_count(r['bop'])} | "
                     f"{r['launch_power_dbm']:+.2f}{edge} | {q} | {ci} | {'-' if gain is None else f'{gain:+.2f}'} | "
                     f"{r.get('gain_basis', '-')} |")
    edges = [r for r in table if r.get("optimum_at_edge")]
    if edges:
        lines.append("")
        for r in edges:
            lines.append(f"{EDGE_MARK} {r['method']}: optimum NOT bracketed: its best Q is at the {r['optimum_edge']} "
                         f"launch power tried ({r['launch_power_dbm']:+.2f} dBm), so the true optimum may lie beyond "
                         "it and its Q there is a lower bound of its optimum; add launch powers "
                         f"{'above' if r['optimum_edge'] == 'highest' else 'below'} it (study.dsp_powers_dbm, "
                         "powers_dbm) to find it.")
    return "\n".join(lines)


def _title(config: StudyConfig) -> str:
    link = config.train.scenario
    return config.title or (f"{config.name}: {link.link.n_spans} x {link.link.span_length_km:g} km, "
                            f"{link.transmitter.modulation} {link.transmitter.symbol_rate_gbd:g} GBd")


def _params_text(params: dict) -> str:
    return ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in params.items())


def _link_lines(config: StudyConfig) -> list[str]:
    train = config.train
    link = train.scenario
    tx, f, sp, pr, rx = link.transmitter, link.fiber, link.link, link.propagation, link.receiver
    steps = (f"adaptive steps (nonlinear phase <= {pr.max_nonlinear_phase_rad:g} rad, <= {pr.max_step_km:g} km)"
             if pr.step_mode == "adaptive" else f"{pr.steps_per_span} {pr.step_mode} steps per span")
    taps = resolve_taps(train.data, link)
    xi = "optimized per variant" if rx.dbp_xi == "optimize" else f"{rx.dbp_xi:g}"
    position = ("optimized jointly with xi" if rx.dbp_nonlinear_position == "optimize"
                else f"{rx.dbp_nonlinear_position:g}")
    dbp = (f"DBP-k with k = {', '.join(map(str, rx.dbp_steps_per_span))} steps per span, "
           f"{rx.dbp_samples_per_symbol} samples/symbol, nonlinear scaling xi {xi}, position of the nonlinear step "
           f"{position} (fraction of each step from its high-power end; the values found are in q_vs_power.csv)"
           if train.dbp and rx.dbp_steps_per_span else "no DBP")
    return [
        f"- **Signal**: DP-{tx.modulation}, {tx.symbol_rate_gbd:g} GBd, RRC roll-off {tx.rolloff:g}, "
        + (f"{tx.n_channels} WDM channels at {tx.channel_spacing_ghz:g} GHz spacing "
           f"(channel {link.received_channel} received)" if tx.n_channels > 1 else "single channel"),
        f"- **Link**: {sp.n_spans} x {sp.span_length_km:g} km of fiber (alpha {f.attenuation_db_km:g} dB/km, "
        f"D {f.dispersion_ps_nm_km:g} ps/nm/km, gamma {f.gamma_per_w_km:g} 1/W/km, lambda {f.wavelength_nm:g} nm), "
        f"EDFA after each span, NF {sp.noise_figure_db:g} dB" + (" (noiseless)" if sp.noiseless else ""),
        f"- **Simulation**: Manakov SSFM, {tx.samples_per_symbol} samples/symbol, {steps}, {pr.precision}",
        f"- **DSP**: CDC (frequency domain, whole link); {dbp}",
        _data_line(train),
        f"- **NN equalizers**: windows of 2N+1 = {2 * taps + 1} received symbols after CDC, target "
        f"{'both polarizations' if train.data.both_polarizations else 'x polarization'}"
        f"{', residual (correction to the CDC symbol)' if getattr(train.data, 'residual', False) else ''}; "
        f"mode {train.mode}; launch powers {list(train.powers_dbm)} dBm; models: "
        + "; ".join(f"{m.name} ({m.type})" for m in train.models),
    ]


def _data_line(train: TrainRunConfig) -> str:
    p = train.powers_dbm[0]
    n_train, n_test = train.train_link(p).transmitter.n_symbols, train.test_link(p).transmitter.n_symbols
    if train.dataset is not None:
        part = train.measured_part("train", p)
        test = train.measured_part("test", p)
        return (f"- **Data**: measured, {len(train.dataset.path)} file(s) (one per launch power), e.g. "
                f"{Path(part.path).name}: training symbols [{part.start}, {part.stop}), test symbols "
                f"[{test.start}, {test.stop}) of {Path(test.path).name}")
    return (f"- **Data**: training transmission seed {train.seeds.train}, {n_train} symbols/pol; test transmission "
            f"seed {train.seeds.test}, {n_test} symbols/pol (independent symbols and noise)")


def _stage_lines(log: dict) -> list[str]:
    d, t = log["dsp"], log["training"]
    dsp = (f"{d['measured']} read from the dataset" if d.get("measured") else
           f"{d['simulated']} simulated, {d['reused']} from the cache")
    lines = [f"- DSP sweep: {len(d['powers_dbm'])} launch powers, {dsp} ({d['seconds']:.0f} s)",
             f"- training: {t['models']} model(s), {t['trained']} trained, {t['reused']} reused ({t['seconds']:.0f} s)"]
    for name, c in log.get("compression", {}).items():
        lines.append(f"- compression of {name} at {c['launch_power_dbm']:+.2f} dBm: {c['evaluations']} evaluations, "
                     f"{c['new']} new, {c['reused']} reused ({c['seconds']:.0f} s)")
    return lines


def _seeds(config: StudyConfig) -> dict:
    """Every seed of a study, by name (the provenance record)."""
    train = config.train
    seeds = {"train_transmission": train.seeds.train, "test_transmission": train.seeds.test,
             "training": train.training.seed, "link": train.scenario.transmitter.seed}
    if config.compression is not None:
        seeds["compression"] = config.compression.seed
    return seeds


def write_report(out: Path, config: StudyConfig, source: str, table: list[dict], compression: dict,
                 n_symbols_eval: int, wall_s: float, log: dict, origin: Optional[dict] = None) -> Path:
    """``report.md``: the link, the table, both plots, what the numbers are and (``origin``,
    :func:`eqnn.provenance.collect`) where they come from."""
    title = _title(config)
    comp_lines = []
    for name, item in compression.items():
        best = item.point
        if best is None:
            comp_lines.append(f"- {name}: every compression evaluation failed (see compress/{name}/)")
            continue
        row = next((r for r in table if r["method"] == f"{name} compressed"), {})
        actual = row.get("actual") or {}
        measured = ""
        if actual:
            measured = (f"; the model measured from its weights: {actual['kernel_sparsity']:.1%} of its kernel "
                        f"weights zero, at most {actual['max_distinct_kernel_values']} distinct non-zero values per "
                        f"kernel, {actual['weight_bits'] or 32}-bit weights")
        comp_lines.append(f"- {name} compressed at {item.launch_power_dbm:+.2f} dBm: "
                          f"{len(item.study.search.evaluations)} search evaluations; best point: Q {_fmt(best.q_db)} "
                          f"dB, RMpS {_fmt_count(best.rmps)}{measured} (search parameters "
                          f"{_params_text(dict(best.params))}: targets, not what the model reached)")
    text = "\n".join([
        f"# {title}", "",
        f"Written by `eqnn run {source}` on {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')} "
        f"(this run: {wall_s:.0f} s; see 'This run' below for what was reused).", "",
        "## Link", "", *_link_lines(config), "",
        "## Results", "",
        "Each method at its optimal launch power. RMpS and BoP are per recovered symbol of one polarization "
        "(eqnn.complexity: CDC and DBP by radix-2 overlap-save at their optimal FFT size, BoP at 32-bit fixed "
        "point; NNs from their actual weights, 32 bits unless quantized). Q: counted from bit errors, with its 95 % "
        "Clopper-Pearson confidence interval; `~`: too few bit errors to count, Q implied by the SNR (the interval "
        "is then what the few errors counted bound it to). Gain over CDC: Q minus the Q of CDC at its own optimal "
        "launch power, like with like (column 'Gain basis'): both counted from bit errors (BER) where both are, "
        "else both implied by the SNR (SNR), since the SNR-implied Q runs above the counted one on a link with "
        "nonlinear distortion.", "",
        markdown_table(table), "",
        *([*comp_lines, ""] if comp_lines else []),
        "![Q-factor versus launch power](q_vs_power.png)", "",
        "![Q-factor versus real multiplications per symbol](q_vs_rmps.png)", "",
        "## This run", "", *_stage_lines(log), "",
        *(["## Provenance", "", *provenance.markdown_lines(origin), ""] if origin else []),
        "## Notes", "",
        "- Q = 20 log10(sqrt(2) erfcinv(2 BER)) from counted bit errors (Gray-mapped hard decisions). Where a "
        "method makes fewer than 20 bit errors its Q is implied by the effective SNR instead, marked `~` in the "
        "table and drawn hollow in the plots: an estimate, not a measurement.",
        f"- Every method is measured on the same {n_symbols_eval} symbols per launch power: the window centres "
        "(block edges discarded) of the target polarization(s) of the test transmission, whose seed differs from "
        "the training transmission's (other symbols, other noise).",
        "- NN powers are the training launch powers (one model per power, or one for all in combined mode); "
        "compressed models are measured at one launch power (the optimum of the uncompressed model unless "
        "`study.compress_at` says otherwise).",
        "- Every number here is in `results.json`, `methods.csv`, `q_vs_power.csv` and `pareto.csv`; the training "
        "details (loss histories, saved models) are in `train/`, the compression searches in `compress/`.",
        "",
    ])
    return write_text_atomic(out / "report.md", text)


def run_study(config_or_path: Union[str, Path, StudyConfig], out_dir: Union[str, Path, None] = None,
              progress: bool = True, cache_dir: Union[str, Path, None] = None, executor=None,
              verbose: bool = False, source: Union[str, Path, None] = None) -> dict:
    """Run (or resume) a study: DSP sweep, training, compression, report (module docstring).

    Args:
        config_or_path: a study TOML path or a :class:`StudyConfig` (validated before any work).
        out_dir: results folder; default ``[study] out_dir`` or ``results/<name>``.
        progress: progress bars (a bar per trained model; the per-stage lines are always printed).
        verbose: with ``progress``, one line per training epoch instead of the bar of each model.
        cache_dir: simulation cache, overriding the study's ``cache_dir`` (whose ``""`` is ``<out>/cache``:
            :func:`eqnn.training.run.cache_folder`, the rule of ``eqnn train`` and ``eqnn compress`` too).
        executor: where the independent work runs (:mod:`eqnn.execution`): None (in this process), or a Dask
            executor: one task per launch power of the sweep and of the training, the compression search evaluating
            as many points at once as there are worker threads. The same inputs give the same numbers either way
            (a batched search differs from the sequential one after its initial design, see :mod:`eqnn.search`).

        source: the study file named in the report when ``config_or_path`` is an already loaded StudyConfig.

    Returns: the dict written to ``results.json``.
    """
    if source is None:
        source = str(config_or_path) if not isinstance(config_or_path, StudyConfig) else "<StudyConfig>"
    source = str(source)
    config = config_or_path if isinstance(config_or_path, StudyConfig) else load_study(config_or_path)
    out = Path(out_dir) if out_dir is not None else config.default_out_dir()
    cache = cache_folder(config.train.cache_dir, out, cache_dir)
    start = time.perf_counter()
    log: dict = {}
    link = config.train.scenario
    print(f"study '{config.name}': {link.transmitter.modulation} {link.transmitter.symbol_rate_gbd:g} GBd over "
          f"{link.link.n_spans} x {link.link.span_length_km:g} km; results in {out}, simulation cache {cache}",
          flush=True)
    _check_cache_entries(config, cache)
    started = datetime.datetime.now(datetime.timezone.utc)
    dsp_rows = _stage_dsp(config, cache, progress, log, executor)
    training = _stage_training(config, out, cache, progress, log, executor, verbose)
    compression = _stage_compression(config, out, cache, training, progress, log, executor)
    _stage(4, f"report in {out}")
    report_start = time.perf_counter()
    table, power_rows = _method_table(dsp_rows, training, compression, link)
    pareto = _pareto_rows(compression)
    title = _title(config)
    plot_q_vs_power(power_rows, out / "q_vs_power.png", title=title)
    plot_q_vs_rmps(table, compression, out / "q_vs_rmps.png", title=title)
    write_csv(out / "methods.csv", [{k: r.get(k) for k in TABLE_COLUMNS} for r in table], columns=TABLE_COLUMNS)
    write_csv(out / "q_vs_power.csv", power_rows)
    write_csv(out / "pareto.csv", pareto, columns=None if pareto else ["equalizer", "rmps", "q_db"])
    wall = time.perf_counter() - start
    n_eval = dsp_rows[0].n_symbols
    stage_seconds = {"dsp_sweep": log["dsp"]["seconds"], "training": log["training"]["seconds"],
                     **{f"compression:{name}": c["seconds"] for name, c in log["compression"].items()},
                     "report": time.perf_counter() - report_start}
    origin = provenance.collect(seeds=_seeds(config), stage_seconds=stage_seconds, wall_time_s=wall,
                                started=started)
    result = {"name": config.name, "title": title, "source": source, "config": config.to_dict(),
              "methods": table, "q_vs_power": power_rows, "pareto": pareto,
              "compression": {name: {"launch_power_dbm": item.launch_power_dbm, **item.study.to_dict()}
                              for name, item in compression.items()},
              "stages": log, "n_symbols_evaluated": n_eval, "wall_time_s": wall, "provenance": origin}
    write_json(out / "results.json", jsonable(result))
    write_report(out, config, source, table, compression, n_eval, wall, log, origin)
    print(f"\n{markdown_table(table)}\n", flush=True)
    print(f"done in {wall:.0f} s: {out / 'report.md'}, q_vs_power.png, q_vs_rmps.png, results.json, methods.csv, "
          f"q_vs_power.csv, pareto.csv", flush=True)
    return result


__all__ = ["StudyConfig", "load_study", "run_study", "markdown_table", "plot_q_vs_rmps", "write_report"]
