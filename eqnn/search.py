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

``Objective(cost=...)`` (:data:`COSTS`: "rmps" default, "bop", "nabs") puts another metric of ``evaluate`` in the
place of RMpS in both modes (``u = log10(metrics[cost] / R0)``, ``R0`` in that unit, e.g. the uncompressed BoP):
"bop" rewards fewer weight and activation bits, which RMpS does not see. The Pareto front, the plot and the
tie-breaks stay in RMpS; the spec of an "rmps" objective is what it always was.

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

The code lives in :mod:`eqnn.searching` (``space``, ``objective``, ``results``, ``storage``, ``run``); every
name above stays importable from here.
"""

from .searching.files import (
    ACQ_FUNCS,
    COSTS,
    CSV_FILE,
    FORMAT,
    INITIAL_POINT_GENERATORS,
    LOCK_FILE,
    MODES,
    PLOT_FILE,
    RECORDS_FILE,
    RESULT_FILE,
    SEARCH_FILE,
    SearchLockedError,
    SearchMismatchError,
)
from .searching.objective import Objective
from .searching.results import Evaluation, SearchResult, pareto_front
from .searching.run import search
from .searching.space import Categorical, Dimension, Integer, Real, check_space
from .searching.storage import _jsonable, load

__all__ = ["ACQ_FUNCS", "COSTS", "CSV_FILE", "FORMAT", "INITIAL_POINT_GENERATORS", "LOCK_FILE", "MODES", "PLOT_FILE",
           "RECORDS_FILE", "RESULT_FILE", "SEARCH_FILE", "Categorical", "Dimension", "Evaluation", "Integer",
           "Objective", "Real", "SearchLockedError", "SearchMismatchError", "SearchResult", "check_space", "load",
           "pareto_front", "search", "_jsonable"]
