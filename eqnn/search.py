"""Bayesian optimization of compression hyperparameters that survives being killed at any moment.

A study is composed from a few calls::

    from eqnn.search import Categorical, Integer, Objective, Real, search

    space = [
        Real("sparsity", 0.0, 0.95),
        Integer("clusters", 4, 64),
        Integer("bits", 2, 8),
        Categorical("pruning", ["magnitude", "structured"]),
    ]
    objective = Objective.constrained(q_target=9.5, rmps_reference=2e4)
    result = search(evaluate, space, n_calls=40, objective=objective, folder="results/search-bilstm")
    result.best.params, result.cheapest_feasible, result.pareto

``evaluate(params) -> dict`` is any callable (it trains/compresses/measures a model; this module never imports
TensorFlow). ``params`` maps each dimension name to a plain Python ``int`` / ``float`` / ``str`` (the exact
choice objects for a :class:`Categorical`). It returns at least ``{"q_db": float, "rmps": float}`` (Q-factor in
dB, real multiplications per symbol, both finite, RMpS > 0) and any extra scalars ("bop", "nabs", ...), which are
recorded and written out verbatim.

Objective (the scalar the optimizer minimizes; ``R0`` = ``rmps_reference``, ``u = log10(rmps / R0)``,
``s = (q_target - q_db) / q_scale`` the Q shortfall in units of ``q_scale``, 1 dB by default):

* ``"constrained"``: minimize RMpS subject to ``q_db >= q_target``; ``R0`` (required) is the cost ceiling,
  the RMpS of the uncompressed model::

      feasible   (q_db >= q_target):  y = v / (1 + |v|),  v = min(u, 0)    in (-1, 0]
      infeasible (q_db <  q_target):  y = s / (1 + s)                      in (0, 1)

  Every feasible point scores below every infeasible one; among feasible points, cheaper is better (0 at
  ``R0``, -0.5 at R0/10, -0.67 at R0/100; a feasible point dearer than ``R0`` scores 0, like not compressing at
  all); among infeasible points, a smaller Q shortfall is better, whatever the cost (0.5 at 1 dB short, 0.9 at
  9 dB). The best point is therefore the cheapest feasible one when any is feasible (``SearchResult.best`` breaks
  ties of y by lower RMpS, then higher Q, so it is always on the Pareto front). Both maps are bounded,
  and the step at the Q boundary is about as large as the spread of the feasible scores: a GP models this far
  better than a large jump (such as 1 + shortfall), which makes it shy away from the boundary, where the
  optimum lies. On a toy problem (6 seeds) this took the cheapest feasible point found in 20 calls from about 1.3x
  to about 1.1x the optimum.
* ``"weighted"``: trade RMpS against Q linearly::

      y = weight * log10(rmps / R0) - (1 - weight) * (q_db - q_ref) / q_scale,   q_ref = q_target or 0

  With ``q_scale`` = 1 dB one decade of RMpS is worth ``weight / (1 - weight)`` dB of Q (1 dB at the default
  ``weight`` = 0.5). ``weight`` = 1 looks at RMpS only, 0 at Q only; ``q_ref`` only shifts y.

  ``rmps_reference`` may be left out here (None means 1 RMpS): R0 only shifts y.

Files in ``folder`` (the same command, run again, resumes; no pickles are involved):

* ``search.json``: ``{"format", "spec_hash", "spec", "created"}``; ``spec`` holds the space, the objective, the
  seed and the optimizer settings (not ``n_calls``: rerun with a larger ``n_calls`` to extend a study). A folder
  whose spec differs from the requested one raises :class:`SearchMismatchError` before any evaluation.
* ``evaluations.jsonl``: one JSON object per finished evaluation, appended and ``fsync``-ed before the next one
  starts: ``{"call", "params", "metrics", "objective", "feasible", "seconds", "finished", "spec_hash"}``. A torn
  last line (a kill in the middle of the write) is dropped and the file repaired on the next start; a damaged
  line anywhere else is an error.
* at the end: ``evaluations.csv`` (one row per call: params, metrics, objective, feasible, pareto, seconds),
  ``result.json`` (:meth:`SearchResult.to_dict`) and ``q_vs_rmps.png``, all written atomically.
* ``.lock``: an advisory ``flock`` so that two processes cannot run the same study at once (released by the
  kernel when a process dies, even by SIGKILL).

Determinism on resume: on start the recorded history is replayed through a fresh ``skopt.Optimizer`` built
from the same seed with the same ask/tell sequence as the original run (``ask`` then ``tell`` per record, so
the optimizer's random stream, its gp_hedge gains and its fitted GPs evolve exactly as they did); the recorded
values are told, nothing is evaluated again. With an integer ``seed``, the same skopt/scikit-learn/numpy
versions and single-threaded BLAS (enforced here), the proposals after a resume are bit-identical to those of an
uninterrupted run, and the point that was being evaluated when the run died is proposed again. Not identical:
wall times, the ``finished`` stamps, anything ``evaluate`` itself does non-deterministically (the recorded Q and
RMpS are what count), and the proposals if the library versions change between the runs (the replay then
warns that the history diverges and continues; the remaining proposals are still a deterministic function of
the seed and the recorded history). ``seed=None`` gives no determinism at all. Replaying costs one GP fit per
recorded evaluation (about 0.2-1 s each on 2 cores), which is small next to training an equalizer.

skopt's GP fits and acquisition optimization run inside ``threadpoolctl.threadpool_limits(1, "blas")`` (9x faster
than with oversubscribed BLAS threads on 2 cores); ``evaluate`` runs outside it, with the process's own settings.

An exception raised by ``evaluate`` (including ``KeyboardInterrupt``) propagates; that call is not recorded and
is proposed again on the next start.

Parallel evaluations (``executor``, :mod:`eqnn.execution`): each evaluation runs as a task of the executor,
``batch_size`` of them at once (default: the executor's worker threads; 1 in-process). ``shared`` objects (e.g.
the training windows) are passed to every call, ``evaluate(*shared, params)``, and sent once to each worker
(``executor.share``), not once per task.

* ``batch_size`` = 1 is the sequential search above, point for point (also on a Dask worker).
* ``batch_size`` = k > 1: k points are in flight. The first ``n_initial_points`` points are those of the
  sequential search (the same initial design, whatever k and whatever order the results arrive in); after them
  the optimizer is asked for as many points as there are free slots with the constant-liar strategy
  (``Optimizer.ask(n_points=m, strategy="cl_min")`` on a copy of the optimizer that has also been told the
  points still running, with the lie = the best objective so far). Each result is recorded and told as it
  arrives; ``call`` numbers follow the order of arrival, and records made this way carry ``"parallel": k``.
  Which points the GP proposes depends on the order in which results arrive, so a batched search is not
  reproducible point for point (the initial design is).
* Resume after a crash of the client, the scheduler or a worker: the records are the finished evaluations,
  each exactly once; they are told to a fresh optimizer in one batch, and the points that were running are asked
  again (initial-design points exactly, GP points as the GP proposes them on the recorded data). A worker that
  dies in the middle of a task does not even stop the search: Dask runs its task again on another worker (which
  holds its own copy of the ``shared`` objects), and only the one result is recorded.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import numbers
import os
import sys
import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence, Union

import numpy as np

FORMAT = "eqnn-search/1"
SEARCH_FILE = "search.json"
RECORDS_FILE = "evaluations.jsonl"
CSV_FILE = "evaluations.csv"
RESULT_FILE = "result.json"
PLOT_FILE = "q_vs_rmps.png"
LOCK_FILE = ".lock"

MODES = ("constrained", "weighted")
ACQ_FUNCS = ("gp_hedge", "EI", "PI", "LCB")
INITIAL_POINT_GENERATORS = ("random", "sobol", "halton", "hammersly", "lhs", "grid")


class SearchMismatchError(ValueError):
    """The folder holds a different study (another space, objective, seed or optimizer setting)."""


class SearchLockedError(RuntimeError):
    """Another process is running a search in the same folder."""


# --------------------------------------------------------------------------------------------- search space


def _check_name(kind: str, name) -> None:
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{kind} dimension: name must be a non-empty string, got {name!r}")


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


@dataclass(frozen=True)
class Integer:
    """An integer in ``[low, high]`` (both included), drawn uniformly."""

    name: str
    low: int
    high: int

    def __post_init__(self):
        _check_name("Integer", self.name)
        if not (_is_int(self.low) and _is_int(self.high)):
            raise ValueError(f"Integer {self.name!r}: low and high must be integers, got {self.low!r}, {self.high!r}")
        object.__setattr__(self, "low", int(self.low))
        object.__setattr__(self, "high", int(self.high))
        if self.low >= self.high:
            raise ValueError(f"Integer {self.name!r}: low must be < high, got low={self.low}, high={self.high}")

    def spec(self) -> dict:
        return {"type": "Integer", "name": self.name, "low": self.low, "high": self.high}

    def _skopt(self):
        from skopt.space import Integer as SkInteger

        return SkInteger(self.low, self.high, name=self.name)

    def _to_param(self, x) -> int:
        return int(x)

    def _to_skopt(self, value) -> int:
        return int(value)

    def contains(self, value) -> bool:
        return _is_int(value) and self.low <= value <= self.high


@dataclass(frozen=True)
class Real:
    """A float in ``[low, high]``, drawn uniformly or log-uniformly (``prior="log-uniform"``, needs low > 0)."""

    name: str
    low: float
    high: float
    prior: str = "uniform"

    def __post_init__(self):
        _check_name("Real", self.name)
        if not (_is_real(self.low) and _is_real(self.high)):
            raise ValueError(f"Real {self.name!r}: low and high must be numbers, got {self.low!r}, {self.high!r}")
        object.__setattr__(self, "low", float(self.low))
        object.__setattr__(self, "high", float(self.high))
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            raise ValueError(f"Real {self.name!r}: low and high must be finite, got {self.low}, {self.high}")
        if self.low >= self.high:
            raise ValueError(f"Real {self.name!r}: low must be < high, got low={self.low}, high={self.high}")
        if self.prior not in ("uniform", "log-uniform"):
            raise ValueError(f"Real {self.name!r}: prior must be 'uniform' or 'log-uniform', got {self.prior!r}")
        if self.prior == "log-uniform" and self.low <= 0:
            raise ValueError(f"Real {self.name!r}: a log-uniform prior needs low > 0, got low={self.low}")

    def spec(self) -> dict:
        return {"type": "Real", "name": self.name, "low": self.low, "high": self.high, "prior": self.prior}

    def _skopt(self):
        from skopt.space import Real as SkReal

        return SkReal(self.low, self.high, prior=self.prior, name=self.name)

    def _to_param(self, x) -> float:
        return float(x)

    def _to_skopt(self, value) -> float:
        return float(value)

    def contains(self, value) -> bool:
        return _is_real(value) and self.low <= value <= self.high


@dataclass(frozen=True)
class Categorical:
    """One of ``choices`` (JSON scalars: str, int, float, bool or None; distinct; order is irrelevant).

    skopt sees the indices of the choices, so mixed types (``[2, 4, "none"]``) come back unchanged.
    """

    name: str
    choices: tuple

    def __post_init__(self):
        _check_name("Categorical", self.name)
        if isinstance(self.choices, (str, bytes)) or not isinstance(self.choices, Iterable):
            raise ValueError(f"Categorical {self.name!r}: choices must be a list or tuple, got {self.choices!r}")
        choices = tuple(self.choices)
        if not choices:
            raise ValueError(f"Categorical {self.name!r}: choices must not be empty")
        clean = []
        for c in choices:
            if isinstance(c, np.generic):
                c = c.item()
            if not (c is None or isinstance(c, (str, bool, int, float))):
                raise ValueError(f"Categorical {self.name!r}: choices must be str, int, float, bool or None, got {c!r}")
            if isinstance(c, float) and not math.isfinite(c):
                raise ValueError(f"Categorical {self.name!r}: choice {c!r} is not finite")
            clean.append(c)
        keys = [_choice_key(c) for c in clean]
        if len(set(keys)) != len(keys):
            raise ValueError(f"Categorical {self.name!r}: choices must be distinct, got {list(clean)!r}")
        object.__setattr__(self, "choices", tuple(clean))

    def spec(self) -> dict:
        return {"type": "Categorical", "name": self.name, "choices": list(self.choices)}

    def _skopt(self):
        from skopt.space import Categorical as SkCategorical

        return SkCategorical(list(range(len(self.choices))), name=self.name)

    def _to_param(self, x):
        return self.choices[int(x)]

    def _to_skopt(self, value) -> int:
        key = _choice_key(value)
        for i, c in enumerate(self.choices):
            if _choice_key(c) == key:
                return i
        raise ValueError(f"Categorical {self.name!r}: {value!r} is not one of {list(self.choices)!r}")

    def contains(self, value) -> bool:
        return any(_choice_key(c) == _choice_key(value) for c in self.choices)


def _choice_key(value):
    """Equality that tells True from 1 and 1 from 1.0 (JSON keeps these types apart too)."""
    return (type(value).__name__, value)


Dimension = Union[Integer, Real, Categorical]


def _dimension_from_spec(spec: Mapping) -> Dimension:
    kind = spec.get("type")
    if kind == "Integer":
        return Integer(spec["name"], spec["low"], spec["high"])
    if kind == "Real":
        return Real(spec["name"], spec["low"], spec["high"], spec.get("prior", "uniform"))
    if kind == "Categorical":
        return Categorical(spec["name"], tuple(spec["choices"]))
    raise ValueError(f"unknown dimension type {kind!r} in {spec!r}")


def check_space(space: Sequence[Dimension]) -> tuple[Dimension, ...]:
    """Validate a search space (non-empty, typed dimensions, distinct names) and return it as a tuple."""
    if isinstance(space, (Integer, Real, Categorical)):
        raise ValueError("space must be a list of dimensions, got a single dimension; wrap it in a list")
    if space is None or isinstance(space, (str, bytes, Mapping)) or not isinstance(space, Iterable):
        raise ValueError(f"space must be a list of Integer/Real/Categorical dimensions, got {space!r}")
    dims = tuple(space)
    if not dims:
        raise ValueError("space is empty: give at least one Integer, Real or Categorical dimension")
    seen = set()
    for i, d in enumerate(dims):
        if not isinstance(d, (Integer, Real, Categorical)):
            raise ValueError(f"space[{i}] must be an Integer, Real or Categorical from eqnn.search, got {d!r}")
        if d.name in seen:
            raise ValueError(f"space: duplicate dimension name {d.name!r}")
        seen.add(d.name)
    return dims


def _to_params(dims: Sequence[Dimension], x) -> dict:
    return {d.name: d._to_param(v) for d, v in zip(dims, x)}


def _to_skopt_point(dims: Sequence[Dimension], params: Mapping) -> list:
    return [d._to_skopt(params[d.name]) for d in dims]


# --------------------------------------------------------------------------------------------- objective


def _finite(name: str, value, what: str) -> float:
    if not _is_real(value) or not math.isfinite(float(value)):
        raise ValueError(f"{what}: {name} must be a finite number, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class Objective:
    """How ``evaluate``'s Q (dB) and RMpS become the scalar that the optimizer minimizes (see the module doc).

    ``mode``: "constrained" (minimize RMpS subject to ``q_db >= q_target``; ``q_target`` required) or "weighted"
    (``weight`` * log10 RMpS/R0 - (1 - ``weight``) * Q gain / ``q_scale``). ``rmps_reference`` (R0) normalizes
    RMpS: required for "constrained", where it is the cost ceiling (the uncompressed model's RMpS); None means 1
    in "weighted", where it only shifts y. ``q_scale`` (dB) normalizes Q differences.
    """

    mode: str = "constrained"
    q_target: float | None = None
    weight: float = 0.5
    rmps_reference: float | None = None
    q_scale: float = 1.0

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"Objective: unknown mode {self.mode!r}; use one of {', '.join(MODES)}")
        if self.q_target is not None:
            object.__setattr__(self, "q_target", _finite("q_target", self.q_target, "Objective"))
        elif self.mode == "constrained":
            raise ValueError("Objective: mode 'constrained' needs q_target (the minimum Q-factor in dB)")
        weight = _finite("weight", self.weight, "Objective")
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"Objective: weight must be in [0, 1], got {weight}")
        object.__setattr__(self, "weight", weight)
        if self.rmps_reference is None:
            if self.mode == "constrained":
                raise ValueError(
                    "Objective: mode 'constrained' needs rmps_reference (the RMpS ceiling: the RMpS of the "
                    "uncompressed model)"
                )
        else:
            ref = _finite("rmps_reference", self.rmps_reference, "Objective")
            if ref <= 0:
                raise ValueError(f"Objective: rmps_reference must be > 0, got {ref}")
            object.__setattr__(self, "rmps_reference", ref)
        q_scale = _finite("q_scale", self.q_scale, "Objective")
        if q_scale <= 0:
            raise ValueError(f"Objective: q_scale must be > 0 dB, got {q_scale}")
        object.__setattr__(self, "q_scale", q_scale)

    @classmethod
    def constrained(cls, q_target: float, rmps_reference: float, *, q_scale: float = 1.0):
        """Minimize RMpS subject to Q >= ``q_target`` dB; ``rmps_reference``: e.g. the uncompressed model's RMpS."""
        return cls("constrained", q_target=q_target, rmps_reference=rmps_reference, q_scale=q_scale)

    @classmethod
    def weighted(
        cls,
        weight: float = 0.5,
        *,
        rmps_reference: float | None = None,
        q_scale: float = 1.0,
        q_target: float | None = None,
    ):
        """Minimize ``weight`` * log10(RMpS/R0) - (1 - ``weight``) * (Q - q_ref) / ``q_scale``."""
        return cls("weighted", q_target=q_target, weight=weight, rmps_reference=rmps_reference, q_scale=q_scale)

    def spec(self) -> dict:
        return dataclasses.asdict(self)

    def feasible(self, metrics: Mapping) -> bool | None:
        """``q_db >= q_target``, or None without a ``q_target``."""
        if self.q_target is None:
            return None
        return bool(float(metrics["q_db"]) >= self.q_target)

    def value(self, metrics: Mapping) -> float:
        """The scalar to minimize for ``metrics`` (``q_db``, ``rmps``), see the module documentation."""
        ref = self.rmps_reference if self.rmps_reference is not None else 1.0
        q = _finite("q_db", metrics.get("q_db"), "Objective.value")
        rmps = _finite("rmps", metrics.get("rmps"), "Objective.value")
        if rmps <= 0:
            raise ValueError(f"Objective.value: rmps must be > 0, got {rmps}")
        u = math.log10(rmps / float(ref))
        if self.mode == "constrained":
            if q >= self.q_target:
                v = min(u, 0.0)
                return v / (1.0 + abs(v))
            shortfall = (self.q_target - q) / self.q_scale
            return shortfall / (1.0 + shortfall)
        q_ref = self.q_target if self.q_target is not None else 0.0
        return self.weight * u - (1.0 - self.weight) * (q - q_ref) / self.q_scale


# --------------------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Evaluation:
    """One finished call of ``evaluate``."""

    call: int
    params: dict
    metrics: dict
    objective: float
    feasible: bool | None
    seconds: float
    finished: str = ""

    @property
    def q_db(self) -> float:
        return float(self.metrics["q_db"])

    @property
    def rmps(self) -> float:
        return float(self.metrics["rmps"])

    def to_dict(self) -> dict:
        return {
            "call": self.call,
            "params": dict(self.params),
            "metrics": dict(self.metrics),
            "objective": self.objective,
            "feasible": self.feasible,
            "seconds": self.seconds,
            "finished": self.finished,
        }


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the non-dominated ``(rmps, q_db)`` points (minimize RMpS, maximize Q), sorted by RMpS.

    A point is dominated when another has RMpS <= and Q >= with at least one strict. Of exactly equal points only
    the first is kept. Along the returned front, RMpS and Q both strictly increase.
    """
    pts = [(float(r), float(q)) for r, q in points]
    order = sorted(range(len(pts)), key=lambda i: (pts[i][0], -pts[i][1], i))
    front: list[int] = []
    best_q = -math.inf
    for i in order:
        if pts[i][1] > best_q:
            front.append(i)
            best_q = pts[i][1]
    return front


def _best_key(e: Evaluation) -> tuple:
    """Sort key of :attr:`SearchResult.best`: objective, then lower RMpS, higher Q, earlier call."""
    return (e.objective, e.rmps, -e.q_db, e.call)


@dataclass
class SearchResult:
    """All evaluations of a study, in call order, with the views a reader asks for."""

    evaluations: list[Evaluation]
    space: tuple[Dimension, ...]
    objective: Objective
    spec: dict = field(default_factory=dict)
    spec_hash: str = ""
    folder: Path | None = None
    n_new: int = 0

    @property
    def best(self) -> Evaluation | None:
        """The lowest objective value; for "constrained" the cheapest feasible point if any.

        Ties of the objective are common (under "constrained" every feasible point at or above the RMpS ceiling
        scores 0, and infeasible points score by their Q alone): they are broken by lower RMpS, then higher Q,
        then earlier call. The best point is therefore always on :attr:`pareto`: in both modes the objective never
        gets better with higher RMpS or lower Q, so a point that dominates the best would score at most as well,
        i.e. tie with it, and win the tie-break. For "constrained" with a feasible point, ``best`` is
        :attr:`cheapest_feasible`.
        """
        if not self.evaluations:
            return None
        return min(self.evaluations, key=_best_key)

    @property
    def cheapest_feasible(self) -> Evaluation | None:
        """Lowest RMpS among the evaluations with Q >= q_target (higher Q, then earlier call on ties)."""
        if self.objective.q_target is None:
            return None
        ok = [e for e in self.evaluations if e.q_db >= self.objective.q_target]
        if not ok:
            return None
        return min(ok, key=lambda e: (e.rmps, -e.q_db, e.call))

    @property
    def pareto(self) -> list[Evaluation]:
        """The Q-versus-RMpS Pareto front over all evaluations, sorted by RMpS."""
        idx = pareto_front([(e.rmps, e.q_db) for e in self.evaluations])
        return [self.evaluations[i] for i in idx]

    def to_dict(self) -> dict:
        best = self.best
        cheapest = self.cheapest_feasible
        return {
            "format": FORMAT,
            "spec_hash": self.spec_hash,
            "spec": self.spec,
            "objective": self.objective.spec(),
            "n_evaluations": len(self.evaluations),
            "n_feasible": None if self.objective.q_target is None else sum(1 for e in self.evaluations if e.feasible),
            "best": best.to_dict() if best else None,
            "cheapest_feasible": cheapest.to_dict() if cheapest else None,
            "pareto_calls": [e.call for e in self.pareto],
            "evaluations": [e.to_dict() for e in self.evaluations],
        }

    def csv_rows(self) -> list[dict]:
        names = [d.name for d in self.space]
        reserved = set(names) | {"call", "objective", "feasible", "pareto", "seconds"}
        on_front = {e.call for e in self.pareto}
        rows = []
        for e in self.evaluations:
            row = {"call": e.call}
            row.update({n: e.params.get(n) for n in names})
            for k, v in e.metrics.items():
                row[f"metric:{k}" if k in reserved else k] = v
            row.update(objective=e.objective, feasible=e.feasible, pareto=e.call in on_front, seconds=e.seconds)
            rows.append(row)
        return rows

    def write_csv(self, path: str | Path) -> Path:
        from eqnn.report import write_csv

        rows = self.csv_rows()
        if not rows:
            names = ["call", *[d.name for d in self.space], "q_db", "rmps", "objective", "feasible", "pareto"]
            return write_csv(path, [], columns=names)
        return write_csv(path, rows)

    def write_json(self, path: str | Path) -> Path:
        from eqnn.report import write_json

        return write_json(path, self.to_dict())

    def plot(self, path: str | Path, references: Mapping[str, tuple[float, float]] | None = None, title: str = ""):
        """Q versus RMpS (log x): every evaluation, the Pareto front as a step line, the best point, references.

        ``references``: ``{"CDC": (rmps, q_db), "DBP-1": (rmps, q_db)}``, drawn as labelled markers.
        """
        references = _check_references(references)
        from eqnn.report import new_figure, save_figure

        fig, ax = new_figure()  # the caller's matplotlib backend and figures are untouched
        evs = self.evaluations
        if evs:
            feasible = [e for e in evs if e.feasible is not False]
            infeasible = [e for e in evs if e.feasible is False]
            if feasible:
                ax.plot(
                    [e.rmps for e in feasible],
                    [e.q_db for e in feasible],
                    "o",
                    color="C0",
                    ms=4,
                    alpha=0.6,
                    label=f"evaluations ({len(evs)})" if not infeasible else f"Q >= target ({len(feasible)})",
                )
            if infeasible:
                ax.plot(
                    [e.rmps for e in infeasible],
                    [e.q_db for e in infeasible],
                    "o",
                    color="0.6",
                    ms=4,
                    alpha=0.6,
                    label=f"Q < target ({len(infeasible)})",
                )
            front = self.pareto
            ax.step(
                [e.rmps for e in front],
                [e.q_db for e in front],
                where="post",
                color="C1",
                lw=1.5,
                label=f"Pareto front ({len(front)})",
            )
            best = self.best
            ax.plot(
                [best.rmps],
                [best.q_db],
                "*",
                color="C3",
                ms=14,
                mec="k",
                mew=0.6,
                zorder=5,
                label=f"best (call {best.call})",
            )
        if self.objective.q_target is not None:
            ax.axhline(
                self.objective.q_target, color="k", ls="--", lw=0.8, label=f"Q target {self.objective.q_target:g} dB"
            )
        markers = "sD^vP<>"
        for i, (name, (r, q)) in enumerate(references.items()):
            ax.plot([r], [q], markers[i % len(markers)], color=f"C{(i + 4) % 10}", ms=8, mec="k", mew=0.6, zorder=4)
            ax.annotate(name, (r, q), textcoords="offset points", xytext=(6, 4), fontsize="small")
        ax.set_xscale("log")
        ax.set_xlabel("real multiplications per symbol (RMpS)")
        ax.set_ylabel("Q-factor (dB)")
        ax.grid(True, which="both", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
        if title:
            ax.set_title(title, fontsize="medium")
        return save_figure(fig, path)

    def write(self, folder: str | Path | None = None, references=None, title: str = "") -> dict[str, Path]:
        """Write ``evaluations.csv``, ``result.json`` and ``q_vs_rmps.png`` into ``folder`` (default: the study's)."""
        folder = Path(folder) if folder is not None else self.folder
        if folder is None:
            raise ValueError("SearchResult.write: no folder given and the result has none")
        return {
            "csv": self.write_csv(folder / CSV_FILE),
            "json": self.write_json(folder / RESULT_FILE),
            "plot": self.plot(folder / PLOT_FILE, references=references, title=title),
        }

    def summary(self) -> str:
        n = len(self.evaluations)
        lines = [f"search: {n} evaluations ({self.n_new} new)" + (f" in {self.folder}" if self.folder else "")]
        best = self.best
        if best is not None:
            lines.append(
                f"  best: call {best.call}, Q {best.q_db:.2f} dB, RMpS {best.rmps:.4g}, objective {best.objective:.4g},"
                f" params {best.params}"
            )
        if self.objective.q_target is not None:
            cheapest = self.cheapest_feasible
            if cheapest is None:
                lines.append(f"  no evaluation reached the Q target {self.objective.q_target:g} dB")
            elif cheapest is not best:
                lines.append(
                    f"  cheapest with Q >= {self.objective.q_target:g} dB: call {cheapest.call},"
                    f" RMpS {cheapest.rmps:.4g}, Q {cheapest.q_db:.2f} dB"
                )
        if n:
            front = ", ".join(f"{e.rmps:.3g}/{e.q_db:.2f}" for e in self.pareto)
            lines.append(f"  Pareto front (RMpS/Q dB): {front}")
        return "\n".join(lines)


def _check_references(references) -> dict[str, tuple[float, float]]:
    if references is None:
        return {}
    if not isinstance(references, Mapping):
        raise ValueError(f"references must be a dict name -> (rmps, q_db), got {references!r}")
    out = {}
    for name, pair in references.items():
        try:
            r, q = pair
        except (TypeError, ValueError):
            raise ValueError(f"reference {name!r}: expected (rmps, q_db), got {pair!r}") from None
        r = _finite("rmps", r, f"reference {name!r}")
        q = _finite("q_db", q, f"reference {name!r}")
        if r <= 0:
            raise ValueError(f"reference {name!r}: rmps must be > 0 for the log axis, got {r}")
        out[str(name)] = (r, q)
    return out


# --------------------------------------------------------------------------------------------- storage


def _spec_hash(spec: Mapping) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _jsonable(value):
    """Metrics as JSON: numpy scalars become Python scalars, arrays lists, anything else its str() (non-finite
    floats are kept: a record may hold NaN). :func:`eqnn.report.jsonable` is the one conversion."""
    from eqnn.report import jsonable

    return jsonable(value, nan="keep", unknown="str")


def _clean_metrics(metrics, call: int) -> dict:
    if not isinstance(metrics, Mapping):
        raise TypeError(
            f"evaluate() must return a dict with q_db and rmps, got {type(metrics).__name__} at call {call}"
        )
    out = {str(k): _jsonable(v) for k, v in metrics.items()}
    for key in ("q_db", "rmps"):
        if key not in out:
            raise ValueError(f"evaluate() returned no {key!r} at call {call} (got keys {sorted(out)})")
        v = out[key]
        if not _is_real(v) or not math.isfinite(v):
            raise ValueError(
                f"evaluate() returned {key}={metrics[key]!r} at call {call}: it must be a finite number"
                + ("; report an estimate (e.g. Q from the SNR) where Q cannot be counted" if key == "q_db" else "")
            )
        out[key] = float(v)
    if out["rmps"] <= 0:
        raise ValueError(f"evaluate() returned rmps={out['rmps']} at call {call}: it must be > 0")
    return out


@contextlib.contextmanager
def _folder_lock(folder: Path):
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no protection against two concurrent runs
        yield
        return
    fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise SearchLockedError(f"another search is running in {folder} (it holds {folder / LOCK_FILE})") from None
        yield
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _spec_differences(old: Mapping, new: Mapping) -> list[str]:
    keys = sorted(set(old) | set(new))
    return [k for k in keys if old.get(k) != new.get(k)]


def _read_records(path: Path, dims: Sequence[Dimension], spec_hash: str) -> tuple[list[dict], bool]:
    """Records of ``evaluations.jsonl`` and whether the file needs repair (torn last line / missing newline)."""
    if not path.exists():
        return [], False
    data = path.read_bytes()
    parts = data.split(b"\n")
    tail = parts.pop()  # after the last newline: b"" for a clean file, else an unterminated (maybe torn) line
    lines = [(i + 1, p) for i, p in enumerate(parts) if p.strip()]
    repair = bool(tail.strip())
    if tail.strip():
        lines.append((len(parts) + 1, tail))
    records = []
    for pos, (lineno, raw) in enumerate(lines):
        last = pos == len(lines) - 1
        try:
            rec = json.loads(raw.decode("utf-8"))
            if not isinstance(rec, dict):
                raise ValueError("not an object")
        except (UnicodeDecodeError, ValueError):
            if last:  # a write cut short by a kill: the evaluation it held is not committed
                warnings.warn(f"{path}: ignoring the torn last line {lineno} (a run was killed while writing it)")
                repair = True
                break
            raise ValueError(f"{path}: line {lineno} is not valid JSON; the file is damaged") from None
        _check_record(rec, len(records), dims, spec_hash, f"{path}: line {lineno}")
        records.append(rec)
    return records, repair


def _check_record(rec: Mapping, expected_call: int, dims: Sequence[Dimension], spec_hash: str, where: str) -> None:
    for key in ("call", "params", "metrics", "objective"):
        if key not in rec:
            raise ValueError(f"{where}: record has no {key!r}")
    if rec.get("spec_hash", spec_hash) != spec_hash:
        raise SearchMismatchError(f"{where}: record belongs to another study (spec_hash {rec.get('spec_hash')})")
    if rec["call"] != expected_call:
        raise ValueError(f"{where}: expected call {expected_call}, found call {rec['call']!r} (records must be dense)")
    params = rec["params"]
    names = [d.name for d in dims]
    if not isinstance(params, dict) or sorted(params) != sorted(names):
        raise SearchMismatchError(f"{where}: params {params!r} do not match the space {names}")
    for d in dims:
        if not d.contains(params[d.name]):
            raise SearchMismatchError(f"{where}: {d.name}={params[d.name]!r} is outside the space ({d.spec()})")
    _clean_metrics(rec["metrics"], rec["call"])


def _record_bytes(rec: Mapping) -> bytes:
    return (json.dumps(rec, allow_nan=False) + "\n").encode("utf-8")


def _evaluation(rec: Mapping) -> Evaluation:
    return Evaluation(
        call=int(rec["call"]),
        params=dict(rec["params"]),
        metrics=dict(rec["metrics"]),
        objective=float(rec["objective"]),
        feasible=rec.get("feasible"),
        seconds=float(rec.get("seconds", float("nan"))),
        finished=str(rec.get("finished", "")),
    )


def load(folder: str | Path) -> SearchResult:
    """The study recorded in ``folder`` (``search.json`` + ``evaluations.jsonl``), without running anything."""
    folder = Path(folder)
    header_path = folder / SEARCH_FILE
    if not header_path.exists():
        raise FileNotFoundError(f"{header_path} not found: {folder} holds no search")
    header = json.loads(header_path.read_text())
    spec = header["spec"]
    dims = check_space([_dimension_from_spec(s) for s in spec["space"]])
    objective = Objective(**spec["objective"])
    records, _ = _read_records(folder / RECORDS_FILE, dims, header["spec_hash"])
    return SearchResult(
        evaluations=[_evaluation(r) for r in records],
        space=dims,
        objective=objective,
        spec=spec,
        spec_hash=header["spec_hash"],
        folder=folder,
    )


# --------------------------------------------------------------------------------------------- the search


def search(
    evaluate: Callable[[dict], Mapping[str, Any]],
    space: Sequence[Dimension],
    *,
    n_calls: int,
    objective: Objective,
    folder: str | Path,
    n_initial_points: int = 10,
    seed: int | None = 0,
    acq_func: str = "gp_hedge",
    initial_point_generator: str = "random",
    optimizer_kwargs: Mapping[str, Any] | None = None,
    references: Mapping[str, tuple[float, float]] | None = None,
    progress: bool = True,
    executor: Any = None,
    shared: Sequence[Any] = (),
    batch_size: int | None = None,
) -> SearchResult:
    """Minimize ``objective`` over ``space`` with a GP (``skopt.Optimizer``, ask/tell) until ``n_calls``
    evaluations exist in ``folder``, resuming whatever the folder already holds.

    ``n_initial_points`` random (or ``initial_point_generator``) points come before the GP; ``acq_func`` is
    "gp_hedge" (default), "EI", "PI" or "LCB"; ``optimizer_kwargs`` go to ``skopt.Optimizer`` as they are
    (JSON values, e.g. ``{"acq_optimizer": "sampling", "acq_optimizer_kwargs": {"n_points": 2000}}``). These,
    the space, the objective and the seed make up the study's spec: a folder holding another spec raises
    :class:`SearchMismatchError`.
    ``references`` (``{"CDC": (rmps, q_db)}``) are drawn on the plot. ``progress``: a tqdm bar and a summary on
    stderr. ``executor`` (:mod:`eqnn.execution`; None: direct calls), ``shared`` (objects passed before
    ``params``: ``evaluate(*shared, params)``, sent once per worker) and ``batch_size`` (evaluations at once,
    default the executor's slots): parallel evaluations, see the module documentation; with a remote executor
    ``evaluate`` and ``shared`` must be picklable. Every argument is checked before anything is evaluated or
    written. A folder that already holds
    ``n_calls`` or more evaluations is only reported (all its evaluations), nothing is evaluated.
    """
    # ---- every check before any file or evaluation
    if not callable(evaluate):
        raise ValueError(f"evaluate must be callable, got {evaluate!r}")
    if not _is_int(n_calls) or n_calls < 1:
        raise ValueError(f"n_calls must be an integer >= 1, got {n_calls!r}")
    dims = check_space(space)
    if not isinstance(objective, Objective):
        raise ValueError(f"objective must be an eqnn.search.Objective, got {objective!r}")
    if not _is_int(n_initial_points) or n_initial_points < 1:
        raise ValueError(f"n_initial_points must be an integer >= 1, got {n_initial_points!r}")
    if seed is not None and not _is_int(seed):
        raise ValueError(f"seed must be an integer or None, got {seed!r}")
    if acq_func not in ACQ_FUNCS:
        raise ValueError(f"acq_func must be one of {', '.join(ACQ_FUNCS)}, got {acq_func!r}")
    if initial_point_generator not in INITIAL_POINT_GENERATORS:
        raise ValueError(
            f"initial_point_generator must be one of {', '.join(INITIAL_POINT_GENERATORS)}, "
            f"got {initial_point_generator!r}"
        )
    optimizer_kwargs = dict(optimizer_kwargs or {})
    clash = {
        "dimensions",
        "base_estimator",
        "n_initial_points",
        "initial_point_generator",
        "acq_func",
        "random_state",
    } & set(optimizer_kwargs)
    if clash:
        raise ValueError(f"optimizer_kwargs must not set {sorted(clash)}: they are arguments of search()")
    try:
        json.dumps(optimizer_kwargs, allow_nan=False)
    except (TypeError, ValueError):
        raise ValueError(f"optimizer_kwargs must hold JSON values, got {optimizer_kwargs!r}") from None
    references = _check_references(references)
    if not isinstance(shared, (list, tuple)):
        raise ValueError(f"shared must be a list or tuple of objects passed to evaluate, got {type(shared).__name__}")
    if batch_size is not None and (not _is_int(batch_size) or batch_size < 1):
        raise ValueError(f"batch_size must be an integer >= 1 (evaluations at once) or None, got {batch_size!r}")
    if folder is None:
        raise ValueError("folder is required: the evaluations are recorded there")
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"folder {folder} exists and is not a directory")

    spec = {
        "space": [d.spec() for d in dims],
        "objective": objective.spec(),
        "seed": None if seed is None else int(seed),
        "n_initial_points": int(n_initial_points),
        "base_estimator": "GP",
        "acq_func": acq_func,
        "initial_point_generator": initial_point_generator,
        "optimizer_kwargs": optimizer_kwargs,
    }
    spec_hash = _spec_hash(spec)
    header_path = folder / SEARCH_FILE
    records_path = folder / RECORDS_FILE

    try:  # skopt's own checks (e.g. an unknown optimizer_kwargs key) before anything is written
        _optimizer(dims, spec)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"skopt.Optimizer rejects these settings: {exc}") from exc
    _check_header(folder, spec, spec_hash)  # a folder holding another study: refused before any write
    folder.mkdir(parents=True, exist_ok=True)
    with _folder_lock(folder):
        _check_header(folder, spec, spec_hash)  # again, now that no other process can write it
        if not header_path.exists():
            from eqnn.report import write_json

            write_json(header_path, {"format": FORMAT, "spec_hash": spec_hash, "spec": spec, "created": _now()})
            _fsync_dir(folder)
        records, repair = _read_records(records_path, dims, spec_hash)
        if repair:
            from channel.storage import write_bytes_atomic

            write_bytes_atomic(records_path, b"".join(_record_bytes(r) for r in records))
        runner = _Runner(evaluate, tuple(shared), executor, batch_size)
        result = _run(runner, dims, objective, spec, spec_hash, folder, records, n_calls, progress)
        result.write(references=references)
    if progress:
        print(result.summary(), file=sys.stderr)
    return result


