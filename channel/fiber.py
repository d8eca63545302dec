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

Generalized step (used by DBP, :mod:`channel.dbp`): with ``nonlinear_position = q`` in [0, 1] a step applies
L(q h) N(h) L((1 - q) h): the nonlinear step sits at the fraction ``q`` of the step from its start (in the
direction of propagation), with the effective length ``h_eff(q) = (exp(alpha q h) - exp(-alpha (1 - q) h)) / alpha``
(the integral over the step of ``exp(-alpha (s - q h))``: the step's nonlinear phase, with the power taken where
N sits); ``q = 1/2`` is the symmetric step above (computed by the same sinh formula, bit for bit). Optionally the
power ``P`` is low-pass filtered by a short real FIR ``g`` (circularly, over the block) before the rotation:
``A <- A exp[j (8/9) gamma h_eff (g * P)]`` (filtered DBP, Du & Lowery, Opt. Express 18(16), 2010).

Digital back-propagation uses the same stepper with ``alpha, beta2, beta3, gamma`` negated
(``gamma`` also scaled by ``xi``): see :mod:`channel.dbp`.

Polarization-mode dispersion (optional, ``pmd``): the forward link's birefringent sections (:mod:`channel.pmd`), each a
unitary 2x2 Jones matrix per frequency bin, applied to the spectrum at the linear steps (they commute with the
dispersion and loss), so they cost no FFT. Without ``pmd`` the stepper is unchanged, bit for bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np
from scipy import ndimage

from . import fft_backends, runtime
from .config import FiberConfig, LinkConfig, PropagationConfig
from .fft import angular_frequencies, fft_in_place, fft_workers, work_copy  # noqa: F401 - re-exported (old home)
from .fft import backend as fft_backend
from .fft_backends import aligned
from .pmd import PolarizationModeDispersion

MANAKOV_FACTOR = 8.0 / 9.0

SpanHook = Callable[[np.ndarray, int], np.ndarray]


class PropagationError(FloatingPointError):
    """The propagated field became NaN or Inf."""


def dispersion_exponent(omega: np.ndarray, beta2: float, beta3: float) -> np.ndarray:
    """``j (beta2/2) w^2 - j (beta3/6) w^3`` in 1/m: the dispersive part of the linear operator per metre."""
    return 1j * (beta2 / 2 * omega**2 - beta3 / 6 * omega**3)


def effective_length(alpha: float, step: float, position: float = 0.5) -> float:
    """Effective length in m of a step of length ``h = step`` whose nonlinear step sits at the fraction
    ``q = position`` of it: ``(exp(alpha q h) - exp(-alpha (1 - q) h)) / alpha`` (``h`` if alpha = 0), the
    integral of ``exp(-alpha (s - q h))`` over ``s`` in [0, h]. For ``q = 1/2`` (the default) it is computed as
    ``(2/alpha) sinh(alpha h/2)``; ``q = 0``: ``(1 - exp(-alpha h)) / alpha``.
    """
    if alpha == 0:
        return step
    if position == 0.5:
        return 2.0 / alpha * math.sinh(alpha * step / 2)
    return (math.expm1(alpha * position * step) - math.expm1(-alpha * (1 - position) * step)) / alpha


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
    """Step lengths (m) of one span of the forward link of ``config``, shape (n_steps,): :func:`step_plan` with
    the link's propagation settings, span length, fiber and total launch power (all channels)."""
    return step_plan(config.propagation, config.link.span_length, config.fiber.alpha, config.fiber.gamma,
                     config.transmitter.launch_power_w * config.transmitter.n_channels)


