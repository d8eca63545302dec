"""FFT helpers shared by the transmitter, the stepper, the amplifier hooks, the receiver and DBP.

Convention (``numpy.fft``): ``X_k = sum_n x_n exp(-2 pi j k n / N)`` (unnormalized forward transform),
``x_n = (1/N) sum_k X_k exp(+2 pi j k n / N)``; bin ``k`` of an ``N``-sample grid at sample rate ``Fs`` is at
frequency ``fftfreq(N, 1/Fs)[k]`` Hz. Every transform here acts on the last axis. The number of threads is
that of :func:`channel.runtime.settings` (``EQNN_FFT_WORKERS``) unless a caller passes ``workers``.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import scipy.fft as sfft

from . import runtime


def fft_workers() -> int:
    """Threads for scipy.fft: ``runtime.settings().fft_workers`` (``EQNN_FFT_WORKERS``, default all cores)."""
    return runtime.settings().fft_workers


def fft(x: np.ndarray, workers: Optional[int] = None, overwrite_x: bool = False) -> np.ndarray:
    """Forward FFT along the last axis (``scipy.fft.fft``), ``workers`` threads (default :func:`fft_workers`)."""
    return sfft.fft(x, axis=-1, workers=fft_workers() if workers is None else workers, overwrite_x=overwrite_x)


def ifft(x: np.ndarray, workers: Optional[int] = None, overwrite_x: bool = False) -> np.ndarray:
    """Inverse FFT along the last axis (``scipy.fft.ifft``, 1/N scaling); threads as :func:`fft`."""
    return sfft.ifft(x, axis=-1, workers=fft_workers() if workers is None else workers, overwrite_x=overwrite_x)


def fft_in_place(x: np.ndarray, inverse: bool = False, workers: int = 1) -> np.ndarray:
    """FFT (or inverse) along the last axis of the C-contiguous complex ``x``, in place; returns ``x``'s data.

    With one thread, one 1-D call per row: pocketfft's multi-row complex128 path is 2.5x slower
    single-threaded and allocates a work copy of several rows. With more threads, one call over all rows
    (the threads take rows in parallel).
    """
    transform = sfft.ifft if inverse else sfft.fft
    if workers > 1 or x.ndim == 1:
        return transform(x, axis=-1, workers=workers, overwrite_x=True)
    for row in x.reshape(-1, x.shape[-1]):
        out = transform(row, workers=1, overwrite_x=True)  # pocketfft writes into row itself
        if not np.shares_memory(out, row):
            row[...] = out
    return x


def angular_frequencies(n_samples: int, sample_rate: float) -> np.ndarray:
    """Angular frequency of each FFT bin in rad/s, shape (n_samples,), numpy.fft bin order.

    ``w_k = 2 pi fftfreq(n_samples, 1/sample_rate)[k]``; ``sample_rate`` in Hz.
    """
    return 2 * np.pi * np.fft.fftfreq(n_samples, d=1 / sample_rate)


__all__ = ["angular_frequencies", "fft", "fft_in_place", "fft_workers", "ifft"]