def _optimizer(dims: Sequence[Dimension], spec: Mapping):
    from skopt import Optimizer

    return Optimizer(
        [d._skopt() for d in dims],
        base_estimator="GP",
        n_initial_points=spec["n_initial_points"],
        initial_point_generator=spec["initial_point_generator"],
        acq_func=spec["acq_func"],
        random_state=spec["seed"],
        **spec["optimizer_kwargs"],
    )


def _check_header(folder: Path, spec: Mapping, spec_hash: str) -> None:
    header_path = folder / SEARCH_FILE
    records_path = folder / RECORDS_FILE
    if header_path.exists():
        try:
            header = json.loads(header_path.read_text())
        except ValueError:
            raise SearchMismatchError(f"{header_path} is not valid JSON; use another folder") from None
        if header.get("spec_hash") != spec_hash:
            stored = header.get("spec", {})
            diff = _spec_differences(stored, spec)
            raise SearchMismatchError(
                f"{folder} holds a different search ({', '.join(diff) or 'spec'} differ; stored: "
                + "; ".join(f"{k}={stored.get(k)!r}" for k in diff)
                + "); use another folder, or delete this one to start over"
            )
    elif records_path.exists() and records_path.stat().st_size > 0:
        raise SearchMismatchError(
            f"{folder} holds {RECORDS_FILE} without {SEARCH_FILE}: not a search started by eqnn.search; "
            "use another folder"
        )