def step_plan(propagation: PropagationConfig, span_length: float, alpha: float, gamma: float,
              launch_power: float) -> np.ndarray:
    """Step lengths (m) of one span, shape (n_steps,); they sum to the span length.

    Fixed mode: ``steps_per_span`` equal steps. Logarithmic mode: :func:`logarithmic_steps`.
    Adaptive mode: from z = 0, each step h is the largest with
    ``(8/9) gamma P0 exp(-alpha z) L_eff(h) <= max_nonlinear_phase_rad``, ``L_eff(h) = (1 - exp(-alpha h)) / alpha``,
    P0 the mean launch power of all channels, capped at ``max_step_km``.
    Every span starts at the same power, so the plan is computed once and reused for every span.

    Args:
        propagation: step mode, steps per span, bound on the nonlinear phase per step, longest step.
        span_length: L in m.  alpha: power attenuation in 1/m.  gamma: nonlinear coefficient in 1/W/m.
        launch_power: P0, the mean launch power of all channels together in W (used in adaptive mode only).
    """
    span = span_length
    prop = propagation
    if prop.step_mode == "fixed" or (prop.step_mode == "logarithmic" and alpha == 0):
        return np.full(prop.steps_per_span, span / prop.steps_per_span)
    if prop.step_mode == "logarithmic":
        return logarithmic_steps(span, alpha, prop.steps_per_span)
    p0 = launch_power
    gp = MANAKOV_FACTOR * gamma * p0
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


def logarithmic_steps(span: float, alpha: float, n_steps: int) -> np.ndarray:
    """Logarithmic step-size distribution (Bosco et al., IEEE PTL 12(5), 2000), shape (n_steps,), in m.

    ``h_n = -(1/alpha) ln[(1 - n delta) / (1 - (n-1) delta)]``, ``delta = (1 - exp(-alpha L)) / n_steps``:
    every step has the same ``exp(-alpha z_n) L_eff(h_n) = delta / alpha``, hence the same nonlinear phase
    for the mean power. Args: span length L (m), power attenuation alpha (1/m, > 0), number of steps.
    """
    delta = -math.expm1(-alpha * span) / n_steps
    n = np.arange(1, n_steps + 1)
    steps = -np.log1p(-delta / (1 - (n - 1) * delta)) / alpha
    return steps * (span / steps.sum())  # the sum is L up to rounding; make it exact


#: frequency bins per block of a linear operator computed on the fly (not cached)
OPERATOR_BLOCK = 65536
#: samples per block of the nonlinear step: its temporaries (a few blocks) stay in the CPU cache
NONLINEAR_BLOCK = 8192
#: with more than one thread (``workers``), the operator multiply is split over the threads
#: when there are at least this many samples per thread
PARALLEL_MIN_SAMPLES = 32768
#: the rotation exp(j phi) of the nonlinear step uses a Taylor series up to this many terms of cos
#: (see :func:`rotation_terms`); larger phases use numpy's cos/sin
MAX_SERIES_TERMS = 8
_COS_COEFFICIENTS = tuple((-1) ** k / math.factorial(2 * k) for k in range(MAX_SERIES_TERMS + 1))
_SIN_COEFFICIENTS = tuple((-1) ** k / math.factorial(2 * k + 1) for k in range(MAX_SERIES_TERMS + 1))


def operator_cache_bytes() -> int:
    """Memory budget of the cached linear operators in bytes: ``runtime.settings().operator_cache_bytes``
    (``EQNN_OPERATOR_CACHE_MB``, default 64 MiB)."""
    return runtime.settings().operator_cache_bytes


def rotation_terms(max_abs_phase: float, eps: float = 2.0**-56) -> int:
    """Number of terms n of the series ``cos phi = sum_{k<=n} (-1)^k phi^2k/(2k)!`` and
    ``sin phi = sum_{k<n} (-1)^k phi^(2k+1)/(2k+1)!`` whose truncation errors, bounded by
    ``|phi|^(2n+2)/(2n+2)!`` and ``|phi|^(2n+1)/(2n+1)!``, stay below ``eps`` (a quarter of the float64
    unit roundoff) for every ``|phi| <= max_abs_phase``; 0 if more than :data:`MAX_SERIES_TERMS` would be needed.
    """
    for n in range(1, MAX_SERIES_TERMS + 1):
        if (max_abs_phase ** (2 * n + 1) / math.factorial(2 * n + 1) <= eps
                and max_abs_phase ** (2 * n + 2) / math.factorial(2 * n + 2) <= eps):
            return n
    return 0


