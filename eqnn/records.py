"""Typed records that the stages hand to each other: Q rows, optima, trained models, compression points.

Each record is a frozen dataclass with named, typed fields; the stages read fields, never string keys. Only the
writers turn a record into JSON/CSV (``to_dict``), and they keep the key names and order of the result files
(``results.json``, ``results.csv``, ``q_vs_power.csv``), so the files read the same as before the records.

- :class:`QRow`: the Q of one method at one launch power (a row of ``results.csv``).
- :class:`Optimum`: the best launch power of one method.
- :class:`TrainedModel`: an equalizer trained and saved by the training stage (name, folder, powers, RMpS).
- :class:`TrainingResult`: everything the training stage produced (what ``results.json`` holds).
- :class:`CompressionPoint`: the model a compression study chose (what the report needs of it).

:func:`same_power` is the one rule by which two launch powers are the same (everywhere a power is matched).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

__all__ = ["POWER_TOLERANCE_DB", "CompressionPoint", "Optimum", "QRow", "TrainedModel", "TrainingResult",
           "best_per_method", "same_power"]

POWER_TOLERANCE_DB = 1e-9


def same_power(a: float, b: float) -> bool:
    """Whether launch powers ``a`` and ``b`` (dBm) are the same: equal within :data:`POWER_TOLERANCE_DB`, so that a
    power parsed from ``"0.1"`` on the command line matches the ``0.1`` of a TOML or of a stored record."""
    return math.isclose(float(a), float(b), rel_tol=0.0, abs_tol=POWER_TOLERANCE_DB)


@dataclass(frozen=True)
class QRow:
    """The Q of one method at one launch power, measured on the test symbols.

    Attributes:
        launch_power_dbm: launch power per channel (dBm).
        method: "CDC", "DBP-k", an NN's name, ...
        q_db: Q from the counted bit errors (dB); None when too few errors were counted.
        q_db_ci_low: lower end of its 95 % confidence interval (None with ``q_db``).
        q_db_ci_high: upper end.
        q_db_from_snr: Q implied by the effective SNR (dB).
        snr_db: effective SNR (dB).
        ber: bit-error ratio.
        bit_errors: counted bit errors.
        n_bits: bits compared.
        gmi_bits: generalized mutual information (bit/symbol).
        evm_percent: error-vector magnitude (%).
        polarizations: "x" or "x,y": the polarizations evaluated.
        n_symbols: symbols evaluated per polarization.
        note: a remark of the measurement ("" if none).
        rmps: real multiplications per recovered symbol of the method (None: not counted).
        dbp_xi: the nonlinear scaling of a DBP variant (only DSP-sweep rows carry the key).
        dbp_nonlinear_position: the position p of its nonlinear step within each step (fraction from the step's
            high-power end; 0.5 = the symmetric step), used or found with xi (DSP-sweep rows).
        dbp_power_filter_bandwidth: the bandwidth of its power filter (units of the symbol rate; filtered DBP only,
            else None; DSP-sweep rows).
    """

    launch_power_dbm: float
    method: str
    q_db: Optional[float]
    q_db_ci_low: Optional[float]
    q_db_ci_high: Optional[float]
    q_db_from_snr: float
    snr_db: float
    ber: float
    bit_errors: int
    n_bits: int
    gmi_bits: Optional[float]
    evm_percent: Optional[float]
    polarizations: str
    n_symbols: int
    note: str = ""
    rmps: Optional[float] = None
    dbp_xi: Optional[float] = None
    dbp_nonlinear_position: Optional[float] = None
    dbp_power_filter_bandwidth: Optional[float] = None
    has_dbp_xi: bool = field(default=False, repr=False)

    @classmethod
    def from_metrics(cls, launch_power_dbm: float, method: str, m, polarizations: str, n_symbols: int) -> "QRow":
        """The row of ``channel.Metrics`` ``m``."""
        return cls(launch_power_dbm=launch_power_dbm, method=method, q_db=m.q_db, q_db_ci_low=m.q_db_ci[0],
                   q_db_ci_high=m.q_db_ci[1], q_db_from_snr=m.q_db_from_snr, snr_db=m.snr_db, ber=m.ber,
                   bit_errors=m.bit_errors, n_bits=m.n_bits, gmi_bits=m.gmi_bits, evm_percent=m.evm_percent,
                   polarizations=polarizations, n_symbols=n_symbols, note=m.note)

    @property
    def measured(self) -> bool:
        """Whether Q comes from counted bit errors (else it is implied by the SNR)."""
        return self.q_db is not None

    @property
    def q_best(self) -> float:
        """Q from the bit errors where measured, else the Q implied by the SNR."""
        return self.q_db if self.q_db is not None else self.q_db_from_snr

    def replace(self, **changes) -> "QRow":
        return dataclasses.replace(self, **changes)

    def to_dict(self, with_rmps: bool = True) -> dict:
        """The row as ``results.csv`` / ``results.json`` write it (``rmps`` last; ``dbp_xi``,
        ``dbp_nonlinear_position`` and ``dbp_power_filter_bandwidth`` before it in DSP rows)."""
        out = {k: getattr(self, k) for k in ("launch_power_dbm", "method", "q_db", "q_db_ci_low", "q_db_ci_high",
                                             "q_db_from_snr", "snr_db", "ber", "bit_errors", "n_bits", "gmi_bits",
                                             "evm_percent", "polarizations", "n_symbols", "note")}
        if self.has_dbp_xi:
            out["dbp_xi"] = self.dbp_xi
            out["dbp_nonlinear_position"] = self.dbp_nonlinear_position
            out["dbp_power_filter_bandwidth"] = self.dbp_power_filter_bandwidth
        if with_rmps:
            out["rmps"] = self.rmps
        return out


@dataclass(frozen=True)
class Optimum:
    """The best launch power of one method.

    Attributes:
        method: the method.
        launch_power_dbm: its best launch power (dBm).
        q_db: its Q there (from BER where measured, else from the SNR).
        measured: whether that Q comes from counted bit errors.
        snr_db: its effective SNR there.
        rmps: its real multiplications per recovered symbol there (None: not counted).
        q_db_ci_low: lower end of the 95 % confidence interval of the Q from the counted bit errors there (also
            with too few errors to measure Q: then a bound); None: not known.
        q_db_ci_high: its upper end (None at zero errors, or not known).
        q_db_from_snr: the Q implied by the effective SNR there (None: not known).
    """

    method: str
    launch_power_dbm: float
    q_db: float
    measured: bool
    snr_db: float
    rmps: Optional[float] = None
    q_db_ci_low: Optional[float] = None
    q_db_ci_high: Optional[float] = None
    q_db_from_snr: Optional[float] = None

    def to_dict(self, with_rmps: bool = True) -> dict:
        out = {"launch_power_dbm": self.launch_power_dbm, "q_db": self.q_db, "measured": self.measured,
               "snr_db": self.snr_db}
        if with_rmps:
            out["rmps"] = self.rmps
        return out


def best_per_method(rows: Sequence[QRow], methods: Sequence[str]) -> dict[str, Optimum]:
    """The :class:`Optimum` of each of ``methods`` over ``rows`` (first of equal Qs, in row order)."""
    out = {}
    for method in methods:
        top = max((r for r in rows if r.method == method), key=lambda r: r.q_best)
        out[method] = Optimum(method=method, launch_power_dbm=top.launch_power_dbm, q_db=top.q_best,
                              measured=top.measured, snr_db=top.snr_db, rmps=top.rmps, q_db_ci_low=top.q_db_ci_low,
                              q_db_ci_high=top.q_db_ci_high, q_db_from_snr=top.q_db_from_snr)
    return out


@dataclass(frozen=True)
class TrainedModel:
    """An equalizer trained (or reused) and saved by the training stage.

    Attributes:
        name: the model's name (its ``[[models]]`` name).
        tag: ``"combined"`` or the launch-power tag (``+1p00dBm``) of its folder.
        folder: the saved :class:`eqnn.train.Equalizer` folder (``<out>/models/<name>@<tag>``).
        powers_dbm: the launch powers it was trained on.
        rmps: real multiplications per recovered symbol (:func:`eqnn.complexity.model_complexity` of its weights).
        summary: its training summary (epochs, losses, times, seeds, fingerprint, links; the loss history is
            left out), as ``results.json`` lists it under ``models``.
    """

    name: str
    tag: str
    folder: str
    powers_dbm: tuple[float, ...]
    rmps: float
    summary: Mapping[str, Any] = field(default_factory=dict)

    @property
    def combined(self) -> bool:
        return self.tag == "combined"

    def covers(self, power_dbm: float) -> bool:
        """Whether this model is the one used at ``power_dbm`` (a combined model covers every power)."""
        return self.combined or (len(self.powers_dbm) == 1 and same_power(self.powers_dbm[0], power_dbm))

    def moved_to(self, folder: str) -> "TrainedModel":
        return dataclasses.replace(self, folder=folder)

    def to_dict(self) -> dict:
        return {"model": self.name, "tag": self.tag, "folder": self.folder, **self.summary}


@dataclass(frozen=True)
class TrainingResult:
    """What the training stage produced (``<out>/results.json`` is :meth:`to_dict`).

    Attributes:
        name: the study's name.
        config: the :class:`eqnn.train.TrainRunConfig` it ran.
        rows: one :class:`QRow` per launch power and method (NNs first, then CDC and DBP-k), RMpS filled in.
        optimum: the :class:`Optimum` of each method.
        evaluations: the :class:`eqnn.train.Evaluation` of each launch power.
        models: every :class:`TrainedModel`.
        wall_time_s: seconds the stage took.
    """

    name: str
    config: Any
    rows: tuple[QRow, ...]
    optimum: Mapping[str, Optimum]
    evaluations: tuple
    models: tuple[TrainedModel, ...]
    wall_time_s: float

    @property
    def methods(self) -> list[str]:
        return list(dict.fromkeys(r.method for r in self.rows))

    def model(self, name: str, power_dbm: float) -> TrainedModel:
        """The trained model ``name`` used at launch power ``power_dbm``; ``KeyError`` if there is none."""
        for m in self.models:
            if m.name == name and m.covers(power_dbm):
                return m
        raise KeyError(f"no trained model {name!r} at {power_dbm:+.2f} dBm in the training results")

    def to_dict(self) -> dict:
        return {"name": self.name, "config": self.config.to_dict(), "powers_dbm": list(self.config.powers_dbm),
                "mode": self.config.mode, "rows": [r.to_dict() for r in self.rows],
                "optimum": {k: o.to_dict() for k, o in self.optimum.items()},
                "evaluations": [ev.to_dict() for ev in self.evaluations],
                "models": [m.to_dict() for m in self.models], "wall_time_s": self.wall_time_s}


@dataclass(frozen=True)
class CompressionPoint:
    """The compressed model a compression study chose (its best point), as the report uses it.

    Attributes:
        name: the uncompressed model's name.
        launch_power_dbm: where it was compressed and measured.
        q_db: Q on the test symbols (from BER where measured, else from the SNR).
        q_measured: whether Q comes from counted bit errors.
        q_db_from_snr: Q implied by the SNR.
        snr_db: effective SNR.
        ber: bit-error ratio.
        bit_errors: counted bit errors.
        rmps: real multiplications per recovered symbol.
        bop: bit operations per symbol (at its weight/activation bit widths).
        nabs: number of additions/bit shifts.
        weight_bits: bits of its quantized weights (None: float).
        params: the search point (hyperparameters) it was compressed with.
    """

    name: str
    launch_power_dbm: float
    q_db: float
    q_measured: bool
    q_db_from_snr: Optional[float]
    snr_db: Optional[float]
    ber: Optional[float]
    bit_errors: Optional[int]
    rmps: float
    bop: Optional[float]
    nabs: Optional[float]
    weight_bits: Optional[int]
    params: Mapping[str, Any]

    @classmethod
    def from_best(cls, name: str, launch_power_dbm: float, best: Mapping[str, Any]) -> "CompressionPoint":
        """From the ``best`` metrics of a :class:`eqnn.compress_run.CompressionStudy`."""
        return cls(name=name, launch_power_dbm=launch_power_dbm, q_db=best["q_db"],
                   q_measured=bool(best["q_measured"]), q_db_from_snr=best.get("q_db_from_snr"),
                   snr_db=best.get("snr_db"), ber=best.get("ber"), bit_errors=best.get("bit_errors"),
                   rmps=best["rmps"], bop=best.get("bop"), nabs=best.get("nabs"),
                   weight_bits=best.get("weight_bits"), params=dict(best.get("params", {})))