def _timed(evaluate: Callable, *args) -> tuple[Any, float]:
    """``evaluate(*args)`` and its wall time in seconds, measured where it runs (in a task: on the worker)."""
    start = time.perf_counter()
    metrics = evaluate(*args)
    return metrics, time.perf_counter() - start


class _Runner:
    """How the evaluations run: direct calls (no executor), or tasks of an :mod:`eqnn.execution` executor whose
    ``shared`` objects are sent once (``executor.share``) before the first task."""

    def __init__(self, evaluate: Callable, shared: tuple, executor: Any, batch_size: int | None):
        if executor is None and batch_size not in (None, 1):
            from eqnn.execution import InProcess

            executor = InProcess()
        self.evaluate, self.shared, self.executor, self.batch_size = evaluate, shared, executor, batch_size
        self._handles: list | None = None

    def batch(self) -> int:
        """Evaluations at once: ``batch_size``, else the executor's slots, else 1."""
        if self.batch_size is not None:
            return int(self.batch_size)
        return self.executor.slots if self.executor is not None else 1

    def submit(self, params: dict):
        if self._handles is None:
            self._handles = [self.executor.share(obj) for obj in self.shared]
        return self.executor.submit(_timed, self.evaluate, *self._handles, params)

    def call(self, params: dict) -> tuple[Any, float]:
        if self.executor is None:
            return _timed(self.evaluate, *self.shared, params)
        return self.submit(params).result()


