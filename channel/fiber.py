"""Manakov split-step Fourier method (SSFM): the one stepper of the code base.

The field ``A = (A_x, A_y)`` in sqrt(W) obeys the Manakov equation (convention of this package)::

    dA/dz = -(alpha/2) A - j (beta2/2) d^2A/dt^2 + (beta3/6) d^3A/dt^3 + j (8/9) gamma (|A_x|^2 + |A_y|^2) A

With ``numpy.fft`` (``A(t) = sum_k A_k exp(+j w_k t)``), the linear part is, per frequency bin,
``A_k(z+h) = A_k(z) exp[(-alpha/2 + j (beta2/2) w^2 - j (beta3/6) w^3) h]`` and the nonlinear part
``A(z+h) = A(z) exp[j (8/9) gamma P h_eff]`` with ``P = |A_x|^2 + |A_y|^2``.

The symmetric SSFM applies L(h/2) N(h) L(h/2) per step; adjacent half linear steps are merged, so a
step costs one forward and one inverse FFT of each polarization. The nonlinear step uses the power at
the step midpoint and the effective length ``h_eff = (2/alpha) sinh(alpha h / 2)`` (the exact
integral of exp(-alpha s) over the step, centred at its midpoint).

Digital back-propagation uses the same stepper with ``alpha, beta2, beta3, gamma`` negated
(``gamma`` also scaled by ``xi``): see :mod:`channel.dbp`.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np
import scipy.fft as sfft

from .config import FiberConfig, LinkConfig

MANAKOV_FACTOR = 8.0 / 9.0

SpanHook = Callable[[np.ndarray, int], np.ndarray]


class PropagationError(FloatingPointError):
    """The propagated field became NaN or Inf."""


def fft_workers() -> int:
    """Threads for scipy.fft: all cores, or ``EQNN_FFT_WORKERS`` if set."""
    return int(os.environ.get("EQNN_FFT_WORKERS", os.cpu_count() or 1))


def angular_frequencies(n_samples: int, sample_rate: float) -> np.ndarray:
    """Angular frequency of each FFT bin in rad/s, shape (n_samples,), numpy.fft bin order."""
    return 2 * np.pi * np.fft.fftfreq(n_samples, d=1 / sample_rate)


def dispersion_exponent(omega: np.ndarray, beta2: float, beta3: float) -> np.ndarray:
    """``j (beta2/2) w^2 - j (beta3/6) w^3`` in 1/m: the dispersive part of the linear operator per metre."""
    return 1j * (beta2 / 2 * omega**2 - beta3 / 6 * omega**3)


def effective_length(alpha: float, step: float) -> float:
    """Midpoint-centred effective length ``(2/alpha) sinh(alpha h/2)`` in m (``h`` if alpha = 0)."""
    if alpha == 0:
        return step
    return 2.0 / alpha * math.sinh(alpha * step / 2)


@dataclass(frozen=True)
class FiberParameters:
    """SI parameters of the propagation equation (negated for back-propagation).

    Attributes:
        alpha: power attenuation in 1/m.
        beta2: s^2/m.  beta3: s^3/m.
        gamma: nonlinear coefficient in 1/W/m (the Manakov factor 8/9 is applied by the stepper).
    """

    alpha: float
    beta2: float
    beta3: float
    gamma: float

    @classmethod
    def from_config(cls, fiber: FiberConfig) -> "FiberParameters":
        return cls(alpha=fiber.alpha, beta2=fiber.beta2, beta3=fiber.beta3, gamma=fiber.gamma)

    def inverse(self, xi: float = 1.0) -> "FiberParameters":
        """Parameters of the back-propagation: every coefficient negated, gamma scaled by ``xi``."""
        return FiberParameters(alpha=-self.alpha, beta2=-self.beta2, beta3=-self.beta3, gamma=-xi * self.gamma)


def step_lengths(config: LinkConfig) -> np.ndarray:
    """Step lengths (m) of one span of the forward link, shape (n_steps,); they sum to the span length.

    Fixed mode: ``steps_per_span`` equal steps. Adaptive mode: from z = 0, each step h is the largest
    with ``(8/9) gamma P0 exp(-alpha z) L_eff(h) <= max_nonlinear_phase_rad`` (``L_eff(h) =
    (1 - exp(-alpha h)) / alpha``, P0 the mean launch power of all channels), capped at ``max_step_km``.
    Every span starts at the same power, so the plan is computed once and reused for every span.
    """
    span = config.link.span_length
    prop = config.propagation
    if prop.step_mode == "fixed":
        return np.full(prop.steps_per_span, span / prop.steps_per_span)
    alpha = config.fiber.alpha
    p0 = config.transmitter.launch_power_w * config.transmitter.n_channels
    gp = MANAKOV_FACTOR * config.fiber.gamma * p0
    h_max = prop.max_step_km * 1e3
    steps, z = [], 0.0
    while span - z > 1e-9 * span:
        remaining = span - z
        power_scale = gp * math.exp(-alpha * z)
        if power_scale == 0:
            h = remaining
        elif alpha == 0:
            h = prop.max_nonlinear_phase_rad / power_scale
        else:
            x = prop.max_nonlinear_phase_rad * alpha / power_scale
            h = remaining if x >= 1 else -math.log1p(-x) / alpha
        h = min(h, h_max, remaining)
        steps.append(h)
        z += h
        if len(steps) > 1_000_000:
            raise ValueError("propagation.max_nonlinear_phase_rad is too small: over 1e6 steps per span")
    return np.asarray(steps)


class SplitStepFourier:
    """Symmetric split-step Fourier solver of the Manakov equation over identical spans.

    Args:
        n_samples: samples per polarization.
        sample_rate: Hz.
        params: :class:`FiberParameters` (SI).
        steps: step lengths of one span in m (see :func:`step_lengths`); applied in the given order.
        precision: "complex64" or "complex128".

    Linear operators are computed once per distinct step length and cached.
    """

    def __init__(self, n_samples: int, sample_rate: float, params: FiberParameters,
                 steps: Sequence[float], precision: str = "complex128"):
        self.n_samples = int(n_samples)
        self.params = params
        self.steps = np.asarray(steps, dtype=float)
        if self.steps.ndim != 1 or len(self.steps) == 0 or np.any(self.steps <= 0):
            raise ValueError(f"steps must be a non-empty list of positive lengths, got {steps!r}")
        self.dtype = np.dtype(precision)
        self.real_dtype = np.finfo(self.dtype).dtype
        omega = angular_frequencies(self.n_samples, sample_rate)
        self._exponent = dispersion_exponent(omega, params.beta2, params.beta3) - params.alpha / 2
        self._cache: dict[float, np.ndarray] = {}
        self._workers = fft_workers()
        # linear lengths applied before each nonlinear step of a span, and after the last one
        half = self.steps / 2
        self._linear_before = np.concatenate([[half[0]], half[1:] + half[:-1]])
        self._linear_after = half[-1]
        self._nonlinear = [MANAKOV_FACTOR * params.gamma * effective_length(params.alpha, h) for h in self.steps]

    def linear_operator(self, length: float) -> np.ndarray:
        """``exp[(-alpha/2 + j beta2/2 w^2 - j beta3/6 w^3) length]``, shape (n_samples,), cached."""
        key = round(float(length), 9)
        op = self._cache.get(key)
        if op is None:
            op = np.exp(self._exponent * length).astype(self.dtype)
            self._cache[key] = op
        return op

    def propagate(self, field: np.ndarray, n_spans: int = 1, before_span: Optional[SpanHook] = None,
                  after_span: Optional[SpanHook] = None, progress: Optional[Callable[[int], None]] = None,
                  ) -> np.ndarray:
        """Propagate ``field`` over ``n_spans`` spans.

        Args:
            field: complex, shape (2, n_samples) (or (n_samples,) for one polarization), sqrt(W).
            n_spans: number of spans.
            before_span, after_span: optional ``f(spectrum, span_index) -> spectrum`` applied to the
                frequency-domain field (unnormalized FFT, shape like ``field``) before/after each span;
                used for the amplifiers. They must not change the shape.
            progress: optional callback called with the span index after each span.

        Returns: the output field, same shape, dtype of ``precision``.

        Raises: :class:`PropagationError` naming span and step if the field becomes NaN or Inf.
        """
        x = np.asarray(field, dtype=self.dtype)
        if x.shape[-1] != self.n_samples:
            raise ValueError(f"field has {x.shape[-1]} samples per polarization, solver expects {self.n_samples}")
        spectrum = sfft.fft(x, axis=-1, workers=self._workers)
        rotation = np.empty(self.n_samples, dtype=self.dtype)
        for span in range(n_spans):
            if before_span is not None:
                spectrum = before_span(spectrum, span)
            for i in range(len(self.steps)):
                spectrum *= self.linear_operator(self._linear_before[i])
                x = sfft.ifft(spectrum, axis=-1, workers=self._workers, overwrite_x=True)
                power = x.real**2
                power += x.imag**2
                if x.ndim == 2:
                    power = power[0] + power[1]
                if not np.isfinite(power.sum()):
                    raise PropagationError(f"field became NaN/Inf in span {span + 1} of {n_spans}, "
                                           f"step {i + 1} of {len(self.steps)}")
                phase = power
                phase *= self.real_dtype.type(self._nonlinear[i])
                np.cos(phase, out=rotation.real)
                np.sin(phase, out=rotation.imag)
                x *= rotation
                spectrum = sfft.fft(x, axis=-1, workers=self._workers, overwrite_x=True)
            spectrum *= self.linear_operator(self._linear_after)
            if after_span is not None:
                spectrum = after_span(spectrum, span)
            if progress is not None:
                progress(span)
        out = sfft.ifft(spectrum, axis=-1, workers=self._workers, overwrite_x=True)
        if not np.all(np.isfinite(out)):
            raise PropagationError(f"field became NaN/Inf at the end of span {n_spans}")
        return out
