"""Where the independent pieces of a study run: in this process (the default) or on a Dask cluster.

A study is many independent pieces of work: one simulation per launch power and seed, one training per launch
power, one compression trial per Bayesian-search point. They are submitted through an *executor* with a small
``concurrent.futures``-like interface::

    from eqnn.execution import get_executor

    with get_executor(workers=2) as ex:             # or scheduler="tcp://host:8786", or nothing: in-process
        results = ex.map(fn, items, desc="launch powers")   # fn(item) for each item, results in item order
        future = ex.submit(fn, *args)                        # future.result()
        done = ex.wait_first([future, ...])                  # the finished ones (at least one)
        handle = ex.share(big_object)                        # sent once to every worker; pass it to submit()

* :class:`InProcess` (``get_executor()``): runs each call at once in this process; imports nothing of Dask.
* :class:`DaskExecutor`: a ``dask.distributed.LocalCluster`` of ``workers`` processes (one thread each, on 127.0.0.1,
  started with ``EQNN_FFT_WORKERS=1`` so that their FFTs do not each use every core), or a running scheduler at
  ``scheduler`` (also read from ``DASK_SCHEDULER_ADDRESS``, the Dask convention). The cluster is started, or the
  scheduler contacted, on first use, so that a run whose work is all cached starts nothing; its dashboard address is
  printed then. ``map`` shows a progress bar of finished / total tasks. ``share`` scatters an object to every worker
  once (``client.scatter(..., broadcast=True)``): tasks that take the handle as an argument read the workers' copy
  instead of receiving the object with every task. Dask is an optional extra: ``pip install "eqnn[distributed]"``.

The same inputs give the same numbers wherever they run (the simulation is numpy/scipy; TensorFlow training is
seeded per task): ``tests/test_distributed.py`` compares a study run in-process and on two worker processes.
Workers write the study's files (simulation cache, trained and compressed models) themselves, at the absolute
paths the client gives them: on a real cluster the results and cache folders must be on a filesystem that every
worker sees under the same path (as the home and scratch filesystems of SLURM/PBS clusters are).
"""

from __future__ import annotations

import concurrent.futures
import os
import sys
import time
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

ENV_SCHEDULER = "DASK_SCHEDULER_ADDRESS"
ENV_FFT_WORKERS = "EQNN_FFT_WORKERS"  # channel.runtime.ENV_FFT_WORKERS (not imported: this module imports no numpy)
ENV_FFT_BACKEND = "EQNN_FFT_BACKEND"  # channel.runtime.ENV_FFT_BACKEND
MAX_WORKERS = 256
INSTALL_HINT = 'pip install "eqnn[distributed]"'
CONNECT_TIMEOUT_S = 20
# Threads of each worker process of a local cluster. The workers are started with EQNN_FFT_WORKERS set to it (unless
# the client's environment sets EQNN_FFT_WORKERS itself, which they then inherit): without it each worker would run
# its FFTs on every core, and the workers together would oversubscribe the machine (benchmarks/README.md, section 7).
THREADS_PER_WORKER = 1
# Dask settings of the local cluster:
# - Dask's nanny sets MALLOC_TRIM_THRESHOLD_=65536 in its workers, which makes glibc map and unmap every large
#   temporary array: the SSFM then runs 2x slower (benchmarks/README.md, section 7); unset here.
# - the active memory manager drops the replicas of a broadcast object that no task waits for at that moment: the
#   workers would fetch it again, and it would be lost with the last worker holding it (a killed worker); off here.
LOCAL_CLUSTER_CONFIG = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
                        "distributed.scheduler.active-memory-manager.start": False}


class ExecutionError(ValueError):
    """Bad execution options (``--workers``, ``--scheduler``), or Dask missing or unreachable."""