def unit_rotation(phase: np.ndarray, out: np.ndarray, max_abs_phase: Optional[float] = None,
                  scale: float = 1.0) -> np.ndarray:
    """``out = scale exp(j phase)`` for real ``phase`` (shape (..., m)) into complex ``out`` (same shape).

    float64 phases with ``max |phase|`` small enough for :func:`rotation_terms` (the nonlinear phase of
    an SSFM step is a few mrad) use the Taylor series of cos and sin in ``u = phase^2`` by Horner's rule,
    exact to float64 rounding and 2.5x cheaper than numpy's float64 cos/sin on this CPU (benchmarks/README §2);
    larger phases and float32 (whose numpy cos/sin are SIMD) use numpy's cos and sin. ``scale`` (default 1:
    not applied) multiplies the series' coefficients (no extra pass; the stepper folds the inverse FFT's 1/N in).
    """
    if max_abs_phase is None:
        max_abs_phase = float(np.max(np.abs(phase))) if phase.size else 0.0
    n = rotation_terms(max_abs_phase) if phase.dtype == np.float64 else 0
    if n == 0:
        np.cos(phase, out=out.real)
        np.sin(phase, out=out.imag)
        if scale != 1.0:
            out *= out.real.dtype.type(scale)
        return out
    cos_c, sin_c = _COS_COEFFICIENTS, _SIN_COEFFICIENTS
    if scale != 1.0:
        cos_c, sin_c = tuple(c * scale for c in cos_c), tuple(c * scale for c in sin_c)
    # Horner's rule, the first and last passes writing where they must (no fill, no copy into out):
    # cos = ((c_n u + c_{n-1}) u + ...) u + c_0,  sin = phi (((s_{n-1} u + s_{n-2}) u + ...) u + s_0)
    u = phase * phase
    acc = np.multiply(u, cos_c[n])
    for k in range(n - 1, 0, -1):
        acc += cos_c[k]
        acc *= u
    np.add(acc, cos_c[0], out=out.real)
    if n >= 2:
        np.multiply(u, sin_c[n - 1], out=acc)
        for k in range(n - 2, 0, -1):
            acc += sin_c[k]
            acc *= u
        acc += sin_c[0]
    else:
        acc.fill(sin_c[0])
    np.multiply(acc, phase, out=out.imag)
    return out


