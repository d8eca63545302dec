"""The search itself: :func:`search` (sequential or batched, resumable)."""

from __future__ import annotations

import json
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .files import ACQ_FUNCS, FORMAT, INITIAL_POINT_GENERATORS, RECORDS_FILE, SEARCH_FILE, SearchMismatchError
from .objective import Objective
from .results import Evaluation, SearchResult, _best_key, _check_references
from .space import Dimension, _is_int, _to_params, _to_skopt_point, check_space
from .storage import (
    _clean_metrics,
    _evaluation,
    _folder_lock,
    _fsync_dir,
    _now,
    _read_records,
    _record_bytes,
    _spec_differences,
    _spec_hash,
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