class InProcess:
    """Runs every call at once in this process (the default: nothing to install or start)."""

    remote = False

    @property
    def slots(self) -> int:
        """Calls that run at the same time: 1."""
        return 1

    def submit(self, fn: Callable, *args, **kwargs) -> concurrent.futures.Future:
        """Call ``fn(*args, **kwargs)`` now; a finished future holds its result or its exception.
        ``KeyboardInterrupt`` and other ``BaseException``s propagate at once."""
        future: concurrent.futures.Future = concurrent.futures.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as exc:  # noqa: BLE001 - handed over through future.result(), as a pool would
            future.set_exception(exc)
        return future

    def map(self, fn: Callable, items: Iterable, desc: str = "", progress: bool = True) -> list:
        """``[fn(item) for item in items]`` (callers keep their own in-process progress output)."""
        return [fn(item) for item in items]

    def wait_first(self, futures: Sequence) -> list:
        """The finished futures among ``futures`` (all of them: each ran when submitted)."""
        return [f for f in futures if f.done()]

    def share(self, obj: Any) -> Any:
        """The object itself: nothing to send."""
        return obj

    def cancel(self, futures: Sequence) -> None:
        """Nothing runs in the background."""

    def close(self) -> None:
        """Nothing to stop."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class DaskExecutor(InProcess):
    """Tasks on a Dask cluster: a ``LocalCluster`` of ``workers`` processes, or the scheduler at ``scheduler``.

    Nothing is started before first use (:meth:`client`). ``dashboard``: address of the dashboard of a local
    cluster ("127.0.0.1:8787" by default; Dask picks a free port if it is taken; None = no dashboard).
    """

    remote = True

    def __init__(self, workers: Optional[int] = None, scheduler: Optional[str] = None,
                 dashboard: Optional[str] = "127.0.0.1:8787", log: Callable[[str], None] = print):
        self.workers, self.scheduler, self.dashboard, self._log = workers, scheduler, dashboard, log
        self._client = None
        self._cluster = None

    def client(self):
        """The ``distributed.Client``, started on first call (local cluster or connection to the scheduler)."""
        if self._client is None:
            from distributed import Client, LocalCluster

            start = time.perf_counter()
            if self.workers:
                import dask

                with dask.config.set(LOCAL_CLUSTER_CONFIG):
                    self._cluster = LocalCluster(n_workers=self.workers, threads_per_worker=THREADS_PER_WORKER,
                                                 processes=True, host="127.0.0.1", dashboard_address=self.dashboard,
                                                 env=worker_environment(THREADS_PER_WORKER),
                                                 preload=["eqnn.worker_setup"])
                self._client = Client(self._cluster)
                what = (f"started a local Dask cluster of {self.workers} worker process(es), {THREADS_PER_WORKER} "
                        f"thread{'s' if THREADS_PER_WORKER > 1 else ''} each")
            else:
                try:
                    self._client = Client(self.scheduler, timeout=CONNECT_TIMEOUT_S)
                except (OSError, TimeoutError, ValueError) as exc:
                    raise ExecutionError(f"cannot connect to a Dask scheduler at {self.scheduler} (--scheduler or "
                                         f"{ENV_SCHEDULER}): {type(exc).__name__}: {exc}") from exc
                what = f"connected to the Dask scheduler at {self.scheduler} ({len(self._client.nthreads())} workers)"
            link = self._client.dashboard_link if self.dashboard is not None or not self.workers else None
            self._log(f"{what} in {time.perf_counter() - start:.1f} s; dashboard: "
                      f"{link or 'none (start the cluster with a dashboard address)'}")
        return self._client

    @property
    def slots(self) -> int:
        """Tasks that run at the same time: the worker threads connected now (at least 1)."""
        return max(1, sum(self.client().nthreads().values()))

    def submit(self, fn: Callable, *args, **kwargs):
        """``fn(*args, **kwargs)`` as a task (never cached by key: each call runs)."""
        return self.client().submit(fn, *args, pure=False, **kwargs)

    def map(self, fn: Callable, items: Iterable, desc: str = "", progress: bool = True) -> list:
        """``fn(item)`` for each item as tasks; a progress bar of finished / total; results in item order."""
        from distributed import as_completed
        from tqdm.auto import tqdm

        futures = [self.submit(fn, item) for item in items]
        try:
            with tqdm(total=len(futures), desc=desc or getattr(fn, "__name__", "tasks"), unit="task",
                      disable=not progress, file=sys.stderr, dynamic_ncols=True) as bar:
                for _ in as_completed(futures):
                    bar.update(1)
            return [f.result() for f in futures]
        finally:
            self.cancel([f for f in futures if not f.done()])

    def wait_first(self, futures: Sequence) -> list:
        """Block until at least one of ``futures`` is finished (or failed); the finished ones, in input order."""
        from distributed import wait

        done = wait(list(futures), return_when="FIRST_COMPLETED").done
        return [f for f in futures if f in done]

    def share(self, obj: Any):
        """Send ``obj`` once to every worker; a future to pass as a task argument (each worker reads its copy)."""
        return self.client().scatter(obj, broadcast=True, hash=False)

    def cancel(self, futures: Sequence) -> None:
        if futures and self._client is not None:
            self._client.cancel(list(futures))

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
        if self._cluster is not None:
            self._cluster.close()
        self._client = self._cluster = None


def worker_environment(threads_per_worker: int, env: Optional[Mapping[str, str]] = None) -> dict[str, str]:
    """Environment variables set in the worker processes of a local cluster: ``EQNN_FFT_WORKERS`` = their threads
    (so each worker's FFTs use its own threads, not every core), unless ``env`` (default ``os.environ``) sets
    ``EQNN_FFT_WORKERS`` already (the workers then inherit that value); ``EQNN_FFT_BACKEND`` = the client's
    ``auto`` choice (:func:`channel.fft_backends.resolve`) unless ``env`` names a backend, so that client and
    workers compute with one FFT library, bit for bit alike; ``EQNN_VERBOSE`` = 1 in verbose mode (the
    workers then show TensorFlow's start-up lines: :mod:`eqnn.worker_setup`)."""
    from . import quiet
    from .worker_setup import ENV_VERBOSE

    env = os.environ if env is None else env
    out = {ENV_VERBOSE: "1"} if quiet.verbose() else {}
    if not env.get(ENV_FFT_WORKERS, "").strip():
        out[ENV_FFT_WORKERS] = str(int(threads_per_worker))
    if env.get(ENV_FFT_BACKEND, "auto").strip() in ("", "auto"):
        from channel import fft_backends  # numpy: only once a cluster is being started

        out[ENV_FFT_BACKEND] = fft_backends.resolve("auto")
    return out


def check_options(workers: Optional[int] = None, scheduler: Optional[str] = None,
                  env: Optional[Mapping[str, str]] = None) -> tuple[Optional[int], Optional[str]]:
    """Validate ``--workers`` / ``--scheduler`` (``env``: ``DASK_SCHEDULER_ADDRESS`` when neither is given) and
    that Dask is importable when one is used; returns ``(workers, scheduler)``, both None for in-process.
    Raises :class:`ExecutionError` naming the option."""
    env = os.environ if env is None else env
    if workers is not None and scheduler is not None:
        raise ExecutionError("--workers and --scheduler exclude each other: --workers N starts a local cluster, "
                             "--scheduler ADDRESS uses a running one")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                or not 1 <= workers <= MAX_WORKERS):
        raise ExecutionError(f"--workers {workers!r}: allowed an integer in [1, {MAX_WORKERS}] (worker processes "
                             "of a local Dask cluster)")
    option = "--scheduler"
    if workers is None and scheduler is None and env.get(ENV_SCHEDULER, "").strip():
        scheduler, option = env[ENV_SCHEDULER].strip(), ENV_SCHEDULER
    if scheduler is not None and (not isinstance(scheduler, str) or not scheduler.strip() or " " in scheduler.strip()):
        raise ExecutionError(f"{option} {scheduler!r}: expected a scheduler address such as tcp://host:8786")
    if workers is None and scheduler is None:
        return None, None
    try:
        import distributed  # noqa: F401
    except ImportError:
        what = f"--workers {workers}" if workers is not None else f"{option} {scheduler}"
        raise ExecutionError(f"{what} needs Dask, which is not installed: {INSTALL_HINT}") from None
    return workers, scheduler.strip() if scheduler else None


def get_executor(workers: Optional[int] = None, scheduler: Optional[str] = None,
                 env: Optional[Mapping[str, str]] = None, dashboard: Optional[str] = "127.0.0.1:8787",
                 log: Callable[[str], None] = print) -> InProcess:
    """The executor for ``--workers`` / ``--scheduler`` (options checked now, cluster started on first use):
    :class:`InProcess` when neither is given and ``DASK_SCHEDULER_ADDRESS`` is unset, else a
    :class:`DaskExecutor`."""
    workers, scheduler = check_options(workers, scheduler, env)
    if workers is None and scheduler is None:
        return InProcess()
    return DaskExecutor(workers=workers, scheduler=scheduler, dashboard=dashboard, log=log)


def _simulate(config, cache_dir, dbp: bool):
    import channel

    return channel.simulate(config, cache_dir=cache_dir, dbp=dbp)


def sweep(executor: Optional[InProcess], config, powers_dbm: Sequence[float], cache_dir=None, progress: bool = False,
          dbp: bool = True) -> list:
    """``channel.sweep_launch_power`` with one task per launch power on ``executor`` (None or in-process: the
    channel function itself, unchanged). Every power is validated before any task; results in power order."""
    import functools

    import channel

    if executor is None or not executor.remote:
        return channel.sweep_launch_power(config, powers_dbm, cache_dir=cache_dir, progress=progress, dbp=dbp)
    powers = [float(p) for p in powers_dbm]
    if not powers:
        raise ValueError("powers_dbm is empty: give at least one launch power")
    configs = [config.with_launch_power(p) for p in powers]
    cache = os.path.abspath(cache_dir) if cache_dir is not None else None
    return executor.map(functools.partial(_simulate, cache_dir=cache, dbp=dbp), configs, desc="launch powers",
                        progress=progress)


__all__ = ["ENV_SCHEDULER", "THREADS_PER_WORKER", "DaskExecutor", "ExecutionError", "InProcess", "check_options",
           "get_executor", "sweep", "worker_environment"]
