"""Runtime settings of the numerics: how many FFT threads, how much memory for cached operators.

They change how fast a simulation runs and how much memory it holds, never its numbers. One frozen
:class:`RuntimeSettings` holds them, validated once when built:

* ``fft_workers``: FFT threads (every backend), integer in [1, :data:`MAX_FFT_WORKERS`]; environment variable
  ``EQNN_FFT_WORKERS``, default ``os.cpu_count()`` (all cores).
* ``fft_backend``: the FFT library of :mod:`channel.fft`, one of ``auto`` (default: the fastest installed, by a
  short measurement), ``fftw`` (pyFFTW), ``mkl`` (mkl_fft), ``scipy`` (scipy.fft); environment variable
  ``EQNN_FFT_BACKEND``. A backend that is not installed is refused like an unknown name (see
  :mod:`channel.fft_backends`).
* ``operator_cache_mb``: memory budget of the stepper's cached linear operators in MiB, a number in
  [0, :data:`MAX_OPERATOR_CACHE_MB`]; environment variable ``EQNN_OPERATOR_CACHE_MB``, default 64.

:func:`settings` returns the settings in force: those set by :func:`configure` if any, else those of the
environment (read again, and validated, only when a variable changes). A bad value raises
:class:`channel.validation.ConfigError` in one line naming the variable, its value and the allowed range::

    EQNN_FFT_WORKERS = '0' is out of range: allowed integers in [1, 4096]

Set them in code for a block (or for the rest of the process, without ``with``)::

    from channel import runtime
    with runtime.configure(fft_workers=1):
        channel.simulate(cfg)

A local Dask cluster (:class:`eqnn.execution.DaskExecutor`) starts its workers with ``EQNN_FFT_WORKERS`` set
to their threads per worker, so that workers do not each use every core.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from dataclasses import dataclass
from typing import Mapping, Optional

from .validation import ConfigError, check_int, check_number

ENV_FFT_WORKERS = "EQNN_FFT_WORKERS"
ENV_OPERATOR_CACHE_MB = "EQNN_OPERATOR_CACHE_MB"
ENV_FFT_BACKEND = "EQNN_FFT_BACKEND"
#: the values of ``fft_backend``
FFT_BACKENDS = ("auto", "fftw", "mkl", "scipy")
DEFAULT_OPERATOR_CACHE_MB = 64.0
MAX_FFT_WORKERS = 4096
MAX_OPERATOR_CACHE_MB = 2.0**20  # 1 TiB


def default_fft_workers() -> int:
    """All cores: ``os.cpu_count()`` (1 if unknown)."""
    return os.cpu_count() or 1


@dataclass(frozen=True)
class RuntimeSettings:
    """Settings of the numerics that do not change results (validated on construction).

    Attributes:
        fft_workers: FFT threads, integer in [1, 4096] (default: all cores).
        operator_cache_mb: memory budget of the cached linear operators of a
            :class:`channel.fiber.SplitStepFourier`, in MiB (2**20 bytes), [0, 2**20] (default 64).
        fft_backend: FFT library, one of "auto", "fftw", "mkl", "scipy" (default "auto": the fastest installed);
            a named backend must be installed.
    """

    fft_workers: int = dataclasses.field(default_factory=default_fft_workers)
    operator_cache_mb: float = DEFAULT_OPERATOR_CACHE_MB
    fft_backend: str = "auto"

    def __post_init__(self) -> None:
        object.__setattr__(self, "fft_workers", check_int("fft_workers", self.fft_workers, 1, MAX_FFT_WORKERS))
        object.__setattr__(self, "operator_cache_mb",
                           check_number("operator_cache_mb", self.operator_cache_mb, 0, MAX_OPERATOR_CACHE_MB))
        check_fft_backend("fft_backend", self.fft_backend)

    @property
    def operator_cache_bytes(self) -> int:
        """``operator_cache_mb`` in bytes (``int(operator_cache_mb * 2**20)``)."""
        return int(self.operator_cache_mb * 2**20)

    @classmethod
    def from_env(cls, env: Optional[Mapping[str, str]] = None) -> "RuntimeSettings":
        """The settings of ``env`` (default ``os.environ``); unset or empty variables take the defaults.

        Raises :class:`ConfigError` naming the variable, its value and the allowed range.
        """
        env = os.environ if env is None else env
        values: dict = {}
        text = env.get(ENV_FFT_WORKERS, "").strip()
        if text:
            try:
                number = int(text)
            except ValueError:
                raise ConfigError(f"{ENV_FFT_WORKERS} = {text!r}: must be an integer in [1, {MAX_FFT_WORKERS}] "
                                  "(FFT threads)") from None
            if not 1 <= number <= MAX_FFT_WORKERS:
                raise ConfigError(f"{ENV_FFT_WORKERS} = {text!r} is out of range: allowed integers in "
                                  f"[1, {MAX_FFT_WORKERS}] (FFT threads)")
            values["fft_workers"] = number
        text = env.get(ENV_OPERATOR_CACHE_MB, "").strip()
        if text:
            try:
                number = float(text)
            except ValueError:
                number = float("nan")
            if not 0 <= number <= MAX_OPERATOR_CACHE_MB:  # also NaN and unparsable text
                raise ConfigError(f"{ENV_OPERATOR_CACHE_MB} = {text!r}: allowed a number of MiB in "
                                  f"[0, {MAX_OPERATOR_CACHE_MB:g}] (memory of the cached linear operators)")
            values["operator_cache_mb"] = number
        text = env.get(ENV_FFT_BACKEND, "").strip()
        if text:
            values["fft_backend"] = check_fft_backend(ENV_FFT_BACKEND, text)
        return cls(**values)


def check_fft_backend(name: str, value: object) -> str:
    """``value`` if it is one of :data:`FFT_BACKENDS` and installed, else :class:`ConfigError` in one line naming
    ``name``, the value, the allowed values and what installs a missing backend."""
    if value not in FFT_BACKENDS:
        raise ConfigError(f"{name} = {value!r}: allowed {', '.join(map(repr, FFT_BACKENDS))} (FFT library)")
    if value != "auto":
        from . import fft_backends

        if not fft_backends.available(value):
            raise ConfigError(f"{name} = {value!r}: {fft_backends.MODULES[value]} is not installed "
                              f"({fft_backends.INSTALL_HINTS[value]}); installed: "
                              f"{', '.join(fft_backends.installed())}")
    return value


_lock = threading.Lock()
_override: Optional[RuntimeSettings] = None
_from_env: Optional[tuple[tuple, RuntimeSettings]] = None


def settings() -> RuntimeSettings:
    """The settings in force: those of :func:`configure` if set, else those of the environment.

    The environment is validated once per distinct value of the three variables (so a program that sets
    ``os.environ[...]`` between runs is followed).
    """
    global _from_env
    override = _override
    if override is not None:
        return override
    key = (os.environ.get(ENV_FFT_WORKERS), os.environ.get(ENV_OPERATOR_CACHE_MB), os.environ.get(ENV_FFT_BACKEND))
    cached = _from_env
    if cached is not None and cached[0] == key:
        return cached[1]
    built = RuntimeSettings.from_env()
    _from_env = (key, built)
    return built


class configure:
    """Set runtime settings in code, for this process: ``configure(fft_workers=1)``.

    Fields not given keep their value in force now (:func:`settings`). Takes effect at once; used as a
    context manager (``with configure(...):``) the previous state is restored on exit. Values are validated
    (:class:`ConfigError` naming the field).
    """

    def __init__(self, *, fft_workers: Optional[int] = None, operator_cache_mb: Optional[float] = None,
                 fft_backend: Optional[str] = None):
        global _override
        changes = {k: v for k, v in (("fft_workers", fft_workers), ("operator_cache_mb", operator_cache_mb),
                                     ("fft_backend", fft_backend)) if v is not None}
        with _lock:
            new = dataclasses.replace(settings(), **changes)
            self.previous, self.settings = _override, new
            _override = new

    def __enter__(self) -> RuntimeSettings:
        return self.settings

    def __exit__(self, *exc) -> None:
        global _override
        with _lock:
            _override = self.previous


def reset() -> None:
    """Drop the settings of :func:`configure`: the environment's are in force again."""
    global _override
    with _lock:
        _override = None


__all__ = ["ENV_FFT_BACKEND", "ENV_FFT_WORKERS", "ENV_OPERATOR_CACHE_MB", "FFT_BACKENDS", "RuntimeSettings",
           "check_fft_backend", "configure", "reset", "settings"]
