"""FFT backends of :mod:`channel.fft`: planned FFTW (pyFFTW), Intel MKL (mkl_fft), scipy.fft (always there).

Every backend computes the same transform, ``X_k = sum_n x_n exp(-2 pi j k n / N)`` forward and
``x_n = (1/N) sum_k X_k exp(+2 pi j k n / N)`` inverse, along the last axis of a C-contiguous complex64 or
complex128 array, in place (:meth:`transform_in_place`, input and output of shape (..., N)). They differ in
speed and in rounding only (relative differences ~1e-15, tests/test_fft_backends.py): the backend is an
implementation detail of the simulator, not part of a simulation's cache key.

* ``fftw``: pyFFTW (BSD) over FFTW 3 (GPL). One FFTW plan per (shape, dtype, direction, threads, alignment,
  planner), made once (``FFTW_MEASURE`` for the stepper's repeated transforms, at most
  :data:`PLANNING_TIME_LIMIT_S` of planning; ``FFTW_ESTIMATE`` for one-off transforms) and reused for every later
  transform of that kind in the thread that made it (:func:`plans_made` counts plan creations). With one
  thread the whole array is one plan; with ``workers`` > 1 threads the rows (polarizations, batch) are split
  over a pool of threads, each group one single-threaded plan (FFTW's own threads cost 1.6x the CPU time of
  one thread on a shared machine, benchmarks/README.md section 2); a single row uses FFTW's threads. Plans
  are remembered across runs as FFTW *wisdom* in :func:`wisdom_path` (a JSON file of FFTW's own text format,
  imported as data: nothing is run).
* ``mkl``: mkl_fft (BSD) over Intel MKL (Intel Simplified Software License); MKL picks its threads itself.
* ``scipy``: scipy.fft (pocketfft); one 1-D call per row on one thread (its multi-row complex128 path is
  slower single-threaded), one call over all rows with more threads.

``auto`` (the default, :func:`resolve`) takes the fastest installed backend by a short measurement (a
forward+inverse pair of 2 x :data:`PROBE_SAMPLES` complex128 samples, one thread, best of a few), made once
per machine: the choice is kept in :func:`auto_choice_path` beside the wisdom (a JSON record, read as data), so
that every later process on the machine (Dask workers included) uses the same backend. Without it a measurement
on a loaded machine could pick different backends in different processes, whose fields differ in their last
bits (~1e-15): a study on Dask workers would then not reproduce the in-process numbers bit for bit. Delete
the file (or set ``EQNN_FFT_BACKEND``) to choose again.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import platform
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import scipy.fft as sfft

#: the backends, fastest expected first; ``auto`` chooses among the installed ones by measurement
BACKENDS = ("fftw", "mkl", "scipy")
#: the Python module each backend needs, and what installs it
MODULES = {"fftw": "pyfftw", "mkl": "mkl_fft", "scipy": "scipy.fft"}
INSTALL_HINTS = {"fftw": "pip install pyfftw, or the 'fast' extra: pip install -e '.[fast]'",
                 "mkl": "pip install mkl_fft", "scipy": "pip install scipy"}
#: seconds FFTW may spend planning one transform (FFTW_MEASURE stops early with the best plan found)
PLANNING_TIME_LIMIT_S = 5.0
#: FFTW's planner for the stepper's repeated transforms (tests use "FFTW_ESTIMATE": no planning time)
REPEATED_PLANNER = "FFTW_MEASURE"
#: arrays of fewer elements are transformed by FFTW on one thread (waking threads costs more than it saves)
MIN_ELEMENTS_PER_THREADED_FFT = 32768
#: samples per row of the ``auto`` measurement
PROBE_SAMPLES = 16384
#: environment variable naming the folder of the FFTW wisdom file ("" or "off": no wisdom file)
ENV_WISDOM_DIR = "EQNN_FFTW_WISDOM_DIR"

_lock = threading.Lock()
_modules: dict[str, object] = {}
_auto: Optional[str] = None


def _import(name: str):
    """The module of backend ``name`` (imported once); ImportError if it is missing or broken."""
    module = _modules.get(name)
    if module is None:
        module = importlib.import_module(MODULES[name])
        _modules[name] = module
    return module


def available(name: str) -> bool:
    """Whether backend ``name`` can be imported here."""
    try:
        _import(name)
    except ImportError:
        return False
    return True


def installed() -> list[str]:
    """The installed backends, in :data:`BACKENDS` order."""
    return [name for name in BACKENDS if available(name)]


# ------------------------------------------------------------------------------------------------- scipy

def _scipy_in_place(x: np.ndarray, inverse: bool, workers: int, repeated: bool, normalized: bool) -> np.ndarray:
    transform = sfft.ifft if inverse else sfft.fft
    if inverse and not normalized:  # norm="forward": the 1/N belongs to the forward transform, none on the inverse
        def transform(a, _inverse=transform, **k):
            return _inverse(a, norm="forward", **k)
    if workers > 1 or x.ndim == 1:
        out = transform(x, axis=-1, workers=workers, overwrite_x=True)
        if not np.shares_memory(out, x):
            x[...] = out
        return x
    for row in x.reshape(-1, x.shape[-1]):
        out = transform(row, workers=1, overwrite_x=True)  # pocketfft writes into row itself
        if not np.shares_memory(out, row):
            row[...] = out
    return x


# --------------------------------------------------------------------------------------------------- mkl

def _mkl_in_place(x: np.ndarray, inverse: bool, workers: int, repeated: bool, normalized: bool) -> np.ndarray:
    mkl_fft = _import("mkl")
    (mkl_fft.ifft if inverse else mkl_fft.fft)(x, axis=-1, out=x,
                                                   norm="forward" if inverse and not normalized else None)
    return x


# -------------------------------------------------------------------------------------------------- fftw

_plans = threading.local()  # per thread: {key: pyfftw.FFTW}; an FFTW object is not shared between threads
_plan_count = 0
_wisdom_loaded = False


def plans_made() -> int:
    """How many FFTW plans this process has made (each (shape, dtype, direction, threads, alignment) once
    per thread)."""
    return _plan_count


def _cache_folder() -> Optional[Path]:
    """``$EQNN_FFTW_WISDOM_DIR`` (default ``$XDG_CACHE_HOME/eqnn``, i.e. ``~/.cache/eqnn``); None when "" or "off"."""
    folder = os.environ.get(ENV_WISDOM_DIR)
    if folder is None:
        folder = str(Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "eqnn")
    return None if folder.strip() in ("", "off") else Path(folder)


def _machine_digest(extra: str) -> str:
    cpu = platform.processor() + platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu += "".join(line for line in f if line.startswith(("model name", "flags")))
    except OSError:
        pass
    return hashlib.sha256(f"{cpu}|{extra}".encode()).hexdigest()[:16]


def wisdom_path() -> Optional[Path]:
    """The FFTW wisdom file: ``<folder>/fftw-wisdom-<machine>.json`` in ``$EQNN_FFTW_WISDOM_DIR`` (default
    ``$XDG_CACHE_HOME/eqnn``, i.e. ``~/.cache/eqnn``); None when the variable is "" or "off". ``<machine>``
    digests the CPU model and flags and the pyFFTW version: wisdom is not portable between machines."""
    folder = _cache_folder()
    if folder is None:
        return None
    version = getattr(_modules.get("fftw"), "__version__", "")
    return folder / f"fftw-wisdom-{_machine_digest(version)}.json"


def auto_choice_path(candidates: Optional[list] = None) -> Optional[Path]:
    """The file that keeps ``auto``'s choice on this machine: ``<folder>/fft-auto-<digest>.json`` in the wisdom
    folder (None when wisdom is off); ``<digest>`` covers the CPU and the installed backends (``candidates``,
    default :func:`installed`), so installing or removing one measures again."""
    folder = _cache_folder()
    if folder is None:
        return None
    return folder / f"fft-auto-{_machine_digest(','.join(installed() if candidates is None else candidates))}.json"


def _write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename; an unwritable folder is skipped."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError:
        pass


def _load_wisdom(pyfftw) -> None:
    """Import the wisdom file once per process, as data: a JSON list of three strings in FFTW's wisdom text."""
    global _wisdom_loaded
    if _wisdom_loaded:
        return
    _wisdom_loaded = True
    path = wisdom_path()
    if path is None or not path.is_file():
        return
    try:
        texts = json.loads(path.read_text())
        if isinstance(texts, list) and len(texts) == 3 and all(isinstance(t, str) for t in texts):
            pyfftw.import_wisdom(tuple(t.encode("ascii") for t in texts))
    except (OSError, ValueError, UnicodeError):
        pass  # unreadable or foreign wisdom: plan afresh