class SplitStepFourier:
    """Symmetric split-step Fourier solver of the Manakov equation over identical spans.

    Args:
        n_samples: samples per polarization.
        sample_rate: Hz.
        params: :class:`FiberParameters` (SI).
        steps: step lengths of one span in m (see :func:`step_lengths`); applied in the given order.
        precision: "complex64" or "complex128".
        workers: FFT threads (default ``runtime.settings().fft_workers``, see :mod:`channel.runtime`).
            With one thread each polarization is transformed by its own 1-D call (pocketfft's multi-row
            complex128 path is about 2x slower single-threaded); with more, one call transforms all rows in parallel.
        operator_cache_bytes: memory budget of the cached linear operators (default
            ``runtime.settings().operator_cache_bytes``). All operators of the step plan are cached if they fit,
            else only those used more than once per span (most used first); the others are computed and applied
            block by block when used (one complex exponential per step instead of a lookup, no array of
            the field's size), which bounds the memory of large runs with many distinct step lengths.
        nonlinear_position: q in [0, 1], where the nonlinear step sits in each step, as a fraction of the step
            from its start in the direction of propagation: L(q h) N(h) L((1 - q) h) with the effective length
            :func:`effective_length` ``(alpha, h, q)``. Default 1/2: the symmetric step.
        power_filter: optional real FIR taps ``g``, shape (2M + 1,) (odd length, centred on tap M), applied
            circularly to the power before the rotation: ``P_f[n] = sum_m g[m] P[n + m - M]`` (indices modulo
            n_samples). None (default): no filter. The taps are used as given (normalize them to a unit sum to
            keep the mean nonlinear phase).
        pmd: optional :class:`channel.pmd.PolarizationModeDispersion` of the fibre (forward links only): its
            sections of span ``s`` are applied to the spectrum of span ``s`` at the linear stages given by
            :meth:`~channel.pmd.PolarizationModeDispersion.section_stages`; fields must then have both
            polarizations (shape (2, n) or (batch, 2, n)). None (default): no PMD.

    Per step the solver does one forward and one inverse FFT of every row, one multiplication by the
    cached linear operator, and the nonlinear rotation in cache-sized blocks of :data:`NONLINEAR_BLOCK`
    samples (power, phase, ``exp(j phase)`` by :func:`unit_rotation`, multiplication; with ``workers`` > 1 the
    operator multiplication is split over that many threads, each sample computed as on one thread; the rotation
    stays on one thread, which measured faster): no array of the field's size is allocated per step (with a
    ``power_filter``, the filtered power of the whole block is).
    """

    def __init__(self, n_samples: int, sample_rate: float, params: FiberParameters,
                 steps: Sequence[float], precision: str = "complex128", workers: Optional[int] = None,
                 operator_cache_bytes: Optional[int] = None, nonlinear_position: float = 0.5,
                 power_filter: Optional[np.ndarray] = None, pmd: Optional[PolarizationModeDispersion] = None):
        self.n_samples = int(n_samples)
        self.params = params
        self.steps = np.asarray(steps, dtype=float)
        if self.steps.ndim != 1 or len(self.steps) == 0 or np.any(self.steps <= 0):
            raise ValueError(f"steps must be a non-empty list of positive lengths, got {steps!r}")
        self.dtype = np.dtype(precision)
        self.real_dtype = np.finfo(self.dtype).dtype
        # real dispersion phase per metre (rad/m), Im of dispersion_exponent: the operator is exp(-alpha L/2) exp(j D L)
        # (computed in place: at most two arrays of n floats at a time)
        omega = angular_frequencies(self.n_samples, sample_rate)
        self._dispersion = omega * omega
        self._dispersion *= params.beta2 / 2
        if params.beta3:
            omega **= 3
            omega *= params.beta3 / 6
            self._dispersion -= omega
        del omega
        position = float(nonlinear_position)
        if not 0.0 <= position <= 1.0:
            raise ValueError(f"nonlinear_position = {nonlinear_position!r}: allowed [0, 1]")
        self.nonlinear_position = position
        self.power_filter = None
        if power_filter is not None:
            taps = np.asarray(power_filter, dtype=float)
            if taps.ndim != 1 or len(taps) % 2 != 1 or not np.all(np.isfinite(taps)) or len(taps) > self.n_samples:
                raise ValueError(f"power_filter must be an odd number (at most n_samples) of finite real taps, "
                                 f"got shape {taps.shape}")
            self.power_filter = taps
        # linear lengths applied before each nonlinear step of a span, and after the last one
        if position == 0.5:
            head = tail = self.steps / 2
        else:
            head, tail = self.steps * position, self.steps * (1 - position)
        self._linear_before = np.concatenate([[head[0]], head[1:] + tail[:-1]])
        self._linear_after = tail[-1]
        self._cache: dict[float, np.ndarray] = {}
        self._cache_budget = runtime.settings().operator_cache_bytes if operator_cache_bytes is None \
            else int(operator_cache_bytes)
        # which operators to cache: all if they fit in the budget; else those used more than once per span,
        # most used first, while they fit (a length used once per span is applied block by block when used)
        uses: dict[float, int] = {}
        for length in [*self._linear_before, self._linear_after]:
            if length == 0:  # not applied (see _apply_linear)
                continue
            key = round(float(length), 9)
            uses[key] = uses.get(key, 0) + 1
        nbytes = self.n_samples * self.dtype.itemsize
        if len(uses) * nbytes <= self._cache_budget:
            self._cacheable = set(uses)
        else:
            ranked = sorted((k for k in uses if uses[k] > 1), key=lambda k: -uses[k])
            self._cacheable = set(ranked[:self._cache_budget // nbytes])
        self._workers = runtime.settings().fft_workers if workers is None else int(workers)
        self._nonlinear = [MANAKOV_FACTOR * params.gamma * effective_length(params.alpha, h, position)
                           for h in self.steps]
        self.pmd = pmd
        if pmd is not None:
            self._pmd_stages = pmd.section_stages(self.steps, position)
            self._pmd_phasor = pmd.birefringence_phasor(angular_frequencies(self.n_samples, sample_rate), self.dtype)

    @classmethod
    def from_link(cls, config: LinkConfig, n_samples: Optional[int] = None, **options) -> "SplitStepFourier":
        """The stepper of the forward link of ``config``: its fiber (:meth:`FiberParameters.from_config`), its step
        plan (:func:`step_lengths`) and precision, at the transmitter's sample rate, and its PMD
        (:meth:`PolarizationModeDispersion.from_link`, None without). ``n_samples`` defaults to
        ``n_symbols * samples_per_symbol``; ``options``: ``workers``, ``operator_cache_bytes``."""
        tx = config.transmitter
        n = tx.n_symbols * tx.samples_per_symbol if n_samples is None else n_samples
        return cls(n, tx.sample_rate, FiberParameters.from_config(config.fiber), step_lengths(config),
                   config.propagation.precision, pmd=PolarizationModeDispersion.from_link(config), **options)

    def _operator_block(self, block: slice, length: float) -> np.ndarray:
        phase = self._dispersion[block] * length
        return math.exp(-self.params.alpha * length / 2) * (np.cos(phase) + 1j * np.sin(phase))

    def linear_operator(self, length: float) -> np.ndarray:
        """``exp(-alpha length/2) exp[j (beta2/2 w^2 - beta3/6 w^3) length]``, shape (n_samples,).

        Cached per length within the memory budget (all lengths of the plan if they fit, else the ones used
        more than once per span); for other lengths a new array is returned.
        """
        key = round(float(length), 9)
        op = self._cache.get(key)
        if op is None:
            op = np.empty(self.n_samples, self.dtype)
            for i in range(0, self.n_samples, OPERATOR_BLOCK):
                op[i:i + OPERATOR_BLOCK] = self._operator_block(slice(i, i + OPERATOR_BLOCK), length)
            if key in self._cacheable:
                self._cache[key] = op
        return op

    def _apply_linear(self, spectrum: np.ndarray, length: float) -> None:
        """``spectrum *= linear_operator(length)``; an operator that is not cached is applied block by block,
        without an array of the field's size."""
        if length == 0:  # a nonlinear step at a step's end (nonlinear_position 0 or 1): nothing to apply
            return
        key = round(float(length), 9)
        if key in self._cacheable:
            op = self.linear_operator(length)
            self._in_parallel(lambda a, b: np.multiply(spectrum[..., a:b], op[a:b], out=spectrum[..., a:b]))
            return
        for i in range(0, self.n_samples, OPERATOR_BLOCK):
            block = slice(i, i + OPERATOR_BLOCK)
            spectrum[..., block] *= self._operator_block(block, length).astype(self.dtype, copy=False)

    def _transform(self, x: np.ndarray, inverse: bool, normalized: bool = True) -> np.ndarray:
        return fft_in_place(x, inverse, self._workers, repeated=True, normalized=normalized)

    def _nonlinear_step(self, x: np.ndarray, coefficient: float, scale: float = 1.0) -> float:
        """``x *= exp(j coefficient P)``, ``P = sum over polarizations of |x|^2``, in blocks; returns max |phase|.

        ``scale`` s != 1: ``x`` is the field times 1/s (an inverse FFT without its 1/N): ``x *= s exp(j coefficient
        s^2 |x|^2)`` gives the field itself. With a ``power_filter`` the whole power is computed and filtered first
        (:meth:`_filtered_nonlinear_step`).
        """
        if self.power_filter is not None:
            return self._filtered_nonlinear_step(x, coefficient, scale)
        rows = x.reshape(-1, x.shape[-2] if x.ndim > 1 else 1, self.n_samples)  # (batch, polarization, n)
        coefficient = self.real_dtype.type(coefficient * scale * scale)
        # one thread whatever the workers: split over 2 threads the rotation took 1.71 ms against 1.12 ms on one
        # (quiet 2-core machine, benchmarks/README.md section 2: the GIL-bound loop over blocks); same result either way
        return self._rotate_blocks(rows, coefficient, scale, 0, self.n_samples)

    def _in_parallel(self, work: Callable[[int, int], float]) -> list:
        """``[work(start, stop)]`` over the samples: one range on one thread, or, with ``workers`` > 1 threads and at
        least :data:`PARALLEL_MIN_SAMPLES` samples, ``workers`` ranges of whole :data:`NONLINEAR_BLOCK` blocks on a
        thread pool (numpy releases the GIL in its loops). Each sample is computed the same way either way."""
        workers = min(self._workers, self.n_samples // PARALLEL_MIN_SAMPLES)
        if workers <= 1:
            return [work(0, self.n_samples)]
        blocks = -(-self.n_samples // NONLINEAR_BLOCK)
        bounds = [min(self.n_samples, NONLINEAR_BLOCK * (blocks * k // workers)) for k in range(workers + 1)]
        return list(fft_backends.thread_pool(workers).map(work, bounds[:-1], bounds[1:]))

    def _rotate_blocks(self, rows: np.ndarray, coefficient, scale: float, start: int, stop: int) -> float:
        """The rotation of samples [start, stop) of ``rows`` (batch, polarization, n) in blocks; returns max |phase|
        (NaN for a non-finite field)."""
        peak = 0.0
        for i in range(start, stop, NONLINEAR_BLOCK):
            block = rows[:, :, i:min(i + NONLINEAR_BLOCK, stop)]
            phase = np.square(block.real[:, 0])  # P = sum over polarizations of re^2 + im^2, (batch, m)
            phase += np.square(block.imag[:, 0])
            for p in range(1, block.shape[1]):
                phase += np.square(block.real[:, p])
                phase += np.square(block.imag[:, p])
            phase *= coefficient
            block_peak = max(float(phase.max()), -float(phase.min()))
            if not math.isfinite(block_peak):  # NaN or Inf in the field: the caller names span and step
                return math.nan
            rotation = unit_rotation(phase, np.empty(phase.shape, self.dtype), block_peak, scale)
            block *= rotation[:, None, :]
            peak = max(peak, block_peak)
        return peak

    def _filtered_nonlinear_step(self, x: np.ndarray, coefficient: float, scale: float = 1.0) -> float:
        """``x *= exp(j coefficient (g * P))``: the power of the whole block, filtered circularly by the FIR
        ``g = self.power_filter`` (``(g * P)[n] = sum_m g[m] P[n + m - M]``), then the rotation; returns max |phase|."""
        rows = x.reshape(-1, x.shape[-2] if x.ndim > 1 else 1, self.n_samples)  # (batch, polarization, n)
        power = np.sum(rows.real**2 + rows.imag**2, axis=1)  # (batch, n)
        phase = ndimage.correlate1d(power, self.power_filter, axis=-1, mode="wrap")
        phase *= self.real_dtype.type(coefficient * scale * scale)
        peak = max(float(phase.max()), -float(phase.min())) if phase.size else 0.0
        if not math.isfinite(peak):
            return math.nan
        for i in range(0, self.n_samples, NONLINEAR_BLOCK):
            block_phase = phase[:, i:i + NONLINEAR_BLOCK]
            rotation = unit_rotation(block_phase, np.empty(block_phase.shape, self.dtype), peak, scale)
            rows[:, :, i:i + NONLINEAR_BLOCK] *= rotation[:, None, :]
        return peak

    def _apply_pmd(self, spectrum: np.ndarray, span: int, stage: int) -> None:
        """Apply, in place, the PMD sections of span ``span`` that belong to linear stage ``stage`` (in order)."""
        first = span * self.pmd.sections_per_span
        for j in self._pmd_stages[stage]:
            self.pmd.apply_section(spectrum, first + j, self._pmd_phasor)

    def propagate(self, field: np.ndarray, n_spans: int = 1, before_span: Optional[SpanHook] = None,
                  after_span: Optional[SpanHook] = None, progress: Optional[Callable[[int], None]] = None,
                  overwrite_input: bool = False) -> np.ndarray:
        """Propagate ``field`` over ``n_spans`` spans.

        Args:
            field: complex, shape (2, n_samples) (or (n_samples,) for one polarization, or
                (batch, 2, n_samples) for a batch of independent fields with the same step plan), sqrt(W).
                The nonlinear phase uses the power summed over the polarization axis (-2).
            n_spans: number of spans.
            before_span, after_span: optional ``f(spectrum, span_index) -> spectrum`` applied to the
                frequency-domain field (unnormalized FFT, shape like ``field``) before/after each span;
                used for the amplifiers. They must not change the shape.
            progress: optional callback called with the span index after each span.
            overwrite_input: the input array (if C-contiguous and of the solver's dtype) may be used as
                the work array, saving one field of memory; its content is then undefined.

        Returns: the output field, same shape, dtype of ``precision``.

        Raises: :class:`PropagationError` naming span and step if the field becomes NaN or Inf.
        """
        x = np.asarray(field, dtype=self.dtype)
        if x.shape[-1] != self.n_samples:
            raise ValueError(f"field has {x.shape[-1]} samples per polarization, solver expects {self.n_samples}")
        if self.pmd is not None:
            if x.ndim < 2 or x.shape[-2] != 2:
                raise ValueError(f"PMD needs a field with both polarizations, shape (2, n) or (batch, 2, n); "
                                 f"got {x.shape}")
            if n_spans > self.pmd.n_spans:
                raise ValueError(f"n_spans = {n_spans}: the PMD realization has {self.pmd.n_spans} spans")
        if (not overwrite_input and np.may_share_memory(x, field)) or not x.flags.c_contiguous \
                or not x.flags.writeable or (fft_backend() == "fftw" and not aligned(x)):
            x = work_copy(x, self.dtype)  # never modify the caller's array; aligned for FFTW's SIMD plans
        spectrum = self._transform(x, inverse=False)
        # FFTW: the inverse FFTs of the steps skip their 1/N, which the nonlinear step folds into its rotation
        # (one pass over the field less per step); scipy.fft and MKL: as before (bit for bit)
        scale = 1.0 / self.n_samples if fft_backend() == "fftw" else 1.0
        for span in range(n_spans):
            if before_span is not None:
                spectrum = before_span(spectrum, span)
            for i in range(len(self.steps)):
                self._apply_linear(spectrum, self._linear_before[i])
                if self.pmd is not None:
                    self._apply_pmd(spectrum, span, i)
                x = self._transform(spectrum, inverse=True, normalized=scale == 1.0)
                peak = self._nonlinear_step(x, self._nonlinear[i], scale)
                if not math.isfinite(peak):
                    raise PropagationError(f"field became NaN/Inf in span {span + 1} of {n_spans}, "
                                           f"step {i + 1} of {len(self.steps)}")
                spectrum = self._transform(x, inverse=False)
            self._apply_linear(spectrum, self._linear_after)
            if self.pmd is not None:
                self._apply_pmd(spectrum, span, len(self.steps))
            if after_span is not None:
                spectrum = after_span(spectrum, span)
            if progress is not None:
                progress(span)
        out = self._transform(spectrum, inverse=True)
        if not np.all(np.isfinite(out)):
            raise PropagationError(f"field became NaN/Inf at the end of span {n_spans}")
        return out