def _one_blas_thread():
    # skopt's GP fits and acquisition optimization: 9x faster on 2 cores with one BLAS thread. evaluate() runs
    # outside, with the threads it chooses.
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1, "blas")


def _params_key(params: Mapping) -> str:
    return json.dumps(dict(params), sort_keys=True)


def _initial_design(dims: Sequence[Dimension], spec: Mapping) -> list[dict]:
    """The first ``n_initial_points`` points of the sequential search: they do not depend on the results (skopt
    tells them without fitting), so a fresh optimizer told dummy values proposes exactly them."""
    opt = _optimizer(dims, spec)
    design = []
    for _ in range(spec["n_initial_points"]):
        x = opt.ask()
        design.append(_to_params(dims, x))
        opt.tell(x, 0.0, fit=False)
    return design


def _ask_batch(opt, dims: Sequence[Dimension], m: int, design: list[dict], recorded: list[dict],
               running: list[dict]) -> list[dict]:
    """``m`` new points: the initial-design points neither recorded nor running first, then constant-liar points
    (``ask(n_points, strategy="cl_min")``) of a copy of ``opt`` that has been told the running and the chosen
    points with the lie ``min(y)`` (skopt's CL-min lie)."""
    taken = {_params_key(p) for p in [*recorded, *running]}
    chosen = [p for p in design if _params_key(p) not in taken][:m]
    if len(chosen) < m:
        liar = opt.copy(random_state=opt.rng.randint(0, np.iinfo(np.int32).max))
        lies = [_to_skopt_point(dims, p) for p in [*running, *chosen]]
        if lies:
            liar.tell(lies, [float(np.min(opt.yi)) if opt.yi else 0.0] * len(lies))
        chosen += [_to_params(dims, x) for x in liar.ask(n_points=m - len(chosen), strategy="cl_min")]
    return chosen