def _save_wisdom(pyfftw) -> None:
    """Write FFTW's wisdom (all plans made so far, with the file's) atomically; an unwritable folder is skipped."""
    path = wisdom_path()
    if path is not None:
        _write_atomically(path, json.dumps([w.decode("ascii") for w in pyfftw.export_wisdom()]))


def empty_aligned(shape, dtype) -> np.ndarray:
    """An uninitialized C-contiguous array whose data start on a 64-byte boundary (FFTW's SIMD alignment)."""
    dtype = np.dtype(dtype)
    n_bytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    raw = np.empty(n_bytes + 64, np.uint8)
    start = -raw.ctypes.data % 64
    return raw[start:start + n_bytes].view(dtype).reshape(shape)


_pools: dict[int, ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()


def thread_pool(workers: int) -> ThreadPoolExecutor:
    """A process-wide pool of ``workers`` threads (made once per size), shared by the FFT rows and the stepper's
    sample ranges (:mod:`channel.fiber`); work submitted to it never submits to it again (no nested waits)."""
    with _pools_lock:
        pool = _pools.get(workers)
        if pool is None:
            pool = _pools[workers] = ThreadPoolExecutor(workers, thread_name_prefix="eqnn-fft")
        return pool


def aligned(x: np.ndarray) -> bool:
    """Whether ``x``'s data start on FFTW's SIMD alignment (32 bytes with AVX)."""
    alignment = getattr(_modules.get("fftw"), "simd_alignment", 32)
    return x.ctypes.data % alignment == 0


def _fftw_plan(shape: tuple, dtype: np.dtype, inverse: bool, workers: int, is_aligned: bool,
               planner: str = "FFTW_MEASURE"):
    plans = getattr(_plans, "table", None)
    if plans is None:
        plans = _plans.table = {}
    key = (shape, dtype.str, inverse, workers, is_aligned, planner)
    plan = plans.get(key)
    if plan is not None:
        return plan
    global _plan_count
    pyfftw = _import("fftw")
    with _lock:
        _load_wisdom(pyfftw)
        work = pyfftw.empty_aligned(shape, dtype)  # planning (FFTW_MEASURE) overwrites its arrays
        flags = (planner, "FFTW_DESTROY_INPUT") + (() if is_aligned else ("FFTW_UNALIGNED",))
        plan = pyfftw.FFTW(work, work, axes=(-1,), direction="FFTW_BACKWARD" if inverse else "FFTW_FORWARD",
                           flags=flags, threads=workers, planning_timelimit=PLANNING_TIME_LIMIT_S)
        _plan_count += 1
        if planner != "FFTW_ESTIMATE":
            _save_wisdom(pyfftw)
    plans[key] = plan
    return plan


def _fftw_execute(x: np.ndarray, inverse: bool, workers: int, planner: str) -> None:
    plan = _fftw_plan(x.shape, x.dtype, inverse, workers, aligned(x), planner)
    plan.update_arrays(x, x)
    plan.execute()  # pyFFTW releases the GIL while FFTW runs


def _fftw_in_place(x: np.ndarray, inverse: bool, workers: int, repeated: bool, normalized: bool) -> np.ndarray:
    planner = REPEATED_PLANNER if repeated else "FFTW_ESTIMATE"
    rows = x.reshape(-1, x.shape[-1])
    groups = min(workers, rows.shape[0]) if x.size >= MIN_ELEMENTS_PER_THREADED_FFT else 1
    if groups > 1:  # rows split over threads, one single-threaded plan each (FFTW's own threads idle-wait)
        bounds = [rows.shape[0] * k // groups for k in range(groups + 1)]
        list(thread_pool(groups).map(lambda a, b: _fftw_execute(rows[a:b], inverse, 1, planner),
                                     bounds[:-1], bounds[1:]))
    else:
        _fftw_execute(x, inverse, workers if x.size >= MIN_ELEMENTS_PER_THREADED_FFT else 1, planner)
    if inverse and normalized:
        x *= x.real.dtype.type(1.0 / x.shape[-1])
    return x


# ------------------------------------------------------------------------------------------------ public

_IN_PLACE: dict[str, Callable[[np.ndarray, bool, int, bool, bool], np.ndarray]] = {
    "fftw": _fftw_in_place, "mkl": _mkl_in_place, "scipy": _scipy_in_place}


def transform_in_place(name: str, x: np.ndarray, inverse: bool, workers: int, repeated: bool = False,
                       normalized: bool = True) -> np.ndarray:
    """FFT (``inverse``: inverse FFT, 1/N scaled) of the C-contiguous complex64/complex128 ``x`` along its last
    axis, in place, by backend ``name`` with ``workers`` threads; returns ``x``. ``repeated``: the same
    transform will run many times (the stepper): FFTW measures its plan (``FFTW_MEASURE``, a few seconds the
    first time on a machine, then from the wisdom file); otherwise FFTW estimates it (``FFTW_ESTIMATE``, no
    planning time). ``normalized=False``: the inverse without its 1/N."""
    return _IN_PLACE[name](x, inverse, workers, repeated, normalized)


def _probe_seconds(name: str) -> float:
    rng = np.random.default_rng(0)
    x = empty_aligned((2, PROBE_SAMPLES), np.complex128)  # aligned like the stepper's work arrays
    x[...] = rng.standard_normal((2, 2 * PROBE_SAMPLES)).view(np.complex128)

    def pair():
        transform_in_place(name, x, False, 1)
        transform_in_place(name, x, True, 1)
    pair()  # warm-up (and the plan)
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        pair()
        best = min(best, time.perf_counter() - t0)
    return best


def _stored_auto_choice(path: Optional[Path], candidates: list) -> Optional[str]:
    """The backend recorded in ``path`` if it is a readable ``{"backend": name}`` with an installed name."""
    if path is None or not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError, UnicodeError):
        return None
    name = record.get("backend") if isinstance(record, dict) else None
    return name if name in candidates else None


def resolve(name: str) -> str:
    """The backend that ``name`` stands for: ``auto`` is the fastest installed backend by a short measurement,
    made once per machine and kept in :func:`auto_choice_path` (read once per process); any other name is
    returned as is."""
    global _auto
    if name != "auto":
        return name
    if _auto is None:
        candidates = installed()
        if len(candidates) == 1:
            _auto = candidates[0]
        else:
            path = auto_choice_path(candidates)
            _auto = _stored_auto_choice(path, candidates)
            if _auto is None:
                seconds = {c: _probe_seconds(c) for c in candidates}
                _auto = min(candidates, key=seconds.get)
                if path is not None:
                    _write_atomically(path, json.dumps({"backend": _auto, "pair_seconds": seconds}))
    return _auto


def forget_auto_choice() -> None:
    """Measure again at the next ``auto`` resolution (tests)."""
    global _auto
    _auto = None


def forget_plans() -> None:
    """Drop this thread's FFTW plans: the next transforms plan again (tests)."""
    _plans.table = {}


__all__ = ["BACKENDS", "ENV_WISDOM_DIR", "aligned", "auto_choice_path", "available", "empty_aligned",
           "forget_auto_choice", "forget_plans", "installed", "plans_made", "resolve", "thread_pool",
           "transform_in_place", "wisdom_path"]
