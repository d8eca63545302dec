"""FFT layer shared by the transmitter, the stepper, the amplifier hooks, the receiver and DBP.

Convention (``numpy.fft``): ``X_k = sum_n x_n exp(-2 pi j k n / N)`` (unnormalized forward transform),
``x_n = (1/N) sum_k X_k exp(+2 pi j k n / N)``; bin ``k`` of an ``N``-sample grid at sample rate ``Fs`` is at
frequency ``fftfreq(N, 1/Fs)[k]`` Hz. Every transform here acts on the last axis. The number of threads is
that of :func:`channel.runtime.settings` (``EQNN_FFT_WORKERS``) unless a caller passes ``workers``.

The library is that of :func:`backend`: ``runtime.settings().fft_backend`` (``EQNN_FFT_BACKEND``: ``auto``,
``fftw``, ``mkl`` or ``scipy``), ``auto`` being the fastest installed (see :mod:`channel.fft_backends`). The
backends agree to rounding (relative ~1e-15), not bit for bit.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from . import fft_backends, runtime

empty_aligned = fft_backends.empty_aligned


def fft_workers() -> int:
    """FFT threads: ``runtime.settings().fft_workers`` (``EQNN_FFT_WORKERS``, default all cores)."""
    return runtime.settings().fft_workers


def backend() -> str:
    """The FFT backend in force: ``fftw``, ``mkl`` or ``scipy`` (``auto`` resolved by
    :func:`channel.fft_backends.resolve`)."""
    return fft_backends.resolve(runtime.settings().fft_backend)


def work_copy(x: np.ndarray, dtype) -> np.ndarray:
    """A 64-byte aligned C-contiguous copy of ``x`` converted to ``dtype`` (a work array for in-place FFTs)."""
    out = empty_aligned(np.shape(x), dtype)
    out[...] = x
    return out


def _complex_dtype(x: np.ndarray) -> np.dtype:
    return np.dtype(np.complex64) if x.dtype in (np.complex64, np.float32) else np.dtype(np.complex128)


def _transform(x: np.ndarray, inverse: bool, workers: Optional[int], overwrite_x: bool) -> np.ndarray:
    x = np.asarray(x)
    dtype = _complex_dtype(x)
    if not (overwrite_x and x.dtype == dtype and x.flags.c_contiguous and x.flags.writeable):
        x = work_copy(x, dtype)
    return fft_in_place(x, inverse, fft_workers() if workers is None else workers)


def fft(x: np.ndarray, workers: Optional[int] = None, overwrite_x: bool = False) -> np.ndarray:
    """Forward FFT along the last axis, ``workers`` threads (default :func:`fft_workers`); complex64 stays
    complex64 (float32 input too), anything else gives complex128. ``overwrite_x``: ``x`` may hold the result."""
    return _transform(x, False, workers, overwrite_x)


def ifft(x: np.ndarray, workers: Optional[int] = None, overwrite_x: bool = False) -> np.ndarray:
    """Inverse FFT along the last axis (1/N scaling); threads, dtypes and ``overwrite_x`` as :func:`fft`."""
    return _transform(x, True, workers, overwrite_x)


def fft_in_place(x: np.ndarray, inverse: bool = False, workers: int = 1, repeated: bool = False,
                 normalized: bool = True) -> np.ndarray:
    """FFT (or inverse) along the last axis of the C-contiguous complex64/complex128 ``x``, in place, by
    :func:`backend` with ``workers`` threads; returns ``x``.

    scipy.fft with one thread: one 1-D call per row (pocketfft's multi-row complex128 path is 2.5x slower
    single-threaded and allocates a work copy of several rows); with more threads one call over all rows.
    FFTW: one plan over all rows, made once per shape, dtype, direction, threads and alignment (the stepper's
    64-byte aligned work arrays, :func:`empty_aligned`, get FFTW's SIMD plans); ``repeated``: the transform
    runs many times (the stepper), so FFTW measures its plan instead of estimating it. ``normalized=False``: the
    inverse FFT without its 1/N (``sum_k X_k exp(+2 pi j k n / N)``).
    """
    return fft_backends.transform_in_place(backend(), x, inverse, workers, repeated, normalized)


def angular_frequencies(n_samples: int, sample_rate: float) -> np.ndarray:
    """Angular frequency of each FFT bin in rad/s, shape (n_samples,), numpy.fft bin order.

    ``w_k = 2 pi fftfreq(n_samples, 1/sample_rate)[k]``; ``sample_rate`` in Hz.
    """
    return 2 * np.pi * np.fft.fftfreq(n_samples, d=1 / sample_rate)


__all__ = ["angular_frequencies", "backend", "empty_aligned", "fft", "fft_in_place", "fft_workers", "ifft",
           "work_copy"]