def _replay(opt, dims, records: list[dict], folder: Path, seed) -> None:
    """Tell the recorded history with the ask/tell sequence of the original sequential run (module doc); warn if
    the proposals diverge from it (not for a history made by a batched search, which has no such sequence)."""
    diverged = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for rec in records:
            asked = _to_params(dims, opt.ask())
            if diverged is None and asked != rec["params"]:
                diverged = rec["call"]
            opt.tell(_to_skopt_point(dims, rec["params"]), rec["objective_value"])
    batched = any(rec.get("parallel", 1) > 1 for rec in records)
    if diverged is not None and seed is not None and not batched:  # without a seed nothing is reproducible anyway
        warnings.warn(
            f"{folder}: the recorded history diverges from this optimizer's proposals at call {diverged} "
            "(another skopt/scikit-learn version or seed?); the remaining proposals are deterministic but "
            "differ from an uninterrupted run"
        )


def _run(runner: _Runner, dims, objective, spec, spec_hash, folder, records, n_calls, progress) -> SearchResult:
    from tqdm.auto import tqdm

    records = list(records)
    n_old = len(records)
    evaluations = [_evaluation(r) for r in records]
    batch = runner.batch() if n_old < n_calls else 1

    def best_so_far():
        return min(evaluations, key=_best_key) if evaluations else None

    with _one_blas_thread():
        opt = _optimizer(dims, spec)
        if n_old < n_calls:  # nothing left to ask: no replay needed
            told = [{**r, "objective_value": objective.value(r["metrics"])} for r in records]
            if batch == 1:
                _replay(opt, dims, told, folder, spec["seed"])
            elif told:  # a batched search has no ask sequence to replay: the finished evaluations, in one batch
                opt.tell([_to_skopt_point(dims, r["params"]) for r in told], [r["objective_value"] for r in told])

    bar = tqdm(
        total=max(n_calls, n_old),
        initial=n_old,
        desc="search" if batch == 1 else f"search ({batch} at once)",
        unit="eval",
        disable=not progress,
        dynamic_ncols=True,
        file=sys.stderr,
    )
    try:
        _postfix(bar, evaluations[-1] if evaluations else None, best_so_far())
        bar.refresh()
        with open(folder / RECORDS_FILE, "ab") as log:
            if n_old == 0:
                _fsync_dir(folder)

            def commit(params: dict, metrics, seconds: float, extra: Mapping) -> float:
                """Record one finished evaluation (one write of one line, fsync-ed); its objective value."""
                call = len(records)
                metrics = _clean_metrics(metrics, call)
                y = objective.value(metrics)
                rec = {
                    "call": call,
                    "params": params,
                    "metrics": metrics,
                    "objective": y,
                    "feasible": objective.feasible(metrics),
                    "seconds": seconds,
                    "finished": _now(),
                    "spec_hash": spec_hash,
                    **extra,
                }
                log.write(_record_bytes(rec))  # a kill leaves at most a torn last line
                log.flush()
                os.fsync(log.fileno())
                records.append(rec)
                evaluations.append(_evaluation(rec))
                _postfix(bar, evaluations[-1], best_so_far())
                bar.update(1)
                return y

            if batch == 1:
                _sequential(runner, opt, dims, commit, n_old, n_calls)
            else:
                _batched(runner, opt, dims, spec, commit, records, n_calls, batch)
    except KeyboardInterrupt:
        bar.close()  # before the message, so that the two do not overwrite each other
        if progress:
            print(
                f"search interrupted after {len(records)} evaluations recorded in {folder}; "
                "run the same command again to resume",
                file=sys.stderr,
            )
        raise
    finally:
        bar.close()

    return SearchResult(
        evaluations=evaluations,
        space=tuple(dims),
        objective=objective,
        spec=spec,
        spec_hash=spec_hash,
        folder=folder,
        n_new=len(records) - n_old,
    )


def _sequential(runner: _Runner, opt, dims, commit: Callable, n_old: int, n_calls: int) -> None:
    """One evaluation at a time: ask, evaluate, record, tell (the ask/tell sequence that a resume replays)."""
    for call in range(n_old, n_calls):
        with _one_blas_thread():
            params = _to_params(dims, opt.ask())
        metrics, seconds = runner.call(dict(params))
        y = commit(params, metrics, seconds, {})
        if call < n_calls - 1:  # the last tell would only fit a GP nobody asks
            with _one_blas_thread():
                opt.tell(_to_skopt_point(dims, params), y)


def _batched(runner: _Runner, opt, dims, spec, commit: Callable, records: list, n_calls: int, batch: int) -> None:
    """``batch`` evaluations in flight: fill the free slots (:func:`_ask_batch`), record and tell each result as
    it arrives. A failed evaluation propagates; the running ones are cancelled (asked again on resume)."""
    design = _initial_design(dims, spec)
    running: dict = {}  # future -> params
    try:
        while len(records) < n_calls:
            free = min(batch - len(running), n_calls - len(records) - len(running))
            if free > 0:
                with _one_blas_thread():
                    new = _ask_batch(opt, dims, free, design, [r["params"] for r in records], list(running.values()))
                for params in new:
                    running[runner.submit(dict(params))] = params
            for future in runner.executor.wait_first(list(running)):
                params = running.pop(future)
                metrics, seconds = future.result()
                y = commit(params, metrics, seconds, {"parallel": batch})
                if len(records) + len(running) < n_calls:  # another point will be asked
                    with _one_blas_thread():
                        opt.tell(_to_skopt_point(dims, params), y)
    finally:
        runner.executor.cancel(list(running))


def _postfix(bar, last: Evaluation | None, best: Evaluation | None) -> None:
    if bar.disable or last is None:
        return
    bar.set_postfix_str(
        f"Q {last.q_db:.2f} dB RMpS {last.rmps:.3g} | best Q {best.q_db:.2f} dB RMpS {best.rmps:.3g}",
        refresh=False,
    )
